"""``event-fm train reconstruct data|fit|evaluate|report`` (LLM-EvRep event-to-image).

data: Tencode + frame pairs from the synchronized shards; fit: train the generator with
``--losses sobel`` (the paper's first ablation) or ``sobel+judge``; evaluate: SSIM / MSE / judge
Jaccard on the held-out sets into ``--out``; report: the same, written to docs/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_CONFIG = "training/configs/reconstruct.yaml"
#: fit output folder per loss set (the report's row names)
ROW_OF_LOSSES = {"sobel": "sobel_only", "sobel+judge": "full"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="reconstruct_command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=DEFAULT_CONFIG, help="experiment YAML")
    common.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. fit.steps=100")
    common.add_argument("--device", default="auto", help="auto, cpu or cuda:N")
    sub.add_parser("data", parents=[common], help="Tencode/frame pairs from the shards")
    fit = sub.add_parser("fit", parents=[common], help="train the generator")
    fit.add_argument("--losses", choices=sorted(ROW_OF_LOSSES), default="sobel+judge")
    fit.add_argument("--steps", type=int, default=None, help="override fit.steps")
    fit.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after")
    fit.add_argument("--out", default=None, help="default: OUT/sobel_only or OUT/full")
    fit.add_argument("--judge-checkpoint", default=None, help="EventFM model with teacher")
    for name, help_text in (("evaluate", "score on the held-out sets into --out"),
                            ("report", "score on the held-out sets into docs/")):
        p = sub.add_parser(name, parents=[common], help=help_text)
        p.add_argument("--sobel-only", default=None, help="generator (default OUT/sobel_only)")
        p.add_argument("--full", default=None, help="generator (default OUT/full)")
        p.add_argument("--judge-checkpoint", default=None, help="override judge.checkpoint")
        p.add_argument("--out", default=None, help="evaluate: default OUT/eval; report: docs")


def _paths(config: dict) -> tuple[Path, Path]:
    out = Path(config.get("out", "out/reconstruct"))
    return out, out / "data"


def run_data(config: dict) -> dict:
    from training.reconstruct.data import build_split

    out, data_dir = _paths(config)
    section = config["data"]
    return {name: build_split(section["shards"], spec["split"], data_dir / f"{name}.npz",
                              stride=int(spec.get("stride", 1)))
            for name, spec in section["splits"].items()}


def run_fit(config: dict, args: argparse.Namespace) -> dict:
    from training.reconstruct.train import FitConfig, fit

    out, data_dir = _paths(config)
    section = dict(config.get("fit", {}))
    if args.steps is not None:
        section["steps"] = args.steps
    judge_ckpt = args.judge_checkpoint or config.get("judge", {}).get("checkpoint")
    cfg = FitConfig(**section, losses=args.losses, data=str(data_dir / "train.npz"),
                    out=args.out or str(out / ROW_OF_LOSSES[args.losses]),
                    judge_checkpoint=judge_ckpt or "", device=args.device,
                    max_minutes=args.max_minutes)
    if "judge" in cfg.losses and not Path(cfg.judge_checkpoint).exists():
        raise FileNotFoundError(f"judge checkpoint not found: {cfg.judge_checkpoint}")
    summary = fit(cfg)
    Path(cfg.out, "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def run_evaluate(config: dict, args: argparse.Namespace, docs: bool) -> dict:
    import time

    import torch

    from training.reconstruct.data import load_split
    from training.reconstruct.evaluate import evaluate
    from training.reconstruct.judges import make_judge
    from training.reconstruct.report import metrics_json, write_report
    from training.reconstruct.train import pick_device

    torch.set_num_threads(int(config.get("fit", {}).get("threads") or 1))
    out, data_dir = _paths(config)
    judge_cfg = dict(config.get("judge", {}))
    if args.judge_checkpoint:
        judge_cfg["checkpoint"] = args.judge_checkpoint
    device = str(pick_device(args.device))
    generators = {"sobel_only": args.sobel_only or out / "sobel_only" / "model",
                  "full": args.full or out / "full" / "model"}
    for name, path in generators.items():
        if not Path(path).exists():
            raise FileNotFoundError(f"{name} generator not found: {path} (run 'event-fm train "
                                    f"reconstruct fit' first)")
    judge = make_judge(judge_cfg.get("kind", "segmentation"), judge_cfg["checkpoint"], device,
                       float(judge_cfg.get("min_fraction", 0.01)))
    splits = {name: load_split(data_dir / f"{name}.npz")
              for name in config["data"].get("heldout", [])}
    if not splits:
        raise ValueError("config data.heldout names no held-out split")
    start = time.monotonic()
    result = evaluate(splits, {k: str(v) for k, v in generators.items()}, judge, device)
    settings = {"judge": judge_cfg, "generators": {k: str(v) for k, v in generators.items()},
                "fit": config.get("fit", {}), "data": config["data"],
                "evaluate_wall_s": round(time.monotonic() - start, 1)}
    for name, path in generators.items():
        recipe = json.loads((Path(path) / "config.json").read_text()).get("extra", {})
        summary = Path(path).parent / "summary.json"
        if summary.exists():
            recipe.update({k: json.loads(summary.read_text()).get(k)
                           for k in ("wall_s", "parameters")})
        settings[f"{name}_training"] = recipe
    target = Path(args.out) if args.out else (Path(config.get("report", {}).get("docs", "docs"))
                                              if docs else out / "eval")
    examples = int(config.get("report", {}).get("examples", 4))
    paths = write_report(result, target, settings, examples=examples)
    print(Path(paths["md"]).read_text())
    return metrics_json(result["rows"])


def run(args: argparse.Namespace) -> int:
    from training.cli import load_config

    try:
        config = load_config(args.config, args.set)
        command = args.reconstruct_command
        if command == "data":
            summary = run_data(config)
        elif command == "fit":
            summary = run_fit(config, args)
        else:
            summary = run_evaluate(config, args, docs=command == "report")
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"event-fm train reconstruct {args.reconstruct_command}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1, default=str))
    return 0
