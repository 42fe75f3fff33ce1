"""Shared machinery of the packet decoders: payload views, skip counters, batch assembly.

Every decoder turns one ``EventPacket.events`` payload into an :class:`EventBatch` and keeps the
stream state (time high bits, rollovers, current row ...) that the next packet depends on.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod

import numpy as np

from event_fm.common.stamps import stamp_to_ns
from event_fm.io.events import EventBatch, empty_events, empty_triggers

#: Skip reasons, in the order the numba kernels fill their counter arrays.
REASONS: tuple[str, ...] = (
    "before_time_sync",  # words seen before the stream's time was known
    "out_of_bounds",  # events with x >= width or y >= height
    "unknown_type",  # word type codes the format does not define
    "ignored",  # defined but carrying nothing we decode (OTHERS, CONTINUED, padding)
    "truncated",  # trailing bytes that do not make a whole word
)
N_REASONS = len(REASONS)
BEFORE_SYNC, OUT_OF_BOUNDS, UNKNOWN_TYPE, IGNORED, TRUNCATED = range(N_REASONS)

#: Used as the bound when the geometry is unknown (0): every 16-bit coordinate is accepted.
NO_LIMIT = 1 << 16


def as_bytes(payload) -> np.ndarray:
    """View a payload as a flat uint8 array, without copying whenever the buffer allows it.

    Accepts bytes, bytearray, memoryview, array.array (what rclpy gives for ``uint8[]``) and
    numpy arrays of any dtype (their raw bytes are used).
    """
    if isinstance(payload, np.ndarray):
        if payload.dtype != np.uint8 or payload.ndim != 1 or not payload.flags.c_contiguous:
            payload = np.ascontiguousarray(payload).reshape(-1).view(np.uint8)
        return payload
    if isinstance(payload, (list, tuple)):  # e.g. a message built by hand
        return np.asarray(payload, dtype=np.uint8)
    try:
        return np.frombuffer(payload, dtype=np.uint8)
    except (ValueError, BufferError):  # non-contiguous memoryview
        return np.frombuffer(memoryview(payload).tobytes(), dtype=np.uint8)


def limit(n: int) -> int:
    """Coordinate bound for a sensor dimension; 0 (unknown geometry) disables the check."""
    return int(n) if n > 0 else NO_LIMIT


def counts_to_dict(counts: np.ndarray) -> dict[str, int]:
    """Non-zero entries of a kernel counter array, keyed by reason."""
    return {REASONS[i]: int(c) for i, c in enumerate(counts) if c}


class Decoder(ABC):
    """A stateful decoder for one event stream of one encoding.

    ``decode`` must be fed the packets of a stream in order; ``reset`` forgets the stream.
    ``stats`` accumulates the skip counts of all packets since construction or ``reset``.
    """

    encoding: str = ""

    def __init__(self, width: int, height: int) -> None:
        self.width = int(width)
        self.height = int(height)
        self.stats: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """Forget all stream state and statistics (e.g. after a seek or a driver restart)."""
        self.stats = {}
        self._reset_state()

    def _reset_state(self) -> None:  # noqa: B027 - stateless decoders need nothing
        """Forget the stream state; stateful decoders override this."""

    def decode(
        self,
        payload,
        time_base: int = 0,
        *,
        stamp_ns: int = 0,
        seq: int = 0,
        topic: str = "",
    ) -> EventBatch:
        """Decode one packet payload; ``time_base`` is the message's ``time_base`` field (ns)."""
        data = as_bytes(payload)
        # time_base is uint64 on the wire; wrap to int64 like the C++ unsigned arithmetic
        tb = ((int(time_base) + (1 << 63)) % (1 << 64)) - (1 << 63)
        events, triggers, counts = self._decode(data, tb)
        dropped = counts_to_dict(counts)
        for k, v in dropped.items():
            self.stats[k] = self.stats.get(k, 0) + v
        return EventBatch(
            events=events if events is not None else empty_events(),
            triggers=triggers if triggers is not None else empty_triggers(),
            stamp_ns=int(stamp_ns),
            seq=int(seq),
            width=self.width,
            height=self.height,
            topic=topic,
            dropped=dropped,
        )

    def decode_message(self, msg, topic: str = "") -> EventBatch:
        """Decode an ``EventPacket``-like message (rclpy or rosbags object), header included."""
        stamp = msg.header.stamp
        return self.decode(
            msg.events,
            int(msg.time_base),
            stamp_ns=stamp_to_ns(stamp),
            seq=int(getattr(msg, "seq", 0)),
            topic=topic,
        )

    @abstractmethod
    def _decode(
        self, data: np.ndarray, time_base: int
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Return (events or None, triggers or None, counter array of length N_REASONS)."""


def grow(arr: np.ndarray, n: int, size: int) -> np.ndarray:
    """A larger buffer holding the first ``n`` rows of ``arr``."""
    out = np.empty(size, dtype=arr.dtype)
    out[:n] = arr[:n]
    return out


def words16(data: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Little-endian 16-bit words of a byte payload (a view on little-endian hosts).

    A trailing odd byte is counted as truncated: drivers never split words across packets.
    """
    n = data.shape[0] // 2
    counts[TRUNCATED] += data.shape[0] - 2 * n
    return _readonly(data[: 2 * n].view("<u2"))


def words32(data: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Little-endian 32-bit words of a byte payload; trailing partial bytes are truncated."""
    n = data.shape[0] // 4
    counts[TRUNCATED] += data.shape[0] - 4 * n
    return _readonly(data[: 4 * n].view("<u4"))


def _readonly(words: np.ndarray) -> np.ndarray:
    """Native-order, read-only view: bytes payloads are read-only anyway, and one array type
    means the numba kernels compile once instead of once per writability."""
    if sys.byteorder != "little":
        words = words.astype(words.dtype.newbyteorder("="))
    words = words.view()
    words.flags.writeable = False
    return words
