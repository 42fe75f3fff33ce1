"""The training module end to end on CPU: simulated recordings -> shards -> teacher -> distill ->
heads -> evaluate with the smoke configuration; losses fall; checkpoints load; DDP distill with
2 gloo processes matches 1 process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from event_fm.cli.main import main as cli
from event_fm.models import load_model

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "training" / "configs" / "smoke.yaml"


def _mean(rows, key, part):
    values = [float(r[key]) for r in rows]
    k = max(1, len(values) // 4)
    return sum(values[:k]) / k if part == "first" else sum(values[-k:]) / k


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    for seed in (1, 2, 3):
        assert cli(["simulate", "--out", str(root / f"sim/smoke_{seed}"), "--duration", "1",
                    "--resolution", "128x96", "--seed", str(seed), "--quiet"]) == 0
    config = yaml.safe_load(SMOKE.read_text())
    text = yaml.safe_dump(config).replace("out/", f"{root}/out/").replace(
        f"{root}/out/sim/", f"{root}/sim/")
    (root / "smoke.yaml").write_text(text)
    return root


def test_every_stage_end_to_end(workdir, capsys):
    cfg = str(workdir / "smoke.yaml")
    out = workdir / "out" / "train" / "smoke"
    assert cli(["train", "distill", "data", "--config", cfg]) == 0
    index_dirs = list((out / "data").glob("*/*/index.json"))
    assert len(index_dirs) == 3
    for stage in ("teacher", "distill", "heads"):
        assert cli(["train", "distill", stage, "--config", cfg]) == 0, stage
        rows = list(csv.DictReader((out / stage / "log.csv").open()))
        assert _mean(rows, "loss", "last") < _mean(rows, "loss", "first"), stage
        model = load_model(out / stage / "model")
        assert model.img_size == (96, 128)
        assert (out / stage / "loss.png").stat().st_size > 1000
    distill_rows = list(csv.DictReader((out / "distill" / "log.csv").open()))
    assert float(distill_rows[-1]["token_drop"]) == pytest.approx(0.3)  # curriculum reached
    assert cli(["train", "distill", "evaluate", "--config", cfg]) == 0
    report = json.loads((out / "evaluate" / "metrics.json").read_text())
    val = report["sets"]["val"]
    for mode in ("teacher_rgb", "student_events"):
        assert 0 < val[mode]["depth_mae_10m"] < 80  # metres, inside the head's range
        assert 0 <= val[mode]["miou"] <= 1
        assert "pose_auc_5" in val[mode]
    assert (out / "evaluate" / "mosaic_val.png").stat().st_size > 10_000
    assert "student_events" in (out / "evaluate" / "metrics.md").read_text()


def test_bad_recording_is_skipped_with_a_clear_message(workdir, tmp_path, capsys):
    config = yaml.safe_load((workdir / "smoke.yaml").read_text())
    bad = tmp_path / "corrupt_bag"
    bad.mkdir()
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 5}\n")
    (bad / "x.mcap").write_bytes(b"not an mcap file")
    config["data"] = {"root": str(tmp_path / "data"), "splits": {"train": [str(bad)]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert cli(["train", "distill", "data", "--config", str(tmp_path / "c.yaml")]) == 0
    assert "1 failed" in capsys.readouterr().out


def test_distill_torchrun_two_gloo_processes_match_one(workdir):
    """Same global batch over 1 and 2 processes: the same losses (dropout off, no curriculum
    randomness: token dropping starts after these steps)."""
    cfg = workdir / "smoke.yaml"
    config = yaml.safe_load(cfg.read_text())
    teacher = workdir / "out" / "train" / "smoke" / "teacher" / "model"
    if not teacher.exists():
        assert cli(["train", "distill", "data", "--config", str(cfg)]) == 0
        assert cli(["train", "distill", "teacher", "--config", str(cfg), "--steps", "2"]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    losses = {}
    for procs in (1, 2):
        out = workdir / f"ddp{procs}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={procs}", "-m", "training", "distill", "distill", "--config",
               str(cfg), "--out", str(out), "--steps", "4",
               "--set", "distill.token_drop_from=2.0", "run.checkpoint_every=100"]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-4000:]
        rows = list(csv.DictReader((out / "distill" / "log.csv").open()))
        losses[procs] = [float(r["loss"]) for r in rows]
    assert len(losses[1]) == len(losses[2]) == 4
    for a, b in zip(losses[1], losses[2], strict=True):
        assert abs(a - b) <= 0.02 * abs(a), (losses[1], losses[2])
    assert config["run"]["batch_size"] == 4
