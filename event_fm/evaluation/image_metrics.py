"""Image/frame similarity in torch, one definition for every caller (forecast voxels in
[-1, 1], reconstructed RGB in [0, 1]): SSIM (Wang et al. 2004: Gaussian window 11, sigma 1.5,
K1 0.01, K2 0.03, 'valid' window) and MSE, per leading item of (..., C, H, W) tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gaussian_window", "mse", "ssim"]


def gaussian_window(size: int = 11, sigma: float = 1.5,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The normalized (size, size) Gaussian SSIM window."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).to(dtype)


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> torch.Tensor:
    """Mean SSIM per leading item of (..., C, H, W) tensors (each channel on its own, then the
    channel mean). Computed in float32, or float64 when an input is float64 (the constants are
    tiny next to a [0, 1] image's variances, so precision is the caller's choice)."""
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    lead, (c, h, w) = pred.shape[:-3], pred.shape[-3:]
    x = pred.reshape(-1, 1, h, w).to(dtype)
    y = target.reshape(-1, 1, h, w).to(dtype)
    win = gaussian_window(dtype=dtype).to(x.device)[None, None]
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mu_x ** 2
    syy = F.conv2d(y * y, win) - mu_y ** 2
    sxy = F.conv2d(x * y, win) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    s = num / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1).reshape(*lead, c).mean(-1)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per leading item of (..., C, H, W)."""
    return (pred.float() - target.float()).pow(2).flatten(-3).mean(-1)
