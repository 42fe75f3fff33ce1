"""Torch kernels (CPU or CUDA): per-event flat indices, then one scatter into a flat grid.

Nothing here leaves the device or branches on data, so a CUDA call is a fixed sequence of
kernels with no host round trip. Invalid events (outside the sensor or the window) are not
filtered out (that would need a sync for the new size); they are sent to a spare cell past the
end of the grid, which is cut off afterwards.

``t0`` and ``span`` are python ints for one window, or per-event int64 tensors for batches
(gathered from the per-window values by window id); ``cell0`` is each event's first output
cell (0, or window * cells-per-window).
"""

from __future__ import annotations

import torch

from event_fm.representations._inputs import Columns


def masks(cols: Columns, t0, span, height: int, width: int):
    """(inside sensor, inside sensor and window, t - t0 clamped into [0, span]) per event.

    Coordinates are non-negative here (see ``_inputs.to_torch``).
    """
    inside = (cols.x < width) & (cols.y < height)
    dt = cols.t - t0
    clamped = dt.clamp(0, span) if not isinstance(span, torch.Tensor) else \
        torch.minimum(dt.clamp_min(0), span)
    valid = inside & (clamped == dt)
    return inside, valid, clamped


def tally(counts: torch.Tensor | None, inside: torch.Tensor, valid: torch.Tensor) -> None:
    """Accumulate (outside sensor, outside window) on the device, only when asked for."""
    if counts is not None:
        n = inside.numel()
        n_inside = inside.sum()
        counts[0] += n - n_inside
        counts[1] += n_inside - valid.sum()


def pixel(cols: Columns, width: int) -> torch.Tensor:
    """y * W + x as int64 (computed in int32: no sensor has 2**31 pixels)."""
    return (cols.y * width).add_(cols.x).to(torch.int64)


def voxel(grid: torch.Tensor, cols: Columns, t0, span, cell0, nbins: int, height: int,
          width: int, spare: int, counts: torch.Tensor | None = None) -> None:
    """Add the bilinear-in-time voxel contributions of ``cols`` to the flat float32 ``grid``.

    ``grid`` needs two planes (2 * H * W cells) of slack from ``spare`` on: the upper
    neighbour of an event in the last bin (weight 0) and invalid events land there.
    """
    plane = height * width
    inside, valid, dt = masks(cols, t0, span, height, width)
    tally(counts, inside, valid)
    if isinstance(span, torch.Tensor):
        denom = span.clamp_min(1).to(torch.float64)
    else:
        denom = float(max(span, 1))
    # Exact numerator, one rounding: events on a bin get weight exactly 1 (see the numba kernel).
    tn = dt.to(torch.float64).mul_(nbins - 1).div_(denom)
    b0 = tn.to(torch.int64)
    frac = tn.frac_()
    # Both weights rounded from float64: 1 - w1 in float32 would lose weights below 6e-8.
    sign = (cols.p > 0).to(torch.float32).mul_(2.0).sub_(1.0)  # 3x faster than a scalar where
    v1 = frac.to(torch.float32).mul_(sign)
    v0 = torch.rsub(frac, 1.0).to(torch.float32).mul_(sign)
    cell = b0.mul_(plane).add_(pixel(cols, width))
    if not (isinstance(cell0, int) and cell0 == 0):
        cell.add_(cell0)
    idx = torch.where(valid, cell, spare)
    grid.scatter_add_(0, idx, v0)
    grid.scatter_add_(0, idx.add_(plane), v1)


def counts_into(grid: torch.Tensor, cols: Columns, t0: int, span: int, nbins: int, split: bool,
                height: int, width: int, counts: torch.Tensor | None = None) -> None:
    """Add event counts to the flat int32 ``grid`` laid out (C, H, W) as in count_range."""
    plane = height * width
    spare = grid.numel() - 1
    inside, valid, dt = masks(cols, t0, span, height, width)
    tally(counts, inside, valid)
    if nbins > 1 and span > 0:
        b = torch.div(dt * nbins, span, rounding_mode="floor").clamp_max_(nbins - 1)
    else:
        b = torch.zeros_like(dt)
    if split:
        b += (cols.p > 0).to(torch.int64) * nbins
    idx = torch.where(valid, b.mul_(plane).add_(pixel(cols, width)), spare)
    grid.scatter_add_(0, idx, torch.ones_like(idx, dtype=grid.dtype))


def last_time_into(grid: torch.Tensor, cols: Columns, t0: int, span: int, split: bool,
                   height: int, width: int, counts: torch.Tensor | None = None) -> None:
    """Keep the latest ``t - t0`` per cell in the flat int64 ``grid`` (preset to -1)."""
    plane = height * width
    spare = grid.numel() - 1
    inside, valid, dt = masks(cols, t0, span, height, width)
    tally(counts, inside, valid)
    cell = pixel(cols, width)
    if split:
        cell += (cols.p > 0).to(torch.int64) * plane
    idx = torch.where(valid, cell, spare)
    grid.scatter_reduce_(0, idx, dt, reduce="amax")
