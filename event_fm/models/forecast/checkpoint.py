"""Forecaster checkpoints: ``model.safetensors`` + ``config.json`` (with ``kind``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch.nn as nn
from safetensors.torch import load_file, save_file

from event_fm.models.forecast.denoiser import ForecastConfig, VideoDenoiser
from event_fm.models.forecast.simvp import SimVP, SimVPConfig


def save_forecaster(model: nn.Module, directory: str | Path, extra: dict | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))
    config = json.loads(model.config.to_json())
    if extra:
        config["notes"] = extra
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def load_forecaster(directory: str | Path, device="cpu") -> nn.Module:
    """A VideoDenoiser or SimVP from a checkpoint directory, in eval mode."""
    directory = Path(directory)
    config_path, weights = directory / "config.json", directory / "model.safetensors"
    if not config_path.exists() or not weights.exists():
        raise FileNotFoundError(f"forecast checkpoint not found: {directory} (needs config.json "
                                "and model.safetensors)")
    data = json.loads(config_path.read_text())
    data.pop("notes", None)
    kind = data.get("kind", "diffusion")
    if kind == "diffusion":
        model: nn.Module = VideoDenoiser(ForecastConfig.from_dict(data))
    elif kind == "simvp":
        model = SimVP(SimVPConfig.from_dict(data))
    else:
        raise ValueError(f"{config_path}: unknown forecaster kind {kind!r}")
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval()
