"""Tools that talk DDS keep to themselves (issue 17, case 6): ``eval`` runs its graph in a
private domain, so a publisher on the default domain cannot mix packets into its scores, and
it refuses to score when another publisher shares its domain and topic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers.sim_cli import simulate_bag

pytest.importorskip("rclpy", reason="make setup provides rclpy; run tests via make test")

CLI = [sys.executable, "-m", "event_fm.cli.main"]


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return simulate_bag(tmp_path_factory.mktemp("iso") / "bag", 64, 48, 0.6, 5)


def _intruder(bag, domain: int) -> subprocess.Popen:
    """Another job: the same recording looped on the same topic, in ``domain``."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    return subprocess.Popen([*CLI, "replay", str(bag), "--loop", "--domain", str(domain)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _eval(bag, out, *extra, env_domain: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "ROS_DOMAIN_ID": str(env_domain)}
    return subprocess.run([*CLI, "eval", str(bag), "--out", str(out), "--device", "cpu",
                           *extra], env=env, capture_output=True, text=True, timeout=240)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_eval_is_private_by_default_and_refuses_a_shared_domain(bag, tmp_path):
    shared = 150 + os.getpid() % 50
    intruder = _intruder(bag, shared)
    try:
        time.sleep(2.0)
        alone = _eval(bag, tmp_path / "alone", env_domain=shared)
        mixed = _eval(bag, tmp_path / "mixed", "--domain", str(shared), env_domain=shared)
    finally:
        _stop(intruder)
    # in its own domain the intruder is unheard: the scores come from the recording alone
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert "windows:" in alone.stdout
    assert "sensor resets" not in alone.stderr
    # told to share the intruder's domain, it refuses rather than scoring a mixed stream
    assert mixed.returncode != 0
    assert "refusing to score" in mixed.stderr
    assert "Traceback" not in mixed.stderr


def test_domain_is_validated():
    result = subprocess.run([*CLI, "replay", "nonexistent", "--domain", "999"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--domain must be in 0..232" in result.stderr
