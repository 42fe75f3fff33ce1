"""Offline training: rosbag recordings to distilled event encoders and heads.

A client of the runtime: imports the core (event_fm.io ... event_fm.evaluation), never
rclpy, and nothing in event_fm imports it except the ``event-fm train`` command.
"""
