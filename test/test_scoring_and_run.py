"""`event-fm eval` scoring against ground truth, and `event-fm run` starting the node graph."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from event_fm.evaluation.scoring import GroundTruth, Outputs, score


def _rot(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    T = np.eye(4)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    return T


def test_score_perfect_and_known_errors():
    gt, out = GroundTruth(), Outputs()
    rng = np.random.default_rng(0)
    poses = [_rot(2 * k) for k in range(4)]
    for k in range(4):
        stamp = 1_000 + k * 50_000_000
        depth = rng.uniform(2, 60, (6, 8)).astype(np.float32)
        labels = rng.integers(0, 11, (6, 8)).astype(np.uint8)
        gt.depth[stamp], gt.semantic[stamp], gt.pose[stamp] = depth, labels, poses[k]
        out.depth[stamp] = depth + 1.0  # 1 m off everywhere
        out.semantic[stamp] = labels
        if k:
            out.pose[stamp] = np.linalg.inv(poses[k]) @ poses[k - 1]  # exact relative motion
    m = score(out, gt)
    assert m["scored_windows"] == {"depth": 4, "semantic": 4, "pose": 3}
    assert m["depth_mae_30m"] == pytest.approx(1.0, abs=1e-5)
    assert m["miou"] == pytest.approx(1.0)
    assert m["pose_median_rot_deg"] == pytest.approx(0.0, abs=1e-4)
    assert m["pose_auc_5"] == pytest.approx(1.0, abs=1e-4)


def test_score_resizes_outputs_to_truth_and_skips_unmatched_stamps():
    gt, out = GroundTruth(), Outputs()
    gt.depth[10] = np.full((4, 4), 5.0, np.float32)
    out.depth[10] = np.full((8, 8), 6.0, np.float32)
    out.depth[99_999_999] = np.zeros((8, 8), np.float32)  # no ground truth for this stamp
    m = score(out, gt)
    assert m["scored_windows"]["depth"] == 1
    assert m["depth_mae_10m"] == pytest.approx(1.0)


def test_event_fm_run_starts_the_graph_and_stops_cleanly(tmp_path):
    pytest.importorskip("rclpy")
    import torch

    from event_fm.models import EventFM, EventFMConfig, save_model

    torch.manual_seed(0)
    save_model(EventFM(EventFMConfig(preset="tiny", with_teacher=False)), tmp_path / "m")
    proc = subprocess.Popen([sys.executable, "-m", "event_fm.cli.main", "run", "--checkpoint",
                             str(tmp_path / "m"), "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        log = b""
        deadline = time.monotonic() + 60
        while b"outputs" not in log and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            log += proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else b""
        assert b"model" in log and b"on cpu" in log, log.decode()
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, (log + rest).decode()


def test_event_fm_run_reports_a_missing_checkpoint(tmp_path):
    pytest.importorskip("rclpy")
    result = subprocess.run([sys.executable, "-m", "event_fm.cli.main", "run", "--checkpoint",
                             str(tmp_path / "missing"), "--device", "cpu"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "missing" in result.stdout + result.stderr


def test_event_fm_run_rejects_a_device_that_does_not_exist(tmp_path):
    pytest.importorskip("rclpy")
    result = subprocess.run([sys.executable, "-m", "event_fm.cli.main", "run", "--device",
                             "cuda:7"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "cuda:7" in result.stdout + result.stderr
