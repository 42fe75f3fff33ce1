"""``fit``: next-token regression of the GEP transformer on cached training tokens, through the
shared runner (resume, DDP, tqdm, log.csv)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from event_fm.models.gep import GEPConfig, GEPTransformer, interleave, modality_ids, save_gep
from training.runner import STATE_FILE, RunConfig, Task, run

from .data import SequenceDataset, WindowGroups, collate
from .extrapolation import (
    best_scale,
    calibrate_update,
    fit_linear_extrapolation,
    update_and_residual,
)

VALIDATION_RECORD = "validation_best.pt"  # the curve and the best state so far


class GEPTask(Task):
    """``validation``: recordings left out of training. Every ``validate_every`` steps the
    model is scored on them (its update at the best scale); the best of those states is the
    one saved, with its update scale fitted on them (None: the last state, the full update)."""

    def __init__(self, groups: WindowGroups, config: GEPConfig, windows: int,
                 validation: WindowGroups | None = None, validate_every: int = 50,
                 out_dir: Path | None = None):
        if windows > config.max_windows:
            raise ValueError(f"training windows {windows} exceed the context "
                             f"{config.max_windows}")
        self.groups, self.config, self.windows = groups, config, windows
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
        return SequenceDataset(self.groups, self.windows)

    def collate(self, items):
        return collate(items)

    def losses(self, batch, step: int) -> dict[str, torch.Tensor]:
        device = self.model.token_mean.device
        events, frames = (x.to(device) for x in batch)
        tokens = interleave(events, frames if self.config.with_frames else None)
        module = getattr(self, "ddp_module", self.model)
        err = self.model.next_token_errors(module(tokens, self.modality.to(device)), tokens)
        # the share on event-group targets: the modality evaluation predicts
        target_mod = self.modality[self.model.period:].to(device)
        with torch.no_grad():  # the copy-last baseline on the same targets, for the log
            copy_err = self.model.next_token_errors(self.model.copy_last(tokens), tokens)
        return {"loss": err.mean(), "event_tokens": err[:, target_mod == 0].mean().detach(),
                "copy_last": copy_err.mean(),
                "copy_last_event": copy_err[:, target_mod == 0].mean()}

    def _validate(self, step: int) -> None:
        scores = best_scale(*update_and_residual(self.model, self.validation, self.windows))
        self.curve.append({"step": step, **scores})
        mse = scores["validation_mse_scaled_update"]
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
            self.calibration = {**calibrate_update(self.model, self.validation, self.windows),
                                "best_step": best_step, "curve": self.curve}
            path.write_text(json.dumps(self.calibration, indent=1))
        save_gep(self.model, Path(out_dir) / "model")


def fit(groups: WindowGroups, config: GEPConfig, run_cfg: RunConfig, windows: int,
        validation: WindowGroups | None = None, validate_every: int = 50):
    """Train and save ``out_dir/model``; returns the runner's result."""
    task = GEPTask(groups, config, windows, validation, validate_every, Path(run_cfg.out_dir))
    return run(task, run_cfg, title="GEP next-token MSE")
