"""``event-fm train forecast STEP`` (E-Motion-style forecaster): the family's step table.

data: recordings -> cached voxel frames; fit --model diffusion|simvp: training with the runner
(``ROOT/fit_diffusion``, ``ROOT/fit_simvp``); align: reward fine-tuning of the diffusion model;
export: the diffusion checkpoint with its sampling settings (``--to``, default models/forecast);
evaluate / report: every forecaster and baseline on the held-out simulated sequences and the
real bags, into ``ROOT/evaluate`` / ``--docs``; sample: forecast one sequence of a recording and
save a PNG strip.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.experiment import Context, Family, Step, fit_summary, option

CONFIG = "training/configs/forecast.yaml"


def _data(ctx: Context) -> dict:
    from event_fm.common.strict_config import check_keys
    from training.forecast.data import DATA_KEYS, build_frames

    data = ctx.config["data"]
    check_keys(data, DATA_KEYS, "data")
    written = build_frames(data["splits"], data["root"], int(data.get("bins", 3)),
                           int(data.get("size", 128)), frame_ranges=data.get("frame_ranges"))
    for split, files in written.items():
        print(f"forecast data: {split}: {len(files)} recordings in {Path(data['root']) / split}")
    return {split: [str(f) for f in files] for split, files in written.items()}


def _fit(ctx: Context) -> dict:
    from training.runner import run, split_run_config

    model = ctx.opt("model", "diffusion")
    name = "fit" if model == "diffusion" else "simvp"
    run_cfg, _ = split_run_config(ctx.config.get(name, {}), ctx.out, ctx.opt("steps"),
                                  ctx.opt("device"), path=name)
    if model == "diffusion":
        from training.forecast.train import DiffusionTask as TaskClass
    else:
        from training.forecast.train import SimVPTask as TaskClass
    result = run(TaskClass(ctx.config), run_cfg, title=f"forecast {model}")
    return fit_summary(result, ctx.out, f"forecast fit {model}")


def _align(ctx: Context) -> dict:
    from training.forecast.align import run_alignment

    init = Path(ctx.opt("checkpoint") or ctx.dir("fit", "diffusion") / "model")
    summary = run_alignment(ctx.config, init, ctx.out, ctx.opt("steps"))
    print(json.dumps(summary, indent=1))
    return None  # run_alignment writes its own summary.json (with the reward curve)


def _fewstep(ctx: Context) -> dict:
    from training.forecast.fewstep import FEWSTEP_KEYS, FewStepTask
    from training.runner import run, split_run_config

    run_cfg, own = split_run_config(ctx.config.get("fewstep", {}), ctx.out, ctx.opt("steps"),
                                    ctx.opt("device"), own=FEWSTEP_KEYS, path="fewstep")
    teacher = ctx.opt("checkpoint") or str(_trained_diffusion(ctx))
    result = run(FewStepTask(ctx.config, teacher, own), run_cfg, title="forecast few-step")
    return fit_summary(result, ctx.out, "forecast few-step distillation")


def _trained_diffusion(ctx: Context) -> Path:
    """The aligned diffusion model if alignment ran, else the fitted one."""
    aligned = ctx.dir("align") / "model"
    return aligned if aligned.exists() else ctx.dir("fit", "diffusion") / "model"


def _evaluate_into(ctx: Context, target: Path) -> dict:
    from training.forecast.report import run_report

    seg = ctx.opt("segmentation_checkpoint") or ctx.config.get("evaluate", {}).get(
        "segmentation_checkpoint", "models/default")
    return run_report(ctx.config, ctx.root, target, seg)


def _export(ctx: Context) -> dict:
    from event_fm.models.forecast import load_forecaster, save_forecaster

    checkpoint = ctx.opt("checkpoint") or str(_trained_diffusion(ctx))
    to = Path(ctx.opt("to", "models/forecast"))
    model = load_forecaster(checkpoint)
    sampling = dict(ctx.config.get("sampling", {}))
    sampling.setdefault("horizon", model.config.horizon)
    save_forecaster(model, to, extra={"source": checkpoint, "sampling": sampling})
    size = (to / "model.safetensors").stat().st_size
    print(f"forecast export: {checkpoint} -> {to} ({size / 1e6:.2f} MB)")
    return {"checkpoint": str(to), "source": checkpoint, "bytes": size}


def _sample(ctx: Context) -> None:
    from training.forecast.sample import run_sample

    args = argparse.Namespace(**vars(ctx.args))
    args.checkpoint = ctx.opt("checkpoint", "models/forecast")
    args.steps = ctx.opt("steps", 10)
    run_sample(args)


_SEG = option("--segmentation-checkpoint", default=None,
              help="model with a segmentation head (default: config)")

FAMILY = Family("forecast", "event-sequence diffusion forecaster (E-Motion)", {
    "data": Step("recordings -> cached 20 ms voxel frames (3 bins, 128x128)", _data),
    "fit": Step("train the diffusion forecaster or the SimVP-style baseline", _fit,
                (option("--model", choices=("diffusion", "simvp"), default="diffusion"),),
                variant=lambda a: a.model),
    "align": Step("reward alignment: clipped policy gradient + KL to the reference model "
                  "(--steps: iterations; --checkpoint default ROOT/fit_diffusion/model)", _align),
    "fewstep": Step("distil the trained (aligned) model's multi-step DDIM sampling into one "
                    "step (--checkpoint: the teacher) -> ROOT/fewstep/model", _fewstep),
    "export": Step("the diffusion checkpoint (aligned if there) with its sampling settings",
                   _export, summary=False),
    "evaluate": Step("baselines, diffusion, ablations, downstream segmentation -> "
                     "ROOT/evaluate", lambda ctx: _evaluate_into(ctx, ctx.out), (_SEG,),
                     summary=False),
    "report": Step("evaluate, written to --docs (forecast.md/.json/.png)",
                   lambda ctx: _evaluate_into(ctx, ctx.docs), (_SEG,), summary=False),
    "sample": Step("forecast from one recording and save a PNG strip", _sample, (
        option("--recording", required=True, help="bag or event file"),
        option("--start-ms", type=float, default=0.0),
        option("--guide-frames", type=int, default=None),
        option("--png", default="out/forecast/sample.png"))),
}, config=CONFIG, threads=1, sections=("out", "data", "model", "fit", "simvp_model", "simvp",
                                       "sampling", "align", "fewstep", "evaluate", "report"))
