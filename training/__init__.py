"""Offline training: rosbag recordings to distilled event encoders and heads.

Installed as ``event_fm.training`` (see setup.py); never imports rclpy.
"""
