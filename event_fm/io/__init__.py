"""Event I/O: containers, per-encoding decoders, file and rosbag2 readers and writers.

Pure Python/numpy/numba; never imports rclpy, so it serves offline tools and the nodes alike.
"""

from event_fm.io.events import (
    EVENT_DTYPE,
    TRIGGER_DTYPE,
    EventBatch,
    concatenate,
    empty_events,
    empty_triggers,
    make_events,
)
from event_fm.io.readers import read_all_events, read_events
from event_fm.io.rosbag import BagReader, BagWriter

__all__ = [
    "BagReader",
    "BagWriter",
    "read_all_events",
    "read_events",
    "EVENT_DTYPE",
    "TRIGGER_DTYPE",
    "EventBatch",
    "concatenate",
    "empty_events",
    "empty_triggers",
    "make_events",
]
