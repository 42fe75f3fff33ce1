"""Time surfaces: per pixel and polarity, how recently it fired, seen from the window's end.

value = exp(-(t_end - t_last) / tau) (``decay="exp"``) or max(0, 1 - (t_end - t_last) / tau)
(``decay="linear"``); 0 where the pixel has no event in [t_start, t_end]. Channels [OFF, ON].
Ages are taken in int64 ns before the division, so absolute epochs cost no precision.
"""

from __future__ import annotations

from typing import Literal

import torch

from event_fm.representations._accumulate import Backend, last_time_grid
from event_fm.representations._inputs import Events


def time_surface(events: Events, height: int, width: int, t_start: int, t_end: int,
                 tau: float = 50e6, decay: Literal["exp", "linear"] = "exp",
                 backend: Backend = "torch", device=None,
                 stats: dict | None = None) -> torch.Tensor:
    """Time surface (2, height, width) float32 in [0, 1]; ``tau`` in ns (default 50 ms)."""
    if tau <= 0:
        raise ValueError("tau must be positive")
    if decay not in ("exp", "linear"):
        raise ValueError(f"decay must be 'exp' or 'linear', got {decay!r}")
    last = last_time_grid(events, height, width, t_start, t_end, True, backend, device, stats)
    age = ((int(t_end) - int(t_start)) - last).to(torch.float64) / float(tau)
    value = torch.exp(-age) if decay == "exp" else (1.0 - age).clamp_min(0.0)
    return torch.where(last >= 0, value, 0.0).to(torch.float32)
