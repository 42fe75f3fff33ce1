"""Prophesee EVT 2.0 decoder (the 32-bit format of many .raw files).

Each CD / trigger word carries the 6 low bits of its microsecond time; EV_TIME_HIGH words carry
bits 33-6. The 34-bit counter wraps after ~4.8 hours; a TIME_HIGH that jumps back by more than
half the range counts as a wrap, smaller backward steps are taken at face value.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from event_fm.io.decoders.base import (
    BEFORE_SYNC,
    IGNORED,
    N_REASONS,
    OUT_OF_BOUNDS,
    UNKNOWN_TYPE,
    Decoder,
    grow,
    limit,
    words32,
)
from event_fm.io.events import EVENT_DTYPE, TRIGGER_DTYPE

CD_OFF, CD_ON, EV_TIME_HIGH, EXT_TRIGGER, OTHERS, CONTINUED = 0x0, 0x1, 0x8, 0xA, 0xE, 0xF
HIGH_BITS = 28
HALF_RANGE = 1 << (HIGH_BITS - 1)

S_SYNCED, S_HIGH, S_ROLL = range(3)
N_STATE = 3


@nb.njit(cache=True, nogil=True)
def _fill(words, pos, state, width, height, ev, k, tr, m, counts):
    """Decode ``words[pos:]`` into ``ev[k:]`` / ``tr[m:]``; stops early when ``tr`` is full.

    Returns (k, m, next position). ``ev`` must have room for one event per word.
    """
    synced = state[S_SYNCED]
    high = state[S_HIGH]
    roll = state[S_ROLL]
    t_high = (((roll << HIGH_BITS) | high) << 6) * 1000
    i = pos
    while i < words.shape[0]:
        if m >= tr.shape[0]:
            break
        w = np.int64(words[i])
        i += 1
        code = w >> 28
        if synced and (code == CD_OFF or code == CD_ON):
            x = (w >> 11) & 0x7FF
            y = w & 0x7FF
            if x < width and y < height:
                r = ev[k]
                r.x = x
                r.y = y
                r.t = t_high + ((w >> 22) & 0x3F) * 1000
                r.p = code
                k += 1
            else:
                counts[OUT_OF_BOUNDS] += 1
        elif code == EV_TIME_HIGH:
            v = w & 0xFFFFFFF
            if synced and v < high and high - v > HALF_RANGE:
                roll += 1
            high = v
            synced = 1
            t_high = (((roll << HIGH_BITS) | high) << 6) * 1000
        elif synced == 0:
            counts[BEFORE_SYNC] += 1
        elif code == EXT_TRIGGER:
            r = tr[m]
            r.t = t_high + ((w >> 22) & 0x3F) * 1000
            r.edge = w & 1
            r.id = (w >> 8) & 0x1F
            m += 1
        elif code == OTHERS or code == CONTINUED:
            counts[IGNORED] += 1
        else:
            counts[UNKNOWN_TYPE] += 1
    state[S_SYNCED] = synced
    state[S_HIGH] = high
    state[S_ROLL] = roll
    return k, m, i


class Evt2Decoder(Decoder):
    """EVT 2.0: absolute sensor microseconds, decoding starts at the first EV_TIME_HIGH."""

    encoding = "evt2"

    def _reset_state(self) -> None:
        self._state = np.zeros(N_STATE, dtype=np.int64)

    def _decode(self, data: np.ndarray, time_base: int):
        counts = np.zeros(N_REASONS, dtype=np.int64)
        words = words32(data, counts)
        n = words.shape[0]
        ev = np.empty(n, dtype=EVENT_DTYPE)  # one event per word at most
        tr = np.empty(16 + n // 256, dtype=TRIGGER_DTYPE)
        w, h = limit(self.width), limit(self.height)
        k, m, pos = _fill(words, 0, self._state, w, h, ev, 0, tr, 0, counts)
        if pos < n:  # trigger-heavy packet: room for every remaining word
            tr = grow(tr, m, m + n - pos)
            k, m, pos = _fill(words, pos, self._state, w, h, ev, k, tr, m, counts)
        return ev[:k], tr[:m], counts
