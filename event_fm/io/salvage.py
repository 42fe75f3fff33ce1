"""Reading what a killed recording left: truncated MCAP and sqlite3 rosbag2 storage files.

rosbags refuses an MCAP without its footer and a sqlite3 file whose last pages are missing, yet
everything before the cut is intact. These readers are used only when rosbags refuses a file:
they return every complete message up to the first damage and say how much was lost. A file
with nothing readable (empty, random bytes) raises :class:`UnreadableInputError`.

The readers mimic the small part of ``rosbags.rosbag2.Reader`` that :class:`BagReader` uses
(``connections``, ``messages(connections=...)``, ``is_open``, ``close()``).
"""

from __future__ import annotations

import logging
import mmap
import os
import sqlite3
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
)

from event_fm.io.errors import UnreadableInputError

log = logging.getLogger(__name__)

MCAP_MAGIC = b"\x89MCAP0\r\n"
SQLITE_MAGIC = b"SQLite format 3\x00"

_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 0x03, 0x04, 0x05, 0x06
_OP_FOOTER, _OP_DATA_END = 0x02, 0x0F
_RECORD_HEAD = 9  # opcode u8 + length u64


def _kb(n: int) -> str:
    return f"{n / 1000:.0f} kB" if n >= 1000 else f"{n} B"


def _qos(text: str) -> list:
    from rosbags.rosbag2.metadata import parse_qos

    try:
        return parse_qos(text)
    except Exception:  # noqa: BLE001 - QoS is optional; a damaged one must not stop reading
        return []


def _connection(owner: Any, cid: int, topic: str, msgtype: str, fmt: str, data: str,
                encoding: str, qos_text: str) -> Connection:
    formats = {"ros2msg": MessageDefinitionFormat.MSG, "ros2idl": MessageDefinitionFormat.IDL}
    msgdef = (MessageDefinition(formats[fmt], data) if fmt in formats and data
              else MessageDefinition(MessageDefinitionFormat.NONE, ""))
    return Connection(cid, topic, msgtype, msgdef, "", 0,
                      ConnectionExtRosbag2(encoding or "cdr", _qos(qos_text)), owner)


class _Salvaged:
    """Common part: connections with counts, the note on what was lost, Reader-like methods."""

    def __init__(self, path: Path):
        self.path = path
        self.connections: list[Connection] = []
        self.is_open = True
        self.note = ""

    def close(self) -> None:
        self.is_open = False

    def _set_counts(self, counts: dict[int, int]) -> None:
        self.connections = [
            Connection(c.id, c.topic, c.msgtype, c.msgdef, c.digest, counts.get(c.id, 0), c.ext,
                       c.owner) for c in self.connections]

    def messages(self, connections: Iterable[Connection] = ()) -> Iterator[tuple]:
        raise NotImplementedError


# -- MCAP ----------------------------------------------------------------------------------------
@dataclass
class _Cursor:
    """Reads MCAP primitives from a buffer; raises struct.error/IndexError past its end."""

    buf: memoryview
    pos: int = 0

    def u16(self) -> int:
        (v,) = struct.unpack_from("<H", self.buf, self.pos)
        self.pos += 2
        return v

    def u32(self) -> int:
        (v,) = struct.unpack_from("<I", self.buf, self.pos)
        self.pos += 4
        return v

    def u64(self) -> int:
        (v,) = struct.unpack_from("<Q", self.buf, self.pos)
        self.pos += 8
        return v

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise IndexError("past the end")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def string(self) -> str:
        return bytes(self.take(self.u32())).decode("utf-8", "replace")

    def string_map(self) -> dict[str, str]:
        end = self.u32() + self.pos
        out = {}
        while self.pos < end:
            key = self.string()
            out[key] = self.string()
        return out


def _records(buf: memoryview, pos: int) -> Iterator[tuple[int, memoryview, int]]:
    """(opcode, body, end offset) of each complete record from pos; stops at an incomplete one."""
    size = len(buf)
    while pos + _RECORD_HEAD <= size:
        op = buf[pos]
        (length,) = struct.unpack_from("<Q", buf, pos + 1)
        end = pos + _RECORD_HEAD + length
        if end > size:
            return
        yield op, buf[pos + _RECORD_HEAD:end], end
        pos = end


def _decompress(compression: str, data: bytes, complete: bool, size: int) -> bytes:
    """A chunk's records; for a cut chunk, as much as its compressed prefix gives."""
    if compression == "":
        return data
    if compression == "lz4":
        import lz4.frame

        if complete:
            return lz4.frame.decompress(data)
        decompressor = lz4.frame.LZ4FrameDecompressor()
        try:
            return decompressor.decompress(data)
        except RuntimeError:
            return b""
    if compression == "zstd":
        try:
            import zstandard
        except ImportError as exc:
            raise UnreadableInputError(
                "zstd-compressed MCAP chunks need the 'zstandard' package") from exc
        if complete:
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
        try:
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except zstandard.ZstdError:
            return b""
    raise UnreadableInputError(f"unknown MCAP chunk compression {compression!r}")


class SalvagedMcap(_Salvaged):
    """Every complete message of an MCAP file in file order, up to the first damage."""

    def __init__(self, path: Path):
        super().__init__(path)
        self._schemas: dict[int, tuple[str, str, str]] = {}
        self._channels: dict[int, Connection] = {}
        counts: dict[int, int] = {}
        self.good_end = len(MCAP_MAGIC)
        self.complete = False
        for kind, value in self._scan():
            if kind == "message":
                counts[value[0]] = counts.get(value[0], 0) + 1
        self.connections = list(self._channels.values())
        self._set_counts(counts)
        self.message_count = sum(counts.values())

    def _buffer(self):
        with open(self.path, "rb") as f:
            if self.path.stat().st_size == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def _scan(self) -> Iterator[tuple[str, Any]]:
        """('message', (channel id, log time, data)) for each message, tracking good_end."""
        mapped = self._buffer()
        buf = memoryview(mapped)
        try:
            if bytes(buf[:len(MCAP_MAGIC)]) != MCAP_MAGIC:
                raise UnreadableInputError("not an MCAP file (no MCAP magic at the start)")
            for op, body, end in _records(buf, len(MCAP_MAGIC)):
                if op in (_OP_DATA_END, _OP_FOOTER):
                    self.complete = True
                    return
                if op == _OP_CHUNK:
                    yield from self._chunk(body, end - len(body))
                else:
                    yield from self._record(op, body)
                self.good_end = end
            yield from self._cut_chunk(buf)
        finally:
            del buf  # the mmap closes when its last view is gone

    def _cut_chunk(self, buf: memoryview) -> Iterator[tuple[str, Any]]:
        """The messages inside a chunk the file ends in the middle of (rosbag2 writes chunks)."""
        pos = self.good_end
        if pos + _RECORD_HEAD > len(buf) or buf[pos] != _OP_CHUNK:
            return
        yield from self._chunk(buf[pos + _RECORD_HEAD:], pos + _RECORD_HEAD, complete=False)

    def _chunk(self, body: memoryview, body_offset: int,
               complete: bool = True) -> Iterator[tuple[str, Any]]:
        try:
            cur = _Cursor(body)
            cur.u64(), cur.u64()
            size = cur.u64()
            cur.u32()
            compression = cur.string()
            length = cur.u64()
        except (struct.error, IndexError):
            return
        start = cur.pos
        data = bytes(body[start:start + length])
        complete = complete and len(data) == length
        records = memoryview(_decompress(compression, data, complete, size))
        for op, inner, end in _records(records, 0):
            yield from self._record(op, inner)
            if not complete and compression == "":
                self.good_end = body_offset + start + end
        if not complete and compression != "" and records:
            # where in the compressed bytes the last whole record ended is unknown; estimate
            self.good_end = body_offset + start + int(len(data) * min(1.0, len(records) / size))

    def _record(self, op: int, body: memoryview) -> Iterator[tuple[str, Any]]:
        cur = _Cursor(body)
        try:
            if op == _OP_MESSAGE:
                channel = cur.u16()
                cur.u32()
                log_time = cur.u64()
                cur.u64()
                yield "message", (channel, log_time, body[cur.pos:])
            elif op == _OP_SCHEMA:
                sid = cur.u16()
                name = cur.string()
                encoding = cur.string()
                data = bytes(cur.take(cur.u32())).decode("utf-8", "replace")
                self._schemas[sid] = (name, encoding, data)
            elif op == _OP_CHANNEL:
                cid = cur.u16()
                sid = cur.u16()
                topic = cur.string()
                encoding = cur.string()
                metadata = cur.string_map()
                name, fmt, data = self._schemas.get(sid, ("", "", ""))
                if cid not in self._channels:
                    self._channels[cid] = _connection(
                        self, cid, topic, name, fmt, data, encoding,
                        metadata.get("offered_qos_profiles", ""))
        except (struct.error, IndexError):
            return

    def messages(self, connections: Iterable[Connection] = ()) -> Iterator[tuple]:
        by_id = {c.id: c for c in (connections or self.connections)}
        for kind, (cid, log_time, data) in self._scan():
            if kind == "message" and cid in by_id:
                yield by_id[cid], log_time, bytes(data)


# -- sqlite3 -------------------------------------------------------------------------------------
class SalvagedSqlite(_Salvaged):
    """The rows of a rosbag2 sqlite3 file's messages table in id order, up to the first error."""

    def __init__(self, path: Path):
        super().__init__(path)
        with open(path, "rb") as f:
            head = f.read(100)
        if not head.startswith(SQLITE_MAGIC):
            raise UnreadableInputError("not a sqlite3 database (no SQLite header)")
        page_size = int.from_bytes(head[16:18], "big") or 65536
        pages = int.from_bytes(head[28:32], "big")
        size = path.stat().st_size
        self.missing = max(0, page_size * pages - size)
        self._db_path = path
        if page_size * pages != size:
            self._db_path = self._consistent_copy(page_size, size)
        try:
            with self._connect() as db:
                cursor = db.execute("SELECT * FROM topics")
                names = [d[0] for d in cursor.description]
                for row in cursor.fetchall():
                    t = dict(zip(names, row, strict=True))
                    self.connections.append(_connection(
                        self, int(t["id"]), str(t["name"]), str(t["type"]), "", "",
                        str(t.get("serialization_format") or "cdr"),
                        str(t.get("offered_qos_profiles") or "")))
        except sqlite3.DatabaseError as exc:
            raise UnreadableInputError(f"no readable topics table ({exc})") from exc
        counts: dict[int, int] = {}
        self.error = ""
        # data too: a row whose overflow pages are missing must fail here as it will later
        for topic_id, _, _ in self._rows("SELECT topic_id, timestamp, data FROM messages "
                                         "ORDER BY id"):
            counts[topic_id] = counts.get(topic_id, 0) + 1
        self._set_counts(counts)
        self.message_count = sum(counts.values())

    def _consistent_copy(self, page_size: int, size: int) -> Path:
        """A temporary copy cut to whole pages with the header's page count matching.

        SQLite trusts the page count in the header and calls a shorter file malformed before
        reading a single row; the user's file is never modified.
        """
        whole = size // page_size * page_size
        if whole < page_size:
            raise UnreadableInputError("truncated inside the first database page")
        fd, name = tempfile.mkstemp(prefix="event_fm_salvage_", suffix=".db3")
        with open(self.path, "rb") as src, os.fdopen(fd, "wb") as dst:
            first = bytearray(src.read(page_size))
            first[28:32] = (whole // page_size).to_bytes(4, "big")
            dst.write(first)
            remaining = whole - page_size
            while remaining > 0:
                block = src.read(min(remaining, 1 << 22))
                if not block:
                    break
                dst.write(block)
                remaining -= len(block)
        return Path(name)

    def close(self) -> None:
        super().close()
        if self._db_path != self.path:
            self._db_path.unlink(missing_ok=True)

    def __del__(self) -> None:
        if getattr(self, "_db_path", None) not in (None, self.path):
            self._db_path.unlink(missing_ok=True)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self._db_path}?mode=ro&immutable=1", uri=True)

    def _rows(self, query: str) -> Iterator[tuple]:
        db = self._connect()
        try:
            cursor = db.execute(query)
            while True:
                row = cursor.fetchone()
                if row is None:
                    return
                yield row
        except sqlite3.DatabaseError as exc:
            self.error = str(exc)
        finally:
            db.close()

    def messages(self, connections: Iterable[Connection] = ()) -> Iterator[tuple]:
        by_id = {c.id: c for c in (connections or self.connections)}
        for topic_id, stamp, data in self._rows(
                "SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
            if topic_id in by_id:
                yield by_id[topic_id], int(stamp), bytes(data)


def salvage_storage_file(path: Path, reason: BaseException) -> _Salvaged:
    """Open a storage file rosbags refused; log what was lost, or raise UnreadableInputError."""
    size = path.stat().st_size
    if size == 0:
        raise UnreadableInputError(f"{path}: empty file (0 bytes); nothing was recorded")
    suffix = path.suffix.lower()
    try:
        reader: _Salvaged = SalvagedMcap(path) if suffix == ".mcap" else SalvagedSqlite(path)
    except UnreadableInputError as exc:
        raise UnreadableInputError(f"{path}: {exc}") from None
    except (OSError, sqlite3.Error, struct.error, ValueError) as exc:
        raise UnreadableInputError(f"{path}: unreadable ({exc}; rosbags: {reason})") from None
    if reader.message_count == 0 and not reader.connections:
        raise UnreadableInputError(f"{path}: unreadable, no complete topic or message "
                                   f"(rosbags: {reason})")
    if isinstance(reader, SalvagedMcap):
        lost = size - reader.good_end
        if reader.complete:
            reader.note = (f"{path.name}: damaged index (rosbags: {reason}); read "
                           f"{reader.message_count} messages")
        else:
            reader.note = (f"{path.name}: truncated: read {reader.message_count} messages, "
                           f"the last {_kb(lost)} unreadable")
    else:
        if reader.missing:
            reader.note = (f"{path.name}: truncated: read {reader.message_count} messages, "
                           f"the last {_kb(reader.missing)} missing")
        else:
            reader.note = (f"{path.name}: damaged: read {reader.message_count} messages, "
                           f"the rest unreadable ({reader.error or reason})")
    log.warning("%s", reader.note)
    return reader
