"""Bag replay over DDS: there is no ``ros2 bag play`` on pip-only machines.

Messages are published as their recorded CDR bytes (no re-serialization, so real bags replay
bit-exact), with each topic's recorded QoS, at the recorded pace scaled by ``rate``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from rclpy.node import Node

from event_fm.io.msg_definitions import EVENT_TYPES
from event_fm.io.rosbag import BagReader
from event_fm.nodes.ros_types import message_class, qos_from_recording

log = logging.getLogger(__name__)


@dataclass
class ReplayStats:
    published: int = 0
    skipped_topics: dict[str, str] = field(default_factory=dict)
    loops: int = 0
    unmatched: bool = False  # some topic had no subscriber when playing started


class BagReplayer:
    def __init__(self, node: Node, bag_path: str, rate: float = 1.0,
                 topics: list[str] | None = None, remap: dict[str, str] | None = None):
        if rate <= 0:
            raise ValueError("replay rate must be positive")
        self.node, self.bag_path, self.rate = node, bag_path, rate
        self.remap = remap or {}
        self.stats = ReplayStats()
        self.publishers = {}
        self.event_topics: list[str] = []
        with BagReader(bag_path) as bag:
            for topic, summary in bag.topics.items():
                if topics is not None and topic not in topics:
                    continue
                try:
                    cls = message_class(summary.msgtype)
                except (ImportError, AttributeError, ValueError) as exc:
                    self.stats.skipped_topics[topic] = f"{summary.msgtype}: {exc}"
                    log.warning("replay: skipping %s (%s not available: %s)", topic,
                                summary.msgtype, exc)
                    continue
                self.publishers[topic] = node.create_publisher(
                    cls, self.remap.get(topic, topic), qos_from_recording(summary.qos))
                if summary.msgtype in EVENT_TYPES:
                    self.event_topics.append(topic)

    def wait_for_subscribers(self, timeout: float, topics: list[str] | None = None,
                             grace: float = 2.0) -> bool:
        """Block until each named publisher has a subscriber, up to ``timeout``. Without names:
        until the event topics have one (what a perception or recorder node reads; a bag's
        ground-truth topics usually have no reader), then up to ``grace`` seconds more for the
        rest, which a node subscribes to together with its events. True when all matched."""
        if topics is None and self.event_topics:
            if not self._wait(self.event_topics, timeout):
                return False
            return self._wait(list(self.publishers), grace)
        return self._wait(topics or list(self.publishers), timeout)

    def _wait(self, names: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if all(self.publishers[t].get_subscription_count() > 0 for t in names
                   if t in self.publishers):
                # the subscriber side may still be matching our writers; data sent before
                # it has is dropped, so give discovery a moment to settle
                time.sleep(0.5)
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def play_once(self, should_stop=lambda: False, on_publish=None) -> None:
        """Publish every message once at the recorded pace; ``on_publish(topic, log_time_ns,
        wall_time)`` is told about each (latency measurements use it)."""
        start_wall, start_bag = time.monotonic(), None
        with BagReader(self.bag_path) as bag:
            for message in bag.messages(list(self.publishers)):
                if should_stop():
                    return
                if start_bag is None:
                    start_bag = message.log_time_ns
                due = start_wall + (message.log_time_ns - start_bag) / 1e9 / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.publishers[message.topic].publish(bytes(message.raw))
                self.stats.published += 1
                if on_publish is not None:
                    on_publish(message.topic, message.log_time_ns, time.monotonic())
        self.stats.loops += 1


def replay_bag(bag_path: str, rate: float = 1.0, loop: bool = False,
               topics: list[str] | None = None, remap: dict[str, str] | None = None,
               wait_for_subscribers: float = 0.0, delay: float = 0.0,
               linger: float = 1.0) -> ReplayStats:
    """Publish a recording from a node of its own until done (or Ctrl-C while looping)."""
    import rclpy

    rclpy.init()
    node = rclpy.create_node("event_fm_replay")
    try:
        replayer = BagReplayer(node, bag_path, rate=rate, topics=topics, remap=remap)
        if wait_for_subscribers > 0:
            replayer.stats.unmatched = not replayer.wait_for_subscribers(wait_for_subscribers)
        time.sleep(delay)
        try:
            while True:
                replayer.play_once()
                if not loop:
                    break
        except KeyboardInterrupt:
            pass
        time.sleep(linger)
        return replayer.stats
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
