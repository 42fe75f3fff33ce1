"""Voxel-grid normalizations, NaN-free by construction (no data-dependent branches or syncs).

* ``none``: raw signed sums.
* ``nonzero_zscore`` (E2VID / REALM): mean and population std over the non-zero voxels only;
  zero voxels stay zero, so empty pixels do not drag the statistics.
* ``zscore``: mean and population std over all voxels.
* ``maxabs`` (E-Motion): divide by the largest magnitude, giving values in [-1, 1].

A zero std (all values equal, one event, no events) divides by 1 instead, which yields zeros
after the mean is removed; an all-zero grid stays all zero under every mode.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Normalization = Literal["none", "nonzero_zscore", "zscore", "maxabs"]
NORMALIZATIONS = ("none", "nonzero_zscore", "zscore", "maxabs")


def normalize(grid: torch.Tensor, mode: Normalization = "none",
              sample_dims: int = 3) -> torch.Tensor:
    """Normalize ``grid``; the trailing ``sample_dims`` dims share one set of statistics.

    With the default 3, a (B, H, W) grid is normalized as a whole and each window of a
    (N, B, H, W) batch on its own. Returns a new tensor (the input is left untouched).
    """
    if mode not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {mode!r}")
    if mode == "none":
        return grid
    sample_dims = min(sample_dims, grid.dim())
    per_sample = math.prod(grid.shape[grid.dim() - sample_dims:])
    if grid.numel() == 0 or per_sample == 0:
        return grid.clone()
    flat = grid.reshape(-1, per_sample)
    if mode == "maxabs":
        peak = flat.abs().amax(dim=1, keepdim=True)
        out = flat / torch.where(peak > 0, peak, 1.0)
    elif mode == "zscore":
        mean = flat.mean(dim=1, keepdim=True)
        centered = flat - mean
        std = centered.square().mean(dim=1, keepdim=True).sqrt()
        out = centered / torch.where(std > 0, std, 1.0)
    else:  # nonzero_zscore
        nonzero = flat != 0
        n = nonzero.sum(dim=1, keepdim=True).clamp_min(1)
        mean = flat.sum(dim=1, keepdim=True) / n
        centered = torch.where(nonzero, flat - mean, 0.0)
        std = (centered.square().sum(dim=1, keepdim=True) / n).sqrt()
        out = centered / torch.where(std > 0, std, 1.0)
    return out.reshape(grid.shape)


def normalize_sequence(sequence: torch.Tensor, mode: Normalization = "maxabs") -> torch.Tensor:
    """Normalize a (T, B, H, W) sequence with one set of statistics for all of it.

    Per-window ``maxabs`` makes a quiet window as bright as a busy one, which flickers in a
    video; sharing the scale across the sequence keeps relative activity.
    """
    return normalize(sequence, mode, sample_dims=sequence.dim())
