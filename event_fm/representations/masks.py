"""Patch masks for distillation: where a ViT patch holds enough events to be worth a loss.

* ScaleEvent's activation mask: event count of a P x P patch (summed over bins) >= tau.
* REALM's occupancy mask: any event in the patch, dilated by r patches (3x3 max-pool, stride 1,
  padding 1, r times) so the curriculum can widen the supervised area step by step.

Grids whose size is not a multiple of P are zero-padded at the bottom/right, as a ViT's input
padding would: the patch grid is ceil(H/P) x ceil(W/P).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from event_fm.common.filters import max_filter
from event_fm.representations._accumulate import Backend, counts_grid
from event_fm.representations._inputs import Events
from event_fm.representations.frame import ALL_TIME


def patch_sums(grid: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Sum each P x P patch of the last two dims: (..., H, W) -> (..., ceil(H/P), ceil(W/P))."""
    if patch_size < 1:
        raise ValueError("patch_size must be >= 1")
    height, width = grid.shape[-2:]
    pad_h, pad_w = -height % patch_size, -width % patch_size
    if pad_h or pad_w:
        grid = F.pad(grid, (0, pad_w, 0, pad_h))
    hp, wp = grid.shape[-2] // patch_size, grid.shape[-1] // patch_size
    grid = grid.reshape(*grid.shape[:-2], hp, patch_size, wp, patch_size)
    return grid.sum(dim=(-3, -1))


def _activity(grid: torch.Tensor) -> torch.Tensor:
    """|values| summed over bins: (H, W) or (C, H, W) -> (H, W); (N, C, H, W) -> (N, H, W)."""
    if grid.dim() not in (2, 3, 4):
        raise ValueError(f"expected (H, W), (C, H, W) or (N, C, H, W), got {tuple(grid.shape)}")
    grid = grid.abs() if grid.is_floating_point() or grid.is_signed() else grid
    if grid.dim() == 2:
        return grid
    return grid.sum(dim=-3, dtype=torch.float32 if grid.is_floating_point() else torch.int64)


def activation_mask(grid: torch.Tensor, patch_size: int = 16, tau: float = 64) -> torch.Tensor:
    """ScaleEvent's mask from a count or voxel tensor: (ceil(H/P), ceil(W/P)) bool.

    (H, W) and (C, H, W) give one mask, (N, C, H, W) a batch (N, Hp, Wp).
    """
    return patch_sums(_activity(grid), patch_size) >= tau


def occupancy_mask(grid: torch.Tensor, patch_size: int = 16, dilation: int = 0) -> torch.Tensor:
    """REALM's mask from a count or voxel tensor: any non-zero in the patch, then dilated."""
    return dilate(patch_sums(_activity(grid), patch_size) > 0, dilation)


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grow a bool (..., Hp, Wp) mask by ``radius`` patches (3x3 max-pool applied r times)."""
    if radius < 0:
        raise ValueError("dilation radius must be >= 0")
    if radius == 0:
        return mask
    shape = mask.shape
    x = mask.reshape(-1, 1, *shape[-2:]).to(torch.float32)
    for _ in range(radius):
        x = max_filter(x, 3)
    return (x > 0).reshape(shape)


def _event_counts(events, height, width, t_start, t_end, backend, device) -> torch.Tensor:
    t0 = ALL_TIME[0] if t_start is None else t_start
    t1 = ALL_TIME[1] if t_end is None else t_end
    return counts_grid(events, height, width, t0, t1, 1, False, backend, device)[0]


def activation_mask_from_events(events: Events, height: int, width: int, patch_size: int = 16,
                                tau: float = 64, t_start: int | None = None,
                                t_end: int | None = None, backend: Backend = "torch",
                                device=None) -> torch.Tensor:
    """ScaleEvent's mask straight from events (default window: all of them)."""
    counts = _event_counts(events, height, width, t_start, t_end, backend, device)
    return patch_sums(counts, patch_size) >= tau


def occupancy_mask_from_events(events: Events, height: int, width: int, patch_size: int = 16,
                               dilation: int = 0, t_start: int | None = None,
                               t_end: int | None = None, backend: Backend = "torch",
                               device=None) -> torch.Tensor:
    """REALM's mask straight from events (default window: all of them)."""
    counts = _event_counts(events, height, width, t_start, t_end, backend, device)
    return dilate(patch_sums(counts, patch_size) > 0, dilation)
