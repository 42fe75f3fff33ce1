"""Accepted event inputs, seen by every representation as four columns x, y, t, p.

Three forms are accepted, so that a structured array from the readers and tensors already on a
GPU go through the same functions:

* a numpy structured array with fields ``x``, ``y``, ``t``, ``p`` (:data:`EVENT_DTYPE`);
* a dict (any mapping) with keys ``"x"``, ``"y"``, ``"t"``, ``"p"`` of equal-length 1-D numpy
  arrays or torch tensors (all on one device);
* an ``(N, 4)`` integer torch tensor or numpy array with columns x, y, t, p.

``t`` is integer nanoseconds (int64; float times are refused because float32/float64 cannot hold
absolute ns epochs). ``p > 0`` is ON, anything else (0 or -1) is OFF. Coordinates may be any
integer type; negative ones count as outside the sensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Union

import numpy as np
import torch

from event_fm.common.devices import resolve_device as parse_device
from event_fm.representations._records import record_block, upload_records

#: The union of the accepted forms (see the module docstring).
Events = Union[np.ndarray, Mapping[str, Any], torch.Tensor]  # noqa: UP007 (runtime alias)

#: Events per step on the CPU torch path: temporaries stay in cache and are recycled instead of
#: being page-faulted in at full size (a 20M-event temporary costs ~100 ms just to touch).
CPU_CHUNK = 1 << 16
#: Events per step on an accelerator: bounds memory, big enough to keep the device busy.
DEVICE_CHUNK = 1 << 22


class Columns(NamedTuple):
    """Events as four equal-length 1-D columns, all numpy or all torch."""

    x: Any
    y: Any
    t: Any
    p: Any

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.t.shape[0])

    def slice(self, lo: int, hi: int) -> Columns:
        return Columns(self.x[lo:hi], self.y[lo:hi], self.t[lo:hi], self.p[lo:hi])

    def take(self, index) -> Columns:
        return Columns(self.x[index], self.y[index], self.t[index], self.p[index])

    @property
    def is_torch(self) -> bool:
        return isinstance(self.t, torch.Tensor)


def columns(events: Events) -> Columns:
    """The four columns of ``events`` without copying (views or the tensors as given)."""
    if isinstance(events, Columns):
        cols = events
    elif isinstance(events, np.ndarray) and events.dtype.names is not None:
        missing = {"x", "y", "t", "p"} - set(events.dtype.names)
        if missing:
            raise ValueError(f"event array lacks fields {sorted(missing)}")
        cols = Columns(events["x"], events["y"], events["t"], events["p"])
    elif isinstance(events, Mapping):
        try:
            cols = Columns(events["x"], events["y"], events["t"], events["p"])
        except KeyError as err:
            raise ValueError(f"event dict lacks key {err}") from None
    elif isinstance(events, (np.ndarray, torch.Tensor)):
        if events.ndim != 2 or events.shape[1] != 4:
            shape = tuple(events.shape)
            raise ValueError(f"an event tensor must be (N, 4) x, y, t, p; got {shape}")
        cols = Columns(events[:, 0], events[:, 1], events[:, 2], events[:, 3])
    else:
        raise TypeError(f"unsupported event input {type(events).__name__}; see {__name__}")
    _check(cols)
    return cols


def _check(cols: Columns) -> None:
    kinds = {isinstance(c, torch.Tensor) for c in cols}
    if len(kinds) != 1:
        raise TypeError("event columns mix numpy arrays and torch tensors")
    n = cols.t.shape[0]
    for name, col in zip(Columns._fields, cols, strict=True):
        if col.ndim != 1 or col.shape[0] != n:
            raise ValueError(f"event column {name!r} has shape {tuple(col.shape)}, want ({n},)")
        floating = col.is_floating_point() if isinstance(col, torch.Tensor) else (
            not np.issubdtype(col.dtype, np.integer) and col.dtype != np.bool_)
        if floating:
            raise TypeError(f"event column {name!r} must be integer, got {col.dtype}")
    if kinds == {True} and len({c.device for c in cols}) != 1:
        raise ValueError("event tensors live on different devices")


def resolve_device(cols: Columns, device: torch.device | str | None) -> torch.device:
    """The requested device, else where tensor events live, else the CPU."""
    if device is not None:
        return parse_device(device)
    return cols.t.device if cols.is_torch else torch.device("cpu")


#: Column dtypes of EVENT_DTYPE; the numba kernels get these or int64/int64/int64/int8, so each
#: kernel is compiled for a couple of signatures rather than one per input dtype.
NATIVE = (np.dtype("<u2"), np.dtype("<u2"), np.dtype("<i8"), np.dtype("i1"))


def to_numpy(cols: Columns) -> Columns:
    """Host numpy columns for the numba kernels (tensors are copied off their device once)."""
    if cols.is_torch:
        cols = Columns(*(c.detach().cpu().numpy() for c in cols))
    if tuple(c.dtype for c in cols) == NATIVE:
        return cols
    x, y, t, p = (np.asarray(c) for c in cols)
    p = p if p.dtype == np.int8 else (p > 0).astype(np.int8)
    return Columns(_int64(x), _int64(y), _int64(t), p)


def _int64(c: np.ndarray) -> np.ndarray:
    if c.dtype == np.uint64:  # values past int64 are outside any sensor or window anyway
        c = np.minimum(c, np.iinfo(np.int64).max)
    return c.astype(np.int64, copy=False)


def to_torch(cols: Columns, device: torch.device) -> Columns:
    """Columns on ``device`` as int32 x/y, int64 t, int8 p: one copy per column, no more.

    Coordinates come out non-negative (negative or huge ones become :data:`OUTSIDE`), so the
    kernels need only an upper-bound check. uint16 coordinates cross to an accelerator as their
    int16 bit pattern (half the bytes of int32; torch's uint16 support is partial) and are
    widened there.
    """
    if device.type == "cuda":  # fields of one record array: one pinned upload, split there
        block = record_block(cols)
        if block is not None:
            return Columns(*upload_records(*block, device))
    x, y = (_coordinate(c, device) for c in (cols.x, cols.y))
    return Columns(x, y, _time(cols.t, device), _polarity(_upload(cols.p, device)))


#: Where coordinates that no sensor has (negative, beyond int32) are moved.
OUTSIDE = 1 << 30


def _upload(col, device: torch.device) -> torch.Tensor:
    if isinstance(col, torch.Tensor):
        return col.to(device, non_blocking=True)
    if col.strides != (col.itemsize,):  # includes one-element views with their record stride
        col = col.copy()
    return torch.from_numpy(col).to(device, non_blocking=True)


def _coordinate(col, device: torch.device) -> torch.Tensor:
    if isinstance(col, np.ndarray) and col.dtype.kind == "u":
        if col.dtype == np.uint16 and device.type != "cpu":
            wide = _upload(col.view(np.int16), device).to(torch.int32)
            return wide.bitwise_and_(0xFFFF)
        if col.dtype.itemsize > 2:
            col = np.minimum(col, OUTSIDE)
        return _upload(col.astype(np.int32), device)  # one pass, straight from a view
    c = _upload(col, device)
    if c.dtype != torch.uint8:
        c = torch.where((c < 0) | (c > OUTSIDE), OUTSIDE, c)
    return c.to(torch.int32)


def _time(col, device: torch.device) -> torch.Tensor:
    if isinstance(col, np.ndarray) and col.dtype != np.int64:
        col = _int64(col)
    return _upload(col, device).to(torch.int64)


def _polarity(p: torch.Tensor) -> torch.Tensor:
    return p if p.dtype == torch.int8 else (p > 0).to(torch.int8)


def chunk_size(device: torch.device) -> int:
    return CPU_CHUNK if device.type == "cpu" else DEVICE_CHUNK


def torch_chunks(cols: Columns, device: torch.device):
    """Yield device columns chunk by chunk (no chunking cost when already on the device)."""
    step = chunk_size(device)
    n = len(cols)
    for lo in range(0, n, step):
        yield to_torch(cols.slice(lo, min(lo + step, n)), device)


def concat(items: list[Events]) -> tuple[Columns, np.ndarray]:
    """Many event sets as one set of columns plus each set's [start, end) offsets."""
    parts = [columns(e) for e in items]
    sizes = np.array([len(c) for c in parts], dtype=np.int64)
    ends = np.cumsum(sizes)
    offsets = np.stack([ends - sizes, ends], axis=1) if parts else np.zeros((0, 2), np.int64)
    if not parts:
        empty = np.zeros(0, np.int64)
        return Columns(empty, empty, empty, empty.astype(np.int8)), offsets
    devices = [c.t.device for c in parts if c.is_torch]
    if devices:
        parts = [to_torch(c, devices[0]) for c in parts]
        return Columns(*(torch.cat(cs) for cs in zip(*parts, strict=True))), offsets
    return Columns(*(np.concatenate(cs) for cs in zip(*parts, strict=True))), offsets
