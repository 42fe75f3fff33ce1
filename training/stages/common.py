"""What every stage shares: configs, turning shard samples into model-sized tensors, pairs of
samples for matching, masks for distillation, and student/teacher weight hand-over."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from event_fm.dataset.shard_dataset import ShardDataset
from event_fm.dataset.shards import Sample
from event_fm.models import EventFM, EventFMConfig, load_model, save_model
from event_fm.models.inference import _resize as resize_like_inference
from event_fm.representations import voxel_grid


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Labels resize nearest; images and voxels exactly as the inference tiling does, so
    training sees what the nodes feed the model."""
    if mode == "nearest" and tuple(x.shape[-2:]) != tuple(size):
        return F.interpolate(x, size=size, mode="nearest")
    return resize_like_inference(x, size)


@dataclass
class Batch:
    voxels: torch.Tensor  # (B, bins, H, W) raw (the encoder normalizes)
    images: torch.Tensor | None  # (B, 3, H, W) float [0, 1], the delivered frames
    images_clean: torch.Tensor | None  # clean frames where the recording has them, else images
    depth: torch.Tensor | None  # (B, H, W) metres, inf/NaN invalid
    semantic: torch.Tensor | None  # (B, H, W) long, 255 ignore
    pose: torch.Tensor | None  # (B, 4, 4) T_world_camera
    K: torch.Tensor | None  # (B, 3, 3) at model resolution
    counts: torch.Tensor  # (B, h, w) events per token-grid cell
    num_events: torch.Tensor  # (B,)


def event_counts(sample: Sample, grid: tuple[int, int]) -> np.ndarray:
    """Events per encoder token (the sensor divided into the token grid)."""
    gh, gw = grid
    ev = sample.events
    if not len(ev):
        return np.zeros(grid, np.float32)
    gx = np.minimum(ev["x"].astype(np.int64) * gw // max(1, sample.width), gw - 1)
    gy = np.minimum(ev["y"].astype(np.int64) * gh // max(1, sample.height), gh - 1)
    return np.bincount(gy * gw + gx, minlength=gh * gw).reshape(grid).astype(np.float32)


def to_batch(samples: list[Sample], model_size: tuple[int, int], num_bins: int,
             grid: tuple[int, int], device: torch.device) -> Batch:
    size = tuple(model_size)
    voxels = torch.stack([  # voxelized on the training device (GPU when there is one)
        _resize(voxel_grid(s.events, num_bins, s.height, s.width, s.t_start, s.t_end,
                           device=device)[None], size, "bilinear")[0] for s in samples])

    def stack_images(name: str) -> torch.Tensor | None:
        arrays = [getattr(s, name) for s in samples]
        if any(a is None for a in arrays):
            return None
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
        return _resize(x, size, "bilinear").to(device)

    images = stack_images("image")
    clean = stack_images("image_clean")
    depth = semantic = pose = K = None
    if all(s.depth is not None for s in samples):
        d = torch.from_numpy(np.stack([s.depth for s in samples]).astype(np.float32))[:, None]
        depth = _resize(d, size, "nearest")[:, 0].to(device)
    if all(s.semantic is not None for s in samples):
        sem = torch.from_numpy(np.stack([s.semantic for s in samples]).astype(np.float32))[:, None]
        semantic = _resize(sem, size, "nearest")[:, 0].long().to(device)
    if all(s.pose is not None for s in samples):
        pose = torch.from_numpy(np.stack([s.pose for s in samples])).float().to(device)
    if all(s.K is not None for s in samples):
        Ks = []
        for s in samples:
            k = np.array(s.K, dtype=np.float64)
            sx, sy = size[1] / s.width, size[0] / s.height
            k[0] *= sx
            k[1] *= sy
            Ks.append(k)
        K = torch.from_numpy(np.stack(Ks)).float().to(device)
    counts = torch.from_numpy(np.stack([event_counts(s, grid) for s in samples])).to(device)
    num = torch.tensor([len(s.events) for s in samples], device=device)
    return Batch(voxels, images, clean if clean is not None else images, depth, semantic, pose,
                 K, counts, num)


def flip_batch(batch: Batch, flags: torch.Tensor) -> Batch:
    """Mirror the flagged samples left-right, labels, intrinsics and poses with them.

    Why: the simulated recordings keep their layout (road below, sky above, objects on the same
    side); mirroring breaks the left-right half of that prior so the model has to read the
    window. A mirrored view is a camera with x negated: cx -> W-1-cx (integer pixel centres, as
    the losses use) and T -> M T M with M = diag(-1, 1, 1, 1), which keeps relative poses valid.
    """
    if not bool(flags.any()):
        return batch
    flags = flags.to(batch.voxels.device)

    def mirror(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None
        f = flags.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(f, x.flip(-1), x)

    K = pose = None
    if batch.K is not None:
        width = batch.voxels.shape[-1]
        K = batch.K.clone()
        K[flags, 0, 2] = (width - 1) - K[flags, 0, 2]
    if batch.pose is not None:
        M = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], device=batch.pose.device))
        pose = batch.pose.clone()
        pose[flags] = M @ pose[flags] @ M
    return Batch(mirror(batch.voxels), mirror(batch.images), mirror(batch.images_clean),
                 mirror(batch.depth), mirror(batch.semantic), pose, K, mirror(batch.counts),
                 batch.num_events)


#: A stage's ``augment`` settings: the probability of mirroring a sample (a pair together).
AUGMENT_DEFAULTS = {"flip": 0.0}


class PairDataset(torch.utils.data.Dataset):
    """Consecutive samples of one recording (gap frames apart), for matching losses."""

    def __init__(self, base: ShardDataset, gap: int = 2):
        self.base, self.gap = base, gap

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[Sample, Sample]:
        a = self.base[i]
        for j in (i + self.gap, i - self.gap, i + 1, i - 1):
            if 0 <= j < len(self.base):
                b = self.base[j]
                if b.source == a.source:
                    return (a, b) if j > i else (b, a)
        return a, a


def load_dataset(root: str, split: str) -> ShardDataset:
    return ShardDataset(root, split)


#: keys of a config's ``model`` section that are not EventFMConfig fields
MODEL_FILE_KEYS = ("weights",)


def model_config(model_cfg: dict) -> tuple[EventFMConfig, Path | None]:
    """The model section as (EventFMConfig, foundation-model weights file or None).

    ``model.weights`` is the user's own DINOv2/DINOv3/DUNE file in its official layout (or
    timm's); it initialises both the frozen teacher and the event student's transformer."""
    section = dict(model_cfg)
    weights = section.pop("weights", None)
    config = EventFMConfig.from_dict(section)
    if weights is None:
        return config, None
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"model.weights: foundation-model weights not found: {path}")
    config.extra = {**config.extra, "backbone_weights": path.name}
    return config, path


def build_model(model_cfg: dict, init: str | None = None) -> EventFM:
    """A fresh model from config (with ``model.weights``: from the foundation model), or the
    previous stage's checkpoint."""
    if init:
        path = Path(init)
        if not path.exists():
            raise FileNotFoundError(f"previous stage checkpoint not found: {path}")
        model = load_model(path)
        return model
    config, weights = model_config(model_cfg)
    return EventFM(config, backbone_weights=weights)


def copy_teacher_into_student(model: EventFM) -> int:
    """Start the student's transformer from the (trained) teacher, as REALM starts from DUNE.

    LoRA wrappers rename a linear's weight to '...base_layer.weight'; the RGB patch projection
    has no student counterpart. Returns the number of tensors copied.
    """
    teacher = model.teacher.backbone.state_dict()
    copied = 0
    with torch.no_grad():
        for name, tensor in model.encoder.backbone.state_dict().items():
            key = name.replace(".base_layer", "")
            if key in teacher and teacher[key].shape == tensor.shape:
                tensor.copy_(teacher[key])
                copied += 1
    return copied


def save_stage_model(model: EventFM, out_dir: Path) -> Path:
    path = Path(out_dir) / "model"
    save_model(model, path)
    return path


def curriculum_radius(progress: float, milestones: list[float], radii: list[int]) -> int:
    """REALM: dilate the occupancy mask by 2, 4, 6 patches at epochs 10, 15, 20 of 30."""
    radius = 0
    for m, r in zip(milestones, radii, strict=True):
        if progress >= m:
            radius = r
    return radius


def dilate_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    x = mask.float()[:, None]
    for _ in range(radius):
        x = F.max_pool2d(x, 3, stride=1, padding=1)
    return x[:, 0] > 0


class StageTask:
    """What the distillation and the RGB-heads stages share: an EventFM ``model`` inside a
    trainable ``module`` and shards turned into the model's batches (mixed into runner Tasks)."""

    model: EventFM
    module: torch.nn.Module
    augment: dict = AUGMENT_DEFAULTS
    _flip_rng: torch.Generator | None = None

    def trainable(self) -> torch.nn.Module:
        return self.module

    def batch(self, samples: list[Sample]) -> Batch:
        """Shard samples -> the model's input batch on the module's device."""
        device = next(self.module.parameters()).device
        model = self.model
        grid = model.encoder.backbone.grid_size(*model.img_size)
        return to_batch(samples, model.img_size, model.config.num_bins, grid, device)

    def flip_flags(self, n: int) -> torch.Tensor:
        """Which of ``n`` samples to mirror (seeded, so a rerun sees the same flips)."""
        p = float(self.augment.get("flip", 0.0))
        if p <= 0:
            return torch.zeros(n, dtype=torch.bool)
        if self._flip_rng is None:
            self._flip_rng = torch.Generator().manual_seed(1234)
        return torch.rand(n, generator=self._flip_rng) < p
