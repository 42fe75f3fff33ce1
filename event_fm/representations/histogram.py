"""RVT's stacked histogram: per-polarity event counts in B time bins, clipped.

Bin of an event: floor(B (t - t_start) / (t_end - t_start)), with t_end itself in the last bin
and t_end == t_start putting everything in bin 0. Channels are polarity-major, OFF bins first:
``[OFF b0 .. OFF b(B-1), ON b0 .. ON b(B-1)]``, i.e. RVT's (2, B, H, W) flattened to (2B, H, W).
"""

from __future__ import annotations

import torch

from event_fm.representations._accumulate import Backend, counts_grid
from event_fm.representations._inputs import Events


def stacked_histogram(events: Events, num_bins: int, height: int, width: int, t_start: int,
                      t_end: int, max_count: int = 255, backend: Backend = "torch", device=None,
                      stats: dict | None = None) -> torch.Tensor:
    """Counts (2 * num_bins, height, width) clipped to ``max_count``.

    uint8 when ``max_count`` <= 255 (RVT stores and feeds uint8), int32 otherwise, so the clip
    never wraps.
    """
    if num_bins < 1 or max_count < 1:
        raise ValueError("num_bins and max_count must be >= 1")
    counts = counts_grid(events, height, width, t_start, t_end, num_bins, True, backend, device,
                         stats)
    counts = counts.clamp_max_(max_count)
    return counts.to(torch.uint8) if max_count <= 255 else counts
