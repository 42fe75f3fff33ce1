"""``distill`` stage: the event student learns the frozen teacher's tokens on synchronized pairs.

Losses (selectable, combinable with weights): REALM (weighted L1 + cosine + MSE on normalized CLS
and patch tokens), ScaleEvent (L1 on masked tokens + lambda_is intra-modal + lambda_cs
cross-modal similarity maps), GEP stage 1 (token regression + InfoNCE on pooled tokens through a
projection MLP). Supervision masks: none, ScaleEvent's activation mask (events per patch >= tau)
or REALM's occupancy mask with the progressive dilation curriculum; REALM's input-token dropping
switches on part-way through. Milestones are fractions of the run (REALM's epochs / 30) so short
runs keep the schedule's shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from event_fm.common.strict_config import check_keys
from training.losses.distill import (
    GEPProjector,
    RealmLossWeights,
    gep_stage1_loss,
    realm_loss,
    scaleevent_loss,
)
from training.runner import Task
from training.stages.common import (
    AUGMENT_DEFAULTS,
    Batch,
    StageTask,
    build_model,
    curriculum_radius,
    dilate_mask,
    flip_batch,
    load_dataset,
    save_stage_model,
)

DEFAULTS = {
    "losses": {"realm": 1.0},  # any of realm / scaleevent / gep, with weights
    "realm_weights": {"l1": 1.0, "cosine": 1.0, "mse": 1.0, "cls": 1.0},
    "scaleevent": {"lambda_is": 10.0, "lambda_cs": 4.0, "use_l1": True},
    "gep": {"contrastive_weight": 0.5, "temperature": 0.07},
    "mask": "occupancy",  # none | activation | occupancy
    "activation_tau": 64,  # ScaleEvent: events per patch
    "dilation_milestones": [10 / 30, 15 / 30, 20 / 30],  # REALM: epochs 10, 15, 20 of 30
    "dilation_radii": [2, 4, 6],
    "token_drop": 0.3,
    "token_drop_from": 8 / 30,  # REALM: from epoch 8
}
#: The keys of a ``distill`` section besides the runner's (RunConfig) fields.
SECTION_KEYS = (*DEFAULTS, "init", "augment")
LOSS_NAMES = ("realm", "scaleevent", "gep")


def check_section(section: Mapping[str, Any], path: str = "distill") -> None:
    """The strict policy for the nested settings: a typo there must raise, not fall back to a
    default (the top-level keys are checked with the runner's, by split_run_config)."""
    for key in ("realm_weights", "scaleevent", "gep"):
        if isinstance(section.get(key), Mapping):
            check_keys(section[key], DEFAULTS[key], f"{path}.{key}")
    if isinstance(section.get("losses"), Mapping):
        check_keys(section["losses"], LOSS_NAMES, f"{path}.losses")
    if isinstance(section.get("augment"), Mapping):
        check_keys(section["augment"], AUGMENT_DEFAULTS, f"{path}.augment")


class DistillModule(nn.Module):
    def __init__(self, model, settings: dict):
        super().__init__()
        self.model = model
        self.s = settings
        for p in model.parameters():
            p.requires_grad_(False)
        model.encoder.set_trainable()
        self.projector = None
        if "gep" in settings["losses"]:
            dim = model.encoder.embed_dim
            self.projector = nn.ModuleDict({"student": GEPProjector(dim),
                                            "teacher": GEPProjector(dim)})

    def mask_for(self, batch: Batch, progress: float) -> torch.Tensor | None:
        s = self.s
        if s["mask"] == "none":
            return None
        if s["mask"] == "activation":
            return batch.counts >= float(s["activation_tau"])
        if s["mask"] == "occupancy":
            radius = curriculum_radius(progress, s["dilation_milestones"], s["dilation_radii"])
            return dilate_mask(batch.counts > 0, radius)
        raise ValueError(f"unknown mask {s['mask']!r}")

    def forward(self, batch: Batch, progress: float) -> dict[str, torch.Tensor]:
        model, s = self.model, self.s
        with torch.no_grad():
            target = model.teacher(batch.images_clean)
        drop = float(s["token_drop"]) if progress >= float(s["token_drop_from"]) else 0.0
        student = model.encoder(batch.voxels, drop_ratio=drop)
        t_patch = target.patch
        mask = self.mask_for(batch, progress)
        mask = None if mask is None else mask.flatten(1)
        if student.keep_indices is not None:
            idx = student.keep_indices
            t_patch = t_patch.gather(1, idx[..., None].expand(-1, -1, t_patch.shape[-1]))
            mask = None if mask is None else mask.gather(1, idx)
        out: dict[str, torch.Tensor] = {"token_drop": torch.tensor(drop),
                                        "mask_fraction": mask.float().mean() if mask is not None
                                        else torch.tensor(1.0)}
        total = t_patch.new_zeros(())
        for name, weight in s["losses"].items():
            if not weight:  # a row that switches a loss off (reproduction ablations)
                continue
            if name == "realm":
                r = realm_loss(student.patch, t_patch, student.cls, target.cls, mask,
                               RealmLossWeights(**s["realm_weights"]))
            elif name == "scaleevent":
                r = scaleevent_loss(student.patch, t_patch, mask, **s["scaleevent"])
            elif name == "gep":
                r = gep_stage1_loss(student.patch, t_patch,
                                    self.projector["student"](student.patch, mask),
                                    self.projector["teacher"](t_patch.detach(), mask), mask,
                                    **s["gep"])
            else:
                raise ValueError(f"unknown distillation loss {name!r}")
            total = total + float(weight) * r["loss"]
            out.update({f"{name}_{k}": v for k, v in r.items() if k != "loss"})
        out["loss"] = total
        return out


class DistillTask(StageTask, Task):
    def __init__(self, config: dict):
        section = config.get("distill", {})
        check_section(section)
        self.augment = {**AUGMENT_DEFAULTS, **(section.get("augment") or {})}
        settings = {**DEFAULTS, **{k: v for k, v in section.items() if k in DEFAULTS}}
        self.model = build_model(config.get("model", {}), section.get("init"))
        self.module = DistillModule(self.model, settings)
        self.dataset_root = config["data"]["root"]
        self.steps = int(config.get("run", {}).get("steps", 1)) if "steps" not in section else \
            int(section["steps"])

    def dataset(self):
        return load_dataset(self.dataset_root, "train")

    def losses(self, samples, step: int) -> dict[str, torch.Tensor]:
        batch = flip_batch(self.batch(samples), self.flip_flags(len(samples)))
        return self.ddp_module(batch, step / max(1, self.steps))

    def save_final(self, out_dir: Path) -> None:
        save_stage_model(self.model, out_dir)
