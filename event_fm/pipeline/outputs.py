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
    """

    name: str
    heads: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    stage: str = ""

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

    def compute(self, window: Window) -> np.ndarray:
        return resized(window.heads["depth"], window.size)[0, 0].cpu().numpy().astype(np.float32)


class SemanticOutput(Output):
    """(H, W) uint8 class ids."""

    name, heads, stage = "semantic", ("segmentation",), "postprocess"

    def compute(self, window: Window) -> np.ndarray:
        logits = resized(window.heads["semantic_logits"], window.size)
        return logits[0].argmax(0).to(torch.uint8).cpu().numpy()


class SemanticColorOutput(Output):
    """(H, W, 3) uint8, the class ids in the dataset palette, for viewing."""

    name, requires, stage = "semantic_color", ("semantic",), "postprocess"

    def compute(self, window: Window) -> np.ndarray:
        return colorize(window.values["semantic"])


class PoseOutput(Output):
    """Motion from the previous window the pose ran on to this one (None for the first).

    Keeps the previous window's descriptors, so it must see consecutive computed windows; the
    intrinsics are the window's, or a guess (focal = the larger side) reported in diagnostics."""

    name, heads, stage = "pose", ("matching",), "postprocess"

    def __init__(self, max_keypoints: int = 1024) -> None:
        self.max_keypoints = max_keypoints
        self._previous: tuple[torch.Tensor, torch.Tensor] | None = None
        self.intrinsics_assumed = False

    def compute(self, window: Window) -> RelativePose | None:
        desc = window.heads["descriptors"][0].float()
        conf = window.heads["confidence"][0].float()
        previous, self._previous = self._previous, (desc, conf)
        if previous is None:
            return None
        stride = window.height / desc.shape[-2]
        k0, k1, _ = find_matches(previous[0], previous[1], desc, conf,
                                 stride=int(round(stride)), max_keypoints=self.max_keypoints,
                                 nms_radius=0)
        K = window.K
        self.intrinsics_assumed = K is None
        if K is None:
            h, w = window.size
            f = float(max(h, w))
            K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
        pose = estimate_relative_pose(k0.cpu().numpy(), k1.cpu().numpy(), K, K,
                                      threshold_px=max(1.0, stride / 4))
        window.counters["pose_ok" if pose.ok else "pose_failed"] += 1
        return pose

    def diagnostics(self) -> dict[str, Any]:
        return {"intrinsics_assumed": self.intrinsics_assumed}


class EventsImageOutput(Output):
    """(H, W, 3) uint8 rendering of the window's events; needs no model."""

    name, stage = "events_image", "voxelize"

    def compute(self, window: Window) -> np.ndarray:
        return event_frame(window.events, window.height, window.width, window.t_start,
                           window.t_end, device=window.device).cpu().numpy()


def standard_outputs() -> list[Output]:
    """The outputs every engine registers; those whose heads the model lacks stay unavailable."""
    return [DepthOutput(), SemanticOutput(), SemanticColorOutput(), PoseOutput(),
            EventsImageOutput()]
