"""event_camera_codecs' ``mono`` (change detection) and ``trigger`` encodings.

Both use one little-endian 64-bit word per event: bit 63 polarity / edge, bits 62-48 y /
trigger id, bits 47-32 x, bits 31-0 time offset in ns from the message's ``time_base``.
No state crosses packets, so decoding is plain vectorised numpy.
"""

from __future__ import annotations

import numpy as np

from event_fm.io.decoders.base import N_REASONS, OUT_OF_BOUNDS, TRUNCATED, Decoder
from event_fm.io.events import EVENT_DTYPE, TRIGGER_DTYPE


def _words(data: np.ndarray, counts: np.ndarray) -> np.ndarray:
    n = data.shape[0] // 8
    counts[TRUNCATED] = data.shape[0] - 8 * n
    return data[: 8 * n].view("<u8").astype(np.uint64)


def _times(words: np.ndarray, time_base: int) -> np.ndarray:
    return (words & np.uint64(0xFFFFFFFF)).astype(np.int64) + np.int64(time_base)


class MonoDecoder(Decoder):
    """``mono``: t = time_base + dt_ns; events outside the sensor are dropped."""

    encoding = "mono"

    def _decode(self, data: np.ndarray, time_base: int):
        counts = np.zeros(N_REASONS, dtype=np.int64)
        w = _words(data, counts)
        x = (w >> np.uint64(32)) & np.uint64(0xFFFF)
        y = (w >> np.uint64(48)) & np.uint64(0x7FFF)
        ev = np.empty(w.shape[0], dtype=EVENT_DTYPE)
        ev["x"] = x
        ev["y"] = y
        ev["t"] = _times(w, time_base)
        ev["p"] = w >> np.uint64(63)
        if self.width > 0 and self.height > 0:
            ok = (x < self.width) & (y < self.height)
            n_bad = ok.shape[0] - int(np.count_nonzero(ok))
            if n_bad:
                counts[OUT_OF_BOUNDS] = n_bad
                ev = ev[ok]
        return ev, None, counts


class TriggerDecoder(Decoder):
    """``trigger``: external trigger edges; the id is truncated to 8 bits like the reference."""

    encoding = "trigger"

    def _decode(self, data: np.ndarray, time_base: int):
        counts = np.zeros(N_REASONS, dtype=np.int64)
        w = _words(data, counts)
        tr = np.empty(w.shape[0], dtype=TRIGGER_DTYPE)
        tr["t"] = _times(w, time_base)
        tr["edge"] = w >> np.uint64(63)
        tr["id"] = ((w >> np.uint64(48)) & np.uint64(0xFF)).astype(np.uint8).view(np.int8)
        return None, tr, counts
