"""``event-fm train gep report`` end to end on a tiny checkpoint and tiny shards made here:
tokens -> fit -> evaluate -> docs/gep.{md,json,png}, with the copy-last numbers recomputed
from the token cache by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from event_fm.dataset.shards import Sample, ShardWriter
from event_fm.io.events import EVENT_DTYPE
from event_fm.models import EventFM, EventFMConfig, save_model
from event_fm.models.gep import aggregate_patches
from training.cli import main as train_main

SIZE = 64  # sensor and model input, 4x4 tokens of the tiny preset


def write_recording(root, split: str, name: str, windows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    writer = ShardWriter(root / split / name, samples_per_shard=4)
    for i in range(windows):
        t0, t1 = i * 50_000_000, (i + 1) * 50_000_000
        n = 400
        ev = np.zeros(n, EVENT_DTYPE)
        # an edge sweeping right: consecutive windows differ a little, as in a real recording
        ev["x"] = np.clip(rng.normal(8 + 4 * i, 2, n), 0, SIZE - 1).astype(np.uint16)
        ev["y"] = rng.integers(0, SIZE, n)
        ev["t"] = np.sort(rng.integers(t0, t1, n))
        ev["p"] = rng.integers(0, 2, n)
        image = np.full((SIZE, SIZE, 3), 40 + 10 * i, np.uint8)
        depth = np.full((SIZE, SIZE), 2.0 + 0.2 * i, np.float32)
        # deliberately stored out of time order: the token cache must sort
        writer.add(Sample(events=ev, t_start=t0, t_end=t1, stamp_ns=t1, width=SIZE,
                          height=SIZE, image=image, depth=depth, source=name))
    writer.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gep")
    torch.manual_seed(0)
    model = EventFM(EventFMConfig(preset="tiny", img_size=(SIZE, SIZE), heads=("depth",),
                                  depth_bins=16, lora_rank=2, lora_alpha=2.0))
    save_model(model.eval(), tmp / "ckpt")
    for name, seed in (("rec_a", 1), ("rec_b", 2)):
        write_recording(tmp / "data", "train", name, 10, seed)
    write_recording(tmp / "data", "heldout", "rec_c", 8, 3)
    config = {
        "checkpoints": [str(tmp / "missing"), str(tmp / "ckpt")],
        "out": str(tmp / "out"),
        "data": {"root": str(tmp / "data"), "train": "train", "heldout": {"test": "heldout"}},
        "tokens": {"batch_size": 4},
        "model": {"width": 32, "depth": 1, "num_heads": 2, "agg_grid": [2, 2],
                  "reference": "mean_last2",
                  "max_windows": 4},
        "fit": {"windows": 4, "steps": 4, "batch_size": 4, "lr": 0.001, "log_every": 2,
                "checkpoint_every": 2, "device": "cpu"},
        "evaluate": {"context": 3, "horizons": 2, "horizon_stride": 2, "batch_size": 4,
                     "probe_steps": 3},
    }
    path = tmp / "gep.yaml"
    path.write_text(yaml.safe_dump(config))
    rc = train_main(["gep", "report", "--config", str(path), "--docs", str(tmp / "docs"),
                     "--device", "cpu"])
    return tmp, rc


def test_report_writes_docs_with_exact_keys(setup):
    tmp, rc = setup
    assert rc == 0
    summary = json.loads((tmp / "docs" / "gep.json").read_text())
    assert set(summary) == {"copy_last", "mean_last2", "gep"}
    for values in summary.values():
        assert set(values) == {"feature_mse", "depth_mae_10m"}
        assert all(np.isfinite(v) and v >= 0 for v in values.values())
    for name in ("gep.md", "gep_horizon.png", "gep_depth.png", "gep_loss.png"):
        assert (tmp / "docs" / name).stat().st_size > 0
    text = (tmp / "docs" / "gep.md").read_text()
    assert "| copy_last |" in text and "| mean_last2 |" in text
    assert "## Targets (issue 20)" in text
    assert "- feature_mse: GEP" in text and "- depth probe on held-out test: GEP features" in text


def test_token_cache_is_time_ordered_and_copy_last_matches_by_hand(setup):
    tmp, _ = setup
    (root,) = [p.parent for p in (tmp / "out").glob("*/tokens")]  # one checkpoint, one folder
    assert root.name.endswith("ckpt")  # the first existing checkpoint names it
    tokens = torch.load(root / "tokens" / "heldout_test.pt", weights_only=True)
    assert tokens["event_patch"].shape == (8, 192, 4, 4)
    assert torch.all(torch.diff(tokens["t_end"]) > 0)
    # depth grows 0.2 m per window in the fixture: time order survived shards of 4
    assert torch.allclose(tokens["depth"][:, 0, 0].float(), 2.0 + 0.2 * torch.arange(8),
                          atol=1e-2)
    agg = aggregate_patches(tokens["event_patch"], (2, 2))
    by_hand = float(((agg[1:] - agg[:-1]) ** 2).mean())
    summary = json.loads((tmp / "docs" / "gep.json").read_text())
    assert summary["copy_last"]["feature_mse"] == pytest.approx(by_hand, rel=1e-5)
    metrics = json.loads((root / "evaluate" / "metrics.json").read_text())
    assert metrics["sets"]["test"]["windows"] == 7
    assert metrics["fit"]["steps"] == 4
    assert len(metrics["sets"]["test"]["horizon"]["gep"]["feature_mse"]) == 2
    for kind in ("student_tokens", "gep_features"):
        assert np.isfinite(metrics["probe"][kind]["test"]["depth_mae_10m"])


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "gep.yaml"
    config.write_text(yaml.safe_dump({"checkpoints": [str(tmp_path / "nope")]}))
    assert train_main(["gep", "tokens", "--config", str(config)]) == 1
    assert "no checkpoint found" in capsys.readouterr().err


def test_fit_into_a_variant_folder_with_its_own_settings(setup):
    """`fit --into NAME` trains beside the main fit (ROOT/NAME) with the overrides given, for
    the report's evaluate.variants; the main fit is left as it was."""
    tmp, _ = setup
    (root,) = [p.parent for p in (tmp / "out").glob("*/tokens")]
    main_config = (root / "fit" / "model" / "config.json").read_text()
    rc = train_main(["gep", "fit", "--config", str(tmp / "gep.yaml"), "--into", "fit_last",
                     "--set", "model.reference=last", "--steps", "2", "--device", "cpu"])
    assert rc == 0
    variant = json.loads((root / "fit_last" / "model" / "config.json").read_text())
    assert variant["config"]["reference"] == "last"
    assert json.loads(main_config)["config"]["reference"] == "mean_last2"
    assert (root / "fit" / "model" / "config.json").read_text() == main_config
