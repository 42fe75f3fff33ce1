"""`event-fm eval` on recordings without labels: says so and scores what needs none (input
sensitivity, pose success, unmoved matches, XFeat-on-frames reference motion, a TUM trajectory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from event_fm.evaluation.label_free import FrameTeacher, score_label_free
from event_fm.evaluation.pose_baselines import xfeat_pose
from event_fm.evaluation.recording import Recording
from event_fm.evaluation.scoring import GroundTruth, Outputs, score, trajectory_at

DATA = Path(__file__).parent / "data"


def _layout(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(10, 3, (24, 32)), 1, 80).astype(np.float32)


def test_a_model_that_ignores_its_input_agrees_with_its_empty_window_answer():
    empty = {"depth": _layout(0), "semantic": (np.arange(24)[:, None] // 8 * np.ones(32))
             .astype(np.uint8)}
    frozen, moving = Outputs(), Outputs()
    for k in range(5):
        stamp = 10**9 + k * 50_000_000
        frozen.depth[stamp], frozen.semantic[stamp] = empty["depth"], empty["semantic"]
        moving.depth[stamp] = _layout(k + 1)
        moving.semantic[stamp] = np.roll(empty["semantic"], 3 * k, axis=0)
    rec = Recording(width=32, height=24)
    a = score_label_free(frozen, rec, empty)["input_sensitivity"]
    b = score_label_free(moving, rec, empty)["input_sensitivity"]
    assert a["depth_rank_corr_with_empty"] == pytest.approx(1.0)
    assert a["depth_change_vs_empty"] == pytest.approx(0.0, abs=1e-6)
    assert a["semantic_agreement_with_empty"] == 1.0
    assert b["depth_rank_corr_with_empty"] < 0.2 and b["depth_change_vs_empty"] > 0.1
    assert b["semantic_agreement_with_empty"] < a["semantic_agreement_with_empty"]
    assert b["depth_change_between_windows"] > 0.1 and a["depth_change_between_windows"] == 0


def test_teacher_agreement_puts_the_empty_window_beside_the_model():
    out = Outputs()
    teacher = FrameTeacher({}, {})
    rec = Recording(width=32, height=24)
    for k in range(3):
        stamp = 10**9 + k * 50_000_000
        truth = _layout(10 + k)
        teacher.depth[stamp], teacher.semantic[stamp] = truth, (truth > 10).astype(np.uint8)
        out.depth[stamp], out.semantic[stamp] = truth * 2.0, (truth > 10).astype(np.uint8)
        rec.frames[stamp] = np.zeros((24, 32), np.uint8)
    empty = {"depth": _layout(0), "semantic": np.zeros((24, 32), np.uint8)}
    agreement = score_label_free(out, rec, empty, teacher=teacher)["teacher_agreement"]
    model, blank = agreement["model"], agreement["empty_window"]
    assert model["depth_absrel_median_scaled"] == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert model["depth_rank_correlation"] == pytest.approx(1.0)
    assert model["semantic_agreement"] == 1.0
    assert blank["depth_rank_correlation"] < 0.3 and blank["semantic_agreement"] < 1.0
    assert model["windows"] == 3


def _textured(shift: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur(cv2.resize(rng.integers(0, 255, (60, 80), dtype=np.uint8),
                                       (400, 300), interpolation=cv2.INTER_NEAREST), (3, 3), 0)
    return np.ascontiguousarray(base[30:270, 40 + shift:360 + shift])


def test_frames_give_a_reference_motion_that_identity_fails():
    out, rec = Outputs(), Recording(width=320, height=240)
    rec.K = np.array([[250.0, 0, 159.5], [0, 250.0, 119.5], [0, 0, 1]])
    for k in range(3):
        stamp = 10**9 + k * 50_000_000
        rec.frames[stamp] = _textured(12 * k)
        out.depth[stamp] = np.full((240, 320), 5.0, np.float32)
    pose = score_label_free(out, rec, None, frame_pose=xfeat_pose)["pose"]
    assert pose["reference"]["pairs"] == 2
    # 12 px a step on 20 px cells: 1 - 12/20 of the matches stay in their cell
    assert pose["reference"]["unmoved_fraction"] == pytest.approx(0.4, abs=0.1)
    assert pose["identity"]["auc_20"] == 0.0
    assert pose["model"]["failures"] == 2  # no pose was published


def test_a_tum_trajectory_is_interpolated_onto_the_windows(tmp_path):
    path = tmp_path / "traj.txt"
    lines = ["# t tx ty tz qx qy qz qw"]
    for k in range(11):  # 100 Hz, moving 1 cm and turning 0.1 deg per step
        q = Rotation.from_euler("y", 0.1 * k, degrees=True).as_quat()
        lines.append(f"{1.0 + 0.01 * k:.6f} {0.01 * k} 0 0 " + " ".join(f"{v:.9f}" for v in q))
    path.write_text("\n".join(lines) + "\n")
    stamps = [1_005_000_000, 1_055_000_000, 1_095_000_000, 2_000_000_000]
    poses = trajectory_at(path, stamps)
    assert sorted(poses) == stamps[:3]  # the last is outside the trajectory
    assert poses[1_055_000_000][0, 3] == pytest.approx(0.055, abs=1e-9)
    gt, out = GroundTruth(pose=poses), Outputs()
    for s in stamps[:3]:
        out.depth[s] = np.ones((4, 4), np.float32)
    s0, s1 = stamps[:2]
    out.pose[s1] = np.linalg.inv(poses[s1]) @ poses[s0]  # exact
    m = score(out, gt)
    assert m["pose"]["model"]["pairs"] == 2 and m["pose"]["model"]["failures"] == 1


def test_eval_on_a_real_driver_bag_without_labels(tmp_path):
    bag = DATA / "real_bags" / "libcaer_cmp_davis346"  # eval takes a private DDS domain
    result = subprocess.run([sys.executable, "-m", "event_fm.cli.main", "eval", str(bag),
                             "--out", str(tmp_path), "--rate", "0.5"], capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "none in this recording" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    lf = report["metrics"]["label_free"]
    sens = lf["input_sensitivity"]
    for key in ("depth_change_vs_empty", "depth_rank_corr_with_empty",
                "semantic_agreement_with_empty", "semantic_agreement_with_mode_layout"):
        assert np.isfinite(sens[key]), key
    assert 0.0 <= lf["pose"]["model"]["unmoved_fraction"] <= 1.0
    assert 0.0 <= lf["pose"]["orb_event_frames"]["unmoved_fraction"] <= 1.0
    text = (tmp_path / "report.md").read_text()
    assert "Does the output follow the input?" in text and "| orb event frames |" in text
