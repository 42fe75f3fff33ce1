"""Fitting the forecasters with the project's runner (resume, tqdm, log.csv, DDP).

DiffusionTask: x0-prediction (E-Motion's Eq. 4 estimates the clean sample) with diffusers'
DDPMScheduler for the forward noising, random prompt lengths (E-Motion: 1-3), loss on the
positions not given as prompt. SimVPTask: the deterministic baseline, MSE on the future frames.
Both read the same cached sequences (step budgets in the config).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from event_fm.models.forecast import (
    ForecastConfig,
    SimVP,
    SimVPConfig,
    VideoDenoiser,
    make_scheduler,
    save_forecaster,
)
from event_fm.models.forecast.denoiser import make_condition
from event_fm.models.forecast.sampling import forecast_base
from training.forecast.data import SequenceDataset, data_std, training_recordings
from training.runner import Task


def train_dataset(config: dict, frames: int, past: int) -> SequenceDataset:
    data = config["data"]
    recordings = training_recordings(data)
    return SequenceDataset(recordings, frames, past, stride=int(data.get("train_stride", 2)),
                           flip=True)


class SequenceTask(Task):
    """What both forecasters share: one model trained on stacked cached sequences."""

    model: torch.nn.Module
    _dataset: SequenceDataset

    def trainable(self) -> torch.nn.Module:
        return self.model

    def dataset(self):
        return self._dataset

    def collate(self, samples: list) -> torch.Tensor:
        return torch.stack(samples)

    def save_final(self, out_dir: Path) -> None:
        save_forecaster(self.model, Path(out_dir) / "model")


class DiffusionTask(SequenceTask):
    def __init__(self, config: dict):
        self.config = config
        model_cfg = dict(config.get("model", {}))
        self.model_config = ForecastConfig.from_dict(model_cfg, "model")
        self._dataset = train_dataset(config, self.model_config.frames, self.model_config.past)
        if "data_scale" not in model_cfg:
            std = data_std(self._dataset)
            self.model_config.data_scale = float(min(20.0, max(1.0, 0.5 / max(std, 1e-6))))
        self.model = VideoDenoiser(self.model_config)
        self.scheduler = make_scheduler(self.model_config, "ddpm")

    def losses(self, batch: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        return diffusion_loss(getattr(self, "ddp_module", self.model), self.model_config,
                              self.scheduler, batch.to(next(self.model.parameters()).device))



def diffusion_loss(model, cfg: ForecastConfig, scheduler, seq: torch.Tensor,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Denoising loss of one batch of normalized sequences (B, T, C, H, W)."""
    b, device = seq.shape[0], seq.device
    x0 = seq * cfg.data_scale
    base = forecast_base(x0[:, :cfg.past], cfg)
    if base is not None:  # the future positions learn the residual over the base
        x0 = torch.cat([x0[:, :cfg.past], x0[:, cfg.past:] - base], dim=1)
    lengths = torch.tensor(cfg.prompt_lengths, device=device)
    pick = torch.randint(len(lengths), (b,), generator=generator, device=device)
    cond, mask = make_condition(x0[:, :cfg.past], lengths[pick], cfg.frames, base)
    noise = torch.randn(x0.shape, generator=generator, device=device)
    t = torch.randint(0, cfg.num_train_timesteps, (b,), generator=generator, device=device)
    noisy = scheduler.add_noise(x0, noise, t)
    pred = model(noisy, t, cond, mask)
    if cfg.prediction_type == "sample":
        target = x0
    elif cfg.prediction_type == "epsilon":
        target = noise
    else:
        target = scheduler.get_velocity(x0, noise, t)
    per_frame = F.mse_loss(pred, target, reduction="none").flatten(2).mean(-1)  # (B, T)
    weight = 1 - mask
    loss = (per_frame * weight).sum() / weight.sum()
    future = per_frame[:, cfg.past:].mean()
    return {"loss": loss, "future_mse": future.detach()}


class SimVPTask(SequenceTask):
    def __init__(self, config: dict):
        self.config = config
        self.model_config = SimVPConfig.from_dict(dict(config.get("simvp_model", {})),
                                                  "simvp_model")
        c = self.model_config
        self._dataset = train_dataset(config, c.past + c.horizon, c.past)
        self.model = SimVP(c)

    def losses(self, batch: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        batch = batch.to(next(self.model.parameters()).device)
        past = self.model_config.past
        pred = getattr(self, "ddp_module", self.model)(batch[:, :past])
        return {"loss": F.mse_loss(pred, batch[:, past:])}

