"""``event-fm train reconstruct STEP`` (LLM-EvRep event-to-image): the family's step table.

data: Tencode + frame pairs from the synchronized shards (``ROOT/data``); fit: train the
generator with ``--losses sobel`` (the paper's first ablation, ``ROOT/fit_sobel_only``) or
``sobel+judge`` (``ROOT/fit_full``) on the runner; evaluate: SSIM / MSE / judge Jaccard on the
held-out sets into ``ROOT/evaluate``; report: the same into ``--docs``; export: the full
generator into ``--to`` (default models/reconstruction).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from training.experiment import Context, Family, Step, fit_summary, option

CONFIG = "training/configs/reconstruct.yaml"
#: fit variant (folder suffix, the report's row name) per loss set
ROW_OF_LOSSES = {"sobel": "sobel_only", "sobel+judge": "full"}


def _data(ctx: Context) -> dict:
    from training.reconstruct.data import build_split

    section = ctx.config["data"]
    return {name: build_split(section["shards"], spec["split"],
                              ctx.dir("data") / f"{name}.npz", stride=int(spec.get("stride", 1)))
            for name, spec in section["splits"].items()}


def _fit(ctx: Context) -> dict:
    import torch

    from event_fm.common.strict_config import build_dataclass
    from event_fm.models.reconstruction import ReconstructionConfig, load_generator
    from training.reconstruct.train import ReconstructSettings, ReconstructTask
    from training.runner import run, split_run_config

    run_cfg, own = split_run_config(ctx.config.get("fit", {}), ctx.out, ctx.opt("steps"),
                                    ctx.opt("device"), own=ReconstructSettings.__dataclass_fields__)
    judge = ctx.opt("judge_checkpoint") or ctx.config.get("judge", {}).get("checkpoint")
    settings = build_dataclass(ReconstructSettings, {
        **own, "losses": ctx.opt("losses"), "data": str(ctx.dir("data") / "train.npz"),
        "judge_checkpoint": judge or ""}, "fit")
    ReconstructionConfig.from_dict(settings.model, "fit.model")  # strict before any data loads
    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    start = time.monotonic()
    task = ReconstructTask(settings, run_cfg.steps, run_cfg.seed)
    result = run(task, run_cfg, title=f"reconstruction ({settings.losses})",
                 max_minutes=ctx.opt("max_minutes"))
    summary = fit_summary(result, ctx.out, f"reconstruct fit {settings.losses}")
    summary.update(losses=settings.losses, wall_s=time.monotonic() - start,
                   parameters=load_generator(ctx.out / "model").num_parameters())
    return summary


def _evaluate_into(ctx: Context, target: Path) -> dict:
    import torch

    from event_fm.common.devices import resolve_device
    from event_fm.models.checkpoint import read_meta
    from training.reconstruct.data import load_split
    from training.reconstruct.evaluate import evaluate
    from training.reconstruct.judges import make_judge
    from training.reconstruct.report import metrics_json, write_report

    config = ctx.config
    torch.set_num_threads(int(ctx.opt("threads") or config.get("fit", {}).get("threads") or 1))
    judge_cfg = dict(config.get("judge", {}))
    if ctx.opt("judge_checkpoint"):
        judge_cfg["checkpoint"] = ctx.opt("judge_checkpoint")
    device = str(resolve_device(ctx.opt("device")))
    generators = {name: Path(ctx.opt(name) or ctx.dir("fit", name) / "model")
                  for name in ROW_OF_LOSSES.values()}
    for name, path in generators.items():
        if not path.exists():
            raise FileNotFoundError(f"{name} generator not found: {path} (run 'event-fm train "
                                    f"reconstruct fit' first)")
    judge = make_judge(judge_cfg.get("kind", "segmentation"), judge_cfg["checkpoint"], device,
                       float(judge_cfg.get("min_fraction", 0.01)))
    data_dir = ctx.dir("data")
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
        recipe = read_meta(path)
        summary = path.parent / "summary.json"
        if summary.exists():
            recipe.update({k: json.loads(summary.read_text()).get(k)
                           for k in ("wall_s", "parameters")})
        settings[f"{name}_training"] = recipe
    examples = int(config.get("report", {}).get("examples", 4))
    paths = write_report(result, target, settings, examples=examples)
    print(Path(paths["md"]).read_text())
    return metrics_json(result["rows"])


def _export(ctx: Context) -> dict:
    source = Path(ctx.opt("checkpoint") or ctx.dir("fit", "full") / "model")
    to = Path(ctx.opt("to", "models/reconstruction"))
    files = [source / "config.json", source / "model.safetensors"]
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"no generator to export: {f}")
    to.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, to / f.name)
    print(f"reconstruct export: {source} -> {to}")
    return {"checkpoint": str(to), "source": str(source)}


_EVAL_OPTIONS = (option("--sobel-only", dest="sobel_only", default=None,
                        help="generator (default ROOT/fit_sobel_only/model)"),
                 option("--full", default=None, help="generator (default ROOT/fit_full/model)"),
                 option("--judge-checkpoint", default=None, help="override judge.checkpoint"))

FAMILY = Family("reconstruct", "event-to-image reconstruction (LLM-EvRep)", {
    "data": Step("Tencode/frame pairs from the shards", _data),
    "fit": Step("train the generator (Sobel, optionally + the judge surrogate)", _fit, (
        option("--losses", choices=sorted(ROW_OF_LOSSES), default="sobel+judge"),
        option("--max-minutes", type=float, default=None, help="stop (and save) after"),
        option("--judge-checkpoint", default=None, help="EventFM model with teacher")),
        variant=lambda a: ROW_OF_LOSSES[a.losses]),
    "evaluate": Step("score on the held-out sets into ROOT/evaluate",
                     lambda ctx: _evaluate_into(ctx, ctx.out), _EVAL_OPTIONS),
    "report": Step("score on the held-out sets into --docs (reconstruction.md/.json/.png)",
                   lambda ctx: _evaluate_into(ctx, ctx.docs), _EVAL_OPTIONS),
    "export": Step("the full generator as the shipped models/reconstruction (--to)", _export,
                   summary=False),
}, config=CONFIG, sections=("out", "data", "judge", "fit", "report"))
