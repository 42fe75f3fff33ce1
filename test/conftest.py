"""Shared test setup: an isolated DDS domain per test session and the repo paths."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "test" / "data"
REAL_BAGS = TEST_DATA / "real_bags"

# Tests that talk over DDS must not hear other test runs on this machine.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

# A suite started in the background of a non-interactive shell inherits SIGINT ignored, and so
# would every process it starts (exec keeps SIG_IGN): tests that stop nodes and `ros2 launch`
# with SIGINT, as a user's Ctrl-C does, need the default disposition back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def one_torch_thread():
    """torch on one intra-op thread for the test (small ops on 2 cores thrash otherwise)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def real_bags() -> Path:
    return REAL_BAGS


@pytest.fixture(scope="session")
def plain_workspace(tmp_path_factory) -> Path:
    """A colcon workspace with this repository in src/, built once (plain install) for the
    tests that need one."""
    from helpers.workspace import build_workspace

    ws = tmp_path_factory.mktemp("colcon") / "ws"
    build_workspace(ws, symlink=False)
    return ws
