"""Prophesee .raw files: an ASCII '%' header followed by the camera's EVT3 or EVT2 stream.

The body is exactly what the sensor sent, so it goes through the same stateful decoders as
live ROS packets; reading it in word-aligned chunks keeps memory flat for long recordings.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from event_fm.io.events import EventBatch
from event_fm.io.files import Rebatcher, check_exists, iter_arrays

#: Bytes per word of each body encoding; chunks must not split a word.
WORD_BYTES = {"evt3": 2, "evt2": 4}

_GEOMETRY = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


@dataclass
class RawHeader:
    """What the '%' header says; ``body_offset`` is where the binary stream starts."""

    encoding: str = "evt3"
    width: int = 0
    height: int = 0
    body_offset: int = 0
    fields: dict[str, str] = field(default_factory=dict)


def _encoding_name(text: str) -> str:
    """'3.0', 'EVT3', 'evt 2.0', 'EVT21' -> 'evt3' / 'evt2' / 'evt21' (the last unsupported)."""
    s = text.strip().lower().replace("evt", "").replace(" ", "")
    if s.endswith(".0"):
        s = s[:-2]
    return "evt" + s.replace(".", "")


def parse_raw_header(f: BinaryIO) -> RawHeader:
    """Read '%' lines from the start of ``f``; leaves ``f`` at the first body byte.

    Both header generations are understood: '% evt 3.0' + '% geometry WxH' (older Metavision)
    and '% format EVT3;height=H;width=W' (newer); the '% format' line wins when both exist.
    A header without '% end' (old files) stops at the first line not starting with '% '.
    """
    hdr = RawHeader()
    f.seek(0)
    fmt_seen = False
    while True:
        pos = f.tell()
        lead = f.read(2)
        if len(lead) < 1 or lead[:1] != b"%" or (len(lead) == 2 and lead[1:] not in b" \r\n"):
            f.seek(pos)  # '%' followed by a non-blank is body data that happens to be 0x25
            break
        f.seek(pos + 1)
        line = f.readline().decode("latin-1").strip()
        if line == "end":
            break
        key, _, value = line.partition(" ")
        value = value.strip()
        hdr.fields[key] = value
        low = key.lower()
        if low == "format":
            name, *params = value.split(";")
            hdr.encoding = _encoding_name(name)
            fmt_seen = True
            for param in params:
                k, _, v = param.partition("=")
                if k.strip().lower() == "width":
                    hdr.width = int(v)
                elif k.strip().lower() == "height":
                    hdr.height = int(v)
        elif low == "evt" and not fmt_seen:
            hdr.encoding = _encoding_name(value)
        elif low == "geometry":
            m = _GEOMETRY.match(value)
            if m and not (fmt_seen and hdr.width and hdr.height):
                hdr.width, hdr.height = int(m.group(1)), int(m.group(2))
        elif low in ("width", "height") and value.isdigit():
            setattr(hdr, low, int(value))
    hdr.body_offset = f.tell()
    return hdr


#: Largest plausible sensor side (today's largest event sensors are 1280x720 and 2048x1536).
MAX_SIDE = 16384


def check_raw_header(path: Path, hdr: RawHeader) -> None:
    """Refuse what is not a Prophesee recording before decoding noise as events.

    Every Metavision version writes '% ' lines with the encoding ('% evt' or '% format') or
    the geometry; EVK4 files may lack '% end', which the parser accepts.
    """
    from event_fm.io.errors import UnreadableInputError

    keys = {k.lower() for k in hdr.fields}
    if not hdr.fields:
        raise UnreadableInputError(f"{path}: not a Prophesee .raw file (no '% ' header lines)")
    if not keys & {"evt", "format", "geometry", "width", "height"}:
        raise UnreadableInputError(f"{path}: .raw header names neither the encoding "
                                   "('% format'/'% evt') nor the geometry")
    stated = hdr.width or hdr.height or "geometry" in keys
    if stated and not (0 < hdr.width <= MAX_SIDE and 0 < hdr.height <= MAX_SIDE):
        raise UnreadableInputError(f"{path}: implausible .raw geometry "
                                   f"{hdr.width}x{hdr.height}")


def read_raw_header(path: str | os.PathLike) -> RawHeader:
    with open(check_exists(path), "rb") as f:
        return parse_raw_header(f)


def read_raw(
    path: str | os.PathLike,
    chunk_events: int = 1_000_000,
    chunk_bytes: int = 1 << 23,
    topic: str = "",
) -> Iterator[EventBatch]:
    """Stream a .raw file as EventBatch chunks of ``chunk_events`` events.

    A trailing partial word (truncated recording) is reported in ``dropped`` as
    'truncated' on the last batch instead of raising.
    """
    from event_fm.io.decoders import make_decoder

    p = check_exists(path)
    with open(p, "rb") as f:
        hdr = parse_raw_header(f)
    check_raw_header(p, hdr)
    if hdr.encoding not in WORD_BYTES:
        raise ValueError(f"{p}: unsupported raw encoding {hdr.encoding!r} (evt3 or evt2 only)")
    word = WORD_BYTES[hdr.encoding]
    chunk_bytes = max(word, chunk_bytes // word * word)
    return _stream(
        p,
        hdr,
        make_decoder(hdr.encoding, hdr.width, hdr.height),
        word,
        chunk_events,
        chunk_bytes,
        topic,
    )


def _stream(p, hdr, decoder, word, chunk_events, chunk_bytes, topic) -> Iterator[EventBatch]:
    rb = Rebatcher(chunk_events, hdr.width, hdr.height, topic)
    with open(p, "rb") as f:
        f.seek(hdr.body_offset)
        while True:
            data = f.read(chunk_bytes)
            if not data:
                break
            extra = len(data) % word
            dropped = {}
            if extra:  # only possible at EOF since chunk_bytes is word aligned
                dropped["truncated"] = extra
                data = data[: len(data) - extra]
            out = decoder.decode(np.frombuffer(data, dtype=np.uint8))
            merged = dict(out.dropped)
            for k, v in dropped.items():
                merged[k] = merged.get(k, 0) + v
            yield from rb.add(out.events, out.triggers, merged)
    yield from rb.flush()


def raw_header_text(width: int, height: int, when: _dt.datetime | None = None) -> bytes:
    """Header in the style Metavision 4 writes, with both geometry spellings for old readers."""
    when = when or _dt.datetime.now()
    lines = [
        "% camera_integrator_name Prophesee",
        f"% date {when:%Y-%m-%d %H:%M:%S}",
        "% evt 3.0",
        f"% format EVT3;height={height};width={width}",
        f"% geometry {width}x{height}",
        "% end",
    ]
    return ("\n".join(lines) + "\n").encode("ascii")


def write_raw(
    path: str | os.PathLike,
    batches: Iterable[EventBatch | np.ndarray],
    width: int,
    height: int,
    use_vectors: bool = True,
) -> int:
    """Write an EVT3 .raw file; returns the number of events written.

    EVT3 carries microseconds, so event times are floored to whole microseconds. Vector
    words (as Prophesee sensors emit) keep dense rows compact.
    """
    from event_fm.io.evt3_encoder import Evt3Encoder

    enc = Evt3Encoder(use_vectors=use_vectors)
    n = 0
    with open(Path(path), "wb") as f:
        f.write(raw_header_text(width, height))
        for events, triggers in iter_arrays(batches):
            if len(events) == 0 and len(triggers) == 0:
                continue
            f.write(enc.encode(events, triggers if len(triggers) else None))
            n += len(events)
    return n
