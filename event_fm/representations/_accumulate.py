"""Backend dispatch shared by the representations: counts and latest times per pixel.

Both backends produce the same torch tensor; only where the loop runs differs. Statistics
(``stats``) are filled in the same way everywhere:

* ``events``: events looked at,
* ``out_of_bounds``: dropped because x >= width or y >= height (or negative),
* ``out_of_window``: inside the sensor but with t outside [t_start, t_end].

On a GPU, asking for ``stats`` costs one device-to-host sync at the end of the call.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from event_fm.representations import _numba_kernels as nk
from event_fm.representations import _torch_kernels as tk
from event_fm.representations._inputs import (
    Events,
    columns,
    resolve_device,
    to_numpy,
    torch_chunks,
)

Backend = Literal["torch", "numba"]
BACKENDS = ("torch", "numba")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def check_window(t_start, t_end) -> tuple[int, int]:
    t0, t1 = int(t_start), int(t_end)
    if t1 < t0:
        raise ValueError(f"t_end ({t1}) is before t_start ({t0})")
    return t0, t1


def check_sensor(height: int, width: int) -> tuple[int, int]:
    if height <= 0 or width <= 0:
        raise ValueError(f"sensor size must be positive, got {height}x{width}")
    return int(height), int(width)


def new_stats_counter(stats: dict | None, device: torch.device) -> torch.Tensor | None:
    return None if stats is None else torch.zeros(2, dtype=torch.int64, device=device)


def record(stats: dict | None, n_events: int, counts) -> None:
    """Write the drop counts (a length-2 array/tensor: out of bounds, out of window)."""
    if stats is None:
        return
    if isinstance(counts, torch.Tensor):
        counts = counts.cpu().numpy()
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 2).sum(axis=0)
    stats["events"] = int(n_events)
    stats["out_of_bounds"] = int(counts[0])
    stats["out_of_window"] = int(counts[1])


def counts_grid(events: Events, height: int, width: int, t_start: int, t_end: int, nbins: int,
                split: bool, backend: Backend = "torch", device=None,
                stats: dict | None = None) -> torch.Tensor:
    """Event counts (C, H, W) int32, C = nbins (x2 when ``split`` by polarity, OFF first)."""
    check_backend(backend)
    height, width = check_sensor(height, width)
    t0, t1 = check_window(t_start, t_end)
    cols = columns(events)
    device = resolve_device(cols, device)
    channels = nbins * (2 if split else 1)
    if backend == "numba":
        cols = to_numpy(cols)
        out = np.zeros((channels, height, width), np.int32)
        counts = nk.count_range(*cols, 0, len(cols), t0, t1, nbins, split, out)
        record(stats, len(cols), counts)
        return torch.from_numpy(out).to(device)
    grid = torch.zeros(channels * height * width + 1, dtype=torch.int32, device=device)
    counter = new_stats_counter(stats, device)
    for chunk in torch_chunks(cols, device):
        tk.counts_into(grid, chunk, t0, t1 - t0, nbins, split, height, width, counter)
    record(stats, len(cols), counter)
    return grid[:-1].view(channels, height, width)


def last_time_grid(events: Events, height: int, width: int, t_start: int, t_end: int,
                   split: bool, backend: Backend = "torch", device=None,
                   stats: dict | None = None) -> torch.Tensor:
    """Latest ``t - t_start`` (ns) per pixel, (C, H, W) int64, -1 where no event; C = 2 if split."""
    check_backend(backend)
    height, width = check_sensor(height, width)
    t0, t1 = check_window(t_start, t_end)
    cols = columns(events)
    device = resolve_device(cols, device)
    channels = 2 if split else 1
    if backend == "numba":
        cols = to_numpy(cols)
        out = np.full((channels, height, width), -1, np.int64)
        counts = nk.last_time_range(*cols, 0, len(cols), t0, t1, split, out)
        record(stats, len(cols), counts)
        return torch.from_numpy(out).to(device)
    grid = torch.full((channels * height * width + 1,), -1, dtype=torch.int64, device=device)
    counter = new_stats_counter(stats, device)
    for chunk in torch_chunks(cols, device):
        tk.last_time_into(grid, chunk, t0, t1 - t0, split, height, width, counter)
    record(stats, len(cols), counter)
    return grid[:-1].view(channels, height, width)
