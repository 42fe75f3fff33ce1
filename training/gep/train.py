"""``fit``: next-token regression of the GEP transformer on cached training tokens, through the
shared runner (resume, DDP, tqdm, log.csv)."""

from __future__ import annotations

from pathlib import Path

import torch

from event_fm.models.gep import GEPConfig, GEPTransformer, interleave, modality_ids, save_gep
from training.runner import RunConfig, Task, run

from .data import SequenceDataset, WindowGroups, collate


class GEPTask(Task):
    def __init__(self, groups: WindowGroups, config: GEPConfig, windows: int):
        if windows > config.max_windows:
            raise ValueError(f"training windows {windows} exceed the context "
                             f"{config.max_windows}")
        self.groups, self.config, self.windows = groups, config, windows
        self.model = GEPTransformer(config)
        mean, std = groups.channel_stats()
        self.model.set_token_stats(mean, std)
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

    def save_final(self, out_dir: Path) -> None:
        save_gep(self.model, Path(out_dir) / "model")


def fit(groups: WindowGroups, config: GEPConfig, run_cfg: RunConfig, windows: int):
    """Train and save ``out_dir/model``; returns the runner's result."""
    task = GEPTask(groups, config, windows)
    return run(task, run_cfg, title="GEP next-token MSE")
