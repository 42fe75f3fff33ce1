"""``event-fm train forecast {data,fit,align,evaluate,sample}`` (E-Motion-style forecaster).

data: recordings -> cached voxel frames; fit --model diffusion|simvp: training with the runner;
align: reward fine-tuning of the diffusion model; evaluate: every forecaster and baseline on the
held-out simulated sequences and the real bags, writes docs/forecast.{md,json} and plots;
sample: forecast one sequence of a recording and save a PNG strip.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

COMMANDS = ("data", "fit", "align", "evaluate", "sample", "export")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="forecast_command", metavar="COMMAND", required=True)
    helps = {
        "data": "recordings -> cached 20 ms voxel frames (3 bins, 128x128)",
        "fit": "train the diffusion forecaster or the SimVP-style baseline",
        "align": "reward alignment: clipped policy gradient + KL to the reference model",
        "evaluate": "baselines, diffusion, ablations, downstream segmentation; writes the report",
        "sample": "forecast from one recording and save a PNG strip",
        "export": "copy a diffusion checkpoint with its sampling settings (models/forecast)",
    }
    for name in COMMANDS:
        p = sub.add_parser(name, help=helps[name], description=helps[name])
        p.add_argument("--config", default="training/configs/forecast.yaml")
        p.add_argument("--out", default=None, help="output root (default: config 'out')")
        p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                       help="override config values")
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
        if name == "fit":
            p.add_argument("--model", choices=("diffusion", "simvp"), default="diffusion")
            p.add_argument("--steps", type=int, default=None)
        if name == "align":
            p.add_argument("--init", default=None, help="diffusion checkpoint (default: "
                           "OUT/fit_diffusion/model)")
            p.add_argument("--iterations", type=int, default=None)
        if name == "evaluate":
            p.add_argument("--segmentation-checkpoint", default=None,
                           help="model with a segmentation head (default: config)")
            p.add_argument("--docs", default="docs", help="where forecast.md/.json/.png go")
        if name == "sample":
            p.add_argument("--checkpoint", default="models/forecast")
            p.add_argument("--recording", required=True, help="bag or event file")
            p.add_argument("--start-ms", type=float, default=0.0)
            p.add_argument("--steps", type=int, default=10)
            p.add_argument("--guide-frames", type=int, default=None)
            p.add_argument("--png", default="out/forecast/sample.png")
        if name == "export":
            p.add_argument("--checkpoint", default=None,
                           help="default: OUT/align/model, else OUT/fit_diffusion/model")
            p.add_argument("--to", default="models/forecast")


def run(args: argparse.Namespace) -> int:
    import torch

    from training.cli import load_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(max(1, args.threads))
    try:
        config = load_config(args.config, args.set)
        out = Path(args.out or config.get("out", "out/forecast"))
        if args.forecast_command == "data":
            return _data(config)
        if args.forecast_command == "fit":
            return _fit(config, out, args.model, args.steps)
        if args.forecast_command == "align":
            from training.forecast.align import run_alignment

            init = Path(args.init) if args.init else out / "fit_diffusion" / "model"
            summary = run_alignment(config, init, out / "align", args.iterations)
            print(json.dumps(summary, indent=1))
            return 0
        if args.forecast_command == "evaluate":
            from training.forecast.report import run_report

            seg = args.segmentation_checkpoint or config.get("evaluate", {}).get(
                "segmentation_checkpoint", "models/default")
            run_report(config, out, Path(args.docs), seg)
            return 0
        if args.forecast_command == "export":
            return _export(config, out, args.checkpoint, Path(args.to))
        from training.forecast.sample import run_sample

        run_sample(args)
        return 0
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"event-fm train forecast {args.forecast_command}: {exc}", file=sys.stderr)
        return 1


def _data(config: dict) -> int:
    from training.forecast.data import build_frames

    data = config["data"]
    written = build_frames(data["splits"], data["root"], int(data.get("bins", 3)),
                           int(data.get("size", 128)))
    for split, files in written.items():
        print(f"forecast data: {split}: {len(files)} recordings in {Path(data['root']) / split}")
    return 0


def _fit(config: dict, out: Path, model: str, steps: int | None) -> int:
    from event_fm.evaluation.plots import save_loss_curve
    from training.runner import RunConfig, run

    section = dict(config.get("fit" if model == "diffusion" else "simvp", {}))
    if steps is not None:
        section["steps"] = steps
    run_cfg = RunConfig.from_dict(section)
    run_cfg.out_dir = str(out / f"fit_{model}")
    if model == "diffusion":
        from training.forecast.train import DiffusionTask

        task = DiffusionTask(config)
    else:
        from training.forecast.train import SimVPTask

        task = SimVPTask(config)
    result = run(task, run_cfg)
    history = _read_log(Path(run_cfg.out_dir) / "log.csv")  # the whole run, resumed or not
    if history:
        save_loss_curve(Path(run_cfg.out_dir) / "loss.png", history, f"forecast {model}")
    first = result.history[0]["loss"] if result.history else None
    last = result.history[-1]["loss"] if result.history else None
    print(f"forecast fit {model}: {result.steps_done} steps (resumed from {result.resumed_from})"
          f"; loss {first} -> {last}; checkpoint {run_cfg.out_dir}/model")
    return 0


def _export(config: dict, out: Path, checkpoint: str | None, to: Path) -> int:
    from event_fm.models.forecast import load_forecaster, save_forecaster

    if checkpoint is None:
        aligned = out / "align" / "model"
        checkpoint = str(aligned if aligned.exists() else out / "fit_diffusion" / "model")
    model = load_forecaster(checkpoint)
    sampling = {k: v for k, v in config.get("sampling", {}).items()}
    sampling.setdefault("horizon", model.config.horizon)
    save_forecaster(model, to, extra={"source": checkpoint, "sampling": sampling})
    size = (to / "model.safetensors").stat().st_size
    print(f"forecast export: {checkpoint} -> {to} ({size / 1e6:.2f} MB)")
    return 0


def _read_log(path: Path) -> list[dict]:
    import csv

    if not path.exists():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(f)]
