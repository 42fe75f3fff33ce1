"""ROS time stamps <-> integer nanoseconds, for every message generation the project meets.

Stamps travel as ``builtin_interfaces/Time`` (rclpy and rosbags objects: ``sec``, ``nanosec``)
and, in ROS 1 recordings, as ``secs``/``nsecs``; everything inside the project is int64 ns. One
pair of functions here so the conversion (and its rounding) cannot drift between copies.
"""

from __future__ import annotations

from typing import Any, TypeVar

NS_PER_S = 1_000_000_000

T = TypeVar("T")


def stamp_to_ns(stamp: Any) -> int:
    """A ROS 2 (sec, nanosec) or ROS 1 (secs, nsecs) time object, or plain ns, as integer ns."""
    if hasattr(stamp, "nanosec"):
        return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)
    if hasattr(stamp, "nsecs"):
        return int(stamp.secs) * NS_PER_S + int(stamp.nsecs)
    return int(stamp)


def ns_to_stamp(ns: int) -> tuple[int, int]:
    """(sec, nanosec) of integer nanoseconds; floors, so nanosec is in [0, 1e9) before 1970 too."""
    return divmod(int(ns), NS_PER_S)


def ns_to_time(ns: int, time_class: type[T]) -> T:
    """A Time-like message (any class taking ``sec`` and ``nanosec`` keywords) for ``ns``."""
    sec, nanosec = ns_to_stamp(ns)
    return time_class(sec=sec, nanosec=nanosec)


def set_stamp(stamp: Any, ns: int) -> None:
    """Fill an existing Time-like object (e.g. ``msg.header.stamp``) in place."""
    stamp.sec, stamp.nanosec = ns_to_stamp(ns)
