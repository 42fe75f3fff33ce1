"""EVT 3.0 encoder: the inverse of :mod:`event_fm.io.decoders.evt3`.

Used to build test streams and benchmarks, and to republish events in the compact format the
Prophesee drivers use. Output decodes bit-exactly (for microsecond times) with a fresh decoder;
:class:`Evt3Encoder` keeps the time / row state between calls so that consecutive packets
form one stream, as a camera driver would produce.

Times are nanoseconds and are floored to microseconds. Gaps longer than half the 24-bit
counter period are bridged with extra TIME_HIGH words so the decoder never misses a rollover.
"""

from __future__ import annotations

import numba as nb
import numpy as np

ADDR_Y, ADDR_X, VECT_BASE_X, VECT_12, VECT_8 = 0x0, 0x2, 0x3, 0x4, 0x5
TIME_LOW, TIME_HIGH, EXT_TRIGGER = 0x6, 0x8, 0xA

#: Largest forward TIME_HIGH step emitted at once; the decoder sees a rollover whenever the
#: 12-bit value drops by more than 10, which holds for any step below 4086.
MAX_HIGH_STEP = 2048

# state slots: started, last absolute TIME_HIGH (t_us >> 12), last TIME_LOW, last row
E_STARTED, E_HIGH, E_LOW, E_Y = range(4)


@nb.njit(cache=True, nogil=True, inline="always")
def _put(out, n, write, code, value):
    if write:
        out[n] = (code << 12) | value
    return n + 1


@nb.njit(cache=True, nogil=True)
def _set_time(out, n, write, state, t_us):
    """Emit the TIME_HIGH / TIME_LOW words that bring the decoder's clock to ``t_us``."""
    high = t_us >> 12
    low = t_us & 0xFFF
    if state[E_STARTED] == 0 or high != state[E_HIGH]:
        cur = state[E_HIGH]
        while high - cur > MAX_HIGH_STEP:
            cur += MAX_HIGH_STEP
            n = _put(out, n, write, TIME_HIGH, cur & 0xFFF)
        n = _put(out, n, write, TIME_HIGH, high & 0xFFF)
        state[E_HIGH] = high
    if state[E_STARTED] == 0 or low != state[E_LOW]:
        n = _put(out, n, write, TIME_LOW, low)
        state[E_LOW] = low
    state[E_STARTED] = 1
    return n


@nb.njit(cache=True, nogil=True)
def _run_end(x, y, t, p, i):
    """End (exclusive) of the run of events sharing t, y, p with strictly increasing x."""
    j = i + 1
    while j < x.shape[0] and t[j] == t[i] and y[j] == y[i] and p[j] == p[i] and x[j] > x[j - 1]:
        j += 1
    return j


@nb.njit(cache=True, nogil=True)
def _vectors(out, n, write, x, p, i, j):
    """Events i..j-1 (one row, one time, one polarity, x increasing) as vector words."""
    base = x[i]
    n = _put(out, n, write, VECT_BASE_X, base | (p[i] << 11))
    k = i
    while k < j:
        if x[k] >= base + 12:
            base = x[k]
            n = _put(out, n, write, VECT_BASE_X, base | (p[i] << 11))
        mask = 0
        while k < j and x[k] < base + 12:
            mask |= 1 << (x[k] - base)
            k += 1
        if mask < 256:  # the chunk fits a VECT_8
            n = _put(out, n, write, VECT_8, mask)
            base += 8
        else:
            n = _put(out, n, write, VECT_12, mask)
            base += 12
    return n


@nb.njit(cache=True, nogil=True)
def _encode(x, y, t, p, tt, te, ti, state, use_vectors, out, write):
    """Count (``write`` False) or write the words for events and triggers merged by time."""
    n = 0
    i = 0
    m = 0
    while i < x.shape[0] or m < tt.shape[0]:
        if m < tt.shape[0] and (i == x.shape[0] or tt[m] < t[i]):
            n = _set_time(out, n, write, state, tt[m])
            n = _put(out, n, write, EXT_TRIGGER, (te[m] & 1) | ((ti[m] & 0xF) << 8))
            m += 1
            continue
        n = _set_time(out, n, write, state, t[i])
        if y[i] != state[E_Y]:
            n = _put(out, n, write, ADDR_Y, y[i])
            state[E_Y] = y[i]
        j = _run_end(x, y, t, p, i) if use_vectors else i + 1
        if j - i >= 2:
            n = _vectors(out, n, write, x, p, i, j)
        else:
            n = _put(out, n, write, ADDR_X, x[i] | (p[i] << 11))
        i = j
    return n


def _column(a, name: str) -> np.ndarray:
    return np.ascontiguousarray(a[name], dtype=np.int64)


class Evt3Encoder:
    """Stateful EVT 3.0 encoder: call :meth:`encode` with consecutive chunks of one stream."""

    def __init__(self, use_vectors: bool = False) -> None:
        self.use_vectors = use_vectors
        self.reset()

    def reset(self) -> None:
        """Start a new stream (the next packet re-sends the full time)."""
        self._state = np.array([0, 0, 0, -1], dtype=np.int64)
        self._last_t = -1

    def encode(self, events: np.ndarray, triggers: np.ndarray | None = None) -> bytes:
        """Encode time-sorted events (EVENT_DTYPE) and triggers (TRIGGER_DTYPE) to bytes."""
        x, y, p = _column(events, "x"), _column(events, "y"), _column(events, "p")
        t = _column(events, "t") // 1000
        if triggers is None:
            tt = te = ti = np.zeros(0, dtype=np.int64)
        else:
            tt = _column(triggers, "t") // 1000
            te, ti = _column(triggers, "edge"), _column(triggers, "id")
        self._validate(x, y, t, p, tt, te, ti)
        state = self._state.copy()
        empty = np.zeros(0, dtype=np.uint16)
        n = _encode(x, y, t, p, tt, te, ti, state, self.use_vectors, empty, False)
        out = np.empty(n, dtype="<u2")
        _encode(x, y, t, p, tt, te, ti, self._state, self.use_vectors, out, True)
        if t.shape[0] or tt.shape[0]:
            self._last_t = max(t[-1] if t.shape[0] else -1, tt[-1] if tt.shape[0] else -1)
        return out.tobytes()

    def _validate(self, x, y, t, p, tt, te, ti) -> None:
        for name, col, hi in (
            ("x", x, 2048),
            ("y", y, 2048),
            ("p", p, 2),
            ("edge", te, 2),
            ("id", ti, 16),
        ):
            if col.shape[0] and (col.min() < 0 or col.max() >= hi):
                raise ValueError(f"EVT3 cannot represent {name} outside [0, {hi})")
        for name, col in (("event", t), ("trigger", tt)):
            if col.shape[0]:
                if col[0] < 0:
                    raise ValueError(f"negative {name} time")
                if np.any(np.diff(col) < 0):
                    raise ValueError(f"{name} times must be sorted")
                if col[0] < self._last_t:
                    raise ValueError(f"{name} times go back before the previous packet")


def encode_evt3(
    events: np.ndarray, triggers: np.ndarray | None = None, use_vectors: bool = False
) -> bytes:
    """One-shot EVT 3.0 encoding of a whole (time-sorted) stream."""
    return Evt3Encoder(use_vectors).encode(events, triggers)
