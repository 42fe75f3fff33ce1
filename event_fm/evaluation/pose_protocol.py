"""The relative-pose protocol every pose figure uses (eval, training reports, benchmarks).

A pair's error is max(rotation error, translation-direction error): rotation alone rewards a
matcher whose matches do not move (it reports "no motion" and scores well on any sequence that
mostly translates). The translation direction is compared up to sign, as SuperGlue/LoFTR/LightGlue
do (the essential matrix leaves it), and only where the camera really moved: on a pure rotation
the direction is undefined and the rotation error alone counts. A pair without an estimate (the
solver failed, the node published nothing) is a failure: an infinite error, so it lowers every AUC.
Rotation-only AUC is reported beside it for comparison with papers that use it (REALM).

Also here: how many matches stayed in their descriptor cell, next to how many should have (from
ground-truth depth and pose), the symptom of descriptors that encode position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from event_fm.evaluation.metrics import POSE_THRESHOLDS, pose_auc, rotation_error_deg

__all__ = ["MIN_TRANSLATION_M", "PoseProtocol", "pose_errors", "unmoved_fraction",
           "unmoved_fraction_truth"]

#: Below this ground-truth translation (metres) a pair counts as a pure rotation.
MIN_TRANSLATION_M = 1e-3


def pose_errors(T_est: np.ndarray | None, T_true: np.ndarray,
                min_translation: float = MIN_TRANSLATION_M) -> tuple[float, float]:
    """(rotation error, translation-direction error) in degrees of an estimated 4x4
    T(c1 <- c0) against the truth. None (no estimate) is (inf, inf); a zero estimated
    translation for a camera that moved is an infinite direction error; a truth that did not
    translate gives NaN for the direction (not scored)."""
    if T_est is None:
        return float("inf"), float("inf")
    T_est, T_true = np.asarray(T_est, dtype=np.float64), np.asarray(T_true, dtype=np.float64)
    rot = rotation_error_deg(T_est[:3, :3], T_true[:3, :3])
    t_true, t_est = T_true[:3, 3], T_est[:3, 3]
    if np.linalg.norm(t_true) < min_translation:
        return rot, float("nan")
    n = np.linalg.norm(t_est)
    if not np.isfinite(n) or n < 1e-12:
        return rot, float("inf")
    cos = abs(float(t_est @ t_true)) / (n * np.linalg.norm(t_true))
    return rot, float(np.degrees(np.arccos(min(1.0, cos))))


@dataclass
class PoseProtocol:
    """Accumulates pairs for one method; ``result()`` gives the AUCs and medians."""

    rotation: list[float] = field(default_factory=list)
    translation: list[float] = field(default_factory=list)
    matches: int = 0
    unmoved: int = 0

    def add(self, T_est: np.ndarray | None, T_true: np.ndarray) -> tuple[float, float]:
        rot, trans = pose_errors(T_est, T_true)
        self.rotation.append(rot)
        self.translation.append(trans)
        return rot, trans

    def add_matches(self, total: int, unmoved: int) -> None:
        self.matches += int(total)
        self.unmoved += int(unmoved)

    @property
    def combined(self) -> np.ndarray:
        rot = np.asarray(self.rotation, dtype=np.float64)
        trans = np.asarray(self.translation, dtype=np.float64)
        return np.where(np.isnan(trans), rot, np.fmax(rot, trans))

    def result(self, thresholds=POSE_THRESHOLDS) -> dict[str, float]:
        n = len(self.rotation)
        out: dict[str, float] = {"pairs": n}
        if not n:
            return out
        combined = self.combined
        out.update({f"auc_{k[4:]}": v for k, v in pose_auc(list(combined), thresholds).items()})
        out.update({f"rot_auc_{k[4:]}": v for k, v in pose_auc(self.rotation, thresholds).items()})
        out["failures"] = int(np.sum(~np.isfinite(np.asarray(self.rotation))))
        out["median_err_deg"] = float(np.median(combined))
        out["median_rot_deg"] = float(np.median(self.rotation))
        trans = np.asarray(self.translation, dtype=np.float64)
        trans = trans[~np.isnan(trans)]
        out["median_trans_deg"] = float(np.median(trans)) if len(trans) else float("nan")
        if self.matches:
            out["unmoved_fraction"] = self.unmoved / self.matches
        return out


def unmoved_fraction(k0: np.ndarray, k1: np.ndarray, cell: float) -> tuple[int, int]:
    """(matches, matches whose keypoint stayed in the same cell of a ``cell``-pixel grid)."""
    k0, k1 = np.asarray(k0, dtype=np.float64), np.asarray(k1, dtype=np.float64)
    if not len(k0):
        return 0, 0
    same = np.all(np.floor(k0 / cell) == np.floor(k1 / cell), axis=1)
    return len(k0), int(same.sum())


def unmoved_fraction_truth(depth0: np.ndarray, T_c1_c0: np.ndarray, K: np.ndarray,
                           cell: float) -> tuple[int, int]:
    """(cells that stay visible, cells whose centre lands in the same cell) when camera 0's
    cell centres move by the true depth and pose: the fraction a correct matcher shows."""
    h, w = depth0.shape
    ys = np.arange(cell / 2, h, cell)
    xs = np.arange(cell / 2, w, cell)
    u, v = np.meshgrid(xs, ys)
    z = depth0[np.minimum(v.astype(int), h - 1), np.minimum(u.astype(int), w - 1)].astype(
        np.float64)
    ok = np.isfinite(z) & (z > 0)
    if not ok.any():
        return 0, 0
    u, v, z = u[ok], v[ok], z[ok]
    X = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
    X1 = X @ T_c1_c0[:3, :3].T + T_c1_c0[:3, 3]
    front = X1[:, 2] > 1e-6
    u1 = K[0, 0] * X1[front, 0] / X1[front, 2] + K[0, 2]
    v1 = K[1, 1] * X1[front, 1] / X1[front, 2] + K[1, 2]
    inside = (u1 >= 0) & (u1 < w) & (v1 >= 0) & (v1 < h)
    k0 = np.stack([u[front][inside], v[front][inside]], axis=1)
    k1 = np.stack([u1[inside], v1[inside]], axis=1)
    return unmoved_fraction(k0, k1, cell)
