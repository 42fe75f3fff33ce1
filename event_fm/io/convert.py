"""Conversion between event recordings (the core of ``event-fm convert``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain, islice
from pathlib import Path

import numpy as np

from event_fm.io.events import EventBatch, empty_events, empty_triggers

FILE_SUFFIXES = {".raw", ".h5", ".hdf5", ".txt", ".aedat4"}


def packetize(batches: Iterable[EventBatch], packet_ns: int
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Re-cut a time-ordered stream into fixed-duration packets (events, triggers)."""
    events, triggers = empty_events(), empty_triggers()
    for batch in batches:
        events = np.concatenate([events, batch.events]) if len(events) else batch.events
        triggers = (np.concatenate([triggers, batch.triggers]) if len(triggers)
                    else batch.triggers)
        if not len(events):
            continue
        end = (int(events["t"][-1]) // packet_ns) * packet_ns  # start of the open packet
        n_done = int(np.searchsorted(events["t"], end, side="left"))
        if n_done == 0:
            continue
        done, events = events[:n_done], events[n_done:]
        n_trig = int(np.searchsorted(triggers["t"], end, side="left"))
        done_trig, triggers = triggers[:n_trig], triggers[n_trig:]
        yield from _split(done, done_trig, packet_ns)
    if len(events) or len(triggers):
        yield from _split(events, triggers, packet_ns)


def _split(events: np.ndarray, triggers: np.ndarray, packet_ns: int
           ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    if not len(events):
        yield events, triggers
        return
    keys = events["t"] // packet_ns
    cuts = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(events)]])
    trig_keys = triggers["t"] // packet_ns
    for s, e in zip(starts, ends, strict=True):
        k = keys[s]
        yield events[s:e], triggers[trig_keys == k]


def _geometry(batches: list[EventBatch], width: int, height: int) -> tuple[int, int]:
    for b in batches:
        width, height = width or b.width, height or b.height
    return width, height


def is_dataset_conversion(src: str | Path, dst: str | Path) -> bool:
    """True when ``src`` is a whole dataset sequence (ECD folder with frames or ground truth,
    MVSEC data HDF5) and ``dst`` a bag: then the bag gets frames, camera_info and /gt/* too
    (:mod:`event_fm.io.datasets`)."""
    from event_fm.io.datasets import detect_dataset

    return Path(dst).suffix.lower() not in FILE_SUFFIXES and detect_dataset(src) is not None


def convert(src: str | Path, dst: str | Path, topic: str | None = None,
            out_topic: str = "/event_camera/events", packet_us: int = 1000,
            storage: str = "mcap", width: int = 0, height: int = 0, overwrite: bool = False,
            progress: bool = False, gt: str | Path | None = None, calib: str | None = None,
            frame_times: str = "auto") -> int:
    """Convert ``src`` to ``dst`` (format from the suffix); returns the number of events.

    A dataset sequence (ECD folder with images.txt / groundtruth.txt, MVSEC ``_data.hdf5``
    with ``gt`` = its ``_gt.hdf5`` and ``calib``) written to a bag becomes a complete recording
    with frames, camera_info, /gt/depth and /gt/pose (:func:`event_fm.io.datasets.convert_dataset`);
    to an event file, only its events are written."""
    from tqdm import tqdm

    from event_fm.io.datasets import convert_dataset, detect_dataset
    from event_fm.io.readers import read_events

    src, dst = Path(src), Path(dst)
    if packet_us <= 0:
        raise ValueError("packet duration must be positive")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} exists (use --overwrite)")
    kind = detect_dataset(src) if src.exists() else None
    to_file = dst.suffix.lower() in FILE_SUFFIXES
    if kind is not None and not to_file:
        return int(convert_dataset(src, dst, gt=gt, calib=calib, frame_times=frame_times,
                                   width=width, height=height, packet_us=packet_us,
                                   storage=storage, overwrite=overwrite, progress=progress,
                                   out_topic=out_topic)["events"])
    if gt is not None or calib is not None:
        raise ValueError("--gt / --calib only apply to a dataset sequence (ECD folder, MVSEC "
                         "HDF5) converted to a bag")
    if kind == "mvsec":
        from event_fm.io.datasets import mvsec_event_batches

        stream = mvsec_event_batches(src)
    else:
        stream = read_events(src, topic)
    head = list(islice(stream, 1))
    width, height = _geometry(head, width, height)
    if not (width and height):  # e.g. ECD text without resolution: one pass to find it
        xs = ys = 0
        for b in read_events(src, topic):
            if len(b):
                xs, ys = max(xs, int(b.events["x"].max())), max(ys, int(b.events["y"].max()))
        width, height = width or xs + 1, height or ys + 1
    batches = tqdm(chain(head, stream), unit="batch", disable=not progress, leave=False)

    if dst.suffix.lower() in FILE_SUFFIXES:
        from event_fm.io.files import write_event_file

        return int(write_event_file(dst, batches, width, height))

    from event_fm.io.rosbag import BagWriter

    total = 0
    with BagWriter(dst, storage=storage, overwrite=overwrite) as bag:
        for events, triggers in packetize(batches, packet_us * 1000):
            stamp = int(events["t"][0]) if len(events) else int(triggers["t"][0])
            bag.write_event_packet(out_topic, stamp, events, width, height, triggers=triggers)
            total += len(events)
    return total
