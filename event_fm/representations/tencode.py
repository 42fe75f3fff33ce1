"""Tencode (EventPoint; used by LLM-EvRep and DepthAnyEvent): an RGB image of a window.

Channels, float32 in [0, 1], for pixel (y, x):

* R = 1 if the pixel saw at least one ON event, else 0 (``counts=True``: its ON count divided
  by the largest count of either polarity in the frame);
* G = (t_last - t_start) / (t_end - t_start), t_last the latest event of either polarity at the
  pixel; 0 where there is none (also for an event exactly at t_start); 1 where there are events
  when t_end == t_start (they are all at the window's end);
* B = like R for OFF events.

The image looks like an RGB frame, which is what lets an image model take it unchanged.
"""

from __future__ import annotations

import torch

from event_fm.representations._accumulate import Backend, counts_grid, last_time_grid
from event_fm.representations._inputs import Events


def tencode(events: Events, height: int, width: int, t_start: int, t_end: int,
            counts: bool = False, backend: Backend = "torch", device=None,
            stats: dict | None = None) -> torch.Tensor:
    """Tencode (3, height, width) float32, channels R (ON), G (time), B (OFF)."""
    per_polarity = counts_grid(events, height, width, t_start, t_end, 1, True, backend, device,
                               stats).to(torch.float32)
    last = last_time_grid(events, height, width, t_start, t_end, False, backend, device)[0]
    off, on = per_polarity[0], per_polarity[1]
    if counts:
        peak = per_polarity.amax()
        scale = torch.where(peak > 0, peak, 1.0)
        on, off = on / scale, off / scale
    else:
        on, off = (on > 0).to(torch.float32), (off > 0).to(torch.float32)
    span = int(t_end) - int(t_start)
    if span > 0:
        time = last.clamp_min(0).to(torch.float64).div_(span).to(torch.float32)
    else:
        time = (last >= 0).to(torch.float32)
    return torch.stack([on, time, off])
