"""Deployment export: LoRA merged into the transformer, the RGB teacher dropped (the nodes only
run the event path), with a note saying what the checkpoint is."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from event_fm.models import EventFM, EventFMConfig, load_model, merge_lora, save_model


def export_for_deployment(checkpoint: str | Path, out: str | Path, note: str = "",
                          keep_teacher: bool = False) -> Path:
    model = merge_lora(load_model(checkpoint))
    config = EventFMConfig.from_dict(copy.deepcopy(model.config.to_dict()))
    config.with_teacher = keep_teacher
    if note:
        config.extra = {**config.extra, "note": note}
    deployed = EventFM(config)
    state = {k: v for k, v in model.state_dict().items()
             if keep_teacher or not k.startswith("teacher.")}
    deployed.load_state_dict(state, strict=True)
    with torch.no_grad():  # outputs must not change: check on a random window
        x = torch.randn(1, config.num_bins, *config.img_size)
        a = model.forward_events(x, heads="depth")["depth"]
        b = deployed.eval().forward_events(x, heads="depth")["depth"]
        if (a - b).abs().max() > 1e-4:
            raise RuntimeError("exported model differs from the trained one")
    path = Path(out)
    save_model(deployed, path)
    return path
