"""``read_events``: one entry point for every source of events (bags and vendor files).

A bag may hold several event topics; each gets its own stateful decoder, and batches come out
in the bag's order, each tagged with its topic. Messages that cannot be used (corrupt CDR, an
unknown encoding, big-endian payloads) yield an empty batch whose ``dropped`` says why, so
callers count them instead of crashing or silently losing track.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from event_fm.common.stamps import stamp_to_ns
from event_fm.io.decoders import Decoder, UnknownEncodingError, make_decoder
from event_fm.io.events import EventBatch
from event_fm.io.legacy import legacy_to_batch
from event_fm.io.msg_definitions import EVENT_PACKET_TYPES, EVENT_TYPES, LEGACY_ARRAY_TYPES
from event_fm.io.rosbag import BagReader, is_bag

log = logging.getLogger(__name__)


class PacketDecoder:
    """Decodes EventPacket-like messages of one topic, re-creating the decoder when the
    stream's encoding or geometry changes (a driver restart).

    A header claiming a geometry larger than any real sensor (``max_side`` per side; the largest
    event sensors today are 1280x720) is dropped, counted as ``implausible_geometry``: each window
    of such a stream would allocate voxel grids of hundreds of gigabytes."""

    def __init__(self, topic: str = "", max_side: int = 4096):
        self.topic = topic
        self.max_side = int(max_side)
        self._decoder: Decoder | None = None
        self._key: tuple[str, int, int] | None = None
        self.width = self.height = 0  # geometry of the last packet

    def reset(self) -> None:
        if self._decoder is not None:
            self._decoder.reset()

    def snapshot(self) -> tuple:
        """The stream state, cheap enough to take before every packet (a few small arrays), so
        a packet found corrupt after decoding can be undone with :meth:`restore`."""
        inner = None
        if self._decoder is not None:
            inner = copy.copy(self._decoder)
            for name, value in vars(inner).items():
                if isinstance(value, (np.ndarray, dict, list)):
                    setattr(inner, name, value.copy())
        return inner, self._key, self.width, self.height

    def restore(self, snapshot: tuple) -> None:
        self._decoder, self._key, self.width, self.height = snapshot

    def decode(self, msg) -> EventBatch:
        stamp_ns = stamp_to_ns(msg.header.stamp)
        meta = dict(stamp_ns=stamp_ns, seq=int(msg.seq), width=int(msg.width),
                    height=int(msg.height), topic=self.topic)
        if msg.is_bigendian:
            return EventBatch(dropped={"big_endian_payload": 1}, **meta)
        key = (str(msg.encoding), int(msg.width), int(msg.height))
        if max(key[1], key[2]) > self.max_side:
            return EventBatch(dropped={"implausible_geometry": 1}, **meta)
        self.width, self.height = key[1], key[2]
        if key != self._key:
            try:
                self._decoder = make_decoder(*key)
            except UnknownEncodingError:
                self._decoder, self._key = None, None  # the caller counts and logs it
                return EventBatch(dropped={"unknown_encoding": 1}, **meta)
            self._key = key
        assert self._decoder is not None
        batch = self._decoder.decode(msg.events, int(msg.time_base))
        batch.stamp_ns, batch.seq = stamp_ns, int(msg.seq)
        batch.width, batch.height, batch.topic = int(msg.width), int(msg.height), self.topic
        return batch


def read_bag_events(path: str | Path, topic: str | None = None) -> Iterator[EventBatch]:
    with BagReader(path) as bag:
        topics = [t for t, s in bag.topics.items() if s.msgtype in EVENT_TYPES]
        if topic is not None:
            if topic not in bag.topics:
                raise KeyError(f"{path}: no topic {topic!r}; event topics: {topics}")
            if bag.topics[topic].msgtype not in EVENT_TYPES:
                raise ValueError(f"{path}: {topic} is {bag.topics[topic].msgtype}, not events")
            topics = [topic]
        decoders = {t: PacketDecoder(t) for t in topics}
        for message in bag.messages(topics):
            try:
                msg = bag.deserialize(message)
            except Exception as exc:  # noqa: BLE001 - corrupt CDR is data, not a program error
                log.warning("%s: malformed message on %s (%s)", path, message.topic, exc)
                yield EventBatch(topic=message.topic, dropped={"malformed_message": 1})
                continue
            if message.msgtype in EVENT_PACKET_TYPES:
                yield decoders[message.topic].decode(msg)
            elif message.msgtype in LEGACY_ARRAY_TYPES:
                batch = legacy_to_batch(msg, topic=message.topic, width=int(msg.width),
                                        height=int(msg.height))
                batch.stamp_ns = stamp_to_ns(msg.header.stamp)
                yield batch


def read_events(path: str | Path, topic: str | None = None) -> Iterator[EventBatch]:
    """Events from a rosbag2 (directory, .db3 or .mcap) or a vendor file, in order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or bag: {path}")
    if is_bag(path):
        yield from read_bag_events(path, topic)
    else:
        from event_fm.io.files import read_event_file

        yield from read_event_file(path)


def read_all_events(path: str | Path, topic: str | None = None) -> np.ndarray:
    """Every event of one stream as a single array (for tests and small recordings)."""
    from event_fm.io.events import concatenate

    return concatenate(list(read_events(path, topic)))
