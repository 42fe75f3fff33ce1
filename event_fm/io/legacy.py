"""Converters for legacy per-event messages (one ROS object per event) to :class:`EventBatch`.

Covers ``dvs_msgs/EventArray`` (rpg_dvs_ros), ``prophesee_event_msgs/EventArray``
(prophesee_ros_wrapper) and ``dv_ros2_msgs/EventArray`` (dv-ros2): all carry ``header``,
``width``, ``height`` and ``events`` whose items have ``x``, ``y``, ``ts`` and ``polarity``.
Works on rclpy / rospy messages and on ``rosbags``-deserialised objects alike. Walking the
object list once is unavoidable; everything after that is vectorised.
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter

import numpy as np

from event_fm.common.stamps import NS_PER_S, stamp_to_ns
from event_fm.io.events import EVENT_DTYPE, EventBatch, empty_events

#: Message types this module converts (ROS 2 spelling; ROS 1 drops the "/msg").
LEGACY_TYPES: tuple[str, ...] = (
    "dvs_msgs/msg/EventArray",
    "prophesee_event_msgs/msg/EventArray",
    "dv_ros2_msgs/msg/EventArray",
)

def _time_fields(ts) -> tuple[str, str] | None:
    """Attribute names of a time object: ROS 2 (sec, nanosec) or ROS 1 (secs, nsecs)."""
    if hasattr(ts, "nanosec"):
        return "sec", "nanosec"
    if hasattr(ts, "nsecs"):
        return "secs", "nsecs"
    return None  # plain integer nanoseconds


def events_from_objects(events) -> np.ndarray:
    """EVENT_DTYPE array from a sequence of objects with ``x``, ``y``, ``ts``, ``polarity``."""
    n = len(events)
    if n == 0:
        return empty_events()
    names = _time_fields(events[0].ts)
    fields = (
        ("x", "y", "ts", "polarity")
        if names is None
        else ("x", "y", f"ts.{names[0]}", f"ts.{names[1]}", "polarity")
    )
    # one C-level attribute fetch per event, straight into a flat int64 buffer
    cols = np.fromiter(
        chain.from_iterable(map(attrgetter(*fields), events)),
        dtype=np.int64,
        count=len(fields) * n,
    ).reshape(n, len(fields))
    t = cols[:, 2] if names is None else cols[:, 2] * NS_PER_S + cols[:, 3]
    pol = cols[:, -1]
    out = np.empty(n, dtype=EVENT_DTYPE)
    out["x"] = cols[:, 0]
    out["y"] = cols[:, 1]
    out["t"] = t
    out["p"] = pol != 0
    return out


def legacy_to_batch(msg, topic: str = "", width: int = 0, height: int = 0) -> EventBatch:
    """Convert one legacy EventArray message; out-of-sensor events are dropped and counted.

    ``width`` / ``height`` override the message's geometry when non-zero (some drivers leave
    it at 0); with no geometry at all, no bounds check is made.
    """
    width = int(width or getattr(msg, "width", 0) or 0)
    height = int(height or getattr(msg, "height", 0) or 0)
    events = events_from_objects(msg.events)
    dropped: dict[str, int] = {}
    if width > 0 and height > 0 and len(events):
        ok = (events["x"] < width) & (events["y"] < height)
        n_bad = len(events) - int(np.count_nonzero(ok))
        if n_bad:
            dropped["out_of_bounds"] = n_bad
            events = events[ok]
    header = getattr(msg, "header", None)
    return EventBatch(
        events=events,
        stamp_ns=stamp_to_ns(header.stamp) if header is not None else 0,
        seq=int(getattr(header, "seq", 0) or 0),
        width=width,
        height=height,
        topic=topic,
        dropped=dropped,
    )
