"""The package builds in a colcon workspace as a robot builds it, plain and --symlink-install,
and both import packages (``event_fm`` and ``training``) come from the workspace afterwards.

A ``package_dir`` remap once made ``--symlink-install`` (setuptools develop mode) install a
generic top-level ``training`` that was not ours; this is the proof that it no longer does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.workspace import COLCON, build_workspace, sourced, workspace_env

pytestmark = pytest.mark.skipif(COLCON is None, reason="colcon is not installed (make setup "
                                                       "installs it into the venv)")

IMPORT_CHECK = (
    "import os, event_fm, training, training.runner, event_fm.dataset.sync, "
    "event_fm.evaluation.scoring; print(event_fm.__file__); print(training.__file__); "
    "print(os.path.realpath(training.runner.__file__))"
)


@pytest.mark.parametrize("symlink", [False, True], ids=["plain", "symlink-install"])
def test_colcon_build_installs_both_import_packages(tmp_path, request, symlink):
    if symlink:
        ws = tmp_path / "ws"
        src = build_workspace(ws, symlink)
    else:
        ws = request.getfixturevalue("plain_workspace")
        src = ws / "src" / "event_fm"
    index = ws / "install/event_fm/share/ament_index/resource_index/packages/event_fm"
    assert index.is_file(), "the package is not registered in the workspace's ament index"
    run = subprocess.run(sourced(ws, f"cd / && {sys.executable} -c '{IMPORT_CHECK}'"),
                         capture_output=True, text=True, timeout=120, env=workspace_env())
    assert run.returncode == 0, run.stdout + run.stderr
    event_fm_init, training_init, runner = run.stdout.split()
    for path in (event_fm_init, training_init):
        assert path.startswith(str(ws)), f"imported from outside the workspace: {path}"
    assert Path(training_init).parent.name == "training"
    if symlink:  # develop mode: the workspace points back into src, edits take effect at once
        assert runner == str(src / "training" / "runner.py")
    else:
        assert runner.startswith(str(ws / "install"))
