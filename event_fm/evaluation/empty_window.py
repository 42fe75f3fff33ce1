"""The model's answer to a window without events: a baseline every depth and segmentation
figure is reported beside. A model that predicts the same layout whatever it sees scores the
same on real windows as on this one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from event_fm.common.devices import resolve_device
from event_fm.models import load_model

__all__ = ["empty_window_prediction"]


def empty_window_prediction(checkpoint: str | Path, height: int, width: int,
                            device: str = "cpu") -> dict[str, np.ndarray]:
    """{"depth": (H, W) metres, "semantic": (H, W) uint8} of the checkpoint on zero voxels at the
    sensor size, through the same tiled forward the engine runs."""
    dev = resolve_device(device)
    model = load_model(checkpoint, device=dev).eval()
    heads = [h for h in ("depth", "segmentation") if h in model.heads]
    voxels = torch.zeros(1, model.config.num_bins, height, width, device=dev)
    with torch.inference_mode():
        out = model.forward_events_tiled(voxels, heads=heads)
    result = {}
    if "depth" in out:
        d = F.interpolate(out["depth"].float(), size=(height, width), mode="bilinear",
                          align_corners=False)
        result["depth"] = d[0, 0].cpu().numpy()
    if "semantic_logits" in out:
        logits = F.interpolate(out["semantic_logits"].float(), size=(height, width),
                               mode="bilinear", align_corners=False)
        result["semantic"] = logits[0].argmax(0).to(torch.uint8).cpu().numpy()
    return result
