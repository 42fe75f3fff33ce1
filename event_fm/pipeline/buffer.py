"""A bounded, time-indexed event buffer between the subscription callbacks and the worker.

Callbacks append decoded packets (they must keep up with tens of Mev/s, so appending is an
O(1) list push); the worker cuts windows out of it. Memory is bounded by a maximum event count
and a maximum age: the oldest packets go first and are counted, never silently lost.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from event_fm.io.events import EVENT_DTYPE, empty_events


class EventBuffer:
    def __init__(self, max_events: int = 50_000_000, max_age_ns: int = 2_000_000_000):
        self.max_events = int(max_events)
        self.max_age_ns = int(max_age_ns)
        self._chunks: deque[np.ndarray] = deque()
        self._size = 0
        self._lock = threading.Lock()
        self.evicted = 0  # events dropped because the buffer was full or too old
        self.out_of_order = 0  # events older than what the buffer already holds, dropped

    def __len__(self) -> int:
        return self._size

    @property
    def t_first(self) -> int | None:
        with self._lock:
            return int(self._chunks[0]["t"][0]) if self._chunks else None

    @property
    def t_last(self) -> int | None:
        with self._lock:
            return int(self._chunks[-1]["t"][-1]) if self._chunks else None

    def append(self, events: np.ndarray) -> None:
        """Add time-ordered events; anything older than the newest held event is dropped."""
        if not len(events):
            return
        with self._lock:
            if self._chunks:
                last = self._chunks[-1]["t"][-1]
                if events["t"][0] < last:
                    keep = events["t"] >= last
                    self.out_of_order += int(len(events) - np.count_nonzero(keep))
                    events = events[keep]
                    if not len(events):
                        return
            self._chunks.append(events)
            self._size += len(events)
            self._evict(int(events["t"][-1]))

    def _evict(self, newest: int) -> None:
        while self._chunks and (self._size - len(self._chunks[0]) >= self.max_events
                                or self._chunks[0]["t"][-1] < newest - self.max_age_ns):
            old = self._chunks.popleft()
            self._size -= len(old)
            self.evicted += len(old)
        if self._size > self.max_events and self._chunks:
            excess = self._size - self.max_events
            self._chunks[0] = self._chunks[0][excess:]
            self._size -= excess
            self.evicted += excess

    def window(self, t_start: int, t_end: int) -> np.ndarray:
        """Events with t_start <= t < t_end (a copy; the buffer may change afterwards)."""
        with self._lock:
            parts = []
            for chunk in self._chunks:
                t = chunk["t"]
                if t[-1] < t_start:
                    continue
                if t[0] >= t_end:
                    break
                lo = int(np.searchsorted(t, t_start, side="left"))
                hi = int(np.searchsorted(t, t_end, side="left"))
                if hi > lo:
                    parts.append(chunk[lo:hi])
        return np.concatenate(parts) if parts else empty_events()

    def last_events(self, count: int, t_end: int) -> np.ndarray:
        """The ``count`` newest events before t_end (fixed-count windows)."""
        with self._lock:
            parts, need = [], count
            for chunk in reversed(self._chunks):
                if chunk["t"][0] >= t_end:
                    continue
                hi = int(np.searchsorted(chunk["t"], t_end, side="left"))
                take = chunk[max(0, hi - need):hi]
                parts.append(take)
                need -= len(take)
                if need <= 0:
                    break
        if not parts:
            return empty_events()
        return np.concatenate(parts[::-1]).astype(EVENT_DTYPE, copy=False)

    def discard_before(self, t: int) -> None:
        """Release events no future window can need."""
        with self._lock:
            while self._chunks and self._chunks[0]["t"][-1] < t:
                self._size -= len(self._chunks.popleft())

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._size = 0
