"""Forecaster checkpoints: kinds 'forecast_diffusion' and 'forecast_simvp' of the one format in
:mod:`event_fm.models.checkpoint` (sampling settings and provenance go under "meta")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from event_fm.models.checkpoint import load, save
from event_fm.models.forecast.denoiser import VideoDenoiser
from event_fm.models.forecast.simvp import SimVP

KINDS = ("forecast_diffusion", "forecast_simvp")


def save_forecaster(model: nn.Module, directory: str | Path,
                    extra: dict[str, Any] | None = None) -> Path:
    """A VideoDenoiser or SimVP checkpoint; ``extra`` (sampling, source) is stored as meta."""
    kind = "forecast_simvp" if isinstance(model, SimVP) else "forecast_diffusion"
    return save(model, directory, kind, extra)


def load_forecaster(directory: str | Path, device: str | torch.device = "cpu"
                    ) -> VideoDenoiser | SimVP:
    """A VideoDenoiser or SimVP from a checkpoint directory, in eval mode."""
    return load(directory, device, expect=KINDS)  # type: ignore[return-value]
