"""Streaming statistics of a recording: what ``event-fm info`` reports, in one pass and
bounded memory (events are counted, never kept)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from event_fm.io.events import EventBatch
from event_fm.io.msg_definitions import EVENT_PACKET_TYPES, EVENT_TYPES, IMAGE_TYPES

PEAK_BIN_NS = 10_000_000  # peak rate is measured over 10 ms bins


@dataclass
class EventStreamStats:
    topic: str
    msgtype: str = ""
    encoding: str = ""
    width: int = 0
    height: int = 0
    messages: int = 0
    on: int = 0
    off: int = 0
    triggers: int = 0
    t_first_ns: int | None = None
    t_last_ns: int | None = None
    seq_gaps: int = 0  # messages missing according to seq
    seq_backwards: int = 0
    time_backwards: int = 0  # events earlier than the event before them
    out_of_bounds: int = 0
    dropped: Counter = field(default_factory=Counter)
    _bins: Counter = field(default_factory=Counter, repr=False)
    _last_seq: int | None = field(default=None, repr=False)
    _last_t: int | None = field(default=None, repr=False)

    def add(self, batch: EventBatch, encoding: str = "") -> None:
        self.messages += 1
        self.encoding = encoding or self.encoding
        self.width, self.height = batch.width or self.width, batch.height or self.height
        self.dropped.update(batch.dropped)
        self.triggers += len(batch.triggers)
        if self.msgtype in EVENT_PACKET_TYPES:
            if self._last_seq is not None:
                step = batch.seq - self._last_seq
                if step > 1:
                    self.seq_gaps += step - 1
                elif step <= 0:
                    self.seq_backwards += 1
            self._last_seq = batch.seq
        ev = batch.events
        if not len(ev):
            return
        t = ev["t"]
        n_on = int(np.count_nonzero(ev["p"]))
        self.on += n_on
        self.off += len(ev) - n_on
        if self.width and self.height:
            self.out_of_bounds += int(np.count_nonzero((ev["x"] >= self.width)
                                                       | (ev["y"] >= self.height)))
        prev = np.empty_like(t)
        prev[0] = t[0] if self._last_t is None else self._last_t
        prev[1:] = t[:-1]
        self.time_backwards += int(np.count_nonzero(t < prev))
        self._last_t = int(t[-1])
        lo, hi = int(t.min()), int(t.max())
        self.t_first_ns = lo if self.t_first_ns is None else min(self.t_first_ns, lo)
        self.t_last_ns = hi if self.t_last_ns is None else max(self.t_last_ns, hi)
        bins, counts = np.unique(t // PEAK_BIN_NS, return_counts=True)
        self._bins.update(dict(zip(bins.tolist(), counts.tolist(), strict=True)))

    @property
    def events(self) -> int:
        return self.on + self.off

    @property
    def duration_s(self) -> float:
        if self.t_first_ns is None or self.t_last_ns is None:
            return 0.0
        return (self.t_last_ns - self.t_first_ns) / 1e9

    @property
    def mean_rate(self) -> float:
        return self.events / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def peak_rate(self) -> float:
        # A stream shorter than one bin has no meaningful bin; its mean is its peak.
        binned = max(self._bins.values()) / (PEAK_BIN_NS / 1e9) if self._bins else 0.0
        return max(binned, self.mean_rate)

    def to_dict(self) -> dict:
        return {
            "topic": self.topic, "type": self.msgtype, "encoding": self.encoding,
            "width": self.width, "height": self.height, "messages": self.messages,
            "events": self.events, "on": self.on, "off": self.off, "triggers": self.triggers,
            "t_first_ns": self.t_first_ns, "t_last_ns": self.t_last_ns,
            "duration_s": self.duration_s, "mean_rate_ev_s": self.mean_rate,
            "peak_rate_ev_s": self.peak_rate, "seq_gaps": self.seq_gaps,
            "seq_backwards": self.seq_backwards, "time_backwards": self.time_backwards,
            "out_of_bounds": self.out_of_bounds, "dropped": dict(self.dropped),
            **dict(zip(("not_events", "before_time_sync", "malformed"),
                       split_skipped(dict(self.dropped)), strict=True)),
        }


#: Skip counters that are not errors: words the format defines but that carry no event
#: (EVT3 OTHERS/CONTINUED/padding, AEDAT frame and exposure markers).
BY_DESIGN = frozenset({"ignored", "other_triggers"})
#: Words before the first time-high word: every stream that starts mid-flight has some.
AT_START = frozenset({"before_time_sync"})


def split_skipped(dropped: dict[str, int]) -> tuple[dict[str, int], dict[str, int],
                                                    dict[str, int]]:
    """(by design, before time sync, malformed) so that a report does not read 'dropped'
    for words no decoder would turn into events."""
    by_design = {k: v for k, v in dropped.items() if k in BY_DESIGN and v}
    at_start = {k: v for k, v in dropped.items() if k in AT_START and v}
    malformed = {k: v for k, v in dropped.items()
                 if k not in BY_DESIGN and k not in AT_START and v}
    return by_design, at_start, malformed


@dataclass
class OtherTopicStats:
    topic: str
    msgtype: str
    messages: int = 0
    first_ns: int | None = None
    last_ns: int | None = None

    def add(self, stamp_ns: int) -> None:
        self.messages += 1
        self.first_ns = stamp_ns if self.first_ns is None else min(self.first_ns, stamp_ns)
        self.last_ns = stamp_ns if self.last_ns is None else max(self.last_ns, stamp_ns)

    @property
    def rate_hz(self) -> float:
        if self.messages < 2 or self.first_ns is None or self.last_ns == self.first_ns:
            return 0.0
        return (self.messages - 1) / ((self.last_ns - self.first_ns) / 1e9)

    def to_dict(self) -> dict:
        return {"topic": self.topic, "type": self.msgtype, "messages": self.messages,
                "rate_hz": self.rate_hz}


@dataclass
class RecordingStats:
    path: str
    events: dict[str, EventStreamStats] = field(default_factory=dict)
    images: dict[str, OtherTopicStats] = field(default_factory=dict)
    other: dict[str, OtherTopicStats] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"path": self.path,
                "event_topics": [s.to_dict() for s in self.events.values()],
                "image_topics": [s.to_dict() for s in self.images.values()],
                "other_topics": [s.to_dict() for s in self.other.values()]}


def summarize(path: str | Path, progress: bool = False) -> RecordingStats:
    """One pass over a bag or event file."""
    from event_fm.common.stamps import stamp_to_ns
    from event_fm.io.readers import PacketDecoder
    from event_fm.io.rosbag import BagReader, is_bag

    path = Path(path)
    stats = RecordingStats(str(path))
    if not is_bag(path):
        from event_fm.io.files import read_event_file, sniff_format

        stream = EventStreamStats(topic="", msgtype=sniff_format(path))
        for batch in read_event_file(path):
            stream.add(batch)
        stats.events[""] = stream
        return stats

    from event_fm.io.legacy import legacy_to_batch

    with BagReader(path) as bag:
        total = sum(s.count for s in bag.topics.values())
        bar = _progress(total, progress)
        decoders: dict[str, PacketDecoder] = {}
        for message in bag.messages():
            bar.update(1)
            topic, msgtype = message.topic, message.msgtype
            if msgtype in EVENT_TYPES:
                stream = stats.events.setdefault(topic, EventStreamStats(topic, msgtype))
                try:
                    msg = bag.deserialize(message)
                except Exception:  # noqa: BLE001
                    stream.messages += 1
                    stream.dropped["malformed_message"] += 1
                    continue
                if msgtype in EVENT_PACKET_TYPES:
                    batch = decoders.setdefault(topic, PacketDecoder(topic)).decode(msg)
                    stream.add(batch, encoding=str(msg.encoding))
                else:
                    stream.add(legacy_to_batch(msg, topic=topic), encoding="per-event array")
                continue
            table = stats.images if msgtype in IMAGE_TYPES else stats.other
            entry = table.setdefault(topic, OtherTopicStats(topic, msgtype))
            stamp = message.log_time_ns
            if msgtype in IMAGE_TYPES:
                try:
                    stamp = stamp_to_ns(bag.deserialize(message).header.stamp)
                except Exception:  # noqa: BLE001 - fall back to the recording time
                    pass
            entry.add(stamp)
        bar.close()
    return stats


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="msg", disable=not enabled, leave=False)
