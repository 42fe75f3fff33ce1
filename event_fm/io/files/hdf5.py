"""DSEC-style HDF5 event files (events.h5 / events_left.h5).

Layout: events/{x,y,t,p} column datasets with t in integer microseconds relative to the
scalar 't_offset' (us), plus 'ms_to_idx' (index of the first event of each millisecond) for
random access. Columns are sliced in chunks so multi-GB sequences stream in bounded memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from event_fm.io.events import EventBatch, make_events
from event_fm.io.files import Rebatcher, check_exists, iter_arrays

_COLUMNS = ("x", "y", "t", "p")


def _h5py():
    import h5py

    try:  # DSEC's own files are Blosc-compressed; the filter lives in hdf5plugin.
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass
    return h5py


def _event_group(f, path: Path):
    grp = f["events"] if "events" in f else f
    missing = [c for c in _COLUMNS if c not in grp]
    if missing:
        raise ValueError(f"{path}: no events/{missing[0]} dataset (not a DSEC-style file)")
    return grp


def _geometry(f, grp, chunk: int) -> tuple[int, int]:
    """width/height attributes if written, else max x/y + 1 over the whole file."""
    for holder in (grp, f):
        if "width" in holder.attrs and "height" in holder.attrs:
            return int(holder.attrs["width"]), int(holder.attrs["height"])
    w = h = 0
    n = grp["x"].shape[0]
    for i in range(0, n, chunk):
        w = max(w, int(grp["x"][i : i + chunk].max()) + 1)
        h = max(h, int(grp["y"][i : i + chunk].max()) + 1)
    return w, h


def read_hdf5(
    path: str | os.PathLike, chunk_events: int = 1_000_000, topic: str = ""
) -> Iterator[EventBatch]:
    """Stream a DSEC-style file; t becomes int64 ns (t + t_offset) * 1000."""
    p = check_exists(path)
    h5py = _h5py()
    try:
        f = h5py.File(p, "r")
    except OSError as exc:  # h5py's message for garbage is a long low-level signature error
        from event_fm.io.errors import UnreadableInputError

        raise UnreadableInputError(f"{p}: not a readable HDF5 file "
                                   f"({str(exc).splitlines()[0][:120]})") from None
    try:
        grp = _event_group(f, p)
        width, height = _geometry(f, grp, max(chunk_events, 1 << 20))
    except BaseException:
        f.close()
        raise
    return _stream(f, grp, width, height, chunk_events, topic)


def _stream(f, grp, width, height, chunk_events, topic) -> Iterator[EventBatch]:
    with f:
        t_offset = int(f["t_offset"][()]) if "t_offset" in f else 0
        rb = Rebatcher(chunk_events, width, height, topic)
        n = grp["t"].shape[0]
        for i in range(0, n, chunk_events):
            sl = slice(i, min(i + chunk_events, n))
            t_us = grp["t"][sl].astype(np.int64) + t_offset
            p = grp["p"][sl]
            ev = make_events(grp["x"][sl], grp["y"][sl], t_us * 1000, p > 0)
            yield from rb.add(ev)
        yield from rb.flush()


def write_hdf5(
    path: str | os.PathLike,
    batches: Iterable[EventBatch | np.ndarray],
    width: int,
    height: int,
    compression: str | None = None,
) -> int:
    """Write the DSEC layout (plus width/height attributes); returns the event count.

    Times are floored to microseconds. t is stored as int64 relative to t_offset (the first
    event's time) because a streamed writer cannot know in advance whether uint32 (DSEC's
    choice, ~71 minutes) suffices. Triggers are not part of the layout and are dropped.
    """
    h5py = _h5py()
    n = 0
    t_offset: int | None = None
    next_ms = 0
    ms_to_idx: list[np.ndarray] = []
    with h5py.File(Path(path), "w") as f:
        f.attrs["width"] = int(width)
        f.attrs["height"] = int(height)
        grp = f.create_group("events")
        grp.attrs["width"] = int(width)
        grp.attrs["height"] = int(height)
        dtypes = {"x": "<u2", "y": "<u2", "t": "<i8", "p": "u1"}
        ds = {
            c: grp.create_dataset(
                c,
                shape=(0,),
                maxshape=(None,),
                dtype=dt,
                chunks=(1 << 16,),
                compression=compression,
            )
            for c, dt in dtypes.items()
        }
        for events, _ in iter_arrays(batches):
            if len(events) == 0:
                continue
            t_us = events["t"] // 1000
            if t_offset is None:
                t_offset = int(t_us[0])
            t_rel = t_us - t_offset
            m = len(events)
            for c, col in (
                ("x", events["x"]),
                ("y", events["y"]),
                ("t", t_rel),
                ("p", events["p"] > 0),
            ):
                ds[c].resize((n + m,))
                ds[c][n:] = col
            # first index of every millisecond that starts within this batch
            last_ms = int(t_rel[-1]) // 1000
            if last_ms >= next_ms:
                ms = np.arange(next_ms, last_ms + 1, dtype=np.int64) * 1000
                ms_to_idx.append(n + np.searchsorted(t_rel, ms, side="left"))
                next_ms = last_ms + 1
            n += m
        f.create_dataset("t_offset", data=np.int64(t_offset or 0))
        idx = np.concatenate(ms_to_idx) if ms_to_idx else np.zeros(0, np.int64)
        f.create_dataset("ms_to_idx", data=idx.astype(np.uint64))
    return n
