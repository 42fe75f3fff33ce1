"""How engine outputs become ROS topics: one row per published topic.

perception_node keeps one table of these rows and uses it for everything an output needs on the
ROS side: creating the publishers, deciding which outputs to compute (those with a subscribed
topic, or an ``always`` row) and converting values to messages. A new engine output needs one
row here, nothing else in the node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image

from event_fm.common.rotations import quaternion_xyzw
from event_fm.common.stamps import set_stamp
from event_fm.nodes.image_msgs import array_to_image

#: (value, stamp_ns of the window, frame_id) -> the messages to publish, in order
Converter = Callable[[Any, int, str], list]


@dataclass(frozen=True)
class OutputTopic:
    output: str  # the engine output whose value the topic carries
    topic: str
    msg_type: type
    convert: Converter
    depth: int = 5  # publisher queue (at least the messages one window publishes)
    always: bool = False  # computed and published without subscribers (/tf keeps its chain)


def image_topic(output: str, encoding: str, depth: int = 5) -> OutputTopic:
    """``~/<output>`` as one sensor_msgs/Image per window, stamped at the window."""

    def convert(value, stamp_ns: int, frame_id: str) -> list[Image]:
        return [array_to_image(value, encoding, stamp_ns, frame_id)]

    return OutputTopic(output, f"~/{output}", Image, convert, depth)


def pose_stamped(R, t, stamp_ns: int, frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    set_stamp(msg.header.stamp, stamp_ns)
    msg.header.frame_id = frame_id
    p = msg.pose.position
    p.x, p.y, p.z = (float(v) for v in t.reshape(3))
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in quaternion_xyzw(R))
    return msg


def camera_motion(pose) -> np.ndarray:
    """T(prev <- cur): this window's camera in the previous window's camera frame, from a
    RelativePose (X_cur = R X_prev + t)."""
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = pose.R, pose.t.reshape(3)
    return np.linalg.inv(T)


def pose_messages(pose, stamp_ns: int, frame_id: str) -> list[PoseStamped]:
    """``~/pose``: the camera's motion since the previous window, as the pose of the current
    camera in the previous camera's frame (the direction /tf and ~/odom use); translation in
    metres when depth gave the scale, else of unit length. Failed estimates are not sent."""
    if pose is None or not pose.ok:
        return []
    T = camera_motion(pose)
    return [pose_stamped(T[:3, :3], T[:3, 3], stamp_ns, frame_id)]
