"""Simulated recordings for the node tests, made by the real ``event-fm simulate`` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "event_fm.cli.main"]


def simulate_bag(path: Path, width: int, height: int, duration: float, seed: int) -> Path:
    result = subprocess.run([*CLI, "simulate", "--out", str(path), "--duration", str(duration),
                             "--resolution", f"{width}x{height}", "--seed", str(seed), "--quiet"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return path
