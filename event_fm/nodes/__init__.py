"""ROS 2 glue: thin rclpy nodes over the core (the only layer that imports rclpy)."""
