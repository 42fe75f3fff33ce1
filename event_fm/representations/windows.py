"""Slicing a time-sorted event stream into windows, as index ranges found by binary search.

Every helper returns :class:`Windows`: per window the half-open index range [start, end) into
the event array (slice ``events[start:end]``) and the (t_start, t_end) that the representations
normalize time with. Index ranges, not times, decide membership, so an event on a shared
boundary belongs to exactly one of two adjacent fixed-duration windows.

Boundary conventions (all times int64 ns):

* :func:`fixed_duration_windows`: [t_start, t_start + duration), events at the right edge go to
  the next window.
* :func:`fixed_count_windows`: ``count`` consecutive events; times are the first and last
  event's.
* :func:`windows_ending_at`: (end - duration, end] or the ``count`` events up to and including
  ``end``; an event at a camera frame's timestamp belongs to that frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Windows:
    """``index`` (N, 2) int64 [start, end) and ``time`` (N, 2) int64 [t_start, t_end]."""

    index: np.ndarray
    time: np.ndarray

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __iter__(self):
        """(slice, t_start, t_end) per window."""
        for (a, b), (t0, t1) in zip(self.index.tolist(), self.time.tolist(), strict=True):
            yield slice(a, b), t0, t1

    @property
    def counts(self) -> np.ndarray:
        """Events per window."""
        return self.index[:, 1] - self.index[:, 0]


def event_times(events) -> np.ndarray:
    """Timestamps of a structured event array, or the array itself when given times."""
    if isinstance(events, np.ndarray) and events.dtype.names is not None:
        t = events["t"]
    else:
        t = np.asarray(events)
    if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
        raise TypeError("event times must be a 1-D integer (ns) array")
    return t


def check_sorted(t: np.ndarray) -> None:
    if t.shape[0] > 1 and bool(np.any(t[1:] < t[:-1])):
        raise ValueError("events must be sorted by time; sort with np.argsort(t, kind='stable')")


def fixed_duration_windows(events, duration: int, stride: int | None = None,
                           t_start: int | None = None, t_end: int | None = None,
                           drop_last: bool = True) -> Windows:
    """Windows of ``duration`` ns every ``stride`` ns (default: back to back).

    They start at ``t_start`` (default: the first event) and cover up to ``t_end`` (default:
    just past the last event, so it is included). With ``drop_last`` a final window that would
    extend past ``t_end`` is left out; otherwise it is kept with its full nominal duration.
    """
    t = event_times(events)
    check_sorted(t)
    duration = int(duration)
    stride = duration if stride is None else int(stride)
    if duration <= 0 or stride <= 0:
        raise ValueError("duration and stride must be positive")
    if t_start is None or t_end is None:
        if t.shape[0] == 0:
            return _empty()
        t_start = int(t[0]) if t_start is None else int(t_start)
        t_end = int(t[-1]) + 1 if t_end is None else int(t_end)
    span = int(t_end) - int(t_start)
    if drop_last:
        n = (span - duration) // stride + 1 if span >= duration else 0
    else:
        n = -(-span // stride) if span > 0 else 0
    starts = int(t_start) + stride * np.arange(n, dtype=np.int64)
    times = np.stack([starts, starts + duration], axis=1)
    index = np.searchsorted(t, times, side="left").astype(np.int64)
    return Windows(index.reshape(n, 2), times.reshape(n, 2))


def fixed_count_windows(events, count: int = 150_000, stride: int | None = None,
                        drop_last: bool = True) -> Windows:
    """Windows of ``count`` consecutive events every ``stride`` events (default: back to back).

    150,000 is REALM's choice for DSEC-like sensors. Without ``drop_last`` the remainder forms
    a shorter final window.
    """
    t = event_times(events)
    check_sorted(t)
    count = int(count)
    stride = count if stride is None else int(stride)
    if count <= 0 or stride <= 0:
        raise ValueError("count and stride must be positive")
    total = t.shape[0]
    if drop_last:
        n = (total - count) // stride + 1 if total >= count else 0
    else:
        n = -(-total // stride) if total > 0 else 0
    starts = stride * np.arange(n, dtype=np.int64)
    ends = np.minimum(starts + count, total)
    index = np.stack([starts, ends], axis=1)
    times = np.stack([t[starts], t[ends - 1]], axis=1) if n else np.zeros((0, 2), np.int64)
    return Windows(index.reshape(n, 2), times.astype(np.int64).reshape(n, 2))


def windows_ending_at(events, end_times, duration: int | None = None,
                      count: int | None = None) -> Windows:
    """One window per ``end_times`` entry (e.g. camera frame stamps), by duration or by count.

    ``duration``: events in (end - duration, end], times (end - duration, end).
    ``count``: the last ``count`` events with t <= end (fewer near the start of the stream),
    times (first of them, end); an empty window gets (end, end).
    """
    if (duration is None) == (count is None):
        raise ValueError("give exactly one of duration or count")
    t = event_times(events)
    check_sorted(t)
    ends_t = np.asarray(end_times, dtype=np.int64).reshape(-1)
    end = np.searchsorted(t, ends_t, side="right").astype(np.int64)
    if duration is not None:
        if int(duration) <= 0:
            raise ValueError("duration must be positive")
        starts_t = ends_t - int(duration)
        start = np.searchsorted(t, starts_t, side="right").astype(np.int64)
    else:
        if int(count) <= 0:
            raise ValueError("count must be positive")
        start = np.maximum(end - int(count), 0)
        first = t[np.minimum(start, max(t.shape[0] - 1, 0))] if t.shape[0] else ends_t
        starts_t = np.where(end > start, first, ends_t).astype(np.int64)
    return Windows(np.stack([start, end], axis=1), np.stack([starts_t, ends_t], axis=1))


def _empty() -> Windows:
    return Windows(np.zeros((0, 2), np.int64), np.zeros((0, 2), np.int64))
