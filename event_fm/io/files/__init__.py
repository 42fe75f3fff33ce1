"""Vendor event files (Prophesee .raw, AEDAT4, ECD text, DSEC HDF5) as streams of EventBatch.

Every reader yields batches of about ``chunk_events`` events so that recordings larger than
memory can be replayed through the same pipeline as live ROS packets. Format modules are
imported lazily: h5py and aedat are only needed for the formats that use them.

Files carry no ROS header, so a batch's ``stamp_ns`` is the sensor time of its first event.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from event_fm.io.events import EVENT_DTYPE, EventBatch, empty_events, empty_triggers

__all__ = ["read_event_file", "write_event_file", "sniff_format"]

FORMATS = ("raw", "aedat4", "text", "hdf5")

_SUFFIXES = {
    ".raw": "raw",
    ".aedat4": "aedat4",
    ".txt": "text",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_AEDAT4_MAGIC = b"#!AER-DAT4.0"


def check_exists(path: str | os.PathLike) -> Path:
    """Fail early with the path in the message (h5py and aedat give vaguer errors)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, f"event file not found: {p}", str(p))
    return p


def sniff_format(path: str | os.PathLike) -> str:
    """Guess the format from the magic bytes, falling back on the suffix.

    Content wins over the suffix because recordings are often renamed (.dat, .bin, no suffix).
    A directory is an ECD-style text folder.
    """
    p = check_exists(path)
    if p.is_dir():
        return "text"
    with open(p, "rb") as f:
        head = f.read(16)
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if head.startswith(_AEDAT4_MAGIC):
        return "aedat4"
    if head.startswith(b"% "):
        return "raw"
    fmt = _SUFFIXES.get(p.suffix.lower())
    if fmt is not None:
        return fmt
    if head and all(c in b"0123456789.-+ \t\r\n#eE" for c in head):
        return "text"
    raise ValueError(f"cannot tell the event file format of {p} (suffix {p.suffix!r})")


def read_event_file(
    path: str | os.PathLike, chunk_events: int = 1_000_000, **kwargs
) -> Iterator[EventBatch]:
    """Stream a recording of any supported format as EventBatch chunks.

    Extra keyword arguments go to the format's reader (e.g. width/height for text).
    """
    fmt = sniff_format(path)
    if fmt == "raw":
        from event_fm.io.files.raw import read_raw

        return read_raw(path, chunk_events=chunk_events, **kwargs)
    if fmt == "aedat4":
        from event_fm.io.files.aedat4 import read_aedat4

        return read_aedat4(path, chunk_events=chunk_events, **kwargs)
    if fmt == "hdf5":
        from event_fm.io.files.hdf5 import read_hdf5

        return read_hdf5(path, chunk_events=chunk_events, **kwargs)
    from event_fm.io.files.text import read_events_txt

    return read_events_txt(path, chunk_events=chunk_events, **kwargs)


def write_event_file(
    path: str | os.PathLike,
    batches: Iterable[EventBatch | np.ndarray],
    width: int,
    height: int,
) -> int:
    """Write batches (or bare event arrays) in the format named by the suffix; returns count.

    A path without suffix, or ending in .txt, is written as an ECD text folder/file.
    """
    p = Path(path)
    fmt = "text" if p.suffix == "" or p.is_dir() else _SUFFIXES.get(p.suffix.lower())
    if fmt == "raw":
        from event_fm.io.files.raw import write_raw

        return write_raw(p, batches, width, height)
    if fmt == "hdf5":
        from event_fm.io.files.hdf5 import write_hdf5

        return write_hdf5(p, batches, width, height)
    if fmt == "text":
        from event_fm.io.files.text import write_events_txt

        return write_events_txt(p, batches, width, height)
    if fmt == "aedat4":
        raise NotImplementedError("writing AEDAT4 is not supported (read-only format here)")
    raise ValueError(f"cannot tell which format to write from the suffix of {p}")


# --- helpers shared by the format modules -------------------------------------------------


def iter_arrays(
    batches: Iterable[EventBatch | np.ndarray],
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(events, triggers) per item, so writers accept batches or plain event arrays."""
    for b in batches:
        if isinstance(b, EventBatch):
            yield np.asarray(b.events, dtype=EVENT_DTYPE), b.triggers
        else:
            yield np.asarray(b, dtype=EVENT_DTYPE), empty_triggers()


class Rebatcher:
    """Regroups decoder output (packet-sized, arbitrary) into batches of ``chunk_events``.

    Fixed-size batches keep memory bounded and make downstream timing predictable no
    matter how the file was chunked on disk.
    """

    def __init__(self, chunk_events: int, width: int, height: int, topic: str = "") -> None:
        if chunk_events <= 0:
            raise ValueError(f"chunk_events must be positive, got {chunk_events}")
        self.chunk_events = int(chunk_events)
        self.width, self.height, self.topic = width, height, topic
        self._events: list[np.ndarray] = []
        self._triggers: list[np.ndarray] = []
        self._count = 0
        self._dropped: dict[str, int] = {}
        self._seq = 0

    def add(
        self,
        events: np.ndarray,
        triggers: np.ndarray | None = None,
        dropped: dict[str, int] | None = None,
    ) -> Iterator[EventBatch]:
        if len(events):
            self._events.append(events)
            self._count += len(events)
        if triggers is not None and len(triggers):
            self._triggers.append(triggers)
        for k, v in (dropped or {}).items():
            if v:
                self._dropped[k] = self._dropped.get(k, 0) + int(v)
        if self._count >= self.chunk_events:
            ev = np.concatenate(self._events) if len(self._events) > 1 else self._events[0]
            n_full = len(ev) // self.chunk_events * self.chunk_events
            for i in range(0, n_full, self.chunk_events):
                yield self._make(ev[i : i + self.chunk_events])
            rest = ev[n_full:]
            self._events = [rest] if len(rest) else []
            self._count = len(rest)

    def flush(self) -> Iterator[EventBatch]:
        """Emit what is left (also a trigger-only or drop-only remainder)."""
        if self._count or self._triggers or self._dropped:
            if len(self._events) > 1:
                ev = np.concatenate(self._events)
            else:  # one decoded chunk (a small file): no copy
                ev = self._events[0] if self._events else empty_events()
            self._events, self._count = [], 0
            yield self._make(ev, last=True)

    def _make(self, events: np.ndarray, last: bool = False) -> EventBatch:
        trig = np.concatenate(self._triggers) if self._triggers else empty_triggers()
        later = empty_triggers()
        if not last and len(events) and len(trig):
            # triggers after this batch's last event ride with the batch that covers them
            keep = trig["t"] <= events["t"][-1]
            trig, later = trig[keep], trig[~keep]
        batch = EventBatch(
            events=events,
            triggers=trig,
            stamp_ns=int(events["t"][0]) if len(events) else 0,
            seq=self._seq,
            width=self.width,
            height=self.height,
            topic=self.topic,
            dropped=self._dropped,
        )
        self._seq += 1
        self._triggers = [later] if len(later) else []
        self._dropped = {}
        return batch
