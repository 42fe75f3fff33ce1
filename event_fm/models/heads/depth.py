"""Metric depth as soft classification over fixed depth bins (REALM's depth head)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..image_encoder import EncoderOutput

__all__ = ["DEPTH_SPACINGS", "DepthHead", "depth_bins"]

DEPTH_SPACINGS = ("linear", "log")


def depth_bins(min_depth: float, max_depth: float, num_bins: int,
               spacing: str = "linear") -> torch.Tensor:
    """Bin centres from ``min_depth`` to ``max_depth`` (both included), even in depth or in
    log depth."""
    if spacing == "log":
        return torch.logspace(math.log10(min_depth), math.log10(max_depth), num_bins)
    return torch.linspace(min_depth, max_depth, num_bins)


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

    ``spacing="log"`` spaces the bins evenly in log depth: with one range from a tabletop's 0.2 m
    to a road's 80 m, linear bins put one bin in the first metre (a table is a single depth),
    log bins give every octave the same share. REALM's head is linear.
    """

    def __init__(
        self,
        embed_dim: int,
        num_bins: int = 256,
        min_depth: float = 1.0,
        max_depth: float = 81.0,
        logit_stride: int = 1,
        logit_upsample: int = 0,
        spacing: str = "linear",
    ) -> None:
        super().__init__()
        if not 0 <= min_depth < max_depth:
            raise ValueError(f"invalid depth range ({min_depth}, {max_depth})")
        if logit_stride < 1:
            raise ValueError(f"logit_stride must be >= 1, got {logit_stride}")
        if logit_upsample < 0:
            raise ValueError(f"logit_upsample must be >= 0, got {logit_upsample}")
        if spacing not in DEPTH_SPACINGS:
            raise ValueError(f"spacing must be one of {DEPTH_SPACINGS}, got {spacing!r}")
        if spacing == "log" and min_depth <= 0:
            raise ValueError(f"log-spaced depth bins need min_depth > 0, got {min_depth}")
        self.logit_stride = logit_stride
        self.logit_upsample = logit_upsample
        self.spatial = nn.Conv2d(embed_dim, num_bins, 1)
        self.glob = nn.Linear(embed_dim, num_bins)
        self.spacing = spacing
        self.register_buffer("bins", depth_bins(min_depth, max_depth, num_bins, spacing))

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
