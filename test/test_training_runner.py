"""The training runner: losses fall, a killed run resumes exactly, DDP over gloo matches one
process with the same global batch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import torch
from helpers.toy_task import ToyTask

from training.runner import RunConfig, run

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


def test_ddp_gloo_two_processes_match_one(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH",
                                                                                 "")]),
               OMP_NUM_THREADS="1")
    script = str(HERE / "helpers" / "ddp_toy_train.py")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    for procs, out in ((1, "one"), (2, "two")):
        result = subprocess.run([*torchrun, f"--nproc_per_node={procs}", script,
                                 str(tmp_path / out), "8"], env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    one = torch.load(tmp_path / "one" / "final.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "final.pt", weights_only=True)
    losses_one = [float(r["loss"]) for r in csv.DictReader((tmp_path / "one" / "log.csv").open())]
    losses_two = [float(r["loss"]) for r in csv.DictReader((tmp_path / "two" / "log.csv").open())]
    assert len(losses_one) == len(losses_two) == 8
    # same global batches, averaged gradients: the same optimization up to float rounding
    for key in one:
        torch.testing.assert_close(one[key], two[key], atol=1e-5, rtol=1e-4)
    assert abs(losses_one[-1] - losses_two[-1]) < 1e-4 * max(1.0, abs(losses_one[-1]))
