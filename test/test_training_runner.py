"""The training runner: losses fall, a killed run resumes exactly, DDP over gloo matches one
process with the same global batch."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.toy_task import ToyTask

from training.runner import EpochSampler, RunConfig, run

HERE = Path(__file__).resolve().parent


def _cfg(out, steps):
    return RunConfig(out_dir=str(out), steps=steps, batch_size=8, lr=1e-2, log_every=1,
                     checkpoint_every=3, device="cpu", seed=7)


def test_loss_falls_and_log_written(tmp_path):
    result = run(ToyTask(), _cfg(tmp_path, 60))
    losses = [row["loss"] for row in result.history]
    assert result.steps_done == 60
    assert sum(losses[-5:]) / 5 < 0.2 * sum(losses[:5]) / 5
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert len(rows) == 60 and (tmp_path / "final.pt").exists()


def test_a_fresh_run_starts_a_fresh_log(tmp_path):
    """Without the runner's state the run starts at step 0: its log.csv is its own, not the
    earlier run's rows followed by the new ones."""
    run(ToyTask(), _cfg(tmp_path, 5))
    (tmp_path / "train_state.pt").unlink()
    run(ToyTask(), _cfg(tmp_path, 4))
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]


def test_killed_run_resumes_exactly(tmp_path):
    straight = ToyTask()
    run(straight, _cfg(tmp_path / "a", 9))
    killed = ToyTask()
    partial = run(killed, _cfg(tmp_path / "b", 9), stop_after=4)  # dies after step 4
    assert partial.steps_done == 4 and not (tmp_path / "b" / "final.pt").exists()
    resumed = ToyTask()
    result = run(resumed, _cfg(tmp_path / "b", 9))
    assert result.resumed_from == 3  # last checkpoint before the kill
    for a, b in zip(straight.net.state_dict().values(), resumed.net.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b)


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH",
                                                                                  "")]),
                OMP_NUM_THREADS="1")


SCRIPT = str(HERE / "helpers" / "ddp_toy_train.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _torchrun(procs: int, out: Path, steps: int, *extra: str) -> None:
    result = subprocess.run([*TORCHRUN, "--standalone", f"--nproc_per_node={procs}", SCRIPT,
                             str(out), str(steps), *extra], env=_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def _weights(out: Path) -> dict:
    return torch.load(out / "final.pt", weights_only=True)


def _losses(out: Path) -> list[float]:
    return [float(r["loss"]) for r in csv.DictReader((out / "log.csv").open())]


def _assert_same_weights(a: dict, b: dict) -> None:
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "one"
    _torchrun(1, out, 8)
    return out


def test_ddp_gloo_two_processes_match_one(tmp_path, one_process):
    _torchrun(2, tmp_path / "two", 8)
    losses_one, losses_two = _losses(one_process), _losses(tmp_path / "two")
    assert len(losses_one) == len(losses_two) == 8
    # same global batches, averaged gradients: the same optimization up to float rounding
    _assert_same_weights(_weights(one_process), _weights(tmp_path / "two"))
    assert abs(losses_one[-1] - losses_two[-1]) < 1e-4 * max(1.0, abs(losses_one[-1]))


def test_two_node_rendezvous_on_localhost_matches_one_process(tmp_path, one_process):
    """Two "nodes" (torchrun --nnodes 2, c10d rendezvous on 127.0.0.1), each with its own output
    folder as on machines without a shared disk: rank 0 alone writes logs and checkpoints."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nodes = []
    for node in (0, 1):
        cmd = [*TORCHRUN, "--nnodes=2", "--nproc_per_node=1", f"--node_rank={node}",
               "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=toy",
               "--max_restarts=0", SCRIPT, str(tmp_path / f"node{node}"), "8"]
        nodes.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    try:
        for proc in nodes:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in nodes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    _assert_same_weights(_weights(one_process), _weights(tmp_path / "node0"))
    assert len(_losses(tmp_path / "node0")) == 8
    node1 = tmp_path / "node1"
    assert not node1.exists() or sorted(p.name for p in node1.iterdir()) == []


def test_resume_across_a_changed_world_size(tmp_path, one_process):
    """Killed after 4 steps on 2 processes (checkpoint every 2), resumed on 1: the same
    optimisation as 8 uninterrupted steps on one process, and the log continues."""
    out = tmp_path / "resized"
    _torchrun(2, out, 8, "4", "2")
    assert not (out / "final.pt").exists() and len(_losses(out)) == 4
    _torchrun(1, out, 8, "-", "2")
    _assert_same_weights(_weights(one_process), _weights(out))
    assert len(_losses(out)) == 8
    # and back up: 1 -> 2 processes
    grown = tmp_path / "grown"
    _torchrun(1, grown, 8, "4", "2")
    _torchrun(2, grown, 8, "-", "2")
    _assert_same_weights(_weights(one_process), _weights(grown))


def test_ranks_split_every_global_batch_without_duplication():
    one = list(EpochSampler(50, seed=3, global_batch=8))
    for world in (2, 4):
        parts = [list(EpochSampler(50, seed=3, global_batch=8, rank=r, world=world))
                 for r in range(world)]
        per = 8 // world
        assert all(len(p) == len(one) // world for p in parts)
        flat = [i for p in parts for i in p]
        assert len(set(flat)) == len(flat) == len(one)  # disjoint: no sample twice per epoch
        for b in range(len(one) // 8):  # global batch b is the union of the ranks' slices
            assert sorted(i for p in parts for i in p[b * per:(b + 1) * per]) == \
                sorted(one[b * 8:(b + 1) * 8])
