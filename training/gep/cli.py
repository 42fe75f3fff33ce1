"""``event-fm train gep tokens|fit|evaluate|report --config training/configs/gep.yaml``.

tokens: encode every window once with the aligned encoders (student on events, teacher on
frames) into ``OUT/tokens``; fit: train the causal transformer on the training tokens
(``OUT/fit``); evaluate: next-window prediction against copy-last on the held-out recordings
(``OUT/evaluate``); report: the chain (skipping finished steps) plus docs/gep.{md,json} and plots.
OUT is ``out/gep/<checkpoint>`` so tokens of different encoders never mix.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

COMMANDS = {
    "tokens": "encode every window with the aligned encoders (cached in out/gep)",
    "fit": "train the causal transformer by next-token regression",
    "evaluate": "next-window prediction vs copy-last on held-out recordings",
    "report": "tokens -> fit -> evaluate (skipping finished steps) -> docs/gep.{md,json,png}",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="gep_command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default="training/configs/gep.yaml", help="GEP YAML")
        p.add_argument("--checkpoint", default=None,
                       help="aligned encoders + heads (default: first existing in the config)")
        p.add_argument("--out", default=None, help="output folder (default: from config)")
        p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N")
        p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                       help="override config values, e.g. fit.steps=200")
        if name in ("tokens", "report"):
            p.add_argument("--max-samples", type=int, default=None,
                           help="encode at most N windows per split (smoke runs)")
        if name in ("fit", "report"):
            p.add_argument("--steps", type=int, default=None, help="override fit.steps")
        if name == "report":
            p.add_argument("--docs", default="docs", help="where gep.md/json/png go")


def resolve_checkpoint(config: dict, override: str | None) -> Path:
    candidates = [override] if override else list(config.get("checkpoints", []))
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    raise FileNotFoundError(f"no checkpoint found among {candidates}")


def out_root(config: dict, override: str | None, checkpoint: Path) -> Path:
    if override:
        return Path(override)
    parts = [p for p in checkpoint.parts[-4:] if p not in ("/", ".", "out", "train")]
    slug = "_".join(parts)  # out/train/default/rows/full/model -> default_rows_full_model
    return Path(config.get("out", "out/gep")) / slug


def run(args: argparse.Namespace) -> int:
    from training.cli import load_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.set)
        checkpoint = resolve_checkpoint(config, args.checkpoint)
        root = out_root(config, args.out, checkpoint)
        from . import pipeline

        steps = pipeline.Steps(config, checkpoint, root, args.device)
        command = args.gep_command
        if command == "tokens":
            steps.tokens(getattr(args, "max_samples", None), force=True)
        elif command == "fit":
            steps.fit(args.steps)
        elif command == "evaluate":
            report = steps.evaluate()
            print(json.dumps(report["summary"], indent=1))
        else:
            steps.tokens(args.max_samples)
            steps.fit(args.steps, skip_done=True)
            report = steps.evaluate()
            from .report import write_report

            paths = write_report(report, Path(args.docs), root)
            print(json.dumps(report["summary"], indent=1))
            print("wrote " + ", ".join(str(p) for p in paths))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"event-fm train gep {args.gep_command}: {exc}", file=sys.stderr)
        return 1
    return 0
