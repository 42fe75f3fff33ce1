"""Live event-camera perception: perception_node, optionally recorder_node.

    ros2 launch event_fm perception.launch.py event_topic:=/event_camera/events \
        image_topic:=/camera/image_raw device:=cuda:0 record:=true
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description():
    share = get_package_share_directory("event_fm")
    arg = LaunchConfiguration
    arguments = [
        DeclareLaunchArgument(
            "params_file", default_value=os.path.join(share, "config", "perception.yaml"),
            description="YAML with the parameters of perception_node and recorder_node"),
        DeclareLaunchArgument(
            "checkpoint", default_value="",
            description="model directory or .safetensors (empty: the embedded default model)"),
        DeclareLaunchArgument("device", default_value="auto",
                              description="auto, cpu or cuda:N"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the nodes"),
        DeclareLaunchArgument("event_topic", default_value="/event_camera/events",
                              description="event packets from the driver"),
        DeclareLaunchArgument("image_topic", default_value="",
                              description="camera frames (empty: none)"),
        DeclareLaunchArgument("record", default_value="false",
                              description="also run recorder_node to record training pairs"),
    ]
    env = SetEnvironmentVariable(
        "FASTDDS_DEFAULT_PROFILES_FILE",
        os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE",
                       os.path.join(share, "config", "fastdds.xml")))
    perception = Node(
        package="event_fm", executable="perception_node", name="event_fm_perception",
        namespace=arg("namespace"), output="screen",
        parameters=[arg("params_file"), {
            "checkpoint": arg("checkpoint"), "device": arg("device"),
            "event_topic": arg("event_topic"), "image_topic": arg("image_topic")}])
    recorder = Node(
        package="event_fm", executable="recorder_node", name="event_fm_recorder",
        namespace=arg("namespace"), output="screen", condition=IfCondition(arg("record")),
        parameters=[arg("params_file"), {
            "event_topic": arg("event_topic"), "image_topic": arg("image_topic")}])
    return LaunchDescription([*arguments, env, perception, recorder])
