"""End to end over real DDS: a simulated bag replayed into perception_node; depth, semantic,
pose and diagnostics come out with the right encodings, shapes and stamps; injected malformed
messages are counted while the node keeps publishing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="make setup provides rclpy; run tests via make test")
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from event_camera_msgs.msg import EventPacket  # noqa: E402
from geometry_msgs.msg import PoseStamped, TransformStamped  # noqa: E402
from helpers.sim_cli import simulate_bag  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from event_fm.io.rosbag import BagReader  # noqa: E402

CLI = [sys.executable, "-m", "event_fm.cli.main"]
W, H = 160, 120


@pytest.fixture(scope="module")
def checkpoint():
    """The shipped checkpoint: trained matching features are needed for poses to come out."""
    path = Path(__file__).resolve().parents[1] / "models" / "default"
    assert (path / "model.safetensors").exists(), "models/default is part of the repository"
    return path


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory):
    return simulate_bag(tmp_path_factory.mktemp("sim") / "bag", W, H, 1.0, 3)


def _image_stamps(bag_path) -> set[int]:
    with BagReader(bag_path) as bag:
        return {m.log_time_ns for m in bag.messages(["/camera/image_raw"])}


def test_perception_node_end_to_end(checkpoint, sim_bag):
    node_proc = subprocess.Popen(
        [sys.executable, "-m", "event_fm.nodes.perception_node", "--ros-args",
         "-r", "events:=/event_camera/events", "-r", "image:=/camera/image_raw",
         "-r", "camera_info:=/camera/camera_info",
         "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu",
         "-p", "image_topic:=image", "-p", "camera_info_topic:=camera_info",
         "-p", "window_mode:=frame", "-p", "window_ms:=50.0",
         "-p", "diagnostics_period_s:=0.5", "-p", "memory_hold:=false",
         "-p", "publish_tf:=true", "-p", "odom_frame:=odom", "-p", "base_frame:=base_link"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rclpy.init()
    got: dict[str, list] = {"depth": [], "semantic": [], "semantic_color": [], "pose": [],
                            "events_image": [], "diagnostics": [], "camera_info": [],
                            "odom": [], "tf": []}
    try:
        node = rclpy.create_node("perception_test_client")
        for name in ("depth", "semantic", "semantic_color", "events_image"):
            node.create_subscription(Image, f"/event_fm_perception/{name}",
                                     lambda m, n=name: got[n].append(m), 10)
        node.create_subscription(PoseStamped, "/event_fm_perception/pose",
                                 got["pose"].append, 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", got["diagnostics"].append, 10)
        node.create_subscription(CameraInfo, "/event_fm_perception/camera_info",
                                 got["camera_info"].append, 10)
        node.create_subscription(Odometry, "/event_fm_perception/odom", got["odom"].append, 10)
        node.create_subscription(TFMessage, "/tf", got["tf"].append, 100)
        # the robot's URDF: the camera 0.3 m above the base (REP-105: odom -> base_link)
        static = node.create_publisher(TFMessage, "/tf_static", QoSProfile(
            depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
            reliability=ReliabilityPolicy.RELIABLE))
        mount = TransformStamped()
        mount.header.frame_id, mount.child_frame_id = "base_link", "event_camera"
        mount.transform.translation.z = 0.3
        mount.transform.rotation.w = 1.0
        static.publish(TFMessage(transforms=[mount]))
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                         reliability=ReliabilityPolicy.BEST_EFFORT)
        bad_events = node.create_publisher(EventPacket, "/event_camera/events", qos)
        bad_images = node.create_publisher(Image, "/camera/image_raw", 10)

        replay = subprocess.Popen([*CLI, "replay", str(sim_bag), "--rate", "0.25",
                                   "--wait-for-subscribers", "60"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        injected = False
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
            if not injected and len(got["depth"]) >= 2:
                # malformed input mid-stream: garbage payload, unknown encoding, bad image
                rng = np.random.default_rng(0)
                for encoding in ("evt3", "no_such_encoding"):
                    msg = EventPacket(width=W, height=H, encoding=encoding, seq=10**6)
                    msg.events = rng.integers(0, 256, 1001, dtype=np.uint8).tobytes()
                    bad_events.publish(msg)
                bad_images.publish(Image(width=W, height=H, encoding="rgb8", step=W * 3,
                                         data=bytes(100)))
                injected = True
            if replay.poll() is not None and injected and len(got["depth"]) >= 6:
                break
        replay.communicate(timeout=60)
        for _ in range(40):  # collect the last outputs and a diagnostics round
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        node_proc.terminate()
        log = node_proc.communicate(timeout=60)[0].decode()
    assert node_proc.returncode == 0, log

    stamps = _image_stamps(sim_bag)
    assert len(got["depth"]) >= 6, log
    for msg in got["depth"]:
        assert (msg.encoding, msg.width, msg.height, msg.step) == ("32FC1", W, H, W * 4)
        depth = np.frombuffer(bytes(msg.data), np.float32)
        assert np.all((depth >= 1.0) & (depth <= 81.0))
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        assert stamp in stamps, "windows end at camera frame stamps"
        assert msg.header.frame_id == "event_camera"
    for msg in got["semantic"]:
        assert (msg.encoding, msg.width, msg.height) == ("mono8", W, H)
        assert max(bytes(msg.data)) < 11
    assert got["semantic_color"] and got["semantic_color"][0].encoding == "rgb8"
    assert got["events_image"] and got["events_image"][0].encoding == "rgb8"
    assert len(got["pose"]) >= 1
    q = got["pose"][-1].pose.orientation
    assert abs(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2 - 1) < 1e-6
    # depth comes with camera_info (same stamps, K of the sensor size: depth_image_proc input)
    info_stamps = {_ns(m) for m in got["camera_info"]}
    assert {_ns(m) for m in got["depth"]} <= info_stamps | {_ns(got["depth"][0])}
    info = got["camera_info"][-1]
    assert (info.width, info.height, info.header.frame_id) == (W, H, "event_camera")
    assert info.k[0] > 0 and info.k[8] == 1.0
    # odometry and /tf per REP-105: odom -> base_link, the camera mount taken from /tf_static
    assert got["odom"], "no ~/odom"
    odom = got["odom"][-1]
    assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
    transforms = [t for m in got["tf"] for t in m.transforms]
    assert transforms and all((t.header.frame_id, t.child_frame_id) == ("odom", "base_link")
                              for t in transforms)
    values = {kv.key: kv.value for kv in got["diagnostics"][-1].status[0].values}
    assert int(values["malformed_unknown_encoding"]) >= 1
    assert int(values["malformed_images"]) >= 1
    assert int(values["windows_processed"]) >= len(got["depth"])
    assert float(values["latency_infer_ms"]) > 0
    assert values["clock_offset_ns"] != "None"
    # one status per task, as diagnostic_updater names them, hardware_id the device; levels
    # follow the last interval: the malformed input came early, the last report is calm
    last = {st.name: st for st in got["diagnostics"][-1].status}
    for task in ("perception", "ingest", "windows", "model", "output depth"):
        assert f"event_fm_perception: {task}" in last, sorted(last)
    assert {st.hardware_id for st in last.values()} == {"cpu"}
    depth_age = {kv.key: kv.value for kv in last["event_fm_perception: output depth"].values}
    assert "age_p50_ms" in depth_age or depth_age["published_recent"] == "0"
    warned = [a for a in got["diagnostics"] for st in a.status
              if st.name.endswith(": ingest") and st.level == DiagnosticStatus.WARN]
    assert warned, "the malformed packets never raised the ingest status to WARN"
    for array in got["diagnostics"]:
        for st in array.status:
            assert (st.level == DiagnosticStatus.OK) == (st.message in
                                                         ("ok", "nothing published recently")) \
                or st.name.endswith(": model"), (st.name, st.level, st.message)
    # the node kept publishing after the malformed input
    last = got["depth"][-1].header.stamp
    assert last.sec * 10**9 + last.nanosec == max(
        m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got["depth"])


def _ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
