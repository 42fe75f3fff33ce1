"""``teacher`` and ``heads`` stages: task heads on RGB features (REALM's protocol: heads are
trained on the frozen image teacher and then applied to event features unchanged).

``teacher`` exists only for setups without a real foundation model: it also trains the small
image backbone, multi-task on the simulator's ground truth, so its features carry geometry and
semantics. With DINOv2/DINOv3/DUNE weights, skip it and run ``heads`` directly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from event_fm.common.strict_config import check_keys
from training.losses.tasks import (
    correspondences,
    depth_loss,
    matching_loss,
    segmentation_loss,
)
from training.runner import Task
from training.stages.common import (
    AUGMENT_DEFAULTS,
    Batch,
    PairDataset,
    StageTask,
    build_model,
    copy_teacher_into_student,
    flip_batch,
    load_dataset,
    save_stage_model,
)


class RGBHeadsModule(nn.Module):
    """Forward = the multi-task loss of one batch pair (so DDP syncs what trains).

    ``source`` picks the features: 'image' (the teacher on clean RGB; REALM's protocol) or
    'events' (the event encoder trained end to end on ground truth: the no-teacher baseline).
    """

    def __init__(self, model, weights: dict[str, float], train_backbone: bool,
                 source: str = "image"):
        super().__init__()
        self.model = model
        self.weights = weights
        self.train_backbone = train_backbone
        self.source = source
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.heads.parameters():
            p.requires_grad_(True)
        if train_backbone:
            encoder = model.teacher.backbone if source == "image" else model.encoder
            for p in encoder.parameters():
                p.requires_grad_(True)
        cfg = model.config
        self.class_weights = torch.tensor(
            cfg.extra.get("class_weights", [1.0] * len(cfg.class_names)), dtype=torch.float32)

    def forward(self, a: Batch, b: Batch) -> dict[str, torch.Tensor]:
        model = self.model
        images = torch.cat([a.images_clean, b.images_clean])
        with torch.set_grad_enabled(self.train_backbone):
            if self.source == "events":
                feats = model.encoder(torch.cat([a.voxels, b.voxels]))
            else:
                feats = model.teacher(images)
        if not self.train_backbone:
            feats.cls, feats.patch = feats.cls.detach(), feats.patch.detach()
        size = tuple(images.shape[-2:])
        heads = [h for h in ("depth", "segmentation", "matching") if h in model.heads]
        out = model.forward_heads(feats, size, heads)
        losses: dict[str, torch.Tensor] = {}
        total = images.new_zeros(())
        n = a.voxels.shape[0]
        lo, hi = model.config.depth_range
        if "depth" in out and a.depth is not None:
            d = depth_loss(out["depth"][:, 0], torch.cat([a.depth, b.depth]), lo, hi)
            losses["depth"] = d["loss"]
            total = total + self.weights.get("depth", 1.0) * d["loss"]
        if "semantic_logits" in out and a.semantic is not None:
            s = segmentation_loss(out["semantic_logits"], torch.cat([a.semantic, b.semantic]),
                                  self.class_weights.to(images.device))
            losses["segmentation"] = s["loss"]
            total = total + self.weights.get("segmentation", 1.0) * s["loss"]
        if "descriptors" in out and a.pose is not None and a.K is not None and a.depth is not None:
            stride = model.config.matching_stride
            uv1, valid = correspondences(a.depth, a.pose, b.pose, a.K, stride, b.depth)
            desc = out["descriptors"]
            m = matching_loss(desc[:n], desc[n:], uv1, valid, size)
            conf = out["confidence"][:n, 0]
            # confidence learns where correspondences exist (textured, visible in both views)
            target = valid.float()
            conf = conf.float().clamp(1e-4, 1 - 1e-4)  # explicit BCE: autocast-safe on CUDA
            c = -(target * conf.log() + (1 - target) * (1 - conf).log()).mean()
            losses["matching"] = m
            losses["confidence"] = c
            total = total + self.weights.get("matching", 1.0) * (m + 0.5 * c)
        losses["loss"] = total
        return losses


#: The keys of a teacher / heads / scratch section besides the runner's (RunConfig) fields.
SECTION_KEYS = ("init", "loss_weights", "pair_gap", "augment")
LOSS_WEIGHT_KEYS = ("depth", "segmentation", "matching")


class RGBHeadsTask(StageTask, Task):
    def __init__(self, config: dict, stage: str):
        self.config = config
        self.stage = stage
        section = config.get(stage, {})
        check_keys(section.get("loss_weights") or {}, LOSS_WEIGHT_KEYS, f"{stage}.loss_weights")
        check_keys(section.get("augment") or {}, AUGMENT_DEFAULTS, f"{stage}.augment")
        self.augment = {**AUGMENT_DEFAULTS, **(section.get("augment") or {})}
        init = section.get("init")
        self.model = build_model(config.get("model", {}), init)
        train_backbone = stage in ("teacher", "scratch")
        source = "events" if stage == "scratch" else "image"
        self.module = RGBHeadsModule(self.model, section.get("loss_weights", {}), train_backbone,
                                     source)
        self.dataset_root = config["data"]["root"]
        self.pair_gap = int(section.get("pair_gap", 2))
        self.device = None

    def dataset(self):
        return PairDataset(load_dataset(self.dataset_root, "train"), self.pair_gap)

    def losses(self, pairs, step: int) -> dict[str, torch.Tensor]:
        flags = self.flip_flags(len(pairs))  # a pair is mirrored together
        return self.ddp_module(flip_batch(self.batch([p[0] for p in pairs]), flags),
                               flip_batch(self.batch([p[1] for p in pairs]), flags))

    def save_final(self, out_dir: Path) -> None:
        if self.stage == "teacher":
            copy_teacher_into_student(self.model)
        save_stage_model(self.model, out_dir)
