"""The project's event model as a probe of forecast frames: encoder features (for the Frechet
distance) and segmentation (for the downstream score).

Forecast frames (3 bins per 20 ms) become the segmentation model's input by re-binning the
frames of a window onto its ``num_bins`` (5) bins with the voxel grid's linear time weights
(:func:`event_fm.models.forecast.rebin`) and resizing the 128x128 square bilinearly to the
model's ``img_size`` (192x256 for the default: a 4:3 stretch, identical for forecast and truth).
The encoder normalizes voxels itself (``voxel_norm``), so the max-|value| scale does not matter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from event_fm.models import load_model
from event_fm.models.forecast import rebin


class SegmentationProbe:
    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu",
                 batch_size: int = 8):
        self.model = load_model(Path(checkpoint)).to(device).eval()
        if "segmentation" not in self.model.heads:
            raise ValueError(f"{checkpoint}: the model has no segmentation head")
        self.device = torch.device(device)
        self.num_bins = int(self.model.config.num_bins)
        self.num_classes = len(self.model.config.class_names)
        self.batch_size = batch_size

    def model_input(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, K, 3, H, W) windows of K forecast frames -> (N, num_bins, *img_size)."""
        voxels = rebin(windows.float(), self.num_bins)
        return F.interpolate(voxels, size=tuple(self.model.img_size), mode="bilinear",
                             align_corners=False)

    @torch.no_grad()
    def __call__(self, windows: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Patch-token features (N, L, D) and segmentation labels (N, h, w) uint8."""
        tokens, labels = [], []
        for i in range(0, len(windows), self.batch_size):
            x = self.model_input(windows[i:i + self.batch_size]).to(self.device)
            feats = self.model.encoder(x)
            out = self.model.forward_heads(feats, tuple(x.shape[-2:]), "segmentation")
            tokens.append(feats.patch.float().cpu())
            labels.append(out["semantic_logits"].argmax(1).to(torch.uint8).cpu())
        return torch.cat(tokens), torch.cat(labels).numpy()
