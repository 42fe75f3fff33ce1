"""``evaluate``: next-window prediction on held-out recordings, GEP against copy-last.

For every window j of a held-out recording with at least one window before it, the transformer
sees the interleaved groups of up to ``context`` previous windows (E, F, E, F, ...) and rolls
out the event group of window j. Scores:

- feature MSE on the aggregated patch tokens (what the transformer predicts), against the
  copy-last baseline (window j-1's aggregated tokens);
- predicted-future depth: the predicted tokens, upsampled back to the heads' token grid, decoded
  by the checkpoint's depth head, against window j's ground truth (MAE within 10 m, the same
  DepthMetrics as every other evaluation). Copy-last goes through the same aggregation and
  upsampling; references: copy-last at full token resolution, and the student's own depth on
  the actual next window (aggregated and full), the ceiling of any predictor.

A second pass rolls out several windows ahead (error versus horizon) on a subsample of anchors.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
from tqdm import tqdm

from event_fm.evaluation.metrics import DepthMetrics
from event_fm.models import EventFM
from event_fm.models.gep import (
    EVENT,
    GEPTransformer,
    interleave,
    modality_ids,
)

from .data import WindowGroups, windows_back
from .depth import DepthDecoder, decode_groups

#: the methods every evaluation scores; copy_last and gep go into docs/gep.json
METHODS = ("copy_last", "gep", "mean_last2", "copy_last_full", "next_window_agg",
           "next_window_full")


@dataclass
class Anchor:
    """Predict the event group ``horizon`` windows after window ``last`` from ``context``
    windows ending at ``last`` (indices into the token file)."""

    last: int
    context: int


def anchors(groups: WindowGroups, context: int, horizon: int, stride: int = 1) -> list[Anchor]:
    out = []
    for rec in groups.recordings:
        for last in range(rec.start, rec.stop - horizon, stride):
            out.append(Anchor(last, min(context, last - rec.start + 1)))
    return out


def rollout_modalities(horizon: int, group_size: int) -> torch.Tensor:
    """Modalities of the tokens generated to reach the event group ``horizon`` windows ahead:
    (horizon - 1) full windows (E, F), then the event group."""
    full = modality_ids(horizon - 1, group_size)
    return torch.cat([full, torch.full((group_size,), EVENT)])


@torch.no_grad()
def predict(model: GEPTransformer, groups: WindowGroups, items: list[Anchor], horizon: int,
            batch_size: int = 64, progress: bool = True) -> dict[int, torch.Tensor]:
    """Predicted event groups (horizon, K, C) per anchor ``last``, rolled out autoregressively."""
    cfg = model.config
    k = cfg.group_size
    device = model.token_mean.device
    gen_mods = rollout_modalities(horizon, k)
    by_context: dict[int, list[Anchor]] = defaultdict(list)
    for a in items:
        by_context[a.context].append(a)
    out: dict[int, torch.Tensor] = {}
    chunks = [(c, lst[i:i + batch_size]) for c, lst in sorted(by_context.items())
              for i in range(0, len(lst), batch_size)]
    for c, chunk in tqdm(chunks, disable=not progress, unit="batch", desc=f"gep h={horizon}",
                         leave=False):
        period = 2 * k if cfg.with_frames else k  # tokens per window
        if (c + horizon) * period - (k if cfg.with_frames else 0) > cfg.max_tokens:
            raise ValueError(f"context {c} + horizon {horizon} windows exceed the model's "
                             f"{cfg.max_windows}")
        idx = torch.stack([torch.arange(a.last - c + 1, a.last + 1) for a in chunk])
        ev, fr = groups.events[idx].to(device), groups.frames[idx].to(device)
        context = interleave(ev, fr if cfg.with_frames else None)
        mods = modality_ids(c, k, cfg.with_frames)
        gen = model.generate(context, mods, gen_mods if cfg.with_frames else
                             torch.full((horizon * k,), EVENT)).cpu()
        # event groups inside the rollout: the last K tokens of each generated window
        step = 2 * k if cfg.with_frames else k
        for n, a in enumerate(chunk):
            out[a.last] = torch.stack([gen[n, h * step:h * step + k] for h in range(horizon)])
    return out


def linear_reference(model: GEPTransformer, groups: WindowGroups,
                     chunk: list[Anchor]) -> torch.Tensor:
    """The fitted linear extrapolation alone (reference "ar", no learned update) of the event
    group after each anchor, from the anchor's context (the earliest window repeats)."""
    weights = model.ar_weights[EVENT].cpu()  # (windows, C)
    out = []
    for a in chunk:
        lags = windows_back(a.last, len(weights), a.last - a.context + 1)
        out.append((weights[:, None, :] * groups.events[lags].float()).sum(0))
    return torch.stack(out)


def _score_depth(acc: DepthMetrics, depth: torch.Tensor, gt: torch.Tensor) -> None:
    for p, g in zip(depth.numpy(), gt.float().numpy(), strict=True):
        acc.update(p, g)


def evaluate_set(gep: GEPTransformer, eventfm: EventFM, tokens: dict, context: int,
                 horizons: int = 3, horizon_stride: int = 4, batch_size: int = 64,
                 progress: bool = True, keep_examples: int = 0) -> dict:
    """Every method's scores on one held-out token file (see the module docstring)."""
    cfg = gep.config
    groups = WindowGroups(tokens, cfg.agg_grid)
    decoder = DepthDecoder(eventfm)
    items = anchors(groups, context, 1)
    if not items:
        raise ValueError("no held-out recording has two windows")
    pred = predict(gep, groups, items, 1, batch_size, progress)
    linear = cfg.residual and cfg.reference == "ar"
    methods = METHODS + (("linear_extrapolation",) if linear else ())
    feat_err: dict[str, list[torch.Tensor]] = {}
    depth_acc = {m: DepthMetrics() for m in methods}
    examples = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        last = torch.tensor([a.last for a in chunk])
        nxt = last + 1
        truth = groups.events[nxt]
        copy = groups.events[last]
        before = torch.tensor([a.last - 1 if a.context >= 2 else a.last for a in chunk])
        guesses = {"copy_last": copy, "gep": torch.stack([pred[a.last][0] for a in chunk]),
                   "mean_last2": (copy + groups.events[before]) / 2}
        if linear:
            guesses["linear_extrapolation"] = linear_reference(gep, groups, chunk)
        for m, g in guesses.items():  # feature MSE over the patch slots (slot 0: CLS)
            feat_err.setdefault(m, []).append(((g[:, 1:] - truth[:, 1:]) ** 2).mean(dim=(1, 2)))
        gt = tokens["depth"][nxt]
        depths = {
            **{m: decode_groups(decoder, g, cfg.agg_grid) for m, g in guesses.items()},
            "next_window_agg": decode_groups(decoder, truth, cfg.agg_grid),
            "copy_last_full": decoder(tokens["event_cls"][last], tokens["event_patch"][last]),
            "next_window_full": decoder(tokens["event_cls"][nxt], tokens["event_patch"][nxt]),
        }
        for m, d in depths.items():
            _score_depth(depth_acc[m], d, gt)
        if len(examples) < keep_examples:
            for n in range(0, len(chunk), max(1, len(chunk) // 2)):
                if len(examples) < keep_examples:
                    examples.append({"gt": gt[n].float().numpy(),
                                     **{m: d[n].numpy() for m, d in depths.items()}})
    result = {m: depth_acc[m].compute() for m in methods}
    for m, errs in feat_err.items():
        result[m]["feature_mse"] = float(torch.cat(errs).mean())
    result["windows"] = len(items)
    result["_depth_sums"] = {m: dict(acc.sums) for m, acc in depth_acc.items()}
    result["horizon"] = (horizon_curve(gep, groups, decoder, tokens["depth"], context, horizons,
                                       horizon_stride, batch_size, progress)
                         if horizons > 0 else {})
    result["_examples"] = examples
    return result


def horizon_curve(gep: GEPTransformer, groups: WindowGroups, decoder: DepthDecoder,
                  depth: torch.Tensor, context: int, horizons: int, stride: int,
                  batch_size: int, progress: bool) -> dict:
    """Feature MSE and depth MAE@10m of the event group h = 1..horizons windows ahead."""
    cfg = gep.config
    context = min(context, cfg.max_windows - horizons)
    items = anchors(groups, context, horizons, stride)
    if context < 1 or not items:
        return {}
    pred = predict(gep, groups, items, horizons, batch_size, progress)
    curve: dict[str, dict[str, list[float]]] = {
        m: {"feature_mse": [], "depth_mae_10m": []} for m in ("copy_last", "gep")}
    last = torch.tensor([a.last for a in items])
    for h in range(1, horizons + 1):
        truth = groups.events[last + h]
        for m, guess in (("gep", torch.stack([pred[a.last][h - 1] for a in items])),
                         ("copy_last", groups.events[last])):
            curve[m]["feature_mse"].append(float(((guess[:, 1:] - truth[:, 1:]) ** 2).mean()))
            acc = DepthMetrics()
            for s in range(0, len(items), batch_size):
                _score_depth(acc, decode_groups(decoder, guess[s:s + batch_size], cfg.agg_grid),
                             depth[last[s:s + batch_size] + h])
            curve[m]["depth_mae_10m"].append(acc.compute()["depth_mae_10m"])
    curve["context_windows"] = context
    curve["anchors"] = len(items)
    return curve


def pooled(per_set: dict[str, dict], key: str, method: str) -> float:
    """One metric over all held-out sets together: feature MSE weighted by windows (each has
    the same number of tokens), depth from the summed per-pixel accumulators."""
    if key.startswith("depth") or key in ("absrel", "rmse", "delta1"):
        acc = DepthMetrics()
        for r in per_set.values():
            for name, value in r["_depth_sums"][method].items():
                acc.sums[name] = acc.sums.get(name, 0.0) + value
        return float(acc.compute()[key])
    values = [(r[method][key], r["windows"]) for r in per_set.values()]
    total = sum(n for _, n in values)
    return float(sum(v * n for v, n in values) / total) if total else float("nan")


def summary_json(per_set: dict[str, dict]) -> dict:
    """docs/gep.json: copy_last, mean_last2 and gep (and linear_extrapolation, GEP's fitted
    reference alone, where it has one), each with feature_mse and depth_mae_10m."""
    first = next(iter(per_set.values()), {})
    methods = ("copy_last", "mean_last2", "gep") + (
        ("linear_extrapolation",) if "linear_extrapolation" in first else ())
    return {m: {k: pooled(per_set, k, m) for k in ("feature_mse", "depth_mae_10m")}
            for m in methods}


__all__ = ["METHODS", "Anchor", "DepthDecoder", "anchors", "evaluate_set", "horizon_curve",
           "predict", "rollout_modalities", "summary_json"]
