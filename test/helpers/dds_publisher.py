"""Publisher process for the cross-process DDS tests (drivers' QoS, real message types)."""

from __future__ import annotations

import sys
import time

import rclpy
from event_camera_msgs.msg import EventPacket
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from helpers import dds_payloads as P


def wait_for_subscriber(node, publisher, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            sys.exit("no subscriber appeared")
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)  # let the subscriber's matching finish on its side too


def main(kind: str) -> None:
    rclpy.init()
    node = rclpy.create_node("dds_test_publisher")
    if kind == "events":
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                         reliability=ReliabilityPolicy.BEST_EFFORT)
        pub = node.create_publisher(EventPacket, P.EVENT_TOPIC, qos)
        wait_for_subscriber(node, pub)
        for i in range(P.NUM_PACKETS):
            msg = EventPacket()
            msg.header.stamp.sec, msg.header.stamp.nanosec = P.stamp_of(i)
            msg.header.frame_id = "event_camera"
            msg.height, msg.width, msg.seq, msg.time_base = 480, 640, 10_000 + i, 123_456_789 * i
            msg.encoding = "evt3"
            msg.events = P.packet_payload(i)
            pub.publish(msg)
            time.sleep(0.01)
    else:
        pub = node.create_publisher(Image, P.IMAGE_TOPIC, qos_profile_sensor_data)
        wait_for_subscriber(node, pub)
        h, w, c = P.IMAGE_SHAPE
        for i in range(P.NUM_IMAGES):
            msg = Image()
            msg.header.stamp.sec, msg.header.stamp.nanosec = P.stamp_of(i)
            msg.header.frame_id = "camera"
            msg.height, msg.width, msg.encoding, msg.step = h, w, "rgb8", w * c
            msg.data = P.image_payload(i)
            pub.publish(msg)
            time.sleep(0.05)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
