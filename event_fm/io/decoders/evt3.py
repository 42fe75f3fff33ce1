"""Prophesee EVT 3.0 decoder (metavision_driver's ``evt3`` encoding).

The format is a stream of 16-bit words whose meaning depends on state set by earlier words
(current row, time high/low, vector base), so decoding is a sequential state machine, run as
one numba pass into a generously guessed buffer. Only when a packet yields more events than the
guess (dense vector words) is the rest sized exactly and decoded into a larger buffer. Stream
state crosses packets in a small int64 array.
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
    words16,
)
from event_fm.io.events import EVENT_DTYPE, TRIGGER_DTYPE

# word types (bits 15-12)
ADDR_Y, ADDR_X, VECT_BASE_X, VECT_12, VECT_8 = 0x0, 0x2, 0x3, 0x4, 0x5
TIME_LOW, CONTINUED_4, TIME_HIGH, PADDING, EXT_TRIGGER = 0x6, 0x7, 0x8, 0x9, 0xA
OTHERS, CONTINUED_12 = 0xE, 0xF

#: A TIME_HIGH smaller than the previous one by more than this is a 2^24 us rollover;
#: smaller backward steps are sensor bit errors (as in event_camera_codecs).
ROLLOVER_MIN_STEP = 10

# state slots
S_SYNCED, S_HAVE_HIGH, S_Y, S_LOW, S_HIGH, S_ROLL, S_BASE_X, S_POL = range(8)
N_STATE = 8

_POPCOUNT = np.array([bin(i).count("1") for i in range(4096)], dtype=np.int64)
#: Positions of the set bits of every 12-bit mask, so vector words loop over events, not bits.
_BITS = np.zeros((4096, 12), dtype=np.uint8)
for _m in range(4096):
    _b = [b for b in range(12) if _m >> b & 1]
    _BITS[_m, : len(_b)] = _b
#: Most events each possible word can yield: a branch-free table for the sizing pass.
_EVENTS_PER_WORD = np.zeros(1 << 16, dtype=np.uint8)
_EVENTS_PER_WORD[ADDR_X << 12 : (ADDR_X + 1) << 12] = 1
_EVENTS_PER_WORD[VECT_12 << 12 : (VECT_12 + 1) << 12] = _POPCOUNT
_EVENTS_PER_WORD[VECT_8 << 12 : (VECT_8 + 1) << 12] = _POPCOUNT[np.arange(4096) & 0xFF]

#: Room left in the event buffer before each word: the most one word can yield (VECT_12).
_MAX_PER_WORD = 12
#: First-guess events per word. Single-event streams need at most 1; vector streams of
#: busy scenes about 2. Beyond that the rest of the packet is sized exactly (one more pass).
_GUESS_PER_WORD = 2


@nb.njit(cache=True, nogil=True)
def _upper_bound(words):
    """Most events / triggers the words can yield (ignores bounds and sync)."""
    n_ev = 0
    n_tr = 0
    for i in range(words.shape[0]):
        w = words[i]
        n_ev += _EVENTS_PER_WORD[w]
        n_tr += (w >> 12) == EXT_TRIGGER
    return n_ev, n_tr


@nb.njit(cache=True, nogil=True, inline="always")
def _rolled(last, v):
    """A TIME_HIGH of ``v`` after ``last`` means the 24-bit counter wrapped."""
    return v < last and last - v > ROLLOVER_MIN_STEP


@nb.njit(cache=True, nogil=True)
def _fill(words, pos, state, width, height, ev, k, tr, m, counts):
    """Decode ``words[pos:]`` into ``ev[k:]`` / ``tr[m:]``.

    Stops early, state saved, when a buffer could overflow; returns (k, m, next position).
    All state lives in locals inside the loop so that it stays in registers.
    """
    n_words = words.shape[0]
    ev_cap = ev.shape[0] - _MAX_PER_WORD
    tr_cap = tr.shape[0]
    synced = state[S_SYNCED]
    have_high = state[S_HAVE_HIGH]
    y = state[S_Y]
    low = state[S_LOW]
    high = state[S_HIGH]
    roll = state[S_ROLL]
    base_x = state[S_BASE_X]
    pol = state[S_POL]
    n_oob = 0
    n_ignored = 0
    n_unknown = 0
    i = pos
    # --- before the first TIME_HIGH -> TIME_LOW pair only time words matter
    while synced == 0 and i < n_words:
        w = np.int64(words[i])
        i += 1
        code = w >> 12
        if code == TIME_HIGH:
            v = w & 0xFFF
            roll += _rolled(high, v)
            high = v
            have_high = 1
        elif code == TIME_LOW:
            low = w & 0xFFF
            if have_high:
                synced = 1
        else:
            counts[BEFORE_SYNC] += 1
    t_high = ((roll << 24) | (high << 12)) * 1000
    t = t_high + low * 1000
    y_ok = y < height
    # --- main state machine, most frequent words first
    while i < n_words:
        if k > ev_cap or m >= tr_cap:
            break
        w = np.int64(words[i])
        i += 1
        code = w >> 12
        if code == ADDR_X:
            x = w & 0x7FF
            if x < width and y_ok:
                r = ev[k]
                r.x = x
                r.y = y
                r.t = t
                r.p = (w >> 11) & 1
                k += 1
            else:
                n_oob += 1
        elif code == ADDR_Y:
            y = w & 0x7FF
            y_ok = y < height
        elif code == TIME_LOW:
            low = w & 0xFFF
            t = t_high + low * 1000
        elif code == TIME_HIGH:
            v = w & 0xFFF
            roll += _rolled(high, v)
            high = v
            t_high = ((roll << 24) | (high << 12)) * 1000
            t = t_high + low * 1000
        elif code == VECT_12 or code == VECT_8:
            nbits = 12 if code == VECT_12 else 8
            mask = w & ((1 << nbits) - 1)
            n_set = _POPCOUNT[mask]
            p = pol
            if y_ok and base_x + nbits <= width:  # whole vector on the sensor
                for j in range(n_set):
                    r = ev[k + j]
                    r.x = base_x + _BITS[mask, j]
                    r.y = y
                    r.t = t
                    r.p = p
                k += n_set
            else:
                for j in range(n_set):
                    x = (base_x + _BITS[mask, j]) & 0xFFFF  # the reference keeps x in a uint16
                    if x < width and y_ok:
                        r = ev[k]
                        r.x = x
                        r.y = y
                        r.t = t
                        r.p = p
                        k += 1
                    else:
                        n_oob += 1
            base_x = (base_x + nbits) & 0xFFFF
        elif code == VECT_BASE_X:
            base_x = w & 0x7FF
            pol = (w >> 11) & 1
        elif code == EXT_TRIGGER:
            r = tr[m]
            r.t = t
            r.edge = w & 1
            r.id = (w >> 8) & 0xF
            m += 1
        elif code == CONTINUED_4 or code == PADDING or code == OTHERS or code == CONTINUED_12:
            n_ignored += 1
        else:
            n_unknown += 1
    counts[OUT_OF_BOUNDS] += n_oob
    counts[IGNORED] += n_ignored
    counts[UNKNOWN_TYPE] += n_unknown
    state[S_SYNCED] = synced
    state[S_HAVE_HIGH] = have_high
    state[S_Y] = y
    state[S_LOW] = low
    state[S_HIGH] = high
    state[S_ROLL] = roll
    state[S_BASE_X] = base_x
    state[S_POL] = pol
    return k, m, i


class Evt3Decoder(Decoder):
    """EVT 3.0: sensor time in microseconds (24-bit counter, rollovers tracked); ``time_base``
    is unused because the words carry absolute sensor time."""

    encoding = "evt3"

    def _reset_state(self) -> None:
        self._state = np.zeros(N_STATE, dtype=np.int64)

    def _decode(self, data: np.ndarray, time_base: int):
        counts = np.zeros(N_REASONS, dtype=np.int64)
        words = words16(data, counts)
        n = words.shape[0]
        # np.empty only reserves address space: the unused tail of the guess costs no memory
        ev = np.empty(_GUESS_PER_WORD * n + _MAX_PER_WORD, dtype=EVENT_DTYPE)
        tr = np.empty(16 + n // 256, dtype=TRIGGER_DTYPE)
        w, h = limit(self.width), limit(self.height)
        k, m, pos = _fill(words, 0, self._state, w, h, ev, 0, tr, 0, counts)
        if pos < n:  # vector-heavy or trigger-heavy packet: size the rest exactly and finish
            n_ev, n_tr = _upper_bound(words[pos:])
            ev = grow(ev, k, k + n_ev + _MAX_PER_WORD)
            tr = grow(tr, m, m + n_tr + 1)
            k, m, pos = _fill(words, pos, self._state, w, h, ev, k, tr, m, counts)
        return ev[:k], tr[:m], counts
