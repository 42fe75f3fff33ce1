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

__all__ = ["feature_frechet", "frechet_distance", "gaussian_stats", "miou", "mse", "ssim"]

#: voxel frames are normalized to [-1, 1]
VOXEL_RANGE = 2.0


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of voxel frames in [-1, 1] (data range 2), per leading item of (..., C, H, W)."""
    return image_metrics.ssim(pred, target, VOXEL_RANGE)


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
