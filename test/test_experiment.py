"""The one experiment grammar (``event-fm train FAMILY STEP``) and the one report writer:
every step of every family takes the same options, outputs follow one rule, and the writer lays
out tables/images/JSON the same way for every family. No training here (milliseconds)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from event_fm.evaluation.image_metrics import mse, ssim
from event_fm.evaluation.metrics import SegmentationMetrics, miou, rotation_error_deg
from event_fm.models.pose import rotation_error_deg as pose_rotation_error_deg
from training.cli import FAMILIES, add_arguments
from training.experiment import Context
from training.report import Report, change, fmt

COMMON = ["--set", "a.b=1", "--out", "ROOT", "--checkpoint", "ck", "--device", "cpu",
          "--steps", "3", "--threads", "1", "--docs", "DOCS", "--to", "TO"]
REQUIRED = {("forecast", "sample"): ["--recording", "bag"]}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def families():
    import importlib

    return {name: importlib.import_module(module).FAMILY for name, module in FAMILIES.items()}


def test_the_families_and_their_steps():
    fams = families()
    assert set(fams) == {"distill", "forecast", "gep", "reconstruct"}
    steps = {name: set(f.steps) for name, f in fams.items()}
    assert {"data", "fit", "evaluate", "report", "export"} <= steps["forecast"]
    assert {"data", "fit", "evaluate", "report", "export"} <= steps["reconstruct"]
    assert {"tokens", "fit", "evaluate", "report"} <= steps["gep"]
    assert {"data", "teacher", "heads", "distill", "scratch", "evaluate", "rows", "report",
            "export"} <= steps["distill"]


def test_every_step_takes_the_common_options():
    for name, family in families().items():
        for step in family.steps:
            extra = ["--config", "c.yaml"] + REQUIRED.get((name, step), [])
            args = parse([name, step, *COMMON, *extra])
            assert (args.out, args.checkpoint, args.device, args.steps, args.docs, args.to) == \
                ("ROOT", "ck", "cpu", 3, "DOCS", "TO"), (name, step)
            assert args.set == ["a.b=1"] and args._family is family


def test_every_set_option_counts():
    """--set given several times keeps them all (the last one used to replace the others)."""
    args = parse(["gep", "fit", "--config", "c.yaml", "--set", "a=1", "b=2", "--set", "c=3"])
    assert args.set == ["a=1", "b=2", "c=3"]


def test_one_output_rule():
    fams = families()
    args = parse(["forecast", "fit", "--model", "simvp"])
    ctx = Context(fams["forecast"], "fit", {}, Path("out/forecast"), args)
    assert ctx.out == Path("out/forecast/fit_simvp")  # a step with variants: STEP_VARIANT
    assert ctx.dir("fit", "diffusion") == Path("out/forecast/fit_diffusion")
    assert ctx.dir("align") == Path("out/forecast/align")
    args = parse(["reconstruct", "fit", "--losses", "sobel"])
    ctx = Context(fams["reconstruct"], "fit", {}, Path("R"), args)
    assert ctx.out == Path("R/fit_sobel_only") and ctx.dir("data") == Path("R/data")
    args = parse(["distill", "heads", "--config", "c.yaml"])
    ctx = Context(fams["distill"], "heads", {}, Path("out/train/x"), args)
    assert ctx.out == Path("out/train/x/heads")
    assert ctx.docs == Path("docs")  # report: --docs, else the config's report.docs, else docs


def test_gep_root_is_named_after_the_encoder(tmp_path):
    (tmp_path / "train" / "default" / "rows" / "full" / "model").mkdir(parents=True)
    checkpoint = tmp_path / "train" / "default" / "rows" / "full" / "model"
    args = parse(["gep", "fit", "--checkpoint", str(checkpoint)])
    ctx = Context(families()["gep"], "fit", {}, Path("out/gep"), args)
    assert ctx.out == Path("out/gep/default_rows_full_model/fit")


def test_cli_errors_are_one_line(tmp_path, capsys):
    from training.cli import main

    assert main(["reconstruct", "data", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert capsys.readouterr().err.startswith("event-fm train reconstruct data:")


def test_report_writer_tables_images_json(tmp_path):
    doc = Report(tmp_path, "demo", "Demo report")
    doc.section("Results").table(["row", "value", "n"], [("a", 0.123456, 3), ("b", None, 4),
                                                        ("c", float("nan"), 5)], digits=3)
    doc.image("missing", "not there", source=tmp_path / "nope.png")  # left out, no error
    doc.image("plot", "a plot", lambda p: p.write_bytes(b"png"))
    doc.bullets(["one", "two"]).json_block({"k": 1})
    paths = doc.write({"a": 0.5})
    text = paths["md"].read_text()
    assert text.startswith("# Demo report\n\n## Results\n")
    assert "| row | value | n |\n|---|---|---|\n| a | 0.123 | 3 |\n| b | - | 4 |\n| c | - | 5 |" \
        in text
    assert "![a plot](demo_plot.png)" in text and "missing" not in text
    assert paths["figures"] == [tmp_path / "demo_plot.png"]
    assert json.loads(paths["json"].read_text()) == {"a": 0.5}
    assert (fmt(1.23456, 2), fmt(None), fmt(float("inf"))) == ("1.23", "-", "-")
    assert change(9.0, 10.0) == "10.0% lower" and change(1.0, 0.0) == "n/a"


def test_one_ssim_one_miou_one_rotation_error():
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(ssim(x, x, 1.0), torch.ones(2), atol=1e-5)
    assert ssim(x.double(), x.double(), 1.0).dtype == torch.float64
    assert torch.allclose(mse(x, x + 0.1), torch.full((2,), 0.01), atol=1e-6)
    a, b = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1])
    # either map: classes 0, 1, 2 (class 2 only predicted); ground truth: classes 0, 1
    assert miou(a, b, 3) == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    metrics = SegmentationMetrics(3)
    metrics.update(a, b)
    assert metrics.compute()["miou"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert rotation_error_deg is pose_rotation_error_deg
    assert math.isclose(rotation_error_deg(np.eye(3), np.eye(3)), 0.0, abs_tol=1e-6)
