"""The ROS 2 environment is real: Fast DDS across two processes with the drivers' message types."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="make setup provides rclpy; run tests via make test")
from event_camera_msgs.msg import EventPacket  # noqa: E402
from helpers import dds_payloads as P  # noqa: E402
from rclpy.qos import (  # noqa: E402
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import Image  # noqa: E402

HERE = Path(__file__).resolve().parent


def _start_publisher(kind: str) -> subprocess.Popen:
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    return subprocess.Popen([sys.executable, str(HERE / "helpers" / "dds_publisher.py"), kind],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _receive(msg_type, topic: str, qos, kind: str, expected: int, timeout: float = 60.0) -> list:
    rclpy.init()
    try:
        node = rclpy.create_node(f"dds_test_receiver_{kind}")
        received: list = []
        node.create_subscription(msg_type, topic, received.append, qos)
        publisher = _start_publisher(kind)
        deadline = time.monotonic() + timeout
        while len(received) < expected and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
            if publisher.poll() is not None and publisher.returncode != 0:
                break
        out, _ = publisher.communicate(timeout=30)
        assert publisher.returncode == 0, out.decode(errors="replace")
        node.destroy_node()
        return received
    finally:
        rclpy.shutdown()


def test_event_packets_cross_process_with_driver_qos():
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
    received = _receive(EventPacket, P.EVENT_TOPIC, qos, "events", P.NUM_PACKETS)
    assert [m.seq for m in received] == [10_000 + i for i in range(P.NUM_PACKETS)]
    for i, msg in enumerate(received):
        assert len(msg.events) == len(P.packet_payload(i))
        assert P.digest(msg.events) == P.digest(P.packet_payload(i))
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == P.stamp_of(i)
        assert (msg.width, msg.height, msg.encoding) == (640, 480, "evt3")
        assert msg.time_base == 123_456_789 * i
        assert msg.header.frame_id == "event_camera"


def test_megabyte_images_cross_process_with_sensor_qos():
    received = _receive(Image, P.IMAGE_TOPIC, qos_profile_sensor_data, "images", P.NUM_IMAGES)
    assert len(received) == P.NUM_IMAGES
    h, w, c = P.IMAGE_SHAPE
    for i, msg in enumerate(received):
        assert (msg.height, msg.width, msg.step, msg.encoding) == (h, w, w * c, "rgb8")
        assert len(msg.data) == h * w * c > 1_000_000
        assert P.digest(msg.data) == P.digest(P.image_payload(i))
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == P.stamp_of(i)


def test_interface_packages_serialize_like_the_real_definitions():
    """CDR bytes from rclpy decode with rosbags using the upstream field list."""
    from rclpy.serialization import serialize_message
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    upstream = ("std_msgs/Header header\nuint32 height\nuint32 width\nuint64 seq\n"
                "uint64 time_base\nstring encoding\nbool is_bigendian\nuint8[] events\n")
    store = get_typestore(Stores.ROS2_KILTED if hasattr(Stores, "ROS2_KILTED") else Stores.LATEST)
    store.register(get_types_from_msg(upstream, "event_camera_msgs/msg/EventPacket"))
    msg = EventPacket(height=720, width=1280, seq=7, time_base=99, encoding="libcaer_cmp",
                      is_bigendian=False, events=bytes(range(256)) * 3)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 34
    decoded = store.deserialize_cdr(serialize_message(msg), "event_camera_msgs/msg/EventPacket")
    assert (decoded.height, decoded.width, decoded.seq, decoded.time_base) == (720, 1280, 7, 99)
    assert decoded.encoding == "libcaer_cmp" and decoded.header.stamp.nanosec == 34
    assert bytes(decoded.events) == bytes(range(256)) * 3


def test_legacy_and_tf_interfaces_import_and_fill():
    from dvs_msgs.msg import Event as DvsEvent
    from dvs_msgs.msg import EventArray as DvsEventArray
    from event_array_msgs.msg import EventArray
    from geometry_msgs.msg import TransformStamped
    from prophesee_event_msgs.msg import Event as PropheseeEvent
    from tf2_msgs.msg import TFMessage

    arr = DvsEventArray(width=346, height=260, events=[DvsEvent(x=3, y=4, polarity=True)])
    assert arr.events[0].x == 3 and arr.events[0].ts.sec == 0
    assert PropheseeEvent(x=1, y=2, polarity=False).y == 2
    assert EventArray(encoding="mono").encoding == "mono"
    tf = TFMessage(transforms=[TransformStamped(child_frame_id="camera")])
    assert tf.transforms[0].child_frame_id == "camera"
