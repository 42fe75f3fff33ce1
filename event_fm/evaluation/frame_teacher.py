"""An image model's depth and classes on a recording's camera frames: the reference that
student-on-events predictions are compared with where the recording has no labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from event_fm.common.devices import resolve_device
from event_fm.evaluation.label_free import FrameTeacher
from event_fm.models import load_model

__all__ = ["has_image_teacher", "teacher_on_frames"]


def has_image_teacher(checkpoint: str | Path) -> bool:
    """Whether the checkpoint keeps its RGB branch, from its config (no weights loaded)."""
    import json

    path = Path(checkpoint)
    config = path / "config.json" if path.is_dir() else path.with_name("config.json")
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return False
    return data.get("kind") == "event_fm" and bool(data.get("config", {}).get("with_teacher", True))


def teacher_on_frames(checkpoint: str | Path, frames: dict[int, np.ndarray],
                      device: str = "cpu", max_frames: int = 200) -> FrameTeacher:
    """Depth (m) and classes of the checkpoint's RGB branch on up to ``max_frames`` frames."""
    dev = resolve_device(device)
    model = load_model(checkpoint, device=dev).eval()
    if model.teacher is None:
        raise ValueError(f"{checkpoint}: no RGB teacher in this checkpoint")
    heads = [h for h in ("depth", "segmentation") if h in model.heads]
    stamps = sorted(frames)
    if len(stamps) > max_frames:
        stamps = [stamps[int(i)] for i in np.linspace(0, len(stamps) - 1, max_frames)]
    out = FrameTeacher({}, {})
    for stamp in stamps:
        image = frames[stamp]
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        x = torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1)[None]
        x = x.to(dev).float() / 255.0
        size = tuple(image.shape[:2])
        x = F.interpolate(x, size=model.img_size, mode="bilinear", align_corners=False,
                          antialias=True)
        with torch.inference_mode():
            pred = model.forward_image(x, heads=heads)
        if "depth" in pred:
            d = F.interpolate(pred["depth"].float(), size=size, mode="bilinear",
                              align_corners=False)
            out.depth[stamp] = d[0, 0].cpu().numpy()
        if "semantic_logits" in pred:
            s = F.interpolate(pred["semantic_logits"].float(), size=size, mode="bilinear",
                              align_corners=False)
            out.semantic[stamp] = s[0].argmax(0).to(torch.uint8).cpu().numpy()
    return out
