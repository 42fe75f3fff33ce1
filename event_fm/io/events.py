"""Event containers shared by every decoder, reader and representation.

Events live in numpy structured arrays so that one packet or a whole recording can be
sliced, concatenated and handed to numba or torch without per-event Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Change-detection events: pixel, time in nanoseconds, polarity (0 = OFF, 1 = ON).
EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "i1")])

#: External trigger events: time in nanoseconds, edge (0 falling / 1 rising), trigger id.
TRIGGER_DTYPE = np.dtype([("t", "<i8"), ("edge", "i1"), ("id", "i1")])


def empty_events(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=EVENT_DTYPE)


def empty_triggers(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=TRIGGER_DTYPE)


def make_events(x, y, t, p) -> np.ndarray:
    """Build an event array from column arrays (broadcast, cast to the canonical dtype)."""
    x = np.asarray(x)
    out = np.empty(x.shape[0], dtype=EVENT_DTYPE)
    out["x"] = x
    out["y"] = y
    out["t"] = t
    out["p"] = p
    return out


@dataclass
class EventBatch:
    """One decoded packet (or file chunk): its events, triggers and the packet's metadata.

    ``stamp_ns`` is the ROS header stamp (host/ROS time) while event ``t`` is sensor time;
    the pipeline estimates the offset between the two.
    """

    events: np.ndarray = field(default_factory=empty_events)
    triggers: np.ndarray = field(default_factory=empty_triggers)
    stamp_ns: int = 0
    seq: int = 0
    width: int = 0
    height: int = 0
    topic: str = ""
    #: Skipped words / events by reason, e.g. {"unknown_type": 3, "out_of_bounds": 10}.
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.events.shape[0])

    @property
    def t_first(self) -> int | None:
        return int(self.events["t"][0]) if len(self) else None

    @property
    def t_last(self) -> int | None:
        return int(self.events["t"][-1]) if len(self) else None


def concatenate(batches: list[EventBatch]) -> np.ndarray:
    """All events of several batches in one array (order preserved)."""
    if not batches:
        return empty_events()
    return np.concatenate([b.events for b in batches])
