"""``event-fm train gep STEP --config training/configs/gep.yaml``: the GEP family's step table.

tokens: encode every window once with the aligned encoders (student on events, teacher on
frames) into ``ROOT/tokens``; fit: train the causal transformer on the training tokens
(``ROOT/fit``); evaluate: next-window prediction against copy-last on the held-out recordings
(``ROOT/evaluate``); report: tokens -> fit -> evaluate (finished steps reused) plus
``--docs``/gep.{md,json} and plots. ROOT is ``out/gep/<checkpoint>`` so tokens of different
encoders never mix.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.experiment import Context, Family, Step, option

CONFIG = "training/configs/gep.yaml"


def resolve_checkpoint(config: dict, override: str | None) -> Path:
    """--checkpoint, else the first existing folder of the config's ``checkpoints``."""
    candidates = [override] if override else list(config.get("checkpoints", []))
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    raise FileNotFoundError(f"no checkpoint found among {candidates}")


def checkpoint_slug(ctx: Context) -> str:
    """out/train/default/rows/full/model -> default_rows_full_model (the ROOT's last part)."""
    checkpoint = resolve_checkpoint(ctx.config, ctx.opt("checkpoint"))
    return "_".join(p for p in checkpoint.parts[-4:] if p not in ("/", ".", "out", "train"))


def _session(ctx: Context):
    from training.gep.pipeline import GEPSession

    return GEPSession(ctx.config, resolve_checkpoint(ctx.config, ctx.opt("checkpoint")),
                      ctx.root, ctx.opt("device"), ctx.opt("into") or "fit")


def _tokens(ctx: Context) -> None:
    _session(ctx).tokens(ctx.opt("max_samples"), force=True)


def _fit(ctx: Context) -> None:
    session = _session(ctx)
    session.tokens()  # cached ones are reused
    session.fit(ctx.opt("steps"))  # writes ROOT/<into>/summary.json with the model size


def _evaluate(ctx: Context) -> None:
    report = _session(ctx).evaluate()  # writes ROOT/evaluate/metrics.json
    print(json.dumps(report["summary"], indent=1))


def _report(ctx: Context) -> dict:
    from training.gep.report import write_report

    steps = _session(ctx)
    steps.tokens(ctx.opt("max_samples"))
    steps.fit(ctx.opt("steps"), skip_done=True)
    report = steps.evaluate()
    paths = write_report(report, ctx.docs, ctx.root)
    print(json.dumps(report["summary"], indent=1))
    print("wrote " + ", ".join(str(p) for p in paths))
    return report["summary"]


_MAX = option("--max-samples", type=int, default=None,
              help="encode at most N windows per split (smoke runs)")

FAMILY = Family("gep", "generative event pretraining, stage 2 (GEP)", {
    "tokens": Step("encode every window with the aligned encoders (cached in ROOT/tokens)",
                   _tokens, (_MAX,)),
    "fit": Step("train the causal transformer by next-token regression (--into NAME: into "
                "ROOT/NAME, for the report's evaluate.variants)", _fit,
                (option("--into", default=None, help="output folder under ROOT (default fit)"),)),
    "evaluate": Step("next-window prediction vs copy-last on held-out recordings", _evaluate),
    "report": Step("tokens -> fit -> evaluate (finished steps reused) -> docs/gep.{md,json,png}",
                   _report, (_MAX,)),
}, config=CONFIG, subroot=checkpoint_slug,
   sections=("checkpoints", "out", "data", "tokens", "model", "fit", "evaluate", "report"))
