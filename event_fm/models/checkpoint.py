"""EventFM checkpoints: safetensors weights + a JSON config that rebuilds the architecture.

Nothing is ever unpickled: the config is plain JSON and the weights are safetensors, so loading
a checkpoint from elsewhere cannot execute code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .model import EventFM, EventFMConfig

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "embedded_checkpoint", "load_model", "merge_lora",
           "save_model"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def embedded_checkpoint(name: str) -> Path:
    """A checkpoint shipped under ``models/NAME``: in the source tree, else in the installed
    ament share dir (setup.py installs ``models/*`` there)."""
    here = Path(__file__).resolve().parents[2] / "models" / name
    if here.exists():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("event_fm")) / "models" / name
    except Exception:  # noqa: BLE001 - not in an ament environment
        return here


def save_model(model: EventFM, directory: str | Path) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    (directory / CONFIG_NAME).write_text(model.config.to_json() + "\n")
    return directory


def _resolve(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        return path / WEIGHTS_NAME, path / CONFIG_NAME
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: expected a checkpoint directory or a .safetensors file")
    return path, path.with_name(CONFIG_NAME)


def load_model(path: str | Path, device: str | torch.device | None = None) -> EventFM:
    """Rebuild an EventFM model from a checkpoint directory (or its .safetensors file with
    config.json beside it). The model comes back in eval mode, on ``device`` if given."""
    weights, config_path = _resolve(Path(path))
    for required in (weights, config_path):
        if not required.is_file():
            raise FileNotFoundError(f"checkpoint file missing: {required}")
    config = EventFMConfig.from_dict(json.loads(config_path.read_text()))
    model = EventFM(config)
    state = load_file(str(weights), device="cpu")
    model.load_state_dict(state, strict=True)
    model.eval()
    if device is not None:
        model.to(device)
    return model


def merge_lora(model: EventFM) -> EventFM:
    """Fold the LoRA adapters into the event encoder's transformer, in place (deployment).

    Outputs are unchanged up to float rounding; the merged model saves and loads like any other
    (its config records ``merged``), with plain linears in place of the LoRA wrappers.
    """
    model.encoder.merge_lora()
    model.config.merged = True
    return model
