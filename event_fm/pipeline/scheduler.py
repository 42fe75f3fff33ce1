"""When to cut a window, and which events it spans (all in sensor time).

Three modes, as the papers and users need them:
- ``frame``: windows end at camera frame stamps (ROS time, converted with the clock estimate),
  so event outputs line up with images (REALM evaluates at frame times).
- ``rate``: windows of fixed duration ending on a fixed-rate grid.
- ``count``: windows of the last N events (REALM: 150,000 for DSEC-like data), on a rate grid.
A window is due once the buffer holds events past its end, so it is complete when cut.
A jump in time (a paused stream, a clock the sensor moved) never makes more than
``max_catch_up`` windows: the grid skips ahead and the skipped windows are counted once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOW_MODES = ("frame", "rate", "count")


@dataclass(frozen=True)
class WindowSpec:
    t_end: int  # sensor time (ns), exclusive
    t_start: int | None  # sensor time; None for count windows (start = the N-th newest event)
    stamp_ns: int  # ROS time the outputs carry
    count: int = 0


class WindowScheduler:
    def __init__(self, mode: str = "rate", duration_ns: int = 50_000_000,
                 rate_hz: float = 20.0, count: int = 150_000, max_pending_frames: int = 64,
                 max_catch_up: int = 8):
        if mode not in WINDOW_MODES:
            raise ValueError(f"window mode must be one of {WINDOW_MODES}, got {mode!r}")
        if duration_ns <= 0 or rate_hz <= 0 or count <= 0:
            raise ValueError("window duration, rate and count must be positive")
        self.mode = mode
        self.duration_ns = int(duration_ns)
        self.period_ns = int(round(1e9 / rate_hz))
        self.count = int(count)
        self._frames: deque[int] = deque(maxlen=max_pending_frames)
        self._next_end: int | None = None
        self.frames_dropped = 0
        self.max_catch_up = int(max_catch_up)
        self.windows_skipped = 0  # grid windows never made because time jumped past them
        self.skips = 0  # how many jumps caused that

    def add_frame(self, stamp_ns: int) -> None:
        if self._frames and stamp_ns <= self._frames[-1]:
            return  # duplicate or out-of-order frame stamp
        if len(self._frames) == self._frames.maxlen:
            self.frames_dropped += 1
        self._frames.append(int(stamp_ns))

    def reset(self) -> None:
        self._next_end = None
        self._frames.clear()

    def due(self, t_first: int | None, t_last: int | None, clock) -> list[WindowSpec]:
        """Windows whose end the event stream has passed, oldest first."""
        if t_last is None or clock.offset_ns is None:
            return []
        if self.mode == "frame":
            return self._due_frames(t_last, clock)
        if self._next_end is None:
            start = t_first if t_first is not None else t_last
            first = start + (self.duration_ns if self.mode == "rate" else 1)
            self._next_end = -(-first // self.period_ns) * self.period_ns  # ceil to the grid
        behind = -(-(t_last - self._next_end) // self.period_ns)  # windows ending before t_last
        if behind > self.max_catch_up:
            skipped = behind - self.max_catch_up
            self._next_end += skipped * self.period_ns
            self.windows_skipped += skipped
            self.skips += 1
        out = []
        while self._next_end < t_last:
            end = self._next_end
            start = end - self.duration_ns if self.mode == "rate" else None
            out.append(WindowSpec(end, start, clock.to_ros(end), self.count))
            self._next_end += self.period_ns
        return out

    def _due_frames(self, t_last: int, clock) -> list[WindowSpec]:
        out = []
        while self._frames:
            end = clock.to_sensor(self._frames[0])
            if end >= t_last:
                break
            stamp = self._frames.popleft()
            out.append(WindowSpec(end, end - self.duration_ns, stamp, self.count))
        return out
