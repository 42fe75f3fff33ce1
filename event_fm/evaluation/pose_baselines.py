"""The trivial and classical pose baselines reported beside every model: identity ("no
motion"), ORB on accumulated event frames, and ORB on the camera frames where the recording has
them. They run on the same pairs of windows as the model and through the same solver
(:func:`event_fm.models.estimate_relative_pose`)."""

from __future__ import annotations

import cv2
import numpy as np

from event_fm.models.pose import estimate_relative_pose

__all__ = ["accumulated_event_frame", "orb_matches", "orb_pose", "xfeat_pose"]


def accumulated_event_frame(events: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) uint8 count image of a window (both polarities), clipped at the 99th percentile of
    the active pixels: what ORB-on-event-frame baselines in the papers match on."""
    counts = np.zeros(height * width, dtype=np.float32)
    if len(events):
        x = events["x"].astype(np.int64)
        y = events["y"].astype(np.int64)
        ok = (x < width) & (y < height)
        np.add.at(counts, y[ok] * width + x[ok], 1.0)
    counts = counts.reshape(height, width)
    active = counts[counts > 0]
    top = float(np.percentile(active, 99)) if len(active) else 1.0
    return (np.clip(counts / max(top, 1.0), 0, 1) * 255).astype(np.uint8)


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def orb_matches(image0: np.ndarray, image1: np.ndarray, features: int = 1000
                ) -> tuple[np.ndarray, np.ndarray]:
    """ORB keypoints matched by mutual nearest neighbour in Hamming distance: (k0, k1) (M, 2)."""
    orb = cv2.ORB_create(nfeatures=features, edgeThreshold=15, patchSize=15, fastThreshold=5)
    kp0, d0 = orb.detectAndCompute(_grey(image0), None)
    kp1, d1 = orb.detectAndCompute(_grey(image1), None)
    if d0 is None or d1 is None or len(kp0) < 2 or len(kp1) < 2:
        return np.zeros((0, 2)), np.zeros((0, 2))
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(d0, d1)
    k0 = np.array([kp0[m.queryIdx].pt for m in matches], dtype=np.float64).reshape(-1, 2)
    k1 = np.array([kp1[m.trainIdx].pt for m in matches], dtype=np.float64).reshape(-1, 2)
    return k0, k1


def orb_pose(image0: np.ndarray, image1: np.ndarray, K: np.ndarray,
             threshold_px: float = 1.0) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(4x4 T(c1 <- c0) or None on failure, k0, k1)."""
    k0, k1 = orb_matches(image0, image1)
    pose = estimate_relative_pose(k0, k1, K, K, threshold_px=threshold_px)
    if not pose.ok:
        return None, k0, k1
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = pose.R, pose.t.reshape(3)
    return T, k0, k1


def xfeat_pose(image0: np.ndarray, image1: np.ndarray, K: np.ndarray,
               threshold_px: float = 1.0) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """XFeat (real-image matcher) on two camera frames: (4x4 T(c1 <- c0) or None, k0, k1). The
    reference motion where a recording has frames but no ground truth."""
    from event_fm.models.xfeat import match_images

    m = match_images(image0, image1, K, threshold_px=threshold_px)
    if not m.pose.ok:
        return None, m.kpts0, m.kpts1
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = m.pose.R, m.pose.t.reshape(3)
    return T, m.kpts0, m.kpts1
