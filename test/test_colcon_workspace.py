"""The package builds in a colcon workspace as a robot builds it, plain and --symlink-install,
and both import packages (``event_fm`` and ``training``) come from the workspace afterwards.

A ``package_dir`` remap once made ``--symlink-install`` (setuptools develop mode) install a
generic top-level ``training`` that was not ours; this is the proof that it no longer does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLCON = shutil.which("colcon", path=str(Path(sys.executable).parent)) or shutil.which("colcon")
pytestmark = pytest.mark.skipif(COLCON is None, reason="colcon is not installed (make setup "
                                                       "installs it into the venv)")
# what a robot needs to build and run; test data and the demo bag stay behind
SKIP_TOP = {"test", "demo", "docs", "benchmarks", "out", "data"}

IMPORT_CHECK = (
    "import event_fm, training, training.runner, event_fm.dataset.sync, "
    "event_fm.evaluation.scoring; print(event_fm.__file__); print(training.__file__); "
    "print(os.path.realpath(training.runner.__file__))"
)


def _copy_package(src_root: Path) -> Path:
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    dst = src_root / "event_fm"
    for rel in tracked:
        if rel.split("/")[0] in SKIP_TOP or not (REPO / rel).is_file():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst / rel)
    return dst


def _build_and_import(ws: Path, symlink: bool) -> list[str]:
    args = [COLCON, "build", "--event-handlers", "console_direct-"]
    if symlink:
        args.append("--symlink-install")
    build = subprocess.run(args, cwd=ws, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    index = ws / "install/event_fm/share/ament_index/resource_index/packages/event_fm"
    assert index.is_file(), "the package is not registered in the workspace's ament index"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    run = subprocess.run(
        ["bash", "-c", f"source install/setup.bash && cd / && {sys.executable} -c "
                       f"'import os; {IMPORT_CHECK}'"],
        cwd=ws, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout.split()


@pytest.mark.parametrize("symlink", [False, True], ids=["plain", "symlink-install"])
def test_colcon_build_installs_both_import_packages(tmp_path, symlink):
    ws = tmp_path / "ws"
    src = _copy_package(ws / "src")
    event_fm_init, training_init, runner = _build_and_import(ws, symlink)
    for path in (event_fm_init, training_init):
        assert path.startswith(str(ws)), f"imported from outside the workspace: {path}"
    assert Path(training_init).parent.name == "training"
    if symlink:  # develop mode: the workspace points back into src, edits take effect at once
        assert runner == str(src / "training" / "runner.py")
    else:
        assert runner.startswith(str(ws / "install"))
