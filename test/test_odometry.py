"""Relative motion as robots use it: the depth-scaled (metric) translation from matched points
with depth, the chained odometry, and the direction ~/pose, ~/odom and /tf share (the current
camera in the previous camera's frame)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from event_fm.models.pose import RelativePose
from event_fm.nodes.output_topics import camera_motion, pose_messages
from event_fm.pipeline.outputs import OdometryOutput, PoseOutput, Window
from event_fm.pipeline.scheduler import WindowSpec

H, W = 96, 128
K = np.array([[100.0, 0, 63.5], [0, 100.0, 47.5], [0, 0, 1]])


def _scene(R, t_metric, rng):
    """Points at 2-6 m seen by camera 0, their depth maps in both cameras (1/8 resolution,
    constant per cell around each point) and pixel positions."""
    n = 60
    k0 = np.c_[rng.uniform(8, W - 8, n), rng.uniform(8, H - 8, n)]
    d0 = rng.uniform(2, 6, n)
    X0 = d0[:, None] * (np.c_[k0, np.ones(n)] @ np.linalg.inv(K).T)
    X1 = X0 @ R.T + t_metric
    k1 = (X1 @ K.T)[:, :2] / X1[:, 2:]
    depth0 = torch.full((1, 1, H // 8, W // 8), float("nan"))
    depth1 = depth0.clone()
    for (x0, y0), (x1, y1), z0, z1 in zip(k0, k1, d0, X1[:, 2], strict=True):
        depth0[0, 0, int(y0 // 8), int(x0 // 8)] = z0
        depth1[0, 0, int(y1 // 8), int(x1 // 8)] = z1
    return k0, k1, depth0, depth1


def test_metric_scale_from_depth_recovers_the_translation():
    rng = np.random.default_rng(0)
    R = Rotation.from_rotvec([0.01, -0.02, 0.005]).as_matrix()
    t = np.array([0.12, -0.03, 0.05])
    k0, k1, depth0, depth1 = _scene(R, t, rng)
    unit = RelativePose(R, (t / np.linalg.norm(t)).reshape(3, 1), np.ones(len(k0), bool))
    scale = PoseOutput()._metric_scale(unit, k0, k1, depth0, depth1, K, (H, W))
    # depth is constant per 8x8 cell, so points in the same cell disagree a little
    assert scale is not None and abs(scale - np.linalg.norm(t)) < 0.03


def test_metric_scale_needs_depth_at_enough_matches():
    rng = np.random.default_rng(1)
    R, t = np.eye(3), np.array([0.1, 0.0, 0.0])
    k0, k1, depth0, _ = _scene(R, t, rng)
    empty = torch.full_like(depth0, float("nan"))
    unit = RelativePose(R, np.array([[1.0], [0], [0]]), np.ones(len(k0), bool))
    assert PoseOutput()._metric_scale(unit, k0, k1, depth0, empty, K, (H, W)) is None


def _window(stamp_ns, pose):
    w = Window(WindowSpec(stamp_ns, stamp_ns - 50_000_000, stamp_ns), np.zeros(0), 0, W, H)
    w.values["pose"] = pose
    return w


def test_odometry_chains_camera_motion_and_holds_on_failure():
    odo = OdometryOutput()
    step_R = Rotation.from_rotvec([0, 0.1, 0]).as_matrix()
    forward = np.array([0.0, 0.0, 0.5])  # camera 1 is 0.5 m ahead of camera 0
    # X_cur = R X_prev + t with the camera moved by (step_R, forward): R = step_R^T, t = -R fwd
    R = step_R.T
    pose = RelativePose(R, (-R @ forward).reshape(3, 1), np.ones(10, bool), metric=True)
    first = odo.compute(_window(0, None))
    assert np.allclose(first.T_odom_cam, np.eye(4)) and first.dt_s == 0
    one = odo.compute(_window(50_000_000, pose))
    assert np.allclose(one.T_odom_cam[:3, 3], forward) and one.metric and one.tracking
    assert np.allclose(one.T_prev_cur[:3, :3], step_R) and one.dt_s == 0.05
    failed = RelativePose(np.eye(3), np.zeros((3, 1)), np.zeros(10, bool))
    held = odo.compute(_window(100_000_000, failed))
    assert not held.tracking and np.allclose(held.T_odom_cam, one.T_odom_cam)
    two = odo.compute(_window(150_000_000, pose))
    assert np.allclose(two.T_odom_cam[:3, 3], forward + step_R @ forward)


def test_pose_topic_is_the_current_camera_in_the_previous_frame():
    R = Rotation.from_rotvec([0.0, 0.0, 0.2]).as_matrix()
    t = np.array([[0.0], [0.0], [-1.0]])  # X_cur = R X_prev + t
    pose = RelativePose(R, t, np.ones(5, bool))
    T = camera_motion(pose)
    assert np.allclose(T[:3, :3], R.T) and np.allclose(T[:3, 3], -R.T @ t.ravel())
    (msg,) = pose_messages(pose, 123, "cam")
    p = msg.pose.position
    assert np.allclose([p.x, p.y, p.z], T[:3, 3])
    q = msg.pose.orientation
    assert np.allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), R.T)
    assert pose_messages(RelativePose(np.eye(3), np.zeros((3, 1)), np.zeros(0, bool)), 1,
                         "cam") == []
