"""Head losses: depth (SI-log + multi-scale gradient), segmentation (focal + dice), and
descriptor matching (InfoNCE over correspondences from ground-truth depth and pose)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def valid_depth_mask(target: torch.Tensor, d_min: float, d_max: float) -> torch.Tensor:
    return torch.isfinite(target) & (target > 0)


def si_log_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                lam: float = 0.85) -> torch.Tensor:
    """Scale-invariant log loss (Eigen et al.) per image, averaged over the batch."""
    d = torch.where(valid, torch.log(pred.clamp_min(1e-3)) - torch.log(target.clamp_min(1e-3)),
                    torch.zeros_like(pred))
    n = valid.flatten(1).sum(1).clamp_min(1)
    mean = d.flatten(1).sum(1) / n
    mean_sq = d.pow(2).flatten(1).sum(1) / n
    loss = torch.sqrt((mean_sq - lam * mean.pow(2)).clamp_min(1e-8))
    return loss[valid.flatten(1).any(1)].mean() if valid.any() else pred.sum() * 0


def gradient_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                  scales: int = 4) -> torch.Tensor:
    """Multi-scale gradient matching of log depth (ESS / MegaDepth style)."""
    total = pred.sum() * 0
    logp = torch.log(pred.clamp_min(1e-3))
    logt = torch.log(torch.where(valid, target, torch.ones_like(target)).clamp_min(1e-3))
    v = valid.to(pred.dtype)
    for s in range(scales):
        if s:
            logp, logt = logp[..., ::2, ::2], logt[..., ::2, ::2]
            v = v[..., ::2, ::2]
        diff = (logp - logt) * v
        gx = (diff[..., :, 1:] - diff[..., :, :-1]).abs() * v[..., :, 1:] * v[..., :, :-1]
        gy = (diff[..., 1:, :] - diff[..., :-1, :]).abs() * v[..., 1:, :] * v[..., :-1, :]
        total = total + (gx.sum() + gy.sum()) / v.sum().clamp_min(1)
    return total


def depth_loss(pred: torch.Tensor, target: torch.Tensor, d_min: float, d_max: float,
               w_si: float = 1.0, w_grad: float = 0.5) -> dict[str, torch.Tensor]:
    """Targets clamped to the depth range; invalid (NaN, inf, <= 0) pixels masked."""
    valid = valid_depth_mask(target, d_min, d_max)
    clamped = torch.where(valid, target.clamp(d_min, d_max), torch.ones_like(target))
    out = {"si_log": si_log_loss(pred, clamped, valid),
           "gradient": gradient_loss(pred, clamped, valid)}
    out["loss"] = w_si * out["si_log"] + w_grad * out["gradient"]
    return out


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor,
                      class_weights: torch.Tensor | None = None, gamma: float = 2.0,
                      ignore_index: int = 255, w_focal: float = 1.0,
                      w_dice: float = 1.0) -> dict[str, torch.Tensor]:
    """Focal + dice, both class-weighted, ignoring ``ignore_index``."""
    C = logits.shape[1]
    valid = target != ignore_index
    tgt = torch.where(valid, target, torch.zeros_like(target)).long()
    logp = F.log_softmax(logits, 1)
    logp_t = logp.gather(1, tgt[:, None])[:, 0]
    weight = class_weights[tgt] if class_weights is not None else torch.ones_like(logp_t)
    focal = -((1 - logp_t.exp()).pow(gamma) * logp_t * weight)
    focal = (focal * valid).sum() / (weight * valid).sum().clamp_min(1e-6)
    probs = logp.exp() * valid[:, None]
    onehot = F.one_hot(tgt, C).permute(0, 3, 1, 2).to(probs.dtype) * valid[:, None]
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    dice_c = 1 - (2 * inter + 1) / (denom + 1)
    present = onehot.sum((0, 2, 3)) > 0
    cw = class_weights if class_weights is not None else torch.ones(C, device=logits.device)
    dice = (dice_c * cw * present).sum() / (cw * present).sum().clamp_min(1e-6)
    return {"focal": focal, "dice": dice, "loss": w_focal * focal + w_dice * dice}


def correspondences(depth0: torch.Tensor, T_w_c0: torch.Tensor, T_w_c1: torch.Tensor,
                    K: torch.Tensor, stride: int, depth1: torch.Tensor | None = None,
                    occlusion_tol: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """For a grid of pixels of frame 0 (every ``stride``), where they land in frame 1.

    Returns (uv1 (B, h, w, 2) pixel coords in frame 1, valid (B, h, w)); valid needs finite depth,
    landing inside frame 1 and (with depth1) agreeing with frame 1's depth (not occluded).
    """
    B, H, W = depth0.shape
    ys = torch.arange(stride // 2, H, stride, device=depth0.device, dtype=torch.float32)
    xs = torch.arange(stride // 2, W, stride, device=depth0.device, dtype=torch.float32)
    v, u = torch.meshgrid(ys, xs, indexing="ij")
    z = depth0[:, v.long(), u.long()]
    fx, fy, cx, cy = K[:, 0, 0, None, None], K[:, 1, 1, None, None], K[:, 0, 2, None, None], \
        K[:, 1, 2, None, None]
    X = torch.stack([(u - cx) / fx * z, (v - cy) / fy * z, z, torch.ones_like(z)], -1)
    T_c1_c0 = torch.linalg.inv(T_w_c1.double()) @ T_w_c0.double()
    Xc1 = torch.einsum("bij,bhwj->bhwi", T_c1_c0.float(), X)
    z1 = Xc1[..., 2]
    u1 = fx * Xc1[..., 0] / z1 + cx
    v1 = fy * Xc1[..., 1] / z1 + cy
    valid = torch.isfinite(z) & (z > 0) & (z1 > 0.1) & (u1 >= 0) & (u1 <= W - 1) & \
        (v1 >= 0) & (v1 <= H - 1)
    if depth1 is not None:
        # non-finite projections (sky at infinity) are already invalid; index them safely
        ui = torch.where(valid, u1, torch.zeros_like(u1)).round().clamp(0, W - 1).long()
        vi = torch.where(valid, v1, torch.zeros_like(v1)).round().clamp(0, H - 1).long()
        d1 = torch.stack([depth1[b, vi[b], ui[b]] for b in range(B)])
        valid &= torch.isfinite(d1) & ((d1 - z1).abs() <= occlusion_tol * z1)
    return torch.stack([u1, v1], -1), valid


def matching_loss(desc0: torch.Tensor, desc1: torch.Tensor, uv1: torch.Tensor,
                  valid: torch.Tensor, image_size: tuple[int, int],
                  temperature: float = 0.07, max_points: int = 512) -> torch.Tensor:
    """InfoNCE: each valid frame-0 descriptor must pick its true frame-1 location among all
    frame-1 descriptors (sampled bilinearly at the correspondences)."""
    H, W = image_size
    losses = []
    for b in range(desc0.shape[0]):
        idx = valid[b].flatten().nonzero()[:, 0]
        if idx.numel() < 2:
            continue
        idx = idx[torch.randperm(idx.numel(), device=idx.device)[:max_points]]
        grid0 = desc0[b].flatten(1)  # (C, h*w) on the same grid as uv1
        d0 = F.normalize(grid0[:, idx].t(), dim=-1)
        uv = uv1[b].reshape(-1, 2)[idx]
        norm = torch.stack([uv[:, 0] / (W - 1) * 2 - 1, uv[:, 1] / (H - 1) * 2 - 1], -1)
        d1 = F.grid_sample(desc1[b:b + 1], norm[None, None], align_corners=True)[0, :, 0].t()
        d1 = F.normalize(d1, dim=-1)
        logits = d0 @ d1.t() / temperature
        target = torch.arange(len(idx), device=logits.device)
        losses.append(F.cross_entropy(logits, target))
    if not losses:
        return desc0.sum() * 0
    return torch.stack(losses).mean()
