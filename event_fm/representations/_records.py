"""One upload per window: the records of a structured event array cross to the GPU as one block
of bytes through a reused pinned buffer, and are split into columns there.

Four column copies from pageable memory cost four synchronous transfers (and a host-side gather
of each strided field); one contiguous block from page-locked memory is one asynchronous DMA.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

_NATIVE_FIELDS = (np.dtype("<u2"), np.dtype("<u2"), np.dtype("<i8"), np.dtype("i1"))


def record_block(cols) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """(the contiguous run of records the four numpy columns are fields of, each column's byte
    offset in a record), or None when they are not fields of one structured array."""
    x = cols.x
    if not all(isinstance(c, np.ndarray) and c.ndim == 1 for c in cols):
        return None
    if tuple(c.dtype for c in cols) != _NATIVE_FIELDS:
        return None
    base = x
    while isinstance(base.base, np.ndarray) and base.dtype.names is None:
        base = base.base
    if base.dtype.names is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    size, origin, n = base.dtype.itemsize, base.ctypes.data, len(x)
    starts, offsets = set(), []
    for c in cols:
        if len(c) != n or (n > 1 and c.strides != (size,)):
            return None
        delta = c.ctypes.data - origin
        if not 0 <= delta < size * max(len(base), 1):
            return None
        starts.add(delta // size)
        offsets.append(delta % size)
    if len(starts) != 1:
        return None
    start = starts.pop()
    if start + n > len(base):
        return None
    return base[start:start + n], tuple(offsets)


class PinnedStaging:
    """A page-locked host buffer reused across windows (grown when a window needs more); a copy
    into it waits for the previous transfer out of it to finish."""

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None
        self._done: torch.cuda.Event | None = None
        self._lock = threading.Lock()

    def upload(self, raw: np.ndarray, device: torch.device) -> torch.Tensor:
        nbytes = raw.nbytes
        with self._lock:
            if self._done is not None:
                self._done.synchronize()
            if self._buffer is None or self._buffer.numel() < nbytes:
                self._buffer = torch.empty(max(nbytes, 1 << 20), dtype=torch.uint8,
                                           pin_memory=True)
            host = self._buffer[:nbytes]
            host.copy_(torch.from_numpy(raw.reshape(-1)))
            out = host.to(device, non_blocking=True)
            self._done = torch.cuda.Event()
            self._done.record()
        return out


_STAGING = PinnedStaging()


def upload_records(records: np.ndarray, offsets: tuple[int, int, int, int],
                   device: torch.device, pinned: bool = True) -> tuple[torch.Tensor, ...]:
    """x, y (int32), t (int64), p (int8) on ``device`` from one transfer of ``records``."""
    n, size = len(records), records.dtype.itemsize
    if n == 0:
        empty = torch.zeros(0, dtype=torch.int32, device=device)
        return empty, empty.clone(), empty.to(torch.int64), empty.to(torch.int8)
    raw = records.view(np.uint8).reshape(n * size)
    if pinned and device.type == "cuda":
        block = _STAGING.upload(raw, device)
    else:
        block = torch.from_numpy(raw.copy()).to(device)
    rows = block.view(n, size)

    def field(offset: int, width: int, dtype: torch.dtype) -> torch.Tensor:
        return rows[:, offset:offset + width].contiguous().view(dtype).reshape(n)

    x = field(offsets[0], 2, torch.int16).to(torch.int32).bitwise_and_(0xFFFF)
    y = field(offsets[1], 2, torch.int16).to(torch.int32).bitwise_and_(0xFFFF)
    t = field(offsets[2], 8, torch.int64)
    p = field(offsets[3], 1, torch.int8)  # as the column path: the kernels read p > 0 as ON
    return x, y, t, p
