"""``event-fm train distill STEP``: the distillation family's step table.

data (bags -> shards), teacher (small image teacher; skip with real foundation weights), heads
(task heads on the teacher's RGB features), distill (event student from the frozen teacher),
scratch (the student on ground truth without a teacher: the baseline) are the fit variants;
evaluate scores a checkpoint on held-out recordings; rows trains the reproduction's table
(teacher -> heads -> one distillation per row -> scratch, finished ones reused); report is rows
plus the evaluation of every row and docs/reproduction.{md,json,png}; export merges LoRA and
drops the teacher (what the nodes load). ``torchrun --nproc_per_node N -m training distill
distill ...`` runs a fit with DDP.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.experiment import Context, Family, Step, fit_summary, option

FITS = ("teacher", "heads", "distill", "scratch")


def run_stage(stage: str, config: dict, out_dir: Path, steps: int | None = None,
              workers: int | None = None, device: str | None = None) -> dict:
    """One distillation stage into ``out_dir`` (the chain calls it with its own folders)."""
    if stage == "data":
        from training.data.build import build_dataset

        data = config["data"]
        results = build_dataset(data, data["root"], workers or int(data.get("workers", 1)))
        failed = [r for r in results if r.error]
        print(f"dataset: {sum(r.samples for r in results)} samples from {len(results)} "
              f"recordings into {data['root']} ({len(failed)} failed)")
        return {"recordings": [r.__dict__ for r in results]}
    if stage == "evaluate":
        from training.stages.evaluate import run_evaluate

        report = run_evaluate(config, out_dir)
        print((out_dir / "metrics.md").read_text())
        return report
    from training.runner import RunConfig, run, split_run_config

    if stage == "distill":
        from training.stages.distill import SECTION_KEYS
    else:
        from training.stages.supervised import SECTION_KEYS
    section = dict(config.get(stage) or {})
    RunConfig.from_dict(config.get("run"))  # strict: a typo in 'run' is named 'run.KEY'
    run_keys = {**(config.get("run") or {}), **section}
    run_cfg, _ = split_run_config(run_keys, out_dir, steps, device, own=SECTION_KEYS,
                                  path=stage)
    if stage == "distill":
        from training.stages.distill import DistillTask

        config = {**config, stage: {**section, "steps": run_cfg.steps}}
        task = DistillTask(config)
    else:
        from training.stages.supervised import RGBHeadsTask

        task = RGBHeadsTask(config, stage)
    result = run(task, run_cfg, title=stage)
    return fit_summary(result, out_dir, stage)


def _fit(stage: str):
    def step(ctx: Context) -> dict:
        return run_stage(stage, ctx.config, ctx.out, ctx.opt("steps"), device=ctx.opt("device"))
    return step


def _data(ctx: Context) -> dict:
    return run_stage("data", ctx.config, ctx.out, workers=ctx.opt("workers"))


def _matcher(ctx: Context) -> dict:
    from training.stages.matcher import run_matcher

    return run_matcher(ctx.config, ctx.out, ctx.opt("steps"), ctx.opt("device"), ctx.opt("to"))


def _evaluate(ctx: Context) -> dict:
    config = ctx.config
    if ctx.opt("checkpoint"):
        config = merge(config, {"evaluate": {"init": ctx.opt("checkpoint")}})
    return run_stage("evaluate", config, ctx.out)


def _done(path: Path) -> bool:
    return (path / "model" / "model.safetensors").exists()


def merge(base: dict, override: dict) -> dict:
    """``base`` with ``override``'s values, nested sections merged key by key."""
    import copy

    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def train_rows(config: dict, out: Path, only: list[str] | None = None,
               steps: int | None = None) -> dict[str, Path]:
    """Teacher, heads, every reproduction row (or those in ``only``) and the scratch baseline,
    each reused when finished; the checkpoint of each row."""
    run_stage("data", config, out / "data")  # incremental: converts only new recordings
    teacher, heads = out / "teacher", out / "heads"
    if not _done(teacher):
        run_stage("teacher", config, teacher, steps)
    if not _done(heads):
        run_stage("heads", merge(config, {"heads": {"init": str(teacher / "model")}}), heads,
                  steps)
    rows = {}
    for name, override in config["reproduction"]["rows"].items():
        if only and name not in only:
            continue
        row_out = out / "rows" / name
        if override == "scratch":
            if not _done(row_out):
                cfg = merge(config, {"model": {"full_finetune": True, "with_teacher": True}})
                run_stage("scratch", cfg, row_out, steps)
        elif not _done(row_out):
            cfg = merge(merge(config, {"distill": {"init": str(heads / "model")}}),
                        override or {})
            run_stage("distill", cfg, row_out, steps)
        rows[name] = row_out / "model"
    return rows


def evaluate_rows(config: dict, rows: dict[str, Path], out: Path) -> dict[str, dict]:
    """Every row on the held-out sets (cached per row)."""
    results = {}
    for name, checkpoint in rows.items():
        target = out / "rows" / name / "evaluate"
        if not (target / "metrics.json").exists():
            run_stage("evaluate", merge(config, {"evaluate": {"init": str(checkpoint)}}), target)
        results[name] = json.loads((target / "metrics.json").read_text())["sets"]
    return results


def _rows(ctx: Context) -> dict:
    rows = train_rows(ctx.config, ctx.root, ctx.opt("rows"), ctx.opt("steps"))
    return {name: str(path) for name, path in rows.items()}


def _report(ctx: Context) -> dict:
    from training.reproduce import summarize, write_report

    rows = train_rows(ctx.config, ctx.root, steps=ctx.opt("steps"))
    summary = summarize(evaluate_rows(ctx.config, rows, ctx.root))
    paths = write_report(summary, ctx.config, ctx.docs, ctx.root)
    print(Path(paths["md"]).read_text())
    return summary


def export_source(ctx: Context) -> Path:
    """--checkpoint, else the config's export.init, else the reproduction's export row."""
    if ctx.opt("checkpoint"):
        return Path(ctx.opt("checkpoint"))
    section = ctx.config.get("export", {})
    if section.get("init"):
        return Path(section["init"])
    row = ctx.config.get("reproduction", {}).get("export_row", "full")
    return ctx.root / "rows" / row / "model"


def _export(ctx: Context) -> dict:
    from training.export import export_for_deployment

    source = export_source(ctx)
    if not source.exists():
        raise FileNotFoundError(f"no checkpoint to export at {source}")
    path = export_for_deployment(source, ctx.opt("to", ctx.out),
                                 ctx.config.get("export", {}).get("note", ""))
    print(f"export: {source} -> deployable checkpoint in {path}")
    return {"checkpoint": str(path), "source": str(source)}


FAMILY = Family("distill", "event student distilled from an image teacher (REALM/ScaleEvent)", {
    # the shards go to data.root (ROOT/data by the configs): no summary among them
    "data": Step("recordings -> synchronized training shards", _data,
                 (option("--workers", type=int, default=None, help="parallel bags"),),
                 summary=False),
    "teacher": Step("train the small image teacher (skip with real foundation weights)",
                    _fit("teacher")),
    "heads": Step("task heads on the teacher's RGB features", _fit("heads")),
    "distill": Step("distill the event student from the frozen teacher", _fit("distill")),
    "scratch": Step("the student trained on ground truth without a teacher (baseline)",
                    _fit("scratch")),
    "matcher": Step("event matcher in XFeat's descriptor space, distilled from XFeat on the "
                    "frames (event-event and image-event matching); --to: its checkpoint",
                    _matcher),
    "evaluate": Step("score a checkpoint (--checkpoint, else evaluate.init) on held-out "
                     "recordings", _evaluate),
    "rows": Step("teacher -> heads -> every reproduction row and the baseline (finished ones "
                 "reused)", _rows,
                 (option("--rows", nargs="*", default=None, help="only these rows"),)),
    "report": Step("rows, their held-out evaluation and docs/reproduction.{md,json,png}",
                   _report),
    "export": Step("merge LoRA, drop the teacher: the checkpoint the nodes load (--to)",
                   _export, summary=False),
}, sections=("out", "data", "model", "run", *FITS, "matcher", "evaluate", "export",
             "reproduction", "report"))
