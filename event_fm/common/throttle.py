"""Log throttling for per-message warnings: a flood of bad packets must not become a flood of
log lines (300 "unknown encoding" lines in 3 s hide everything else), yet no reason may vanish.
One line per reason per interval, carrying how many were suppressed since the last line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ThrottledLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.interval_s = float(interval_s)
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, reason: str, message: str, *args) -> bool:
        """Log ``message % args`` unless ``reason`` was logged within the interval; returns
        whether a line was written."""
        now = self._clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.interval_s:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return False
        suppressed = self._suppressed.pop(reason, 0)
        if suppressed:
            message += f" (+{suppressed} more like this in the last {now - last:.0f} s)"
        self._last[reason] = now
        self.logger.warning(message, *args)
        return True
