"""`event-fm match`: two moments of a recording matched and drawn (image-event, event-event,
image-image), with the pose error against the bag's /gt/pose."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo" / "bag"


def _match(tmp_path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "event_fm.cli.main", "match", str(DEMO),
                           "--out", str(tmp_path / "m.png"), *extra], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("kind", ["image-event", "event-event", "image-image"])
def test_match_writes_a_picture_and_scores_the_pose(tmp_path, kind):
    extra = ["--at", "0.5", "--to", "0.65", "--kind", kind]  # the shipped models/event_matcher
    result = _match(tmp_path, *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{kind}:" in result.stdout and "matches" in result.stdout
    assert "error against /gt/pose" in result.stdout
    rot, trans = re.search(r"rotation ([\d.]+) deg, translation direction ([\d.]+) deg",
                           result.stdout).groups()
    assert float(rot) < 3.0  # the camera turns < 1 deg between the two moments
    if kind != "image-event":  # the cross-modal row is the weak one (AUC@10 ~0.1 on sim)
        assert float(trans) < 15.0
    assert (tmp_path / "m.png").stat().st_size > 5_000


def test_match_refuses_a_moment_without_a_frame_or_events(tmp_path):
    result = _match(tmp_path, "--at", "30", "--to", "31")
    assert result.returncode == 2
    assert "no camera frame" in result.stderr or "events in the window" in result.stderr
    assert "Traceback" not in result.stderr
