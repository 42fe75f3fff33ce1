"""libcaer_driver's uncompressed ``libcaer`` encoding: raw libcaer polarity events.

Each event is 8 bytes: a little-endian uint32 (bit 1 polarity, bits 16-2 y, bits 31-17 x) and
a little-endian int32 microsecond timestamp. libcaer timestamps are 31-bit and wrap; the
message's ``time_base`` already holds the wraps that happened before the packet, so only wraps
inside the packet are added here (2^31 us each), exactly as event_camera_codecs does.
"""

from __future__ import annotations

import numpy as np

from event_fm.io.decoders.base import N_REASONS, OUT_OF_BOUNDS, TRUNCATED, Decoder
from event_fm.io.events import EVENT_DTYPE

_RAW = np.dtype([("data", "<u4"), ("ts", "<i4")])
WRAP_NS = np.uint64((1 << 31) * 1000)


class LibcaerDecoder(Decoder):
    """``libcaer``: t = time_base + ts_us * 1000 (+ 2^31 us per wrap inside the packet)."""

    encoding = "libcaer"

    def _decode(self, data: np.ndarray, time_base: int):
        counts = np.zeros(N_REASONS, dtype=np.int64)
        n = data.shape[0] // 8
        counts[TRUNCATED] = data.shape[0] - 8 * n
        raw = data[: 8 * n].view(_RAW)
        word = raw["data"].astype(np.uint32)
        # the reference compares sign-extended timestamps as unsigned 64-bit numbers
        ts = raw["ts"].astype(np.int64).view(np.uint64)
        t = ts * np.uint64(1000) + np.uint64(time_base & 0xFFFFFFFFFFFFFFFF)
        if n > 1:
            wraps = np.cumsum(ts[1:] < ts[:-1], dtype=np.uint64)
            t[1:] += wraps * WRAP_NS
        ev = np.empty(n, dtype=EVENT_DTYPE)
        x = word >> 17
        y = (word >> 2) & 0x7FFF
        ev["x"] = x
        ev["y"] = y
        ev["t"] = t.view(np.int64)
        ev["p"] = (word >> 1) & 1
        if self.width > 0 and self.height > 0:
            ok = (x < self.width) & (y < self.height)
            n_bad = n - int(np.count_nonzero(ok))
            if n_bad:
                counts[OUT_OF_BOUNDS] = n_bad
                ev = ev[ok]
        return ev, None, counts
