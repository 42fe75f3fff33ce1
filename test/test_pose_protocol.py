"""The pose protocol (max of rotation and translation-direction error, failures counted) and the
baselines it is always reported with (identity, ORB on event frames and on camera frames)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from event_fm.evaluation.pose_baselines import accumulated_event_frame, orb_pose
from event_fm.evaluation.pose_protocol import (
    PoseProtocol,
    pose_errors,
    unmoved_fraction,
    unmoved_fraction_truth,
)
from event_fm.evaluation.recording import Recording
from event_fm.evaluation.scoring import GroundTruth, Outputs, score
from event_fm.io.events import EVENT_DTYPE


def _T(rotvec_deg=(0, 0, 0), t=(0, 0, 0)) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(np.radians(rotvec_deg)).as_matrix()
    T[:3, 3] = t
    return T


def test_identity_scores_zero_on_translation_but_full_rotation_auc():
    protocol = PoseProtocol()
    for k in range(10):
        protocol.add(np.eye(4), _T(t=(0.1 + 0.01 * k, 0, 0)))
    r = protocol.result()
    assert r["auc_20"] == 0.0  # "no motion" is not a direction
    assert r["rot_auc_5"] == pytest.approx(1.0)  # what rotation-only AUC rewards
    assert r["failures"] == 0 and r["pairs"] == 10


def test_errors_direction_up_to_sign_pure_rotation_and_failure():
    truth = _T((0, 3, 0), (0.2, 0, 0.1))
    rot, trans = pose_errors(_T((0, 3, 0), (-0.4, 0, -0.2)), truth)  # E leaves the sign
    assert rot == pytest.approx(0.0, abs=1e-4) and trans == pytest.approx(0.0, abs=1e-4)
    rot, trans = pose_errors(_T((0, 3, 0), (0, 0.3, 0)), truth)
    assert trans == pytest.approx(90.0, abs=1e-4)
    rot, trans = pose_errors(_T((0, 5, 0), (1, 0, 0)), _T((0, 3, 0)))  # truth only rotates
    assert rot == pytest.approx(2.0, abs=1e-6) and np.isnan(trans)
    assert pose_errors(None, truth) == (float("inf"), float("inf"))


def test_combined_error_is_the_worse_of_the_two_and_failures_lower_auc():
    protocol = PoseProtocol()
    truth = _T((0, 0, 0), (1, 0, 0))
    est = _T((0, 0, 0), (np.cos(np.radians(8)), np.sin(np.radians(8)), 0))  # 8 deg off in t
    protocol.add(est, truth)
    protocol.add(None, truth)
    r = protocol.result()
    assert np.isinf(r["median_rot_deg"])  # half the pairs failed
    assert r["failures"] == 1
    # one pair of two at 8 deg: recall rises to 0.5 at 8, then stays: (0.5 * 8 / 2 + 0.5 * 2) / 10
    assert r["auc_10"] == pytest.approx(0.3, abs=1e-6)
    assert r["auc_5"] == 0.0 and r["rot_auc_5"] == pytest.approx(0.5)


def test_unmoved_fraction_of_matches_and_of_the_truth():
    k0 = np.array([[4.0, 4.0], [20.0, 4.0], [4.0, 20.0]])
    assert unmoved_fraction(k0, k0 + [1.0, 0.0], 8.0) == (3, 3)
    assert unmoved_fraction(k0, k0 + [16.0, 0.0], 8.0) == (3, 0)
    K = np.array([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]])
    depth = np.full((96, 128), 2.0, np.float32)
    assert unmoved_fraction_truth(depth, np.eye(4), K, 8.0) == (192, 192)
    # 0.32 m sideways at 2 m with f = 100 moves every point 16 px: two cells, none stays
    total, same = unmoved_fraction_truth(depth, _T(t=(0.32, 0, 0)), K, 8.0)
    assert total > 100 and same == 0


def _plane_views(tx: float):
    """A textured plane at 4 m seen from two cameras 'tx' apart (an exact homography)."""
    rng = np.random.default_rng(3)
    base = cv2.resize(rng.integers(0, 255, (60, 80), dtype=np.uint8), (320, 240),
                      interpolation=cv2.INTER_NEAREST)
    base = cv2.GaussianBlur(base, (3, 3), 0)
    K = np.array([[250.0, 0, 159.5], [0, 250.0, 119.5], [0, 0, 1]])
    T = _T((0, 1.0, 0), (tx, 0.0, 0.02))
    n, d = np.array([0, 0, 1.0]), 4.0
    H = K @ (T[:3, :3] + np.outer(T[:3, 3], n) / d) @ np.linalg.inv(K)
    return base, cv2.warpPerspective(base, H, (320, 240)), K, T


def test_orb_on_camera_frames_recovers_a_known_motion():
    img0, img1, K, T = _plane_views(0.3)
    est, k0, k1 = orb_pose(img0, img1, K)
    assert len(k0) > 50 and est is not None
    rot, trans = pose_errors(est, T)
    # a plane is a hard case for the 5-point solver; a few degrees is what ORB gets
    assert rot < 2.0 and trans < 20.0


def test_accumulated_event_frame_counts_and_clips():
    ev = np.zeros(5, dtype=EVENT_DTYPE)
    ev["x"], ev["y"] = [1, 1, 1, 2, 9], [0, 0, 0, 3, 9]
    frame = accumulated_event_frame(ev, 4, 4)  # (9, 9) is outside
    assert frame.shape == (4, 4) and frame.dtype == np.uint8
    assert frame[0, 1] == 255 and 0 < frame[3, 2] < 255 and frame.sum() < 2 * 255


def test_score_counts_missing_poses_as_failures_and_reports_baselines():
    gt, out = GroundTruth(), Outputs()
    img0, img1, K, T = _plane_views(0.3)
    rec = Recording(width=320, height=240, K=K)
    stamps = [1_000_000_000 + k * 50_000_000 for k in range(3)]
    poses = [np.eye(4), np.linalg.inv(T), np.linalg.inv(T) @ np.linalg.inv(T)]  # T_world_cam
    for k, s in enumerate(stamps):
        gt.pose[s] = poses[k]
        gt.depth[s] = np.full((240, 320), 4.0, np.float32)
        out.depth[s] = np.full((240, 320), 4.0, np.float32)
        rec.frames[s] = img0 if k == 0 else img1
    out.pose[stamps[1]] = T  # exact; the third window published nothing: a failure
    m = score(out, gt, recording=rec)
    model = m["pose"]["model"]
    assert model["pairs"] == 2 and model["failures"] == 1
    assert m["pose_auc_20"] == pytest.approx(0.5, abs=1e-6)
    assert m["pose"]["identity"]["auc_20"] == 0.0
    assert m["pose"]["identity"]["rot_auc_20"] > 0.9
    assert set(m["pose"]) >= {"orb_event_frames", "orb_camera_frames", "ground_truth"}
    assert m["pose"]["orb_camera_frames"]["pairs"] == 2
    assert 0.0 <= m["pose"]["ground_truth"]["unmoved_fraction"] <= 1.0
    assert m["depth_baselines"]["constant"]["value_m"] == pytest.approx(4.0)


def test_report_puts_baselines_beside_the_model(tmp_path):
    from event_fm.evaluation.scoring import write_report

    gt, out = GroundTruth(), Outputs()
    img0, img1, K, T = _plane_views(0.3)
    rec = Recording(width=320, height=240, K=K)
    rng = np.random.default_rng(0)
    for k in range(3):
        s = 1_000_000_000 + k * 50_000_000
        gt.pose[s] = np.linalg.matrix_power(np.linalg.inv(T), k)
        gt.depth[s] = rng.uniform(2, 20, (240, 320)).astype(np.float32)
        gt.semantic[s] = rng.integers(0, 3, (240, 320)).astype(np.uint8)
        out.depth[s], out.semantic[s] = gt.depth[s] * 1.1, gt.semantic[s]
        rec.frames[s] = img0 if k == 0 else img1
    metrics = score(out, gt, recording=rec, empty={"depth": np.full((240, 320), 7.0),
                                                   "semantic": np.zeros((240, 320), np.uint8)})
    write_report(tmp_path, {"bag": "b", "checkpoint": "c", "metrics": metrics}, out, gt)
    text = (tmp_path / "report.md").read_text()
    for row in ("| model |", "| constant (", "| empty window |", "| constant layout |",
                "| identity |", "| orb event frames |", "| orb camera frames |",
                "| ground truth |"):
        assert row in text, row
    assert metrics["rank_correlation"] == pytest.approx(1.0)  # 1.1 x the truth: same order
    assert metrics["absrel_median_scaled"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["depth_baselines"]["empty_window"]["absrel"] > 0.3
    assert (tmp_path / "mosaic.png").stat().st_size > 10_000
