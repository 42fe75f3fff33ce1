"""What a recording holds besides the node's outputs, read once for scoring and baselines:
its events (with the offset from sensor time to the header stamps the windows use), camera
frames, intrinsics and image size."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from event_fm.common.stamps import stamp_to_ns
from event_fm.io.events import empty_events
from event_fm.io.msg_definitions import EVENT_TYPES
from event_fm.io.readers import read_bag_events
from event_fm.io.rosbag import BagReader, image_to_array

__all__ = ["Recording", "resize_nearest"]


def resize_nearest(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W[, C]) map, so predictions and truths of different
    sizes compare pixel by pixel without inventing labels or depths."""
    if a.shape[:2] == shape:
        return a
    ys = (np.arange(shape[0]) * a.shape[0] / shape[0]).astype(int)
    xs = (np.arange(shape[1]) * a.shape[1] / shape[1]).astype(int)
    return a[ys][:, xs]


@dataclass
class Recording:
    events: np.ndarray = field(default_factory=empty_events)  # sorted by t (sensor ns)
    offset_ns: int = 0  # header stamp = sensor t + offset
    width: int = 0
    height: int = 0
    K: np.ndarray | None = None  # from camera_info, at sensor resolution
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # stamp -> HxW(x3) uint8
    _frame_stamps: list[int] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_bag(cls, path: str | Path, image_topic: str = "/camera/image_raw",
                 camera_info_topic: str = "/camera/camera_info") -> Recording:
        rec = cls()
        with BagReader(path) as bag:
            topics = bag.topics
            event_topics = [t for t, s in topics.items() if s.msgtype in EVENT_TYPES]
            wanted = [t for t in (image_topic, camera_info_topic) if t in topics]
            for message in bag.messages(wanted):
                msg = bag.deserialize(message)
                if message.topic == camera_info_topic:
                    if rec.K is None and any(msg.k):
                        rec.K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
                else:
                    try:
                        rec.frames[stamp_to_ns(msg.header.stamp)] = image_to_array(msg)
                    except ValueError:
                        continue  # a malformed frame is not a reference
        if not event_topics:
            return rec
        chunks, offsets = [], []
        for batch in read_bag_events(path, event_topics[0]):
            if len(batch):
                chunks.append(batch.events)
                offsets.append(batch.stamp_ns - int(batch.events["t"][-1]))
            rec.width, rec.height = max(rec.width, batch.width), max(rec.height, batch.height)
        if chunks:
            events = np.concatenate(chunks)
            rec.events = events[np.argsort(events["t"], kind="stable")]
            # a driver stamps a packet when its last event is read: the median gap is the clock
            # offset (transport delays only add, so the low quantile is the better estimate)
            rec.offset_ns = int(np.percentile(offsets, 10))
        return rec

    def window(self, stamp_ns: int, duration_ns: int) -> np.ndarray:
        """Events whose stamp falls in (stamp - duration, stamp]."""
        t = self.events["t"]
        hi = stamp_ns - self.offset_ns
        lo_i = int(np.searchsorted(t, hi - duration_ns, side="right"))
        hi_i = int(np.searchsorted(t, hi, side="right"))
        return self.events[lo_i:hi_i]

    def frame_near(self, stamp_ns: int, tolerance_ns: int) -> np.ndarray | None:
        if not self.frames:
            return None
        if self._frame_stamps is None or len(self._frame_stamps) != len(self.frames):
            self._frame_stamps = sorted(self.frames)  # once, not per lookup
        stamps = self._frame_stamps
        i = bisect_left(stamps, stamp_ns)
        near = min((s for s in stamps[max(0, i - 1):i + 1]), key=lambda s: abs(s - stamp_ns))
        return self.frames[near] if abs(near - stamp_ns) <= tolerance_ns else None

    def intrinsics(self) -> tuple[np.ndarray, bool]:
        """(K, assumed): camera_info's, or focal = the larger side (as the node assumes)."""
        if self.K is not None:
            return self.K, False
        f = float(max(self.width, self.height))
        return np.array([[f, 0, (self.width - 1) / 2], [0, f, (self.height - 1) / 2],
                         [0, 0, 1]]), True
