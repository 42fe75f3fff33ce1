"""Distillation losses between student (event) and teacher (image) tokens.

All take tokens shaped (B, N, C) (patch) and (B, C) (CLS) and an optional patch mask (B, N)
of the tokens to supervise (event activity, dilated by the curriculum). Masked means are taken
over supervised tokens only, so a sparse mask does not shrink the loss towards zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B, N) values over mask (B, N); 0 when nothing is supervised."""
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


@dataclass
class RealmLossWeights:
    l1: float = 1.0
    cosine: float = 1.0
    mse: float = 1.0
    cls: float = 1.0  # weight of the CLS-token terms relative to the patch terms


def realm_loss(student_patch: torch.Tensor, teacher_patch: torch.Tensor,
               student_cls: torch.Tensor | None = None, teacher_cls: torch.Tensor | None = None,
               mask: torch.Tensor | None = None,
               weights: RealmLossWeights | None = None) -> dict[str, torch.Tensor]:
    """REALM: weighted L1 + (1 - cosine) + MSE on normalized patch and CLS tokens."""
    w = weights or RealmLossWeights()

    def terms(s: torch.Tensor, t: torch.Tensor, m: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return {"l1": _masked_mean((s - t).abs().mean(-1), m),
                "cosine": _masked_mean(1 - F.cosine_similarity(s, t, dim=-1), m),
                "mse": _masked_mean((s - t).pow(2).mean(-1), m)}

    out = terms(student_patch, teacher_patch, mask)
    total = w.l1 * out["l1"] + w.cosine * out["cosine"] + w.mse * out["mse"]
    if student_cls is not None and teacher_cls is not None:
        cls = terms(student_cls[:, None], teacher_cls[:, None], None)
        total = total + w.cls * (w.l1 * cls["l1"] + w.cosine * cls["cosine"] + w.mse * cls["mse"])
        out.update({f"cls_{k}": v for k, v in cls.items()})
    out["loss"] = total
    return out


def _similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.bmm(F.normalize(a, dim=-1), F.normalize(b, dim=-1).transpose(1, 2))


def scaleevent_loss(student_patch: torch.Tensor, teacher_patch: torch.Tensor,
                    mask: torch.Tensor | None = None, lambda_is: float = 10.0,
                    lambda_cs: float = 4.0, use_l1: bool = True) -> dict[str, torch.Tensor]:
    """ScaleEvent: L1 on masked tokens + intra-modal and cross-modal similarity-map losses.

    K* = K (.) M, Q* = Q (.) M; L_is = |K*K*^T - Q*Q*^T|_1, L_cs = |K*Q*^T - Q*Q*^T|_1, each a
    mean over the supervised token pairs. Tokens are L2-normalized for the similarity maps so
    the maps are cosine affinities in [-1, 1] (the paper's lambdas then balance sensibly).
    """
    B, N, _ = student_patch.shape
    m = (torch.ones(B, N, device=student_patch.device) if mask is None
         else mask.to(student_patch.dtype))
    out: dict[str, torch.Tensor] = {}
    out["l1"] = _masked_mean((student_patch - teacher_patch).abs().mean(-1), m)
    pair_mask = m[:, :, None] * m[:, None, :]
    pairs = pair_mask.sum().clamp_min(1.0)
    q_q = _similarity(teacher_patch, teacher_patch)
    k_k = _similarity(student_patch, student_patch)
    k_q = _similarity(student_patch, teacher_patch)
    out["intra"] = ((k_k - q_q).abs() * pair_mask).sum() / pairs
    out["cross"] = ((k_q - q_q).abs() * pair_mask).sum() / pairs
    total = lambda_is * out["intra"] + lambda_cs * out["cross"]
    if use_l1:
        total = total + out["l1"]
    out["loss"] = total
    return out


class GEPProjector(nn.Module):
    """GEP stage 1: projection MLP for the contrastive term on pooled tokens."""

    def __init__(self, dim: int, hidden: int = 512, out: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            pooled = tokens.mean(1)
        else:
            m = mask.to(tokens.dtype)[..., None]
            pooled = (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)
        return F.normalize(self.net(pooled), dim=-1)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of a and b (B, D), L2-normalized."""
    logits = a @ b.t() / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def gep_stage1_loss(student_patch: torch.Tensor, teacher_patch: torch.Tensor,
                    student_proj: torch.Tensor, teacher_proj: torch.Tensor,
                    mask: torch.Tensor | None = None, contrastive_weight: float = 0.5,
                    temperature: float = 0.07) -> dict[str, torch.Tensor]:
    """GEP stage 1: token regression (MSE) + InfoNCE on projected pooled tokens."""
    out = {"regression": _masked_mean((student_patch - teacher_patch).pow(2).mean(-1), mask),
           "contrastive": info_nce(student_proj, teacher_proj, temperature)}
    out["loss"] = out["regression"] + contrastive_weight * out["contrastive"]
    return out
