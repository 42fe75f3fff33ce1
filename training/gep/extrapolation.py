"""The GEP transformer's fitted reference and update scale: the two closed-form pieces around
the learned update.

- ``reference: ar`` starts each prediction from a per-channel linear combination of the slot's
  last windows. The weights are a ridge regression on the training tokens (one set per
  modality): with few training recordings, this is the part of "how a scene evolves" that
  carries over to unseen recordings (the weights come out close to an exponential average).
- ``update_scale`` is how much of the transformer's learned update is added, fitted on
  recordings the transformer never trained on, so an update that only fits the training
  recordings is shrunk instead of making the held-out prediction worse than its reference.
"""

from __future__ import annotations

import torch

from event_fm.models.gep import EVENT, GEPTransformer, interleave, modality_ids

from .data import WindowGroups, windows_back


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


@torch.no_grad()
def update_and_residual(model: GEPTransformer, groups: WindowGroups,
                        windows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """On ``groups``' runs of ``windows`` windows, every event-group target's learned update
    and its residual over the reference (flat, standardized): the two sides of the scale."""
    was_training = model.training
    model.eval()
    device = model.token_mean.device
    cfg = model.config
    runs = [(s, s + windows) for rec in groups.recordings
            for s in range(rec.start, rec.stop - windows + 1, windows)]
    if not runs:
        raise ValueError(f"no validation recording has {windows} windows")
    deltas, residuals = [], []
    for a, b in runs:
        ev = groups.events[a:b][None].to(device)
        fr = groups.frames[a:b][None].to(device)
        tokens = interleave(ev, fr if cfg.with_frames else None)
        n = tokens.shape[1]
        scored = slice(model.period - model.shift, n - model.shift)  # targets after window 0
        events = (model.target_modality(n)[scored] == EVENT).to(device)
        ref = model._reference(tokens)[:, scored][:, events]
        update = model.update(tokens, modality_ids(b - a, cfg.group_size, cfg.with_frames))
        truth = tokens[:, model.period:][:, events]
        deltas.append((update[:, scored][:, events] / model.token_std).flatten())
        residuals.append(((truth - ref) / model.token_std).flatten())
    model.train(was_training)
    return torch.cat(deltas).cpu(), torch.cat(residuals).cpu()


def best_scale(update: torch.Tensor, residual: torch.Tensor) -> dict[str, float]:
    """The least-squares multiple of the update in [0, 1] and the MSEs around it."""
    den = float((update * update).sum())
    scale = min(1.0, max(0.0, float((update * residual).sum()) / den)) if den > 0 else 0.0
    return {"update_scale": scale,
            "validation_mse_reference": float((residual ** 2).mean()),
            "validation_mse_full_update": float(((residual - update) ** 2).mean()),
            "validation_mse_scaled_update": float(((residual - scale * update) ** 2).mean())}


def calibrate_update(model: GEPTransformer, groups: WindowGroups,
                     windows: int) -> dict[str, float]:
    """Fit ``model.update_scale`` in [0, 1] on ``groups`` (recordings the model did not train
    on): the least-squares multiple of the learned update on the event-group targets (the
    modality the evaluation predicts), standardized. Returns the scale and the validation
    MSEs of the reference, the full update and the scaled one."""
    fitted = best_scale(*update_and_residual(model, groups, windows))
    model.update_scale.fill_(fitted["update_scale"])
    windows_used = sum((r.stop - r.start) // windows * windows for r in groups.recordings)
    return {**fitted, "validation_windows": windows_used}
