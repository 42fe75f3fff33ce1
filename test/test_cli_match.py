"""`event-fm match`: two moments of a recording matched and drawn (image-event, event-event,
image-image), with the pose error against the bag's /gt/pose."""

from __future__ import annotations

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
    from event_fm.models.checkpoint import embedded_checkpoint

    extra = ["--at", "0.5", "--to", "0.65", "--kind", kind]
    if kind != "image-image":
        try:
            embedded_checkpoint("event_matcher")
        except (FileNotFoundError, KeyError):
            from event_fm.models.checkpoint import save
            from event_fm.models.event_matcher import from_xfeat

            save(from_xfeat(), tmp_path / "matcher", "event_matcher", {"note": "untrained"})
            extra += ["--matcher", str(tmp_path / "matcher")]
    result = _match(tmp_path, *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{kind}:" in result.stdout and "matches" in result.stdout
    assert "error against /gt/pose" in result.stdout or "pose: failed" in result.stdout
    assert (tmp_path / "m.png").stat().st_size > 5_000


def test_match_refuses_a_moment_without_a_frame_or_events(tmp_path):
    result = _match(tmp_path, "--at", "30", "--to", "31")
    assert result.returncode == 2
    assert "no camera frame" in result.stderr or "events in the window" in result.stderr
    assert "Traceback" not in result.stderr
