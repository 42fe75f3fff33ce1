"""What the engine computes per window: a registry of outputs instead of fields and branches.

An output names the model heads it needs (the engine runs the model once per window for the
union of the wanted outputs' heads), the outputs it derives from (computed first, e.g.
semantic_color from semantic) and computes its value from a :class:`Window`. Adding an output is
one class and one ``engine.register``; the engine decides what runs, times and counts it, and the
node publishes whatever values come back through its own topic table. No ROS here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from event_fm.models import estimate_relative_pose, find_matches
from event_fm.models.pose import RelativePose
from event_fm.pipeline.scheduler import WindowSpec
from event_fm.representations import event_frame
from event_fm.sim.classes import colorize


@dataclass
class Window:
    """One window as outputs see it: its events and span, the sensor size, the shared model
    forward (``heads``, filled only when a wanted output needs the model) and the values
    computed so far, in registration order."""

    spec: WindowSpec
    events: np.ndarray
    t_start: int
    width: int
    height: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    K: np.ndarray | None = None  # intrinsics at sensor resolution, when known
    heads: dict[str, torch.Tensor] = field(default_factory=dict)  # model outputs by key
    voxels: torch.Tensor | None = None  # (bins, H, W) raw, when the model or an output needs it
    frame: tuple[int, np.ndarray] | None = None  # the latest camera frame (stamp_ns, image)
    values: dict[str, Any] = field(default_factory=dict)
    counters: Counter = field(default_factory=Counter)  # the engine's, shown in diagnostics

    @property
    def t_end(self) -> int:
        return self.spec.t_end

    @property
    def stamp_ns(self) -> int:
        return self.spec.stamp_ns

    @property
    def size(self) -> tuple[int, int]:
        """(height, width), the order tensors use."""
        return self.height, self.width


class Output(Protocol):
    """One engine output. Subclass it explicitly to inherit the defaults below.

    ``name``: the key of its value and of the node's topic rows. ``heads``: model heads it reads
    from ``window.heads``. ``requires``: outputs whose values it reads from ``window.values``
    (registered before it). ``stage``: the latency entry its time adds to (default: its name).
    ``needs_voxels``: it reads ``window.voxels`` (the engine builds them even when no head
    runs). ``reads``: the keys of ``window.heads`` it uses (default: every key its heads
    produce); the engine stitches only keys some wanted output reads.
    """

    name: str
    heads: tuple[str, ...] = ()
    reads: tuple[str, ...] | None = None
    requires: tuple[str, ...] = ()
    stage: str = ""
    needs_voxels: bool = False  # reads window.voxels without the model

    def compute(self, window: Window) -> Any:
        """The value for this window; None means nothing to publish."""
        ...

    def observe(self, window: Window) -> None:
        """Called for every processed window, wanted or not (outputs that keep a history)."""

    def diagnostics(self) -> dict[str, Any]:
        """Entries for the engine's diagnostics."""
        return {}


def resized(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (1, C, h, w) head output at the sensor size (float32, bilinear)."""
    t = t.float()
    if tuple(t.shape[-2:]) != size:
        t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return t


class DepthOutput(Output):
    """(H, W) float32 metres."""

    name, heads, stage = "depth", ("depth",), "postprocess"
    reads = ("depth",)

    def compute(self, window: Window) -> np.ndarray:
        return resized(window.heads["depth"], window.size)[0, 0].cpu().numpy().astype(np.float32)


class SemanticOutput(Output):
    """(H, W) uint8 class ids."""

    name, heads, stage = "semantic", ("segmentation",), "postprocess"
    reads = ("semantic_logits",)

    def compute(self, window: Window) -> np.ndarray:
        # argmax where the model computed the logits, then nearest up to the sensor: resizing
        # C class maps to a 1280x720 sensor cost more than the network (issue 19)
        labels = window.heads["semantic_logits"][0].argmax(0).to(torch.uint8)
        if tuple(labels.shape) != window.size:
            labels = F.interpolate(labels[None, None], size=window.size, mode="nearest")[0, 0]
        return labels.cpu().numpy()


class SemanticColorOutput(Output):
    """(H, W, 3) uint8, the class ids in the dataset palette, for viewing."""

    name, requires, stage = "semantic_color", ("semantic",), "postprocess"

    def compute(self, window: Window) -> np.ndarray:
        return colorize(window.values["semantic"])


class PoseOutput(Output):
    """Motion from the previous window the pose ran on to this one (None for the first).

    Keeps the previous window's descriptors, so it must see consecutive computed windows; the
    intrinsics are the window's, or a guess (focal = the larger side) reported in diagnostics."""

    name, heads, stage = "pose", ("matching",), "pose"
    reads = ("descriptors", "confidence", "depth")  # depth, when computed, scales t

    def __init__(self, max_keypoints: int = 1024, min_scale_points: int = 8) -> None:
        self.max_keypoints = max_keypoints
        self.min_scale_points = min_scale_points
        self._previous: tuple[torch.Tensor, torch.Tensor] | None = None
        self._previous_depth: torch.Tensor | None = None
        self.intrinsics_assumed = False
        self.cell_px = 0.0  # sensor pixels per descriptor cell (eval's unmoved-match grid)

    def features(self, window: Window) -> Any:
        """What this window contributes to the next match: the head's dense descriptors."""
        return (window.heads["descriptors"][0].float(), window.heads["confidence"][0].float())

    def match(self, previous: Any, current: Any, window: Window
              ) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(k0, k1, cell size in sensor pixels, solver threshold in pixels)."""
        desc, conf = current
        stride = window.height / desc.shape[-2]
        k0, k1, _ = find_matches(previous[0], previous[1], desc, conf,
                                 stride=int(round(stride)), max_keypoints=self.max_keypoints,
                                 nms_radius=0)
        return k0.cpu().numpy(), k1.cpu().numpy(), stride, max(1.0, stride / 4)

    def compute(self, window: Window) -> RelativePose | None:
        current = self.features(window)
        depth = window.heads.get("depth")
        previous, self._previous = self._previous, current
        previous_depth, self._previous_depth = self._previous_depth, depth
        if previous is None:
            return None
        k0, k1, cell, threshold = self.match(previous, current, window)
        self.cell_px = cell
        K = intrinsics(window)
        self.intrinsics_assumed = window.K is None
        # matches that stay in their descriptor cell: near the true fraction for descriptors
        # that follow content, near 1 for descriptors that encode position (eval compares)
        same = np.all(np.floor(k0 / cell) == np.floor(k1 / cell), axis=1) if len(k0) else \
            np.zeros(0, bool)
        window.counters["pose_matches"] += len(k0)
        window.counters["pose_matches_unmoved"] += int(same.sum())
        pose = estimate_relative_pose(k0, k1, K, K, threshold_px=threshold)
        window.counters["pose_ok" if pose.ok else "pose_failed"] += 1
        if pose.ok and depth is not None and previous_depth is not None:
            scale = self._metric_scale(pose, k0, k1, previous_depth, depth, K, window.size)
            if scale is not None:
                pose = pose._replace(t=pose.t * scale, metric=True)
                window.counters["pose_metric"] += 1
        return pose

    def _metric_scale(self, pose: RelativePose, k0, k1, depth0, depth1, K,
                      size: tuple[int, int]) -> float | None:
        """Length of t in metres from the depth of both windows at the inlier matches: each
        match gives X1 - R X0 = s t (unit t), so s = t . (X1 - R X0); the median is robust to
        depth outliers. None when too few matches have depth."""
        inl = np.asarray(pose.inliers, bool)
        if inl.sum() < self.min_scale_points:
            return None
        d0 = _sample(depth0, k0[inl], size)
        d1 = _sample(depth1, k1[inl], size)
        ok = np.isfinite(d0) & np.isfinite(d1) & (d0 > 0) & (d1 > 0)
        if ok.sum() < self.min_scale_points:
            return None
        Kinv = np.linalg.inv(K)
        X0 = d0[ok, None] * (np.c_[k0[inl][ok], np.ones(ok.sum())] @ Kinv.T)
        X1 = d1[ok, None] * (np.c_[k1[inl][ok], np.ones(ok.sum())] @ Kinv.T)
        t = pose.t.reshape(3) / max(np.linalg.norm(pose.t), 1e-12)
        s = float(np.median((X1 - X0 @ pose.R.T) @ t))
        return s if s > 0 else None

    def diagnostics(self) -> dict[str, Any]:
        return {"intrinsics_assumed": self.intrinsics_assumed, "pose_cell_px": self.cell_px}


def intrinsics(window: Window) -> np.ndarray:
    """The window's intrinsics, or a guess (focal = the larger side, centred principal point)."""
    if window.K is not None:
        return window.K
    h, w = window.size
    f = float(max(h, w))
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])


def _sample(depth: torch.Tensor, points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The (1, 1, h, w) depth head at pixel positions of the (H, W) sensor image."""
    d = depth[0, 0].float().cpu().numpy()
    h, w = d.shape
    x = np.clip((points[:, 0] + 0.5) * w / size[1] - 0.5, 0, w - 1).round().astype(int)
    y = np.clip((points[:, 1] + 0.5) * h / size[0] - 0.5, 0, h - 1).round().astype(int)
    return d[y, x]


@dataclass
class Odometry:
    """The camera's pose in the odometry frame (the camera at the first window of the chain),
    and the motion of the last step, seen from the previous camera."""

    T_odom_cam: np.ndarray  # 4x4
    T_prev_cur: np.ndarray  # 4x4: this window's camera in the previous one's frame
    dt_s: float
    metric: bool  # translations in metres (depth-scaled), else unit steps
    tracking: bool  # False: the pose failed and the chain held still


class OdometryOutput(Output):
    """Chains the relative poses (REP-105 style odometry: continuous, drifting, no jumps)."""

    name, requires, stage = "odometry", ("pose",), "postprocess"

    def __init__(self) -> None:
        self.T = np.eye(4)
        self._last_stamp: int | None = None

    def compute(self, window: Window) -> Odometry | None:
        pose = window.values.get("pose")
        last, self._last_stamp = self._last_stamp, window.stamp_ns
        if last is None:
            return Odometry(self.T.copy(), np.eye(4), 0.0, False, pose is not None)
        step = np.eye(4)
        tracking = pose is not None and pose.ok
        if tracking:
            T_cur_prev = np.eye(4)
            T_cur_prev[:3, :3], T_cur_prev[:3, 3] = pose.R, pose.t.reshape(3)
            step = np.linalg.inv(T_cur_prev)
            self.T = self.T @ step
        return Odometry(self.T.copy(), step, (window.stamp_ns - last) / 1e9,
                        bool(tracking and pose.metric), tracking)


class EventsImageOutput(Output):
    """(H, W, 3) uint8 rendering of the window's events; needs no model."""

    name, stage = "events_image", "voxelize"

    def compute(self, window: Window) -> np.ndarray:
        return event_frame(window.events, window.height, window.width, window.t_start,
                           window.t_end, device=window.device).cpu().numpy()


def standard_outputs() -> list[Output]:
    """The outputs every engine registers; those whose heads the model lacks stay unavailable."""
    return [DepthOutput(), SemanticOutput(), SemanticColorOutput(), PoseOutput(),
            OdometryOutput(), EventsImageOutput()]
