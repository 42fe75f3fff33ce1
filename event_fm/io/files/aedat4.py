"""AEDAT4 (iniVation DV) recordings, read through the PyPI ``aedat`` package.

AEDAT4 is flatbuffers packets, optionally LZ4/Zstd compressed; the Rust-backed ``aedat``
decoder handles all of that, so this module only converts its packets to EventBatch.
Read-only: there is no writer, recordings are made with DV itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from event_fm.io.events import TRIGGER_DTYPE, EventBatch, empty_events, make_events
from event_fm.io.files import Rebatcher, check_exists

#: aedat trigger 'source' -> (edge, id): external input 1/2, external generator 4/5.
_TRIGGER_SOURCES = {1: (1, 0), 2: (0, 0), 4: (1, 1), 5: (0, 1)}


def _aedat():
    try:
        import aedat
    except ImportError as e:
        raise ImportError(
            "reading AEDAT4 files needs the 'aedat' package: pip install aedat"
        ) from e
    return aedat


def aedat_events_to_array(packet_events: np.ndarray) -> np.ndarray:
    """aedat's (t us u8, x u2, y u2, on ?) structured array -> EVENT_DTYPE (t in ns)."""
    t = packet_events["t"].astype(np.int64) * 1000
    return make_events(packet_events["x"], packet_events["y"], t, packet_events["on"])


def aedat_triggers_to_array(packet_triggers: np.ndarray) -> tuple[np.ndarray, int]:
    """External-signal/generator edges as TRIGGER_DTYPE; other sources (frame/exposure
    markers, timestamp resets) are counted, not kept."""
    src = packet_triggers["source"].astype(np.int64)
    keep = np.isin(src, list(_TRIGGER_SOURCES))
    out = np.zeros(int(keep.sum()), TRIGGER_DTYPE)
    out["t"] = packet_triggers["t"][keep].astype(np.int64) * 1000
    out["edge"] = [_TRIGGER_SOURCES[int(s)][0] for s in src[keep]]
    out["id"] = [_TRIGGER_SOURCES[int(s)][1] for s in src[keep]]
    return out, int((~keep).sum())


def read_aedat4(
    path: str | os.PathLike,
    chunk_events: int = 1_000_000,
    stream_id: int | None = None,
    topic: str = "",
) -> Iterator[EventBatch]:
    """Stream the events (and triggers) of an AEDAT4 file.

    With several event streams (e.g. stereo), the lowest id is read unless ``stream_id``
    names another. Frames and IMU packets are skipped.
    """
    aedat = _aedat()
    p = check_exists(path)
    try:
        decoder = aedat.Decoder(str(p))
    except (RuntimeError, OSError, ValueError) as exc:  # aedat raises RuntimeError on garbage
        from event_fm.io.errors import UnreadableInputError

        raise UnreadableInputError(f"{p}: not a readable AEDAT4 file ({exc})") from None
    streams = decoder.id_to_stream()
    event_ids = sorted(i for i, s in streams.items() if s.get("type") == "events")
    if stream_id is None:
        if not event_ids:
            raise ValueError(f"{p}: no event stream (streams: {streams})")
        stream_id = event_ids[0]
    elif stream_id not in event_ids:
        raise ValueError(f"{p}: stream {stream_id} is not an event stream (have {event_ids})")
    info = streams[stream_id]
    return _stream(decoder, stream_id, int(info["width"]), int(info["height"]), chunk_events, topic)


def _stream(decoder, stream_id, width, height, chunk_events, topic) -> Iterator[EventBatch]:
    rb = Rebatcher(chunk_events, width, height, topic)
    for packet in decoder:
        if "events" in packet and packet["stream_id"] == stream_id:
            yield from rb.add(aedat_events_to_array(packet["events"]))
        elif "triggers" in packet:
            trig, other = aedat_triggers_to_array(packet["triggers"])
            yield from rb.add(empty_events(), trig, {"other_triggers": other})
    yield from rb.flush()
