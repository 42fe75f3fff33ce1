"""Sensor-to-ROS clock alignment.

Event timestamps are sensor time; the packet's header stamp is host time when the packet's
first event reached the host (metavision_driver) — so ``stamp - first_event_time`` is the true
offset plus a non-negative transport delay. The minimum over a sliding window estimates the
offset robustly (delays only ever add), and sliding the window tracks slow drift between the
sensor and host clocks. A jump larger than ``reset_threshold_ns`` means the sensor clock was
reset (libcaer resets 2 s after start; a driver restart starts over) and restarts the estimate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class ClockState:
    offset_ns: int | None
    drift_ppm: float
    resets: int
    samples: int


class ClockOffsetEstimator:
    def __init__(self, window_ns: int = 10_000_000_000, reset_threshold_ns: int = 500_000_000):
        self.window_ns = int(window_ns)
        self.reset_threshold_ns = int(reset_threshold_ns)
        self._samples: deque[tuple[int, int]] = deque()  # (stamp, stamp - sensor), min-queue
        self._history: deque[tuple[int, int]] = deque(maxlen=64)  # sparse (stamp, offset)
        self.resets = 0
        self.samples = 0
        self._last_sensor: int | None = None

    def update(self, stamp_ns: int, sensor_t_ns: int) -> int:
        """Add one (header stamp, first event time) pair; return the current offset."""
        delta = int(stamp_ns) - int(sensor_t_ns)
        current = self.offset_ns
        jumped_back = self._last_sensor is not None and sensor_t_ns < self._last_sensor - \
            self.reset_threshold_ns
        if current is not None and (jumped_back or abs(delta - current) > self.reset_threshold_ns):
            self.reset()
            self.resets += 1
        self._last_sensor = int(sensor_t_ns)
        self.samples += 1
        # monotonic min-queue: drop samples that can never be the minimum again
        while self._samples and self._samples[-1][1] >= delta:
            self._samples.pop()
        self._samples.append((int(stamp_ns), delta))
        while self._samples and self._samples[0][0] < stamp_ns - self.window_ns:
            self._samples.popleft()
        offset = self._samples[0][1]
        if not self._history or stamp_ns - self._history[-1][0] >= self.window_ns // 4:
            self._history.append((int(stamp_ns), offset))
        return offset

    @property
    def offset_ns(self) -> int | None:
        return self._samples[0][1] if self._samples else None

    @property
    def drift_ppm(self) -> float:
        """Least-squares slope of the offset history, in parts per million."""
        if len(self._history) < 3:
            return 0.0
        t = np.array([h[0] for h in self._history], dtype=np.float64)
        o = np.array([h[1] for h in self._history], dtype=np.float64)
        t -= t[0]
        o -= o[0]
        return float(np.polyfit(t, o, 1)[0] * 1e6)

    def to_ros(self, sensor_t_ns: int) -> int | None:
        offset = self.offset_ns
        return None if offset is None else int(sensor_t_ns) + offset

    def to_sensor(self, ros_ns: int) -> int | None:
        offset = self.offset_ns
        return None if offset is None else int(ros_ns) - offset

    def reset(self) -> None:
        self._samples.clear()
        self._history.clear()
        self._last_sensor = None

    def state(self) -> ClockState:
        return ClockState(self.offset_ns, self.drift_ppm, self.resets, self.samples)
