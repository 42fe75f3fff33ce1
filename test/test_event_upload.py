"""Events cross to an accelerator as one block of record bytes (issue 21 item 3): the record
detection and the on-device split, checked on the CPU against the column-by-column path (the
pinned CUDA transfer itself runs in test/test_cuda.py where there is a GPU)."""

from __future__ import annotations

import numpy as np
import torch

from event_fm.io.events import make_events
from event_fm.representations._inputs import Columns, columns, to_torch
from event_fm.representations._records import record_block, upload_records


def _events(n: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(3)
    return make_events(rng.integers(0, 65535, n), rng.integers(0, 720, n),
                       np.sort(rng.integers(0, 10**12, n)), rng.integers(0, 2, n))


def test_fields_of_one_record_array_are_found_with_their_offsets():
    ev = _events()
    block = record_block(columns(ev))
    assert block is not None
    records, offsets = block
    assert records.ctypes.data == ev.ctypes.data and len(records) == len(ev)
    assert offsets == tuple(ev.dtype.fields[k][1] for k in "xytp")
    sliced = record_block(columns(ev).slice(100, 250))  # a chunk of a window
    assert sliced is not None and len(sliced[0]) == 150
    assert sliced[0].ctypes.data == ev[100:].ctypes.data


def test_columns_that_are_not_one_record_array_take_the_column_path():
    ev = _events()
    separate = Columns(ev["x"].copy(), ev["y"].copy(), ev["t"].copy(), ev["p"].copy())
    assert record_block(separate) is None
    mixed = Columns(ev["x"], ev["y"], ev["t"].copy(), ev["p"])
    assert record_block(mixed) is None
    other = _events()
    assert record_block(Columns(ev["x"], other["y"], ev["t"], ev["p"])) is None
    assert record_block(columns(ev[::2])) is None  # strided records


def test_one_block_split_on_the_device_equals_the_column_uploads():
    ev = _events()
    ev["p"][::3] = -1  # OFF written as -1 by some drivers
    cols = columns(ev).slice(10, 900)
    records, offsets = record_block(cols)
    got = upload_records(records, offsets, torch.device("cpu"), pinned=False)
    want = to_torch(cols, torch.device("cpu"))
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)
    assert int(got[0].max()) > 32767  # uint16 x past int16 survives the int16 view
    empty = upload_records(ev[:0], offsets, torch.device("cpu"), pinned=False)
    assert all(len(c) == 0 for c in empty)
