"""``fit``: next-token regression of the GEP transformer on cached training tokens, through the
shared runner (resume, DDP, tqdm, log.csv)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from event_fm.models.gep import GEPConfig, GEPTransformer, interleave, modality_ids, save_gep
from training.runner import STATE_FILE, RunConfig, Task, run

from .data import SequenceDataset, WindowGroups, collate
from .depth import DepthDecoder
from .extrapolation import (
    DepthTerm,
    calibrate_update,
    fit_linear_extrapolation,
    validation_scores,
)

VALIDATION_RECORD = "validation_best.pt"  # the curve and the best state so far


@dataclass
class DepthObjective:
    """``fit.depth_weight`` > 0: the predicted event groups of ``windows`` random target windows
    per step also go through the checkpoint's frozen depth head, and ``weight`` times its loss
    against the windows' ground truth joins the next-token MSE (validation scores the same
    sum)."""

    decoder: DepthDecoder
    weight: float
    windows: int = 2


def predicted_event_groups(model: GEPTransformer, pred: torch.Tensor,
                           targets: torch.Tensor) -> torch.Tensor:
    """The predictions (B, N, C) of the event groups of windows ``targets`` (each >= 1) ->
    (B, len(targets), K, C): position i predicts token i + shift."""
    k = model.config.group_size
    starts = targets * model.period - model.shift
    idx = (starts[:, None] + torch.arange(k)).flatten().to(pred.device)
    return pred[:, idx].reshape(pred.shape[0], len(targets), k, pred.shape[-1])


class GEPTask(Task):
    """``validation``: recordings left out of training. Every ``validate_every`` steps the
    model is scored on them (its update at the best scale); the best of those states is the
    one saved, with its update scale fitted on them (None: the last state, the full update).
    ``depth``: the optional depth term of the objective (:class:`DepthObjective`)."""

    def __init__(self, groups: WindowGroups, config: GEPConfig, windows: int,
                 validation: WindowGroups | None = None, validate_every: int = 50,
                 out_dir: Path | None = None, depth: DepthObjective | None = None):
        if windows > config.max_windows:
            raise ValueError(f"training windows {windows} exceed the context "
                             f"{config.max_windows}")
        self.groups, self.config, self.windows = groups, config, windows
        self.depth = depth if depth is not None and depth.weight > 0 else None
        self.validation, self.validate_every = validation, max(1, validate_every)
        self.calibration: dict = {}
        self.curve: list[dict] = []  # validation scores during training
        self._best: tuple[float, int, dict] | None = None  # (MSE, step, state)
        self._step = -1  # the last step begun in this process
        # the validation record lives beside the runner's state, so a resumed fit (or a rerun
        # of a finished one) keeps its curve and best state; a fresh fit drops a stale one
        self._record = Path(out_dir) / VALIDATION_RECORD if out_dir is not None else None
        if self._record is not None and self._record.exists():
            if (Path(out_dir) / STATE_FILE).exists():
                saved = torch.load(self._record, map_location="cpu", weights_only=True)
                self.curve = json.loads(saved["curve"])
                self._best = (float(saved["mse"]), int(saved["step"]), saved["state"])
            else:
                self._record.unlink()
        self.model = GEPTransformer(config)
        mean, std = groups.channel_stats()
        self.model.set_token_stats(mean, std)
        if config.residual and config.reference == "ar":
            self.model.set_ar_weights(fit_linear_extrapolation(groups, config.ar_windows))
        self.modality = modality_ids(windows, config.group_size, config.with_frames)

    def trainable(self) -> torch.nn.Module:
        return self.model

    def dataset(self) -> SequenceDataset:
        return SequenceDataset(self.groups, self.windows, with_depth=self.depth is not None)

    def collate(self, items):
        return collate(items)

    def losses(self, batch, step: int) -> dict[str, torch.Tensor]:
        device = self.model.token_mean.device
        events, frames = (x.to(device) for x in batch[:2])
        tokens = interleave(events, frames if self.config.with_frames else None)
        module = getattr(self, "ddp_module", self.model)
        pred = module(tokens, self.modality.to(device))
        err = self.model.next_token_errors(pred, tokens)
        # the share on event-group targets: the modality evaluation predicts
        target_mod = self.modality[self.model.period:].to(device)
        with torch.no_grad():  # the copy-last baseline on the same targets, for the log
            copy_err = self.model.next_token_errors(self.model.copy_last(tokens), tokens)
        out = {"loss": err.mean(), "event_tokens": err[:, target_mod == 0].mean().detach(),
               "copy_last": copy_err.mean(),
               "copy_last_event": copy_err[:, target_mod == 0].mean()}
        if self.depth is not None:
            out.update(self._depth_loss(pred, batch[2], step, out["loss"]))
        return out

    def _depth_loss(self, pred: torch.Tensor, depth: torch.Tensor, step: int,
                    feature_loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """The depth term on a few target windows (the same ones for the whole batch; seeded
        by the step, so a resumed run draws the same)."""
        if self.depth.decoder.device != pred.device:
            self.depth.decoder.to(pred.device)
        choices = self.windows - 1  # windows 1..T-1 are targets
        gen = torch.Generator().manual_seed(step)
        targets = torch.randperm(choices, generator=gen)[:self.depth.windows] + 1
        groups = predicted_event_groups(self.model, pred, targets)
        term = self.depth.decoder.loss(groups.flatten(0, 1), depth[:, targets].flatten(0, 1),
                                       self.config.agg_grid)
        return {"loss": feature_loss + self.depth.weight * term, "feature_loss":
                feature_loss.detach(), "depth": term.detach()}

    def _depth_term(self) -> DepthTerm | None:
        if self.depth is None:
            return None
        return DepthTerm(self.depth.decoder, self.validation.depth, self.config.agg_grid,
                         self.depth.weight)

    def _validate(self, step: int) -> None:
        scores = validation_scores(self.model, self.validation, self.windows,
                                   self._depth_term())
        self.curve.append({"step": step, **scores})
        mse = scores["validation_objective"]
        if self._best is None or mse < self._best[0]:
            state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self._best = (mse, step, state)
        if self._record is not None:
            mse, best_step, state = self._best
            torch.save({"curve": json.dumps(self.curve), "mse": torch.tensor(mse),
                        "step": torch.tensor(best_step), "state": state}, self._record)

    def on_step_start(self, step: int) -> None:
        if self._step < 0:  # resumed: scores past the runner's state are scored again
            self.curve = [c for c in self.curve if c["step"] < step]
        self._step = step
        if self.validation is not None and step % self.validate_every == 0:
            self._validate(step)

    def save_final(self, out_dir: Path) -> None:
        path = Path(out_dir) / "calibration.json"
        path.unlink(missing_ok=True)  # never a stale one from an earlier fit in this folder
        if self.validation is not None:
            if self._step >= 0 or not self.curve:  # else: a finished fit, scored when it ended
                self._validate(self._step + 1)  # the state after the last step
            _, best_step, state = self._best
            self.model.load_state_dict(state)
            self.calibration = {**calibrate_update(self.model, self.validation, self.windows,
                                                   self._depth_term()),
                                "best_step": best_step, "curve": self.curve}
            path.write_text(json.dumps(self.calibration, indent=1))
        save_gep(self.model, Path(out_dir) / "model")


def fit(groups: WindowGroups, config: GEPConfig, run_cfg: RunConfig, windows: int,
        validation: WindowGroups | None = None, validate_every: int = 50,
        depth: DepthObjective | None = None):
    """Train and save ``out_dir/model``; returns the runner's result."""
    task = GEPTask(groups, config, windows, validation, validate_every, Path(run_cfg.out_dir),
                   depth)
    return run(task, run_cfg, title="GEP next-token MSE")
