"""Losses of the event matcher (``event-fm train distill matcher``): distillation of frozen XFeat
on the aligned frame into the event CNN, and InfoNCE at ground-truth correspondences between two
windows with hard negatives from the cells around the true point.

Shapes: descriptors (B, D, h, w) unit vectors on a grid of ``stride``-pixel cells whose centres
are at ``(i + 0.5) * stride - 0.5``; keypoint logits (B, 65, h, w); reliability (B, 1, h, w).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["cell_centres", "descriptor_loss", "event_cells", "infonce_loss", "keypoint_loss",
           "project_points", "reliability_loss"]


def cell_centres(h: int, w: int, stride: int, device=None) -> torch.Tensor:
    """(h, w, 2) pixel x, y of the cell centres."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride - 0.5
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride - 0.5
    v, u = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([u, v], -1)


def event_cells(voxels: torch.Tensor, stride: int, min_active: int = 3) -> torch.Tensor:
    """(B, h, w) bool: cells with at least ``min_active`` pixels that saw an event."""
    active = (voxels.abs().sum(1, keepdim=True) > 0).float()
    h, w = -(-active.shape[-2] // stride), -(-active.shape[-1] // stride)
    active = F.pad(active, (0, w * stride - active.shape[-1], 0, h * stride - active.shape[-2]))
    return F.avg_pool2d(active, stride)[:, 0] * stride * stride >= min_active


def project_points(uv0: torch.Tensor, depth0: torch.Tensor, K0: torch.Tensor, K1: torch.Tensor,
                   T_w_c0: torch.Tensor, T_w_c1: torch.Tensor, depth1: torch.Tensor | None,
                   occlusion_tol: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Where pixels ``uv0`` (N, 2) of view 0 land in view 1, and whether that is trustworthy.

    Views may be crops, rescales and mirror images of the recorded frames: K0/K1 are the views'
    intrinsics (a mirrored view has a negative fx), depth0/depth1 (H, W) the views' depth.
    Valid: finite positive depth, in front of camera 1, inside view 1 and, with ``depth1``,
    agreeing with view 1's depth there (not occluded).
    """
    H0, W0 = depth0.shape
    ui = uv0[:, 0].round().clamp(0, W0 - 1).long()
    vi = uv0[:, 1].round().clamp(0, H0 - 1).long()
    z = depth0[vi, ui]
    ok = torch.isfinite(z) & (z > 0)
    z = torch.where(ok, z, torch.ones_like(z))
    x = (uv0[:, 0] - K0[0, 2]) / K0[0, 0] * z
    y = (uv0[:, 1] - K0[1, 2]) / K0[1, 1] * z
    X = torch.stack([x, y, z, torch.ones_like(z)], -1).double()
    T = torch.linalg.inv(T_w_c1.double()) @ T_w_c0.double()
    X1 = (X @ T.t()).float()
    z1 = X1[:, 2]
    ok &= z1 > 0.1
    z1 = torch.where(ok, z1, torch.ones_like(z1))
    u1 = K1[0, 0] * X1[:, 0] / z1 + K1[0, 2]
    v1 = K1[1, 1] * X1[:, 1] / z1 + K1[1, 2]
    if depth1 is not None:
        H1, W1 = depth1.shape
    else:
        H1, W1 = H0, W0
    ok &= (u1 >= 0) & (u1 <= W1 - 1) & (v1 >= 0) & (v1 <= H1 - 1)
    if depth1 is not None:
        d1 = depth1[v1.round().clamp(0, H1 - 1).long(), u1.round().clamp(0, W1 - 1).long()]
        ok &= torch.isfinite(d1) & ((d1 - z1).abs() <= occlusion_tol * z1)
    return torch.stack([u1, v1], -1), ok


def _sample_at(desc: torch.Tensor, uv: torch.Tensor, stride: int) -> torch.Tensor:
    """Bilinear samples (N, D) of a map (D, h, w) at pixels uv (N, 2), re-normalised."""
    d, h, w = desc.shape
    size = uv.new_tensor([w * stride, h * stride])
    grid = (uv + 0.5) / size * 2 - 1
    out = F.grid_sample(desc[None], grid[None, None].to(desc.dtype), mode="bilinear",
                        padding_mode="border", align_corners=False)[0, :, 0].t()
    return F.normalize(out, dim=1)


def infonce_loss(query: torch.Tensor, keys: torch.Tensor, uv1: torch.Tensor, stride: int,
                 temperature: float = 0.1, negative_radius: float = 6.0) -> torch.Tensor:
    """InfoNCE of queries (N, D) against the key map (D, h, w) of the other view.

    The positive is the key map sampled at the query's true location ``uv1`` (N, 2); the
    negatives are every cell of the key map whose centre is farther than ``negative_radius``
    pixels from it, so the immediate neighbours of the true cell are the hardest negatives (a
    descriptor that encodes position, or that is merely smooth, cannot separate them).
    """
    if query.shape[0] == 0:
        return keys.sum() * 0
    d, h, w = keys.shape
    pos = _sample_at(keys, uv1, stride)  # (N, D)
    centres = cell_centres(h, w, stride, keys.device).reshape(-1, 2)  # (h*w, 2)
    cells = keys.reshape(d, -1).t()  # (h*w, D)
    neg = query @ cells.t()  # (N, h*w)
    far = torch.cdist(uv1.float(), centres) > negative_radius
    neg = torch.where(far, neg, torch.full_like(neg, float("-inf")))
    logits = torch.cat([(query * pos).sum(1, keepdim=True), neg], 1) / temperature
    target = torch.zeros(len(query), dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target)


def descriptor_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor
                    ) -> torch.Tensor:
    """Mean 1 - cosine of student and teacher unit descriptors (B, D, h, w) over ``mask``."""
    cos = (student * teacher).sum(1)
    m = mask.to(cos.dtype)
    return ((1 - cos) * m).sum() / m.sum().clamp_min(1)


def keypoint_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                  mask: torch.Tensor, empty_weight: float = 0.1) -> torch.Tensor:
    """Cross-entropy to XFeat's 65-way distribution in cells with events; elsewhere toward the
    dustbin ("no keypoint": nothing can be detected where nothing happened), weighted lower."""
    target = teacher_logits.softmax(1)
    dustbin = torch.zeros_like(target)
    dustbin[:, -1] = 1
    m = mask[:, None].to(target.dtype)
    target = target * m + dustbin * (1 - m)
    ce = -(target * student_logits.log_softmax(1)).sum(1)
    weight = mask.to(ce.dtype) + empty_weight * (~mask).to(ce.dtype)
    return (ce * weight).sum() / weight.sum().clamp_min(1)


def reliability_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor
                     ) -> torch.Tensor:
    """BCE of the student's reliability (B, 1, h, w) to XFeat's where there are events, 0
    elsewhere."""
    target = teacher[:, 0] * mask.to(teacher.dtype)
    p = student[:, 0].float().clamp(1e-4, 1 - 1e-4)
    return -(target * p.log() + (1 - target) * (1 - p).log()).mean()
