"""Live event-camera perception: perception_node, optionally recorder_node.

    ros2 launch event_fm perception.launch.py event_topic:=/event_camera/events \
        image_topic:=/camera/image_raw device:=cuda:0 record:=true

Launch arguments left empty do not override the parameter file: the YAML (keyed
``/**/event_fm_perception`` so it applies under any namespace) stays the source of truth.
The nodes subscribe to relative names (``events``, ``image``, ``camera_info``), which the
topic arguments remap, as image_pipeline's launch files do; perception_node uses frames only
when its YAML sets ``image_topic: image`` (with ``window_mode: frame``).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

#: launch argument -> the parameter it overrides, per node (only when given a non-empty value)
PERCEPTION_OVERRIDES = ("checkpoint", "device")
RECORDER_OVERRIDES = ()
#: the nodes' relative topic names -> the launch argument that remaps each
REMAPPED = {"events": "event_topic", "image": "image_topic", "camera_info": "camera_info_topic"}


def _overrides(context, names) -> dict:
    values = {name: LaunchConfiguration(name).perform(context) for name in names}
    out = {name: value for name, value in values.items() if value}
    out["use_sim_time"] = LaunchConfiguration("use_sim_time").perform(context).lower() in (
        "true", "1", "yes")
    return out


def _remappings(context) -> list[tuple[str, str]]:
    return [(name, LaunchConfiguration(argument).perform(context))
            for name, argument in REMAPPED.items()]


def _nodes(context):
    arg = LaunchConfiguration
    params = arg("params_file").perform(context)
    perception = Node(
        package="event_fm", executable="perception_node", name="event_fm_perception",
        namespace=arg("namespace"), output="screen", remappings=_remappings(context),
        parameters=[params, _overrides(context, PERCEPTION_OVERRIDES)])
    recorder = Node(
        package="event_fm", executable="recorder_node", name="event_fm_recorder",
        namespace=arg("namespace"), output="screen", condition=IfCondition(arg("record")),
        remappings=_remappings(context),
        parameters=[params, _overrides(context, RECORDER_OVERRIDES)])
    return [perception, recorder]


def _fastdds_profile(context):
    """Opt-in: the project's Fast DDS profile (a 32 MiB shared-memory segment, so 1 MB images
    published best effort are not lost); a robot's own DDS setup is left alone by default."""
    profile = LaunchConfiguration("fastdds_profile").perform(context)
    if not profile:
        return []
    if profile.lower() == "true":
        profile = os.path.join(get_package_share_directory("event_fm"), "config", "fastdds.xml")
    return [SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile)]


def generate_launch_description():
    share = get_package_share_directory("event_fm")
    arguments = [
        DeclareLaunchArgument(
            "params_file", default_value=os.path.join(share, "config", "perception.yaml"),
            description="YAML with the parameters of perception_node and recorder_node"),
        DeclareLaunchArgument(
            "checkpoint", default_value="",
            description="model directory or .safetensors (empty: the YAML's, else the "
                        "embedded default model)"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu or cuda:N (empty: the YAML's)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the nodes"),
        DeclareLaunchArgument("event_topic", default_value="/event_camera/events",
                              description="the driver's event packets (remaps 'events')"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera frames (remaps 'image')"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info",
                              description="camera intrinsics (remaps 'camera_info')"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (bag replay with --clock)"),
        DeclareLaunchArgument("fastdds_profile", default_value="",
                              description="Fast DDS XML profile to use; 'true': the package's "
                                          "config/fastdds.xml; empty: leave DDS as it is"),
        DeclareLaunchArgument("record", default_value="false",
                              description="also run recorder_node to record training pairs"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_fastdds_profile),
                              OpaqueFunction(function=_nodes)])
