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
    for kind in ("student_tokens", "gep_features", "student_and_gep"):
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


def test_fitted_reference_and_validated_update_scale_end_to_end(setup):
    """`model.reference: ar` with `fit.validation_recordings`: the last training recording is
    left out, the update scale fitted on it is in the saved model and the fit summary, and the
    evaluation scores the fitted reference alone beside GEP."""
    from event_fm.models.gep import load_gep
    from training.gep.evaluate import evaluate_set
    from training.gep.pipeline import GEPSession

    tmp, _ = setup
    (root,) = [p.parent for p in (tmp / "out").glob("*/tokens")]
    rc = train_main(["gep", "fit", "--config", str(tmp / "gep.yaml"), "--into", "fit_ar",
                     "--set", "model.reference=ar", "--set", "model.ar_windows=2",
                     "--set", "fit.validation_recordings=1", "fit.validate_every=1",
                     "--steps", "3",
                     "--device", "cpu"])
    assert rc == 0
    summary = json.loads((root / "fit_ar" / "summary.json").read_text())
    assert summary["training_recordings"] == 1
    cal = summary["calibration"]
    assert 0.0 <= cal["update_scale"] <= 1.0
    assert cal["validation_windows"] == 8  # two runs of 4 windows from the 10 of rec_b
    assert cal["validation_mse_scaled_update"] <= cal["validation_mse_reference"] + 1e-9
    # scored before every step and after the last; the saved state is the best of them
    assert [c["step"] for c in cal["curve"]] == [0, 1, 2, 3]
    best = min(cal["curve"], key=lambda c: c["validation_mse_scaled_update"])
    assert cal["best_step"] == best["step"]
    assert cal["validation_mse_scaled_update"] == pytest.approx(
        best["validation_mse_scaled_update"], rel=1e-5)
    # the same command again resumes the finished fit: the curve and the best state stay
    rerun = ["gep", "fit", "--config", str(tmp / "gep.yaml"), "--into", "fit_ar", "--set",
             "model.reference=ar", "model.ar_windows=2", "fit.validation_recordings=1",
             "fit.validate_every=1", "--steps", "3", "--device", "cpu"]
    saved = (root / "fit_ar" / "model" / "model.safetensors").read_bytes()
    assert train_main(rerun) == 0
    again = json.loads((root / "fit_ar" / "calibration.json").read_text())
    assert again["curve"] == cal["curve"] and again["best_step"] == cal["best_step"]
    assert (root / "fit_ar" / "model" / "model.safetensors").read_bytes() == saved
    # a longer run resumes from step 3: the earlier scores are kept, new ones follow
    assert train_main(rerun[:-4] + ["--steps", "5", "--device", "cpu"]) == 0
    longer = json.loads((root / "fit_ar" / "calibration.json").read_text())
    assert [c["step"] for c in longer["curve"]] == [0, 1, 2, 3, 4, 5]
    assert longer["curve"][:3] == cal["curve"][:3]
    # without the runner's state the fit starts afresh and the old record is dropped
    (root / "fit_ar" / "train_state.pt").unlink()
    assert train_main(rerun) == 0
    cal = json.loads((root / "fit_ar" / "summary.json").read_text())["calibration"]
    assert [c["step"] for c in cal["curve"]] == [0, 1, 2, 3]
    model = load_gep(root / "fit_ar" / "model")
    assert float(model.update_scale) == pytest.approx(cal["update_scale"])
    assert model.ar_weights.shape == (2, 2, model.config.token_dim)
    assert not torch.equal(model.ar_weights[:, 0], torch.ones_like(model.ar_weights[:, 0]))
    config = yaml.safe_load((tmp / "gep.yaml").read_text())
    session = GEPSession(config, tmp / "ckpt", root, device="cpu")
    from event_fm.models import load_model

    result = evaluate_set(model, load_model(tmp / "ckpt"), session.load("heldout_test"),
                          context=3, horizons=0, batch_size=4)
    assert {"linear_extrapolation", "gep", "mean_last2"} <= set(result)
    # without its update, GEP's rollout is exactly the row scored as its reference alone
    model.update_scale.fill_(0.0)
    bare = evaluate_set(model, load_model(tmp / "ckpt"), session.load("heldout_test"),
                        context=3, horizons=0, batch_size=4)
    assert bare["gep"]["feature_mse"] == pytest.approx(
        bare["linear_extrapolation"]["feature_mse"], rel=1e-5)
    assert bare["gep"]["feature_mse"] != pytest.approx(bare["mean_last2"]["feature_mse"],
                                                       rel=1e-3)


def test_report_reuses_a_current_fit_and_retrains_a_stale_one(setup):
    tmp, _ = setup
    (root,) = [p.parent for p in (tmp / "out").glob("*/tokens")]
    weights = root / "fit" / "model" / "model.safetensors"
    argv = ["gep", "report", "--config", str(tmp / "gep.yaml"), "--docs", str(tmp / "docs2"),
            "--device", "cpu"]
    before = weights.stat().st_mtime_ns
    assert train_main(argv) == 0
    assert weights.stat().st_mtime_ns == before  # same config: the fit is reused
    assert train_main(argv + ["--set", "model.dropout=0.1"]) == 0
    assert weights.stat().st_mtime_ns != before  # another model config: trained again
    assert json.loads((root / "fit" / "model" / "config.json").read_text())[
        "config"]["dropout"] == 0.1
    assert train_main(argv + ["--set", "model.dropout=0.1", "fit.lr=0.002"]) == 0
    assert json.loads((root / "fit" / "fit_section.json").read_text())["lr"] == 0.002


def test_report_of_a_fitted_reference_shows_its_validation_and_its_reference_row(setup):
    tmp, _ = setup
    docs = tmp / "docs_ar"
    assert train_main(["gep", "report", "--config", str(tmp / "gep.yaml"), "--docs", str(docs),
                       "--device", "cpu", "--set", "model.reference=ar",
                       "fit.validation_recordings=1", "fit.validate_every=1"]) == 0
    text = (docs / "gep.md").read_text()
    assert "## Validation recordings" in text and (docs / "gep_validation.png").stat().st_size
    assert "GEP's fitted linear extrapolation alone" in text
    summary = json.loads((docs / "gep.json").read_text())
    assert set(summary) == {"copy_last", "mean_last2", "linear_extrapolation", "gep"}
    assert "both side by side" in text


def test_event_only_variant_is_fitted_and_scored(setup):
    """`model.with_frames: false` (event groups only): its context holds twice the windows of
    the mixed sequence, and the evaluation and the probe take it."""
    from event_fm.models import load_model
    from event_fm.models.gep import load_gep
    from training.gep.data import WindowGroups
    from training.gep.evaluate import evaluate_set
    from training.gep.pipeline import GEPSession
    from training.gep.probe import gep_event_features

    tmp, _ = setup
    (root,) = [p.parent for p in (tmp / "out").glob("*/tokens")]
    assert train_main(["gep", "fit", "--config", str(tmp / "gep.yaml"), "--into", "fit_ev",
                       "--set", "model.with_frames=false", "--steps", "2",
                       "--device", "cpu"]) == 0
    model = load_gep(root / "fit_ev" / "model")
    assert model.config.with_frames is False and model.period == model.config.group_size
    session = GEPSession(yaml.safe_load((tmp / "gep.yaml").read_text()), tmp / "ckpt", root,
                         device="cpu")
    tokens = session.load("heldout_test")
    result = evaluate_set(model, load_model(tmp / "ckpt"), tokens, context=3, horizons=2,
                          horizon_stride=2, batch_size=4)
    assert result["windows"] == 7 and np.isfinite(result["gep"]["feature_mse"])
    assert len(result["horizon"]["gep"]["feature_mse"]) == 2
    hidden = gep_event_features(model, WindowGroups(tokens, model.config.agg_grid))
    assert hidden.shape == (8, model.config.group_size, model.config.width)


def test_depth_term_trains_the_predicted_tokens_toward_the_next_depth(setup):
    """`fit.depth_weight`: the predicted event groups also pass through the checkpoint's frozen
    depth head; its loss joins the objective (logged as `depth`), the validation curve and the
    update scale are scored on the whole objective, and the head's weights never change."""
    from event_fm.models import load_model
    from training.gep.depth import DepthDecoder
    from training.gep.extrapolation import DepthTerm, validation_scores
    from training.gep.pipeline import GEPSession

    tmp, _ = setup
    (root,) = [p.parent for p in (tmp / "out").glob("*/tokens")]
    args = ["gep", "fit", "--config", str(tmp / "gep.yaml"), "--into", "fit_depth", "--set",
            "model.reference=ar", "model.ar_windows=2", "fit.validation_recordings=1",
            "fit.validate_every=2", "fit.depth_weight=5.0", "fit.depth_windows=2",
            "fit.lr=0.01", "fit.log_every=1", "--device", "cpu"]
    head_before = {k: v.clone() for k, v in
                   load_model(tmp / "ckpt").heads["depth"].state_dict().items()}
    assert train_main(args + ["--steps", "12"]) == 0
    log = (root / "fit_depth" / "log.csv").read_text().splitlines()
    columns = log[0].split(",")
    rows = [dict(zip(columns, line.split(","), strict=True)) for line in log[1:]]
    assert {"depth", "feature_loss"} <= set(columns)
    for r in rows:  # the logged loss is the feature loss plus the weighted depth term
        assert float(r["loss"]) == pytest.approx(
            float(r["feature_loss"]) + 5.0 * float(r["depth"]), rel=1e-4)
    # the tokens learn to decode into the next window's depth (a constant per window here)
    assert float(rows[-1]["depth"]) < 0.5 * float(rows[0]["depth"])
    cal = json.loads((root / "fit_depth" / "calibration.json").read_text())
    assert cal["validation_objective"] == pytest.approx(
        cal["validation_mse_scaled_update"] + 5.0 * cal["validation_depth_loss_scaled_update"],
        rel=1e-5)
    best = min(cal["curve"], key=lambda c: c["validation_objective"])
    assert cal["best_step"] == best["step"]
    # the saved model on its validation recording again: the scale kept is the grid's best
    # on the whole objective, and never worse there than no update or the full one
    config = yaml.safe_load((tmp / "gep.yaml").read_text())
    session = GEPSession(config, tmp / "ckpt", root, device="cpu")
    from event_fm.models.gep import load_gep
    from training.gep.data import WindowGroups, split_last_recordings
    from training.gep.extrapolation import SCALE_GRID

    model = load_gep(root / "fit_depth" / "model")
    assert float(model.update_scale) == pytest.approx(cal["update_scale"])
    _, val_tokens = split_last_recordings(session.load("train"), 1)
    groups = WindowGroups(val_tokens, model.config.agg_grid)
    term = DepthTerm(DepthDecoder(load_model(tmp / "ckpt")), groups.depth,
                     model.config.agg_grid, 5.0)
    again = validation_scores(model, groups, 4, term, SCALE_GRID)
    assert again["update_scale"] == pytest.approx(cal["update_scale"])
    assert again["validation_objective"] == pytest.approx(cal["validation_objective"], rel=1e-5)
    for fixed in (0.0, 1.0):
        alone = validation_scores(model, groups, 4, term, (fixed,))
        if alone["update_scale"] != fixed:  # the least-squares scale is always a candidate
            continue
        assert again["validation_objective"] <= alone["validation_objective"] + 1e-9
    # the report says what the objective was, with the term's first and last values
    from training.gep.report import markdown
    from training.report import Report

    report = GEPSession(config, tmp / "ckpt", root, device="cpu", fit_name="fit_depth").evaluate()
    term = report["fit"]["depth_term"]
    assert term["weight"] == 5.0 and term["windows"] == 2
    assert term["last_depth"] == pytest.approx(float(rows[-1]["depth"]), rel=1e-5)
    text = markdown(report, Report(tmp / "docs_depth", "gep"), root / "fit_depth")
    assert "the next-token MSE plus 5 x a depth term" in text
    assert "With the depth term GEP's groups are not bounded" in text
    # the depth head the term decoded with is the checkpoint's, untouched by the fit
    for k, v in load_model(tmp / "ckpt").heads["depth"].state_dict().items():
        assert torch.equal(v, head_before[k])
