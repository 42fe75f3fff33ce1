"""Scoring against ground truth: metrics (depth, segmentation, pose), scoring a replayed
recording's node outputs (``scoring``) and the pictures of the reports (``plots``). Core layer:
no rclpy, no training module."""
