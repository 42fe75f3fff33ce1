"""Dense max filters built from shifted maxima."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["max_filter"]


def max_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """The maximum over a ``size`` x ``size`` window centred on every pixel of (..., H, W):
    exactly ``F.max_pool2d(x, size, stride=1, padding=size // 2)`` (the border padded with
    -inf), separably, as 2 (size - 1) elementwise maxima of shifted views.

    On the CPU torch's stride-1 max_pool2d took 2.5 ms for a 5x5 filter over 192x256, this
    0.06 ms (issue 19: non-maximum suppression was a quarter of the event matcher's time).
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"max_filter needs an odd size >= 1, got {size}")
    if not x.is_floating_point():
        raise TypeError(f"max_filter needs a floating-point tensor, got {x.dtype}")
    if size == 1:
        return x
    r = size // 2
    fill = float("-inf")
    height, width = x.shape[-2:]
    padded = F.pad(x, (r, r, 0, 0), value=fill)
    out = padded[..., 0:width]
    for i in range(1, size):
        out = torch.maximum(out, padded[..., i:i + width])
    padded = F.pad(out, (0, 0, r, r), value=fill)
    out = padded[..., 0:height, :]
    for i in range(1, size):
        out = torch.maximum(out, padded[..., i:i + height, :])
    return out
