"""event_fm: event-camera perception with foundation-model encoders.

The core (io, representations, models, pipeline, sim and the training module) never imports
rclpy, so it runs on machines without ROS; the ROS 2 nodes in ``event_fm.nodes`` are thin glue.
"""

__version__ = "0.1.0"
