"""libcaer_driver's compressed ``libcaer_cmp`` encoding (its default for DAVIS / DVXplorer).

16-bit words, code in bits 15-12. Times are microseconds relative to the message's
``time_base`` and restart at zero in every message; the driver starts every message (and every
libcaer packet inside it) with ADDR_X. As in event_camera_codecs, only the time is reset per
message: column, vector base row and vector polarity carry over.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from event_fm.io.decoders.base import (
    N_REASONS,
    OUT_OF_BOUNDS,
    UNKNOWN_TYPE,
    Decoder,
    grow,
    limit,
    words16,
)
from event_fm.io.events import EVENT_DTYPE

TIME_HIGH, TIME_LOW, ADDR_X, ADDR_Y, VECT_BASE_Y, VECT_8 = range(6)

S_X, S_BASE_Y, S_POL, S_HIGH, S_LOW = range(5)
N_STATE = 5

_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


#: Room left in the event buffer before each word: the most one word can yield (VECT_8).
_MAX_PER_WORD = 8


@nb.njit(cache=True, nogil=True)
def _upper_bound(words):
    n_ev = 0
    for i in range(words.shape[0]):
        w = np.int64(words[i])
        code = w >> 12
        if code == ADDR_Y:
            n_ev += 1
        elif code == VECT_8:
            n_ev += _POPCOUNT8[w & 0xFF]
    return n_ev


@nb.njit(cache=True, nogil=True)
def _fill(words, pos, state, time_base, width, height, ev, k, counts):
    """Decode ``words[pos:]`` into ``ev[k:]``, stopping early if ``ev`` could overflow.

    ``state`` holds x / vector base / polarity and, per message, the time high / low words.
    Returns (k, next position).
    """
    cap = ev.shape[0] - _MAX_PER_WORD
    x = state[S_X]
    base_y = state[S_BASE_Y]
    pol = state[S_POL]
    high = state[S_HIGH]
    low = state[S_LOW]
    t = time_base + ((high << 12) | low) * 1000
    i = pos
    while i < words.shape[0]:
        if k > cap:
            break
        w = np.int64(words[i])
        i += 1
        code = w >> 12
        if code == ADDR_Y:
            y = w & 0x7FF
            if x < width and y < height:
                r = ev[k]
                r.x = x
                r.y = y
                r.t = t
                r.p = (w >> 11) & 1
                k += 1
            else:
                counts[OUT_OF_BOUNDS] += 1
        elif code == ADDR_X:
            x = w & 0x7FF  # bit 11 is not initialised by the driver: ignore it
        elif code == TIME_LOW:
            low = w & 0xFFF
            t = time_base + ((high << 12) | low) * 1000
        elif code == TIME_HIGH:
            high = w & 0xFFF
            t = time_base + ((high << 12) | low) * 1000
        elif code == VECT_BASE_Y:
            base_y = w & 0x7FF
            pol = (w >> 11) & 1
        elif code == VECT_8:
            for b in range(8):
                if (w >> b) & 1:
                    y = (base_y + b) & 0xFFFF
                    if x < width and y < height:
                        r = ev[k]
                        r.x = x
                        r.y = y
                        r.t = t
                        r.p = pol
                        k += 1
                    else:
                        counts[OUT_OF_BOUNDS] += 1
            base_y = (base_y + 8) & 0xFFFF
        else:
            counts[UNKNOWN_TYPE] += 1
    state[S_X] = x
    state[S_BASE_Y] = base_y
    state[S_POL] = pol
    state[S_HIGH] = high
    state[S_LOW] = low
    return k, i


class LibcaerCmpDecoder(Decoder):
    """``libcaer_cmp``: t = time_base + dt_us * 1000, dt restarting at 0 in each message."""

    encoding = "libcaer_cmp"

    def _reset_state(self) -> None:
        self._state = np.zeros(N_STATE, dtype=np.int64)

    def _decode(self, data: np.ndarray, time_base: int):
        counts = np.zeros(N_REASONS, dtype=np.int64)
        words = words16(data, counts)
        n = words.shape[0]
        self._state[S_HIGH] = self._state[S_LOW] = 0  # time restarts in every message
        ev = np.empty(n + _MAX_PER_WORD, dtype=EVENT_DTYPE)  # untouched tail costs nothing
        w, h = limit(self.width), limit(self.height)
        k, pos = _fill(words, 0, self._state, time_base, w, h, ev, 0, counts)
        if pos < n:  # vector-heavy packet: size the rest exactly and finish
            ev = grow(ev, k, k + _upper_bound(words[pos:]) + _MAX_PER_WORD)
            k, pos = _fill(words, pos, self._state, time_base, w, h, ev, k, counts)
        return ev[:k], None, counts
