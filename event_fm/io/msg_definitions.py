"""Message definitions the project registers with rosbags, so bags without embedded
definitions (older sqlite3 recordings) and bags with IDL schemas read all the same.

These are the upstream field lists (facts of the wire format); interfaces/ holds the same
definitions as ROS packages, and a test keeps the two in step.
"""

EVENT_PACKET = """std_msgs/Header header
uint32 height
uint32 width
uint64 seq
uint64 time_base
string encoding
bool is_bigendian
uint8[] events
"""

LEGACY_EVENT = """uint16 x
uint16 y
builtin_interfaces/Time ts
bool polarity
"""


def _legacy_array(pkg: str) -> str:
    return f"std_msgs/Header header\nuint32 height\nuint32 width\n{pkg}/Event[] events\n"


#: type name -> definition text (ros2msg).
DEFINITIONS: dict[str, str] = {
    "event_camera_msgs/msg/EventPacket": EVENT_PACKET,
    "event_array_msgs/msg/EventArray": EVENT_PACKET,
    "dvs_msgs/msg/Event": LEGACY_EVENT,
    "dvs_msgs/msg/EventArray": _legacy_array("dvs_msgs"),
    "prophesee_event_msgs/msg/Event": LEGACY_EVENT,
    "prophesee_event_msgs/msg/EventArray": _legacy_array("prophesee_event_msgs"),
    "dv_ros2_msgs/msg/Event": LEGACY_EVENT,
    "dv_ros2_msgs/msg/EventArray": _legacy_array("dv_ros2_msgs"),
    "tf2_msgs/msg/TFMessage": "geometry_msgs/TransformStamped[] transforms\n",
}

#: Packets of encoded bytes (decoded by event_fm.io.decoders).
EVENT_PACKET_TYPES = frozenset({"event_camera_msgs/msg/EventPacket",
                                "event_array_msgs/msg/EventArray"})
#: Per-event arrays (converted by event_fm.io.legacy).
LEGACY_ARRAY_TYPES = frozenset({"dvs_msgs/msg/EventArray", "prophesee_event_msgs/msg/EventArray",
                                "dv_ros2_msgs/msg/EventArray"})
EVENT_TYPES = EVENT_PACKET_TYPES | LEGACY_ARRAY_TYPES
IMAGE_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"})
