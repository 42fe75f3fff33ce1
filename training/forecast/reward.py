"""Reward alignment pieces (E-Motion Sec. 4.2, App. C), kept pure so tests check exact values.

Reward R = SSIM - lambda * FD / FD_ref per sample: E-Motion uses SSIM + lambda * FVD-term; FVD
needs I3D weights that are not available here, so the distribution term is the Frechet distance
between Gaussian fits of the project's own event-encoder patch tokens of the forecast and of the
true future ("encoder-FD"), scaled by a fixed reference FD (the first batch's mean).
"""

from __future__ import annotations

import torch


def normalize_rewards(scores: torch.Tensor, sample_std: torch.Tensor, beta: float = 30.0,
                      eps: float = 1e-8) -> torch.Tensor:
    """E-Motion App. C.1: rewards standardized per batch ((r - mean) / std, population std),
    then SCORE_std = SCORE + beta * (std(x) - std_min), std_min the batch's smallest sample
    standard deviation - so near-empty (static) predictions are not favoured."""
    z = (scores - scores.mean()) / (scores.std(unbiased=False) + eps)
    return z + beta * (sample_std - sample_std.min())


def clipped_pg_kl_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor,
                       advantages: torch.Tensor, mean: torch.Tensor, ref_mean: torch.Tensor,
                       std: float, clip: float = 0.2,
                       kl_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate on the reverse-step log-probabilities plus a KL to the reference.

    ratio = exp(log_prob - old_log_prob); pg = mean(max(-A ratio, -A clip(ratio, 1 -/+ clip)));
    the reverse steps are Gaussians of equal std, so KL(P_ref || P_theta) per sample is
    mean((mean - ref_mean)^2) / (2 std^2) (mean over dims, like the log-probabilities).
    """
    ratio = torch.exp(log_prob - old_log_prob)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    pg = torch.maximum(unclipped, clipped).mean()
    kl = ((mean - ref_mean) ** 2).flatten(1).mean(1) / (2 * std ** 2)
    kl = kl.mean()
    loss = pg + kl_weight * kl
    clip_fraction = ((ratio - 1).abs() > clip).float().mean()
    return loss, {"pg": pg.detach(), "kl": kl.detach(), "clip_fraction": clip_fraction}
