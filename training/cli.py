"""``event-fm train STAGE --config CONFIG.yaml`` (also ``python -m training``).

Stages: dataset (bags -> shards), teacher (small image teacher; skip with real foundation
weights), distill (event student from the frozen teacher), heads (task heads on the teacher's RGB
features), scratch (the same student trained on ground truth without a teacher: the baseline),
evaluate (held-out recordings), export (LoRA merged, teacher dropped: what the nodes
load). ``torchrun --nproc_per_node N -m training``
runs the training stages with DDP.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import sys
from pathlib import Path

#: the distillation pipeline's stages, sharing one set of options
STAGE_HELP: dict[str, str] = {
    "dataset": "recordings -> synchronized training shards",
    "teacher": "train the small image teacher (skip with real foundation weights)",
    "distill": "distill the event student from the frozen teacher",
    "heads": "task heads on the teacher's RGB features",
    "scratch": "the student trained on ground truth without a teacher (baseline)",
    "evaluate": "score a checkpoint on held-out recordings",
    "export": "merge LoRA, drop the teacher: the checkpoint the nodes load",
}
STAGES = tuple(STAGE_HELP)

#: trainings with their own sub-commands and options: name -> (module, one-line help). Each
#: module has add_arguments(parser) and run(args) -> int, and imports torch only inside run().
TRAININGS: dict[str, tuple[str, str]] = {
    "forecast": ("training.forecast.cli", "event-sequence diffusion forecaster "
                 "(E-Motion)"),
    "gep": ("training.gep.cli", "generative event pretraining, stage 2 (GEP)"),
    "reconstruct": ("training.reconstruct.cli", "event-to-image reconstruction "
                    "(LLM-EvRep)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage in STAGES:
        _add_stage_arguments(sub.add_parser(stage, help=STAGE_HELP[stage],
                                            description=STAGE_HELP[stage]))
    for name, (module, help_text) in TRAININGS.items():
        if not _module_exists(module):
            continue
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_training_module=module)
        importlib.import_module(module).add_arguments(sub_parser)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def _add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--out", default=None, help="output directory (default: from config)")
    parser.add_argument("--steps", type=int, default=None, help="override the stage's steps")
    parser.add_argument("--workers", type=int, default=None, help="dataset: parallel bags")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. distill.losses={scaleevent: 1}")


def load_config(path: str, overrides: list[str]) -> dict:
    import yaml

    config = yaml.safe_load(Path(path).read_text()) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"bad override {item!r}: use KEY=VALUE")
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return config


def stage_out(config: dict, stage: str, out: str | None) -> Path:
    root = Path(out or config.get("out", "out/train"))
    return root / stage


def run_stage(stage: str, config: dict, out_dir: Path, steps: int | None = None,
              workers: int | None = None) -> dict:
    from training.runner import RunConfig, run

    if stage == "dataset":
        from training.data.build import build_dataset

        data = config["data"]
        results = build_dataset(data, data["root"], workers or int(data.get("workers", 1)))
        summary = {"recordings": [r.__dict__ for r in results]}
        failed = [r for r in results if r.error]
        print(f"dataset: {sum(r.samples for r in results)} samples from {len(results)} "
              f"recordings into {data['root']} ({len(failed)} failed)")
        return summary
    if stage == "export":
        from training.export import export_for_deployment

        section = config.get("export", {})
        path = export_for_deployment(section["init"], out_dir, section.get("note", ""))
        print(f"export: deployable checkpoint in {path}")
        return {"checkpoint": str(path)}
    if stage == "evaluate":
        from training.stages.evaluate import run_evaluate

        report = run_evaluate(config, out_dir)
        print((out_dir / "metrics.md").read_text())
        return report
    section = dict(config.get(stage, {}))
    if steps is not None:
        section["steps"] = steps
        config = {**config, stage: section}
    run_cfg = RunConfig.from_dict({**config.get("run", {}), **{
        k: v for k, v in section.items() if k in RunConfig.__dataclass_fields__}})
    run_cfg.out_dir = str(out_dir)
    if stage in ("teacher", "heads", "scratch"):
        from training.stages.supervised import RGBHeadsTask

        task = RGBHeadsTask(config, stage)
    else:
        from training.stages.distill import DistillTask

        config.setdefault(stage, {})["steps"] = run_cfg.steps
        task = DistillTask(config)
    result = run(task, run_cfg)
    if result.history:
        from event_fm.evaluation.plots import save_loss_curve

        save_loss_curve(out_dir / "loss.png", result.history, stage)
    first = result.history[0]["loss"] if result.history else None
    last = result.history[-1]["loss"] if result.history else None
    print(f"{stage}: {result.steps_done} steps (resumed from {result.resumed_from}); "
          f"loss {first} -> {last}; checkpoint {out_dir / 'model'}")
    return {"steps": result.steps_done, "first_loss": first, "last_loss": last}


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "_training_module", None):
        return int(importlib.import_module(args._training_module).run(args) or 0)
    try:
        config = load_config(args.config, args.set)
        out_dir = (Path(args.out) if args.stage == "export" and args.out
                   else stage_out(config, args.stage, args.out))
        summary = run_stage(args.stage, config, out_dir, args.steps, args.workers)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"event-fm train {args.stage}: {exc}", file=sys.stderr)
        return 1
    if args.stage != "export":  # the export directory holds exactly the checkpoint
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="event-fm train", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
