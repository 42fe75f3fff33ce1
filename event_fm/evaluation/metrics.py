"""Evaluation metrics, shared by the training module's ``evaluate`` and ``event-fm eval``.

Depth follows the e2depth / REALM protocol (mean absolute error within 10/20/30 m of ground
truth, plus AbsRel, RMSE and delta < 1.25); segmentation the ESS protocol (confusion matrix,
ignore label 255, mIoU over classes present); scale-free depth terms per image (SILog x 100,
AbsRel after median scaling, Spearman rank correlation); pose AUC helpers (the protocol that
uses them is event_fm.evaluation.pose_protocol).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from event_fm.models.pose import rotation_error_deg  # one definition: models may not import us

__all__ = ["DEPTH_BINS", "DEPTH_CUTOFFS", "POSE_THRESHOLDS", "DepthMetrics",
           "SegmentationMetrics", "miou", "pose_auc", "rank_correlation", "rotation_error_deg",
           "translation_angle_deg"]

DEPTH_CUTOFFS = (10.0, 20.0, 30.0)
POSE_THRESHOLDS = (5.0, 10.0, 20.0)
DEPTH_BINS = np.arange(0, 85, 5.0)  # error-by-depth curve bin edges (m)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 (Ubuntu 24.04: 1.26)


@dataclass
class DepthMetrics:
    """Accumulates sums so metrics over a whole set weigh every valid pixel equally."""

    cutoffs: tuple[float, ...] = DEPTH_CUTOFFS
    max_depth: float = 80.0  # AbsRel / RMSE / delta over ground truth within the sensing range
    sums: dict[str, float] = field(default_factory=dict)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        pred = np.asarray(pred, dtype=np.float64)
        gt = np.asarray(gt, dtype=np.float64)
        valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred)
        p, g = pred[valid], gt[valid]
        s = self.sums
        for c in self.cutoffs:
            m = g <= c
            s[f"abs_{c:g}"] = s.get(f"abs_{c:g}", 0.0) + float(np.abs(p[m] - g[m]).sum())
            s[f"n_{c:g}"] = s.get(f"n_{c:g}", 0.0) + float(m.sum())
        in_range = g <= self.max_depth
        p, g = np.maximum(p[in_range], 1e-3), g[in_range]
        s["n"] = s.get("n", 0.0) + float(len(g))
        s["absrel"] = s.get("absrel", 0.0) + float((np.abs(p - g) / g).sum())
        s["sq"] = s.get("sq", 0.0) + float(((p - g) ** 2).sum())
        s["delta1"] = s.get("delta1", 0.0) + float((np.maximum(p / g, g / p) < 1.25).sum())
        if len(g) >= 2:  # per-image terms that ignore scale: a tabletop is not scored as a street
            log_diff = np.log(p) - np.log(g)
            silog = np.sqrt(max(0.0, np.mean(log_diff ** 2) - np.mean(log_diff) ** 2)) * 100
            scaled = p * (np.median(g) / np.median(p))
            s["images"] = s.get("images", 0.0) + 1
            s["silog"] = s.get("silog", 0.0) + float(silog)
            s["absrel_ms"] = s.get("absrel_ms", 0.0) + float(np.mean(np.abs(scaled - g) / g))
            rho = rank_correlation(p, g)
            if np.isfinite(rho):
                s["rank_images"] = s.get("rank_images", 0.0) + 1
                s["spearman"] = s.get("spearman", 0.0) + rho

    def compute(self) -> dict[str, float]:
        s, out = self.sums, {}
        for c in self.cutoffs:
            n = s.get(f"n_{c:g}", 0.0)
            out[f"depth_mae_{c:g}m"] = s[f"abs_{c:g}"] / n if n else float("nan")
        n = s.get("n", 0.0)
        out["absrel"] = s["absrel"] / n if n else float("nan")
        out["rmse"] = float(np.sqrt(s["sq"] / n)) if n else float("nan")
        out["delta1"] = s["delta1"] / n if n else float("nan")
        images, ranked = s.get("images", 0.0), s.get("rank_images", 0.0)
        out["silog"] = s["silog"] / images if images else float("nan")
        out["absrel_median_scaled"] = s["absrel_ms"] / images if images else float("nan")
        out["rank_correlation"] = s["spearman"] / ranked if ranked else float("nan")
        return out


def rank_correlation(pred: np.ndarray, gt: np.ndarray, max_points: int = 20000) -> float:
    """Spearman correlation of two depth samples (NaN when either is constant): whether the
    prediction orders near and far as the truth does, whatever its scale."""
    pred, gt = np.asarray(pred, np.float64).ravel(), np.asarray(gt, np.float64).ravel()
    if len(pred) > max_points:
        pick = np.linspace(0, len(pred) - 1, max_points).astype(int)
        pred, gt = pred[pick], gt[pick]
    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(gt) == 0:
        return float("nan")
    from scipy.stats import rankdata

    a, b = rankdata(pred), rankdata(gt)
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class SegmentationMetrics:
    num_classes: int
    ignore_index: int = 255
    confusion: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        pred, gt = np.asarray(pred).ravel(), np.asarray(gt).ravel()
        keep = (gt != self.ignore_index) & (gt < self.num_classes)
        idx = gt[keep].astype(np.int64) * self.num_classes + pred[keep].astype(np.int64)
        self.confusion += np.bincount(idx, minlength=self.num_classes ** 2).reshape(
            self.num_classes, self.num_classes)

    def compute(self, classes: str = "target") -> dict[str, float]:
        """mIoU over the classes present in the ground truth (``classes='target'``, the ESS
        protocol) or in either map (``'either'``: two predictions compared, no truth)."""
        cm = self.confusion
        tp = np.diag(cm).astype(np.float64)
        union = cm.sum(0) + cm.sum(1) - tp
        present = cm.sum(1) > 0 if classes == "target" else union > 0
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
        total = cm.sum()
        return {"miou": float(np.nanmean(iou[present])) if present.any() else float("nan"),
                "pixel_acc": float(tp.sum() / total) if total else float("nan"),
                "iou_per_class": [None if np.isnan(v) else float(v) for v in iou]}


def miou(pred: np.ndarray, target: np.ndarray, num_classes: int,
         classes: str = "either") -> float:
    """mIoU of one pair of label maps (or a batch of them), see SegmentationMetrics.compute."""
    metrics = SegmentationMetrics(num_classes)
    metrics.update(pred, target)
    return metrics.compute(classes)["miou"]


def translation_angle_deg(t_est: np.ndarray, t_gt: np.ndarray) -> float:
    """Angle between translation directions (scale is unobservable from two views)."""
    n1, n2 = np.linalg.norm(t_est), np.linalg.norm(t_gt)
    if n1 < 1e-12 or n2 < 1e-12:
        return float("nan")
    cos = float(np.dot(t_est, t_gt) / (n1 * n2))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def pose_auc(errors_deg: list[float], thresholds=POSE_THRESHOLDS) -> dict[str, float]:
    """Area under the recall-vs-error curve up to each threshold (failures count as inf)."""
    errors = np.sort(np.nan_to_num(np.asarray(errors_deg, dtype=np.float64), nan=np.inf))
    out = {}
    if not len(errors):
        return {f"auc_{t:g}": float("nan") for t in thresholds}
    recall = (np.arange(len(errors)) + 1) / len(errors)
    errors_z = np.concatenate([[0.0], errors])
    recall_z = np.concatenate([[0.0], recall])
    for t in thresholds:
        last = int(np.searchsorted(errors_z, t))
        e = np.concatenate([errors_z[:last], [t]])
        r = np.concatenate([recall_z[:last], [recall_z[last - 1]]])
        out[f"auc_{t:g}"] = float(_trapezoid(r, x=e) / t)
    return out
