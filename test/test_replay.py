"""`event-fm replay` publishes real bags over DDS, bit-exact, with the recorded QoS."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="make setup provides rclpy; run tests via make test")
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from event_fm.io.rosbag import BagReader  # noqa: E402
from event_fm.nodes.ros_types import message_class  # noqa: E402


@pytest.mark.parametrize("name", ["evt3_metavision_640x480", "libcaer_cmp_davis346", "mono_cd"])
def test_replay_real_bag_bit_exact(real_bags, name):
    bag_path = real_bags / name
    with BagReader(bag_path) as bag:
        (topic, summary), = bag.topics.items()
        expected = [bytes(bag.deserialize(m).events) for m in bag.messages()]
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
    rclpy.init()
    try:
        node = rclpy.create_node("replay_test_receiver")
        received = []
        node.create_subscription(message_class(summary.msgtype), topic, received.append, qos)
        proc = subprocess.Popen(
            [sys.executable, "-m", "event_fm.cli.main", "replay", str(bag_path), "--rate", "2",
             "--wait-for-subscribers", "20"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while len(received) < len(expected) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
            if proc.poll() is not None and len(received) < len(expected):
                # drain what is still queued after the publisher exits
                for _ in range(20):
                    rclpy.spin_once(node, timeout_sec=0.05)
                break
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out.decode()
        assert f"published {len(expected)} messages" in out.decode()
        node.destroy_node()
    finally:
        rclpy.shutdown()
    assert [bytes(m.events) for m in received] == expected
    assert [m.seq for m in received] == sorted(m.seq for m in received)


def test_replay_rejects_bad_arguments(real_bags):
    result = subprocess.run([sys.executable, "-m", "event_fm.cli.main", "replay",
                             str(real_bags / "mono_cd"), "--rate", "0"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "--rate must be positive" in result.stderr
    result = subprocess.run([sys.executable, "-m", "event_fm.cli.main", "replay",
                             str(real_bags / "nope")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "nope" in result.stderr
