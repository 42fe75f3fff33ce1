"""End to end over real DDS: perception_node publishes ~/reconstruction (rgb8, sensor size,
window stamps) from a replayed simulated bag — only once someone subscribes — and refuses to
activate with a missing generator checkpoint."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="make setup provides rclpy; run tests via make test")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from helpers.sim_cli import simulate_bag  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from event_fm.io.rosbag import BagReader  # noqa: E402

CLI = [sys.executable, "-m", "event_fm.cli.main"]
REPO = Path(__file__).resolve().parents[1]
W, H = 160, 120


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory):
    return simulate_bag(tmp_path_factory.mktemp("sim") / "bag", W, H, 1.2, 11)


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _processed(got: dict) -> bool:
    """The latest diagnostics report processed windows."""
    if not got["diagnostics"]:
        return False
    values = {kv.key: kv.value for kv in got["diagnostics"][-1].status[0].values}
    return int(values.get("windows_processed", 0)) > 0


def _node(*params: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "event_fm.nodes.perception_node", "--ros-args",
            "-r", "events:=/event_camera/events",
            "-p", f"checkpoint:={REPO / 'models' / 'default'}", "-p", "device:=cpu",
            "-p", "heads:=[depth,reconstruction]"]
    for p in params:
        args += ["-p", p]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_reconstruction_published_only_with_a_subscriber(sim_bag):
    node_proc = _node("image_topic:=/camera/image_raw", "window_mode:=frame",
                      "window_ms:=50.0", "diagnostics_period_s:=0.3", "memory_hold:=false")
    rclpy.init()
    got: dict[str, list] = {"events_image": [], "reconstruction": [], "diagnostics": []}
    before: list[DiagnosticArray] = []
    try:
        node = rclpy.create_node("reconstruction_test_client")
        node.create_subscription(Image, "/event_fm_perception/events_image",
                                 got["events_image"].append, 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", got["diagnostics"].append, 10)
        replay = subprocess.Popen([*CLI, "replay", str(sim_bag), "--rate", "0.25",
                                   "--wait-for-subscribers", "60"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 150
        subscribed = False
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
            if not subscribed and len(got["events_image"]) >= 3 and _processed(got):
                before = list(got["diagnostics"])  # all computed with no ~/reconstruction reader
                node.create_subscription(Image, "/event_fm_perception/reconstruction",
                                         got["reconstruction"].append, 10)
                subscribed = True
            if replay.poll() is not None and len(got["reconstruction"]) >= 3:
                break
        replay.communicate(timeout=60)
        for _ in range(40):  # the last outputs and a diagnostics round
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        node_proc.terminate()
        log = node_proc.communicate(timeout=60)[0].decode()
    assert node_proc.returncode == 0, log
    assert subscribed, log

    with BagReader(sim_bag) as bag:
        frame_stamps = {m.log_time_ns for m in bag.messages(["/camera/image_raw"])}
    window_stamps = {_stamp(m) for m in got["events_image"]}
    assert len(got["reconstruction"]) >= 3, log
    for msg in got["reconstruction"]:
        assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", W, H, W * 3)
        assert msg.header.frame_id == "event_camera"
        assert _stamp(msg) in frame_stamps and _stamp(msg) in window_stamps
        image = np.frombuffer(bytes(msg.data), np.uint8).reshape(H, W, 3)
        assert image.std() > 1.0  # a picture, not a constant fill
    assert before and _processed({"diagnostics": before})
    for diag in before:
        keys = {kv.key for kv in diag.status[0].values}
        assert "latency_reconstruct_ms" not in keys, "computed without a subscriber"
    final = {kv.key: kv.value for kv in got["diagnostics"][-1].status[0].values}
    assert float(final["latency_reconstruct_ms"]) > 0
    assert int(final.get("window_errors", 0)) == 0


def test_missing_generator_fails_activation_with_its_path(tmp_path):
    missing = tmp_path / "no_generator"
    proc = _node(f"reconstruction_checkpoint:={missing}")
    try:
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, out
    assert str(missing) in out
