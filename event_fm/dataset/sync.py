"""Synchronized samples from one recording: per camera frame, the event window ending at it,
the frame and the ground truth stamped with it.

The bag is streamed once in recorded order. Event packets go through the same ingest as the
live node (decoder, seq and clock watch, bounded buffer), so offline samples are cut exactly
like online windows. A frame's sample is emitted once the event stream has passed the frame time
and every configured topic present in the bag has delivered its message for that stamp.
Anything unusable (missing topic, empty window, events ending before the frame, corrupt
message) is skipped and counted by reason, never fatal.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from event_fm.common.stamps import stamp_to_ns
from event_fm.dataset.shards import Sample
from event_fm.io.msg_definitions import EVENT_TYPES
from event_fm.io.rosbag import BagReader, image_to_array
from event_fm.pipeline.buffer import EventBuffer
from event_fm.pipeline.clock import ClockOffsetEstimator
from event_fm.pipeline.ingest import StreamIngest

log = logging.getLogger(__name__)


@dataclass
class SyncConfig:
    event_topic: str | None = None  # None: the bag's first event topic
    image_topic: str = "/camera/image_raw"
    clean_image_topic: str | None = "/camera/image_clean"
    camera_info_topic: str | None = "/camera/camera_info"
    depth_topic: str | None = "/gt/depth"
    semantic_topic: str | None = "/gt/semantic"
    pose_topic: str | None = "/gt/pose"
    window_ms: float = 50.0
    window_events: int = 0  # > 0: fixed-count windows instead of fixed duration
    #: sample fields that must be present (else the sample is skipped and counted)
    require: list[str] = field(default_factory=lambda: ["image"])
    stamp_tolerance_ms: float = 1.0
    max_wait_ms: float = 1000.0  # how long (bag time) to wait for a frame's other topics

    @classmethod
    def from_dict(cls, data: dict | None) -> SyncConfig:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown dataset settings: {sorted(unknown)}")
        return cls(**data)

    def topic_fields(self) -> dict[str, str]:
        pairs = {"image": self.image_topic, "image_clean": self.clean_image_topic,
                 "depth": self.depth_topic, "semantic": self.semantic_topic,
                 "pose": self.pose_topic}
        return {topic: name for name, topic in pairs.items() if topic}


def pose_to_matrix(pose) -> np.ndarray:
    q = pose.orientation
    x, y, z, w = q.x, q.y, q.z, q.w
    n = np.sqrt(x * x + y * y + z * z + w * w) or 1.0
    x, y, z, w = x / n, y / n, z / n, w / n
    T = np.eye(4)
    T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    T[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return T


def _convert(field_name: str, msg):
    if field_name in ("image", "image_clean"):
        img = image_to_array(msg)
        if msg.encoding == "bgr8":
            img = img[..., ::-1]
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        return np.ascontiguousarray(img[..., :3])
    if field_name == "depth":
        return image_to_array(msg).astype(np.float32)
    if field_name == "semantic":
        return image_to_array(msg).astype(np.uint8)
    if field_name == "pose":
        return pose_to_matrix(msg.pose)
    raise KeyError(field_name)


class SampleAssembler:
    """Incremental frame/event/ground-truth matching, fed message by message.

    Shared by the offline synchronizer (messages from a bag) and the recorder node (messages
    from live subscriptions), so both cut samples the same way.
    """

    def __init__(self, config: SyncConfig, fields: set[str], event_topic: str = "events",
                 source: str = ""):
        self.config = config
        self.fields = set(fields)  # sample fields whose topics exist
        self.source = source
        window_ns = int(config.window_ms * 1e6)
        self.buffer = EventBuffer(max_events=200_000_000, max_age_ns=window_ns + 3_000_000_000)
        self.clock = ClockOffsetEstimator()
        self.ingest = StreamIngest(event_topic, self.buffer, self.clock)
        self.pending: dict[int, dict] = {}
        self.K: np.ndarray | None = None
        self.latest_stamp = 0
        self.skipped: Counter = Counter()
        self.emitted = 0

    def add_event_packet(self, msg) -> None:
        self.ingest.add_packet(msg)

    def add_camera_info(self, msg) -> None:
        self.K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)

    def add(self, field_name: str, msg) -> None:
        """An image or ground-truth message (anything with a header stamp)."""
        stamp = stamp_to_ns(msg.header.stamp)
        self.latest_stamp = max(self.latest_stamp, stamp)
        tol = int(self.config.stamp_tolerance_ms * 1e6)
        key = next((k for k in self.pending if abs(k - stamp) <= tol), stamp)
        try:
            self.pending.setdefault(key, {})[field_name] = _convert(field_name, msg)
        except (ValueError, KeyError) as exc:
            self.skipped[f"bad_{field_name}"] += 1
            log.warning("%s: unusable %s at %d: %s", self.source, field_name, stamp, exc)

    def ready(self, final: bool = False) -> Iterator[Sample]:
        """Samples whose events and topics are complete (all pending ones when ``final``)."""
        cfg = self.config
        max_wait = int(cfg.max_wait_ms * 1e6)
        for stamp in sorted(self.pending):
            parts = self.pending[stamp]
            t_end = self.clock.to_sensor(stamp)
            t_last = self.buffer.t_last
            events_done = t_end is not None and t_last is not None and t_last >= t_end
            complete = set(parts) >= self.fields
            timed_out = self.latest_stamp - stamp > max_wait
            if not final and not (events_done and (complete or timed_out)):
                break  # frames finalize in stamp order
            del self.pending[stamp]
            missing = [name for name in cfg.require if name not in parts]
            if missing:
                self.skipped[f"missing_{missing[0]}"] += 1
                continue
            if not events_done:
                self.skipped["events_end_before_frame"] += 1
                continue
            if cfg.window_events > 0:
                events = self.buffer.last_events(cfg.window_events, t_end)
                t_start = int(events["t"][0]) if len(events) else t_end
            else:
                t_start = t_end - int(cfg.window_ms * 1e6)
                events = self.buffer.window(t_start, t_end)
            if not len(events):
                self.skipped["empty_window"] += 1
                continue
            self.emitted += 1
            yield Sample(events=events, t_start=int(t_start), t_end=int(t_end),
                         stamp_ns=int(stamp), width=self.ingest.decoder.width,
                         height=self.ingest.decoder.height, image=parts.get("image"),
                         image_clean=parts.get("image_clean"), depth=parts.get("depth"),
                         semantic=parts.get("semantic"), pose=parts.get("pose"),
                         K=None if self.K is None else self.K.copy(), source=self.source)

    def decoder_drops(self) -> dict[str, int]:
        return {f"decoder:{k}": v for k, v in self.ingest.stats.dropped.items()}


class RecordingSynchronizer:
    """Samples of one bag, in frame order."""

    def __init__(self, bag_path: str | Path, config: SyncConfig | None = None):
        self.bag_path = Path(bag_path)
        self.config = config or SyncConfig()
        self.skipped: Counter = Counter()
        self.emitted = 0

    def __iter__(self) -> Iterator[Sample]:
        cfg = self.config
        with BagReader(self.bag_path) as bag:
            event_topics = [t for t, s in bag.topics.items() if s.msgtype in EVENT_TYPES]
            event_topic = cfg.event_topic or (event_topics[0] if event_topics else None)
            if event_topic is None or event_topic not in bag.topics:
                self.skipped["missing_event_topic"] += 1
                log.warning("%s: no event topic %s; skipping the recording", self.bag_path,
                            cfg.event_topic or "")
                return
            wanted = {t: f for t, f in cfg.topic_fields().items() if t in bag.topics}
            for name in cfg.require:
                if name not in wanted.values():
                    topic = {v: k for k, v in cfg.topic_fields().items()}.get(name, name)
                    self.skipped[f"missing_topic:{topic}"] += 1
                    log.warning("%s: required topic %s (%s) is not in the recording; "
                                "skipping it", self.bag_path, topic, name)
                    return
            if cfg.image_topic not in bag.topics:
                self.skipped[f"missing_topic:{cfg.image_topic}"] += 1
                log.warning("%s: no frames on %s; nothing to synchronize", self.bag_path,
                            cfg.image_topic)
                return
            yield from self._stream(bag, event_topic, wanted)

    def _stream(self, bag: BagReader, event_topic: str, wanted: dict[str, str]
                ) -> Iterator[Sample]:
        cfg = self.config
        assembler = SampleAssembler(cfg, set(wanted.values()), event_topic, self.bag_path.name)
        topics = [event_topic, *wanted]
        if cfg.camera_info_topic in bag.topics:
            topics.append(cfg.camera_info_topic)
        for message in bag.messages(topics):
            try:
                msg = bag.deserialize(message)
            except Exception as exc:  # noqa: BLE001
                self.skipped[f"malformed_message:{message.topic}"] += 1
                log.warning("%s: corrupt message on %s (%s)", self.bag_path, message.topic, exc)
                continue
            if message.topic == event_topic:
                assembler.add_event_packet(msg)
            elif message.topic == cfg.camera_info_topic:
                assembler.add_camera_info(msg)
            else:
                assembler.add(wanted[message.topic], msg)
            for sample in assembler.ready():
                self.emitted += 1
                yield sample
        for sample in assembler.ready(final=True):
            self.emitted += 1
            yield sample
        self.skipped.update(assembler.skipped)
        self.skipped.update(assembler.decoder_drops())
