"""Forecast metrics and the alignment reward's pieces.

SSIM (Gaussian window 11, sigma 1.5, per bin channel, data range 2 for voxels in [-1, 1]), MSE,
the Frechet distance between Gaussian fits of feature sets (computed on the project's own event
encoder, *not* FVD: I3D weights are not available here), and mIoU between two label maps. SSIM,
MSE and mIoU are the evaluation layer's (one definition each).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from event_fm.evaluation import image_metrics
from event_fm.evaluation.image_metrics import mse
from event_fm.evaluation.metrics import miou

__all__ = ["feature_frechet", "frechet_distance", "gaussian_stats", "miou", "mse", "ssim",
           "structure_f1"]

#: voxel frames are normalized to [-1, 1]
VOXEL_RANGE = 2.0


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of voxel frames in [-1, 1] (data range 2), per leading item of (..., C, H, W)."""
    return image_metrics.ssim(pred, target, VOXEL_RANGE)


def active_pixels(frames: torch.Tensor, threshold: float) -> torch.Tensor:
    """(..., C, H, W) voxel frames -> (..., H, W) pixels with events (sum |v| > threshold)."""
    return frames.abs().sum(dim=-3) > threshold


def structure_f1(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.05,
                 tolerance: int = 1) -> torch.Tensor:
    """F1 of where the events are, per leading item of (..., C, H, W): a predicted active pixel
    counts as right within ``tolerance`` px of a true one and vice versa. Predicting nothing
    scores 0 (MSE and SSIM on sparse voxels reward it), predicting everything scores the
    truth's density: the score asks for the moving structure at the right place."""
    p, t = active_pixels(pred, threshold), active_pixels(target, threshold)
    lead = p.shape[:-2]
    p, t = p.reshape(-1, 1, *p.shape[-2:]).float(), t.reshape(-1, 1, *t.shape[-2:]).float()
    k = 2 * tolerance + 1
    near_t = torch.nn.functional.max_pool2d(t, k, 1, tolerance) > 0
    near_p = torch.nn.functional.max_pool2d(p, k, 1, tolerance) > 0
    tp_p = (p.bool() & near_t).sum(dim=(-1, -2, -3)).float()
    tp_t = (t.bool() & near_p).sum(dim=(-1, -2, -3)).float()
    n_p, n_t = p.sum(dim=(-1, -2, -3)), t.sum(dim=(-1, -2, -3))
    precision = torch.where(n_p > 0, tp_p / n_p.clamp(min=1), torch.zeros_like(n_p))
    recall = torch.where(n_t > 0, tp_t / n_t.clamp(min=1), torch.ones_like(n_t))
    f1 = torch.where(precision + recall > 0,
                     2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(precision))
    f1 = torch.where((n_p == 0) & (n_t == 0), torch.ones_like(f1), f1)  # both empty: right
    return f1.reshape(lead)


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), stabilized for singular covariances."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between two feature sets (N, D) and (M, D)."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
