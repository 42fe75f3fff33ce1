"""A colcon workspace with this repository in src/, built as a robot builds it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLCON = shutil.which("colcon", path=str(Path(sys.executable).parent)) or shutil.which("colcon")
# what a robot needs to build and run; test data and the demo bag stay behind
SKIP_TOP = {"test", "demo", "docs", "benchmarks", "out", "data"}


def copy_package(src_root: Path) -> Path:
    """The repository's files (tracked, and new ones git does not ignore) under src_root."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    dst = src_root / "event_fm"
    for rel in listed:
        if rel.split("/")[0] in SKIP_TOP or not (REPO / rel).is_file():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst / rel)
    return dst


def build_workspace(ws: Path, symlink: bool) -> Path:
    """``colcon build`` in ws (src/event_fm copied in first); returns the package's src copy."""
    src = copy_package(ws / "src")
    args = [COLCON, "build", "--event-handlers", "console_direct-"]
    if symlink:
        args.append("--symlink-install")
    build = subprocess.run(args, cwd=ws, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    return src


def sourced(ws: Path, command: str) -> list[str]:
    """bash -c that sources the workspace first, as a user's shell does."""
    return ["bash", "-c", f"source {ws}/install/setup.bash && {command}"]


def workspace_env() -> dict[str, str]:
    """This environment without PYTHONPATH (the workspace's setup.bash sets it) and with the
    interpreter's bin first (ros2, colcon: on a robot they come from /opt/ros)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env
