"""A plain accumulated event frame for display: ON red, OFF blue, on white or black.

Each pixel takes the colour of the polarity with more events in the window (ties go to ON), so
the picture does not depend on event order.
"""

from __future__ import annotations

from typing import Literal

import torch

from event_fm.representations._accumulate import Backend, counts_grid
from event_fm.representations._inputs import Events

ON_COLOR = (255, 0, 0)
OFF_COLOR = (0, 0, 255)
#: Default window: every event (a span that still fits in int64).
ALL_TIME = (-(1 << 62), (1 << 62) - 1)


def event_frame(events: Events, height: int, width: int, t_start: int | None = None,
                t_end: int | None = None, background: Literal["white", "black"] = "white",
                on_color: tuple[int, int, int] = ON_COLOR,
                off_color: tuple[int, int, int] = OFF_COLOR, backend: Backend = "torch",
                device=None, stats: dict | None = None) -> torch.Tensor:
    """RGB frame (height, width, 3) uint8 of the events in [t_start, t_end] (default: all)."""
    if background not in ("white", "black"):
        raise ValueError(f"background must be 'white' or 'black', got {background!r}")
    t0 = ALL_TIME[0] if t_start is None else t_start
    t1 = ALL_TIME[1] if t_end is None else t_end
    counts = counts_grid(events, height, width, t0, t1, 1, True, backend, device, stats)
    off, on = counts[0], counts[1]
    fill = (255, 255, 255) if background == "white" else (0, 0, 0)
    palette = torch.tensor([on_color, off_color, fill], dtype=torch.uint8, device=counts.device)
    # 0 = ON wins, 1 = OFF wins, 2 = no event; a gather keeps it free of host syncs.
    choice = torch.where(off > on, 1, torch.where(on > 0, 0, 2))
    return palette[choice]
