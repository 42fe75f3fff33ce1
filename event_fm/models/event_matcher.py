"""An event-side matcher whose descriptors live in XFeat's 64-d space and follow image content.

:class:`EventMatcher` is XFeat's network (:class:`event_fm.models.xfeat.XFeatNet`) with its input
adapted from one grey channel to an event voxel grid: the ``num_bins`` signed bins (normalised as
the event encoder does, ``normalize_voxels``) plus one magnitude channel (the sum of their absolute
values, instance-normalised like XFeat's grey input). It is a plain CNN with no absolute position
input (translation-equivariant up to the stride and the borders), so a descriptor can only come
from the events around it, and it runs at any resolution (padded to a multiple of 32). Its
outputs are XFeat's: unit 64-d descriptors (B, 64, H/8, W/8), 65-way keypoint logits per 8x8 cell
and a reliability map. It is initialised from XFeat's trained weights (the first convolutions'
grey kernels copied to the magnitude channel and, scaled by 1/bins, to each bin; the keypoint head
reads the magnitude channel unchanged) and distilled from frozen XFeat on the aligned frames
(``event-fm train distill matcher``), so an event descriptor can be matched against XFeat's on a
camera frame (image-event matching) as well as against another window's.

Typical use::

    matcher = load_event_matcher()                    # the shipped models/event_matcher
    dense = matcher.dense(voxels)                     # (B, bins, H, W) raw voxel grids
    feats = matcher.keypoints(voxels, top_k=1024)[0]  # SparseFeatures, as XFeatTeacher's
    result = match_events(vox0, vox1, K)              # event-event matches + RelativePose
    result = match_image_to_events(frame, vox1, K_image, K_events)   # image-event
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from event_fm.common.filters import max_filter

from .checkpoint import embedded_checkpoint, register_kind
from .checkpoint import load as load_checkpoint
from .event_encoder import normalize_voxels
from .pose import estimate_relative_pose
from .xfeat import (
    STRIDE,
    ImageMatches,
    SparseFeatures,
    XFeatDense,
    XFeatNet,
    XFeatTeacher,
    _default_teacher,
    match_descriptors,
    sparse_features,
)

__all__ = ["ADAPTED_KEYS", "EventMatcher", "EventMatcherConfig", "load_event_matcher",
           "match_events", "match_image_to_events", "xfeat_init_state"]

_MULTIPLE = 32
#: The checkpoint keys whose input channels change from XFeat's 1 (grey) to bins + 1.
ADAPTED_KEYS = ("block1.0.layer.0.weight", "skip1.1.weight")


@dataclass
class EventMatcherConfig:
    num_bins: int = 5
    voxel_norm: str = "nonzero"
    dim: int = 64
    extra: dict[str, Any] = field(default_factory=dict)  # free-form metadata (meta)


class EventMatcher(nn.Module):
    """XFeat's backbone and heads on event voxel grids; parameter names follow XFeat's (without
    its sub-pixel ``fine_matcher``), so XFeat's weights load with :func:`xfeat_init_state`."""

    def __init__(self, config: EventMatcherConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or EventMatcherConfig()
        ref = XFeatNet(config.dim)
        in_chs = config.num_bins + 1
        self.norm = nn.InstanceNorm2d(1)
        self.skip1 = nn.Sequential(nn.AvgPool2d(4, stride=4), nn.Conv2d(in_chs, 24, 1))
        self.block1 = ref.block1
        first = self.block1[0].layer[0]
        self.block1[0].layer[0] = nn.Conv2d(in_chs, first.out_channels, 3, padding=1, bias=False)
        self.block2, self.block3, self.block4, self.block5 = (
            ref.block2, ref.block3, ref.block4, ref.block5)
        self.block_fusion = ref.block_fusion
        self.heatmap_head = ref.heatmap_head
        self.keypoint_head = ref.keypoint_head

    # -- the network -----------------------------------------------------------------------
    def prepare(self, voxels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw voxels (B, bins, H, W) -> (network input (B, bins + 1, H, W), magnitude (B, 1, H,
        W)), both normalised per sample (no position enters)."""
        if voxels.ndim == 3:
            voxels = voxels[None]
        if voxels.ndim != 4 or voxels.shape[1] != self.config.num_bins:
            raise ValueError(f"expected voxels (B, {self.config.num_bins}, H, W), got "
                             f"{tuple(voxels.shape)}")
        with torch.no_grad():
            bins = normalize_voxels(voxels.float(), self.config.voxel_norm)
            mag = self.norm(bins.abs().sum(1, keepdim=True))
        return torch.cat([bins, mag], 1), mag

    def forward(self, voxels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(raw descriptors (B, 64, H/8, W/8), keypoint logits (B, 65, ..), reliability (B, 1,
        ..)) of voxels whose H, W are multiples of 32 (see :meth:`dense` for any size)."""
        x, mag = self.prepare(voxels)
        x2 = self.block2(self.block1(x) + self.skip1(x))
        x3 = self.block3(x2)
        x4 = self.block4(x3)
        x5 = self.block5(x4)
        size = x3.shape[-2:]
        fused = x3 + F.interpolate(x4, size, mode="bilinear") + F.interpolate(
            x5, size, mode="bilinear")
        feats = self.block_fusion(fused)
        reliability = self.heatmap_head(feats)
        logits = self.keypoint_head(F.pixel_unshuffle(mag, STRIDE))
        return feats, logits, reliability

    def _padded(self, voxels: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        if voxels.ndim == 3:
            voxels = voxels[None]
        voxels = voxels.to(self.device, torch.float32)
        h, w = voxels.shape[-2:]
        pad_h, pad_w = -h % _MULTIPLE, -w % _MULTIPLE
        if pad_h or pad_w:  # zeros: no events there (replicating would invent some)
            voxels = F.pad(voxels, (0, pad_w, 0, pad_h))
        return voxels, h, w

    def dense(self, voxels: torch.Tensor) -> XFeatDense:
        """Unit descriptors, keypoint logits and reliability at 1/8, cropped to ceil(H/8) x
        ceil(W/8) cells; differentiable (wrap in no_grad for inference)."""
        x, h, w = self._padded(voxels)
        feats, logits, reliability = self(x)
        gh, gw = -(-h // STRIDE), -(-w // STRIDE)
        return XFeatDense(F.normalize(feats[..., :gh, :gw], dim=1), logits[..., :gh, :gw],
                          reliability[..., :gh, :gw])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def keypoints(self, voxels: torch.Tensor, top_k: int = 512, threshold: float = 0.01,
                  nms_size: int = 5) -> list[SparseFeatures]:
        """Sparse features as :meth:`XFeatTeacher.keypoints`: local maxima of the keypoint
        heatmap, scored by heatmap x reliability, descriptors sampled bicubically; only pixels
        inside the sensor (not the padding) and in cells with events."""
        x, h, w = self._padded(voxels)
        active = max_filter((x.abs().sum(1, keepdim=True) > 0).float(), 5)[:, 0] > 0
        return sparse_features(*self(x), (h, w), top_k, threshold, nms_size, active)

    def train(self, mode: bool = True) -> EventMatcher:
        super().train(mode)
        self.norm.train(False)
        return self


def xfeat_init_state(xfeat_state: dict[str, torch.Tensor], num_bins: int = 5
                     ) -> dict[str, torch.Tensor]:
    """XFeat's checkpoint as an :class:`EventMatcher` state dict: ``fine_matcher`` dropped, the
    two input convolutions (:data:`ADAPTED_KEYS`) widened from 1 grey channel to ``num_bins``
    signed bins (the grey kernel / bins each) and the magnitude channel (the grey kernel)."""
    state = {k: v.clone() for k, v in xfeat_state.items() if not k.startswith("fine_matcher.")}
    for key in ADAPTED_KEYS:
        grey = state[key]
        state[key] = torch.cat([grey.repeat(1, num_bins, 1, 1) / num_bins, grey], 1)
    return state


def from_xfeat(config: EventMatcherConfig | None = None,
               teacher: XFeatTeacher | None = None) -> EventMatcher:
    """A new :class:`EventMatcher` carrying XFeat's trained weights (loaded strictly)."""
    from .xfeat import load_xfeat

    matcher = EventMatcher(config)
    teacher = teacher if teacher is not None else load_xfeat("cpu")
    state = xfeat_init_state(teacher.net.state_dict(), matcher.config.num_bins)
    matcher.load_state_dict(state, strict=True)
    return matcher.to(teacher.device)


register_kind("event_matcher", EventMatcher, EventMatcherConfig)


def load_event_matcher(path: str | Path | None = None,
                       device: str | torch.device = "cpu") -> EventMatcher:
    """The event matcher from a checkpoint (default: the shipped ``models/event_matcher``)."""
    path = Path(path) if path is not None else embedded_checkpoint("event_matcher")
    return load_checkpoint(path, device, expect="event_matcher")  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _default_matcher() -> EventMatcher:
    return load_event_matcher()


# -- matching ------------------------------------------------------------------------------
def _voxels(voxels_or_events, num_bins: int, size: tuple[int, int] | None,
            window: tuple[int, int] | None) -> torch.Tensor:
    """A raw voxel grid (bins, H, W) from a tensor/array grid or from an event array."""
    if isinstance(voxels_or_events, torch.Tensor) and voxels_or_events.is_floating_point():
        return voxels_or_events
    arr = voxels_or_events
    if isinstance(arr, np.ndarray) and arr.dtype.names is None:
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    from event_fm.representations import voxel_grid

    if size is None:
        raise ValueError("events need size=(height, width) of the sensor")
    t = np.asarray(arr["t"], dtype=np.int64) if len(arr) else np.zeros(1, np.int64)
    t0, t1 = window if window is not None else (int(t.min()), int(t.max()) + 1)
    return voxel_grid(arr, num_bins, size[0], size[1], t0, t1)


def _pose_result(f0: SparseFeatures, f1: SparseFeatures, K0: np.ndarray, K1: np.ndarray,
                 min_cossim: float, threshold_px: float) -> ImageMatches:
    i0, i1, sim = match_descriptors(f0.descriptors, f1.descriptors, min_cossim)
    kpts0 = f0.keypoints[i0].cpu().numpy().astype(np.float64)
    kpts1 = f1.keypoints[i1].cpu().numpy().astype(np.float64)
    pose = estimate_relative_pose(kpts0, kpts1, np.asarray(K0, np.float64),
                                  np.asarray(K1, np.float64), threshold_px=threshold_px)
    return ImageMatches(kpts0, kpts1, sim.cpu().numpy(), pose)


def match_events(voxels0, voxels1, K: np.ndarray, K1: np.ndarray | None = None,
                 matcher: EventMatcher | None = None, top_k: int = 512,
                 min_cossim: float = -1.0, threshold_px: float = 1.0,
                 size: tuple[int, int] | None = None) -> ImageMatches:
    """Event-event matching: keypoints of two windows (raw voxel grids (bins, H, W), or event
    arrays with ``size``), mutual-NN matches and the relative pose of window 1's camera."""
    matcher = matcher if matcher is not None else _default_matcher()
    bins = matcher.config.num_bins
    f0 = matcher.keypoints(_voxels(voxels0, bins, size, None), top_k=top_k)[0]
    f1 = matcher.keypoints(_voxels(voxels1, bins, size, None), top_k=top_k)[0]
    return _pose_result(f0, f1, K, K if K1 is None else K1, min_cossim, threshold_px)


def match_image_to_events(image, voxels_or_events, K_image: np.ndarray, K_events: np.ndarray,
                          matcher: EventMatcher | None = None,
                          teacher: XFeatTeacher | None = None, top_k: int = 1024,
                          events_top_k: int = 512,
                          min_cossim: float = -1.0, threshold_px: float = 1.0,
                          size: tuple[int, int] | None = None,
                          window: tuple[int, int] | None = None) -> ImageMatches:
    """Image-event matching in one descriptor space: XFeat's keypoints on ``image`` (camera 0:
    (H, W[, 3]) uint8 or a tensor, as :meth:`XFeatTeacher.prepare`) against the event matcher's
    on a window (camera 1: a raw voxel grid (bins, H, W), or a structured event array with the
    sensor ``size`` (H, W) and optionally ``window`` (t_start, t_end) ns), mutual-NN matches and
    the pose of the event camera relative to the image's (``pose``: X1 = R X0 + t, unit t;
    ``pose.ok`` False with too few matches)."""
    matcher = matcher if matcher is not None else _default_matcher()
    teacher = teacher if teacher is not None else _default_teacher()
    f0 = teacher.keypoints(image, top_k=top_k)[0]
    voxels = _voxels(voxels_or_events, matcher.config.num_bins, size, window)
    f1 = matcher.keypoints(voxels, top_k=events_top_k)[0]
    f0 = SparseFeatures(f0.keypoints.cpu(), f0.scores.cpu(), f0.descriptors.cpu())
    f1 = SparseFeatures(f1.keypoints.cpu(), f1.scores.cpu(), f1.descriptors.cpu())
    return _pose_result(f0, f1, K_image, K_events, min_cossim, threshold_px)
