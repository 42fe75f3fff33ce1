"""The GEP transformer's fitted reference and update scale: the two closed-form pieces around
the learned update.

- ``reference: ar`` starts each prediction from a per-channel linear combination of the slot's
  last windows. The weights are a ridge regression on the training tokens (one set per
  modality): with few training recordings, this is the part of "how a scene evolves" that
  carries over to unseen recordings (the weights come out close to an exponential average).
- ``update_scale`` is how much of the transformer's learned update is added, fitted on
  recordings the transformer never trained on, so an update that only fits the training
  recordings is shrunk instead of making the held-out prediction worse than its reference.
  With ``fit.depth_weight`` the scale minimizes the training objective there (feature MSE plus
  the weighted depth term), not the feature MSE alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from event_fm.models.gep import EVENT, GEPTransformer, interleave, modality_ids

from .data import WindowGroups, windows_back
from .depth import DepthDecoder


def slot_histories(groups: torch.Tensor, recordings: list[slice],
                   windows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K, C) groups -> history (M, windows, C) and target (M, C) over every slot of every
    window that has an earlier one; a missing earlier window repeats the earliest that exists
    (as the model's reference does)."""
    hist, target = [], []
    for rec in recordings:
        for t in range(rec.start + 1, rec.stop):
            lags = windows_back(t - 1, windows, rec.start)
            hist.append(groups[lags].transpose(0, 1))  # (K, windows, C)
            target.append(groups[t])
    if not hist:
        raise ValueError("no recording has two windows to fit an extrapolation on")
    return torch.cat(hist).float(), torch.cat(target).float()


def fit_linear_extrapolation(groups: WindowGroups, windows: int,
                             ridge: float = 1e-3) -> torch.Tensor:
    """Weights (2, windows, C) for :meth:`GEPTransformer.set_ar_weights`: per modality and
    channel, least squares of the next window's slot on the slot's last ``windows`` windows;
    ``ridge`` is relative to each channel's mean squared history."""
    out = []
    for modality in (groups.events, groups.frames):
        x, y = slot_histories(modality, groups.recordings, windows)
        gram = torch.einsum("mwc,mvc->cwv", x, x)
        rhs = torch.einsum("mwc,mc->cw", x, y)
        scale = gram.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12)
        gram = gram + ridge * scale[:, None, None] * torch.eye(windows)
        out.append(torch.linalg.solve(gram, rhs.unsqueeze(-1))[..., 0].T)  # (windows, C)
    return torch.stack(out)


@dataclass
class ValidationPredictions:
    """Every event-group target of ``groups``' runs (raw units, (M, K, C) each): the
    reference, the learned update (unscaled) and the truth, and the target windows' indices
    into the token file (M,) for their depth ground truth."""

    reference: torch.Tensor
    update: torch.Tensor
    truth: torch.Tensor
    windows: torch.Tensor

    def standardized(self, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(update, residual over the reference), flat and standardized: the two sides of the
        scale."""
        return ((self.update / std).flatten(),
                ((self.truth - self.reference) / std).flatten())


@torch.no_grad()
def validation_predictions(model: GEPTransformer, groups: WindowGroups,
                           windows: int) -> ValidationPredictions:
    """The model on consecutive runs of ``windows`` windows of ``groups`` (each window after a
    run's first is a target)."""
    was_training = model.training
    model.eval()
    device = model.token_mean.device
    cfg = model.config
    k = cfg.group_size
    runs = [(s, s + windows) for rec in groups.recordings
            for s in range(rec.start, rec.stop - windows + 1, windows)]
    if not runs:
        raise ValueError(f"no validation recording has {windows} windows")
    parts: dict[str, list[torch.Tensor]] = {"reference": [], "update": [], "truth": []}
    for a, b in runs:
        ev = groups.events[a:b][None].to(device)
        fr = groups.frames[a:b][None].to(device)
        tokens = interleave(ev, fr if cfg.with_frames else None)
        n = tokens.shape[1]
        scored = slice(model.period - model.shift, n - model.shift)  # targets after window 0
        events = (model.target_modality(n)[scored] == EVENT).to(device)
        update = model.update(tokens, modality_ids(b - a, k, cfg.with_frames))
        for name, value in (("reference", model._reference(tokens)[:, scored]),
                            ("update", update[:, scored]),
                            ("truth", tokens[:, model.period:])):
            parts[name].append(value[:, events].reshape(-1, k, value.shape[-1]).cpu())
    model.train(was_training)
    targets = torch.cat([torch.arange(a + 1, b) for a, b in runs])
    return ValidationPredictions(**{n: torch.cat(v) for n, v in parts.items()},
                                 windows=targets)


def best_scale(update: torch.Tensor, residual: torch.Tensor) -> dict[str, float]:
    """The least-squares multiple of the update in [0, 1] and the MSEs around it."""
    den = float((update * update).sum())
    scale = min(1.0, max(0.0, float((update * residual).sum()) / den)) if den > 0 else 0.0
    return {"update_scale": scale,
            "validation_mse_reference": float((residual ** 2).mean()),
            "validation_mse_full_update": float(((residual - update) ** 2).mean()),
            "validation_mse_scaled_update": float(((residual - scale * update) ** 2).mean())}


class DepthTerm:
    """The depth part of the validation objective: ``weight`` times the depth head's loss of
    the predicted event groups against the target windows' ground truth (as in training)."""

    def __init__(self, decoder: DepthDecoder, depth: torch.Tensor, agg_grid: tuple[int, int],
                 weight: float, batch_size: int = 64):
        self.decoder, self.depth, self.agg_grid = decoder, depth, tuple(agg_grid)
        self.weight, self.batch_size = float(weight), batch_size

    @torch.no_grad()
    def __call__(self, groups: torch.Tensor, windows: torch.Tensor) -> float:
        total, count = 0.0, 0
        for s in range(0, len(groups), self.batch_size):
            g, w = groups[s:s + self.batch_size], windows[s:s + self.batch_size]
            total += float(self.decoder.loss(g, self.depth[w], self.agg_grid)) * len(g)
            count += len(g)
        return total / max(count, 1)


def validation_scores(model: GEPTransformer, groups: WindowGroups, windows: int,
                      depth: DepthTerm | None = None,
                      scales: tuple[float, ...] | None = None) -> dict[str, float]:
    """The update scale and the validation objective (event-group MSE, standardized, plus the
    depth term where there is one) at it. Without a depth term the scale is the least-squares
    one; with one, the best of ``scales`` and the least-squares scale on the whole objective
    (``scales=None``: the least-squares scale alone, one decoding pass)."""
    preds = validation_predictions(model, groups, windows)
    update, residual = preds.standardized(model.token_std.cpu())
    scores = best_scale(update, residual)
    if depth is None:
        return {**scores, "validation_objective": scores["validation_mse_scaled_update"]}
    best = None
    for s in sorted({scores["update_scale"], *(scales or ())}):
        mse = float(((residual - s * update) ** 2).mean())
        term = depth(preds.reference + s * preds.update, preds.windows)
        objective = mse + depth.weight * term
        if best is None or objective < best[0]:
            best = (objective, s, mse, term)
    objective, s, mse, term = best
    return {**scores, "update_scale": s, "validation_mse_scaled_update": mse,
            "validation_depth_loss_scaled_update": term,
            "validation_depth_loss_reference": depth(preds.reference, preds.windows),
            "validation_objective": objective}


#: the scales tried when the objective has a depth term (besides the least-squares one)
SCALE_GRID = tuple(i / 10 for i in range(11))


def calibrate_update(model: GEPTransformer, groups: WindowGroups, windows: int,
                     depth: DepthTerm | None = None) -> dict[str, float]:
    """Fit ``model.update_scale`` in [0, 1] on ``groups`` (recordings the model did not train
    on), on the event-group targets (the modality the evaluation predicts): the least-squares
    multiple of the learned update (standardized), or, with a depth term, the scale of
    :data:`SCALE_GRID` with the lowest whole objective. Returns the scale and the validation
    scores of the reference, the full update and the scaled one."""
    fitted = validation_scores(model, groups, windows, depth, SCALE_GRID)
    model.update_scale.fill_(fitted["update_scale"])
    windows_used = sum((r.stop - r.start) // windows * windows for r in groups.recordings)
    return {**fitted, "validation_windows": windows_used}
