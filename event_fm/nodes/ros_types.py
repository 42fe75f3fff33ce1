"""Bridging recorded metadata to rclpy: message classes by name, QoS from bag metadata."""

from __future__ import annotations

import importlib
import signal
import threading

import rclpy
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)


def message_class(msgtype: str):
    """'pkg/msg/Type' -> the generated Python class (ImportError if not built here)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def qos_from_recording(qos_list) -> QoSProfile:
    """The publisher QoS a recording offered (rosbags Qos tuples); reliable depth 10 if none."""
    if not qos_list:
        return QoSProfile(depth=10)
    q = qos_list[0]
    history = (HistoryPolicy.KEEP_ALL if q.history.name == "KEEP_ALL" else HistoryPolicy.KEEP_LAST)
    reliability = (ReliabilityPolicy.BEST_EFFORT if q.reliability.name == "BEST_EFFORT"
                   else ReliabilityPolicy.RELIABLE)
    durability = (DurabilityPolicy.TRANSIENT_LOCAL if q.durability.name == "TRANSIENT_LOCAL"
                  else DurabilityPolicy.VOLATILE)
    return QoSProfile(history=history, depth=max(1, int(q.depth)), reliability=reliability,
                      durability=durability)


def qos_from_name(name: str, depth: int = 10) -> QoSProfile:
    """QoS by the names users put in parameters: best_effort, reliable, sensor_data.

    sensor_data keeps its policies (best effort, volatile) but takes the queue depth asked for:
    its stock depth of 5 loses frames whenever a callback stalls for a few frame periods."""
    if name == "sensor_data":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                          reliability=qos_profile_sensor_data.reliability,
                          durability=qos_profile_sensor_data.durability)
    if name not in ("best_effort", "reliable"):
        raise ValueError(f"unknown QoS {name!r}: use best_effort, reliable or sensor_data")
    reliability = ReliabilityPolicy.BEST_EFFORT if name == "best_effort" else \
        ReliabilityPolicy.RELIABLE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability)


def install_stop_handlers() -> threading.Event:
    """SIGINT/SIGTERM only set a flag: an exception raised inside a transition callback or a
    C++ call would leave the node half-started; the spin loop checks the flag instead."""
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


def make_executor():
    """rclpy's EventsExecutor where it exists (Jazzy and later), else the SingleThreadedExecutor
    (or when EVENT_FM_EXECUTOR=single). The single-threaded one rebuilds its wait set in Python
    for every message: at a driver's ~1000 packets a second it cost perception_node 0.55 of a
    core against 0.2 with the events executor (issue 19)."""
    import os

    from rclpy.executors import SingleThreadedExecutor

    if os.environ.get("EVENT_FM_EXECUTOR", "events") != "single":
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            pass
        else:
            return EventsExecutor()
    return SingleThreadedExecutor()


def spin_until_stopped(stop: threading.Event, node=None, executor=None) -> None:
    """Spin in short slices until a stop is requested or the context shuts down."""
    while rclpy.ok() and not stop.is_set():
        if executor is not None:
            executor.spin_once(timeout_sec=0.1)
        else:
            rclpy.spin_once(node, timeout_sec=0.1)
