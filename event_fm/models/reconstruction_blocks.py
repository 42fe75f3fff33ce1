"""EfficientNetV2's two convolution blocks, the building bricks of the reconstruction U-Net.

* ``FusedMBConv``: one full 3x3 conv that expands the channels, then a 1x1 projection. Cheaper
  than a depthwise pair at high resolution on hardware that likes dense convs, so EfficientNetV2
  uses it in its early (large, shallow) stages.
* ``MBConv``: 1x1 expansion, depthwise 3x3, squeeze-excitation, 1x1 projection (MobileNetV2's
  inverted bottleneck), used in the later, deeper stages.

Both have BatchNorm + SiLU after every conv but the projection, and a residual connection (with
stochastic depth) when input and output shapes match.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvNormAct", "FusedMBConv", "MBConv", "SqueezeExcite", "make_block"]


class ConvNormAct(nn.Sequential):
    """Conv2d (same padding) -> BatchNorm -> SiLU (or no activation)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, act: bool = True) -> None:
        super().__init__(
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_chs),
            nn.SiLU(inplace=True) if act else nn.Identity(),
        )


class SqueezeExcite(nn.Module):
    """Channel attention from globally pooled features (reduction relative to the block input)."""

    def __init__(self, chs: int, reduced_chs: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(chs, reduced_chs, 1)
        self.act = nn.SiLU(inplace=True)
        self.expand = nn.Conv2d(reduced_chs, chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.expand(self.act(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * scale.sigmoid()


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, prob: float = 0.0) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.prob <= 0:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class FusedMBConv(nn.Module):
    """3x3 expansion conv (carries the stride) -> 1x1 projection, residual when shapes match."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, expand_ratio: float = 4.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        mid = max(1, int(round(in_chs * expand_ratio)))
        self.has_skip = stride == 1 and in_chs == out_chs
        if expand_ratio == 1:  # EfficientNetV2's stage 1: a single 3x3 conv
            self.conv_exp = ConvNormAct(in_chs, out_chs, 3, stride)
            self.conv_pwl = nn.Identity()
        else:
            self.conv_exp = ConvNormAct(in_chs, mid, 3, stride)
            self.conv_pwl = ConvNormAct(mid, out_chs, 1, act=False)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_pwl(self.conv_exp(x))
        return x + self.drop_path(out) if self.has_skip else out


class MBConv(nn.Module):
    """1x1 expansion -> depthwise 3x3 (carries the stride) -> SE -> 1x1 projection."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, expand_ratio: float = 4.0,
                 se_ratio: float = 0.25, drop_path: float = 0.0) -> None:
        super().__init__()
        mid = max(1, int(round(in_chs * expand_ratio)))
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_pw = ConvNormAct(in_chs, mid, 1)
        self.conv_dw = ConvNormAct(mid, mid, 3, stride, groups=mid)
        self.se = (SqueezeExcite(mid, max(1, int(in_chs * se_ratio))) if se_ratio > 0
                   else nn.Identity())
        self.conv_pwl = ConvNormAct(mid, out_chs, 1, act=False)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))
        return x + self.drop_path(out) if self.has_skip else out


def make_block(kind: str, in_chs: int, out_chs: int, stride: int = 1, expand_ratio: float = 4.0,
               drop_path: float = 0.0) -> nn.Module:
    """``kind``: 'fused' (Fused-MBConv) or 'mb' (MBConv with SE)."""
    if kind == "fused":
        return FusedMBConv(in_chs, out_chs, stride, expand_ratio, drop_path)
    if kind == "mb":
        return MBConv(in_chs, out_chs, stride, expand_ratio, drop_path=drop_path)
    raise ValueError(f"unknown block kind {kind!r}: use 'fused' or 'mb'")
