"""Outputs from the event matcher (XFeat's descriptor space on event windows, see
event_fm.models.event_matcher): window-to-window pose, and the pose of the event camera relative
to a camera frame (the latest frame, or a keyframe image given once). No ROS here."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from event_fm.models.event_matcher import EventMatcher
from event_fm.models.pose import RelativePose, estimate_relative_pose
from event_fm.models.xfeat import SparseFeatures, XFeatTeacher, match_descriptors
from event_fm.pipeline.outputs import Output, PoseOutput, Window, intrinsics

__all__ = ["EventFeaturesOutput", "ImagePoseOutput", "MatcherPoseOutput", "matcher_outputs"]


def _on_cpu(f: SparseFeatures) -> SparseFeatures:
    return SparseFeatures(f.keypoints.cpu(), f.scores.cpu(), f.descriptors.cpu())


class EventFeaturesOutput(Output):
    """The matcher's keypoints and 64-d descriptors of a window, at sensor pixels. Windows are
    shrunk to ``max_side`` on their longer side first (the CNN's cost grows with the sensor)."""

    name, stage, needs_voxels = "event_features", "matcher", True

    def __init__(self, matcher: EventMatcher, top_k: int = 1024, max_side: int = 320) -> None:
        self.matcher = matcher.eval()
        self.top_k = top_k
        self.max_side = max_side

    def warm_up(self, voxels: torch.Tensor) -> None:
        """The matcher's first forward (allocations, kernel choice) before live windows."""
        device = next(self.matcher.parameters()).device
        with torch.inference_mode():
            self.matcher.keypoints(voxels.float().to(device), top_k=self.top_k)

    def compute(self, window: Window) -> SparseFeatures:
        voxels = window.voxels.float()
        h, w = voxels.shape[-2:]
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            size = (max(8, round(h * scale)), max(8, round(w * scale)))
            voxels = F.interpolate(voxels[None], size=size, mode="area")[0]
        device = next(self.matcher.parameters()).device
        with torch.inference_mode():
            f = self.matcher.keypoints(voxels.to(device), top_k=self.top_k)[0]
        f = _on_cpu(f)
        if scale < 1.0:
            sx, sy = w / voxels.shape[-1], h / voxels.shape[-2]
            xy = (f.keypoints + 0.5) * f.keypoints.new_tensor([sx, sy]) - 0.5
            f = SparseFeatures(xy, f.scores, f.descriptors)
        return f


class MatcherPoseOutput(PoseOutput):
    """``pose`` from the event matcher's keypoints instead of the model's matching head (same
    conventions, counters and metric scaling)."""

    name, heads, requires = "pose", (), ("event_features",)
    reads = ("depth",)  # when the depth output runs, it scales t

    def __init__(self, max_side: int = 320, threshold_px: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_side = max_side
        self.threshold = threshold_px

    def features(self, window: Window) -> Any:
        return window.values["event_features"]

    def match(self, previous: SparseFeatures, current: SparseFeatures, window: Window
              ) -> tuple[np.ndarray, np.ndarray, float, float]:
        i0, i1, similarity = match_descriptors(previous.descriptors, current.descriptors)
        order = torch.argsort(similarity, descending=True)  # best first: PROSAC samples them
        i0, i1 = i0[order], i1[order]
        k0 = previous.keypoints[i0].numpy().astype(np.float64)
        k1 = current.keypoints[i1].numpy().astype(np.float64)
        shrink = max(1.0, max(window.height, window.width) / self.max_side)  # as the features
        return k0, k1, 8.0 * shrink, self.threshold * shrink


class ImagePoseOutput(Output):
    """The event camera's pose relative to a camera frame: XFeat on the image against the event
    matcher on the window, one descriptor space (REALM's image-event matching). The image is the
    latest camera frame, or a fixed ``keyframe`` (H, W[, 3]) uint8 given at start-up. Both
    cameras take the window's intrinsics (frames and events of one sensor, as on a DAVIS), scaled
    to the image's size when it differs."""

    name, requires, stage = "image_pose", ("event_features",), "matcher"

    def __init__(self, teacher: XFeatTeacher, keyframe: np.ndarray | None = None,
                 top_k: int = 1024, threshold_px: float = 1.0) -> None:
        self.teacher = teacher.eval()
        self.keyframe = keyframe
        self.top_k = top_k
        self.threshold = threshold_px
        self._image_features: tuple[int, SparseFeatures] | None = None
        self.reference = "keyframe" if keyframe is not None else "latest frame"

    def _reference(self, window: Window) -> tuple[int, np.ndarray] | None:
        if self.keyframe is not None:
            return -1, self.keyframe
        return window.frame

    def compute(self, window: Window) -> RelativePose | None:
        reference = self._reference(window)
        if reference is None:
            window.counters["image_pose_no_frame"] += 1
            return None
        stamp, image = reference
        if self._image_features is None or self._image_features[0] != stamp:
            with torch.inference_mode():
                f = self.teacher.keypoints(image, top_k=self.top_k)[0]
            self._image_features = (stamp, _on_cpu(f))
        f_img = self._image_features[1]
        f_ev = window.values["event_features"]
        i0, i1, _ = match_descriptors(f_img.descriptors, f_ev.descriptors)
        K_ev = intrinsics(window)
        K_img = K_ev.copy()
        sy, sx = image.shape[0] / window.height, image.shape[1] / window.width
        if (sx, sy) != (1.0, 1.0):
            K_img[0] *= sx
            K_img[1] *= sy
        pose = estimate_relative_pose(f_img.keypoints[i0].numpy(), f_ev.keypoints[i1].numpy(),
                                      K_img, K_ev, threshold_px=self.threshold)
        window.counters["image_pose_ok" if pose.ok else "image_pose_failed"] += 1
        window.counters["image_pose_matches"] += len(i0)
        return pose

    def diagnostics(self) -> dict[str, Any]:
        return {"image_pose_reference": self.reference}


def matcher_outputs(matcher: EventMatcher, teacher: XFeatTeacher | None = None,
                    keyframe: np.ndarray | None = None, image_pose: bool = False,
                    top_k: int = 1024, max_side: int = 320) -> list[Output]:
    """The matcher's outputs, ready to register (they replace the head-based ``pose``)."""
    outputs: list[Output] = [EventFeaturesOutput(matcher, top_k, max_side),
                             MatcherPoseOutput(max_side)]
    if image_pose:
        if teacher is None:
            raise ValueError("image_pose needs the XFeat teacher")
        outputs.append(ImagePoseOutput(teacher, keyframe, top_k))
    return outputs
