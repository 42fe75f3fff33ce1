"""Metric depth as soft classification over fixed depth bins (REALM's depth head)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..image_encoder import EncoderOutput

__all__ = ["DepthHead"]


class DepthHead(nn.Module):
    """Per-pixel distribution over ``num_bins`` depths, read out as its expectation.

    Two paths produce bin logits: a 1x1 conv on the patch grid (local structure), bilinearly
    upsampled to the input size, plus a linear map of the CLS token (global scene scale) broadcast
    over the image. Classifying into bins and taking the expectation is more robust than
    regressing metres directly and keeps the output inside the configured range.

    The per-pixel work over all bins dominates the head's cost at full resolution (on a small CPU
    several times the tiny encoder); ``logit_stride`` > 1 evaluates the distribution on a coarser
    grid and upsamples the depth map instead. ``logit_upsample`` > 0 instead puts the distribution
    on the patch grid times that factor, whatever the input size (REALM's released head: 4).
    """

    def __init__(
        self,
        embed_dim: int,
        num_bins: int = 256,
        min_depth: float = 1.0,
        max_depth: float = 81.0,
        logit_stride: int = 1,
        logit_upsample: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= min_depth < max_depth:
            raise ValueError(f"invalid depth range ({min_depth}, {max_depth})")
        if logit_stride < 1:
            raise ValueError(f"logit_stride must be >= 1, got {logit_stride}")
        if logit_upsample < 0:
            raise ValueError(f"logit_upsample must be >= 0, got {logit_upsample}")
        self.logit_stride = logit_stride
        self.logit_upsample = logit_upsample
        self.spatial = nn.Conv2d(embed_dim, num_bins, 1)
        self.glob = nn.Linear(embed_dim, num_bins)
        self.register_buffer("bins", torch.linspace(min_depth, max_depth, num_bins))

    @property
    def depth_range(self) -> tuple[float, float]:
        return float(self.bins[0]), float(self.bins[-1])

    def forward(self, feats: EncoderOutput, out_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Depth (B, 1, H, W) in metres and bin logits (B, num_bins, H/s, W/s), s = logit_stride
        (with ``logit_upsample`` u: (B, num_bins, u*h, u*w) on the h x w patch grid)."""
        # The CLS path is constant over the image and bilinear weights sum to one, so adding it
        # before upsampling is exact and saves a full-resolution pass over all bins.
        logits = self.spatial(feats.patch_map()) + self.glob(feats.cls)[:, :, None, None]
        s, u = self.logit_stride, self.logit_upsample
        if u:
            size = (logits.shape[-2] * u, logits.shape[-1] * u)
        else:
            size = (out_size[0] // s, out_size[1] // s)
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        prob = logits.softmax(dim=1)
        depth = torch.einsum("bkhw,k->bhw", prob, self.bins.to(prob.dtype)).unsqueeze(1)
        if s > 1 or u:
            depth = F.interpolate(depth, size=out_size, mode="bilinear", align_corners=False)
        return {"depth": depth, "depth_logits": logits}
