"""LLM-EvRep's losses: structural fidelity (Sobel edges) and the judge's semantic consistency.

* :func:`sobel_loss`: MSE between the Sobel responses (horizontal and vertical, per channel) of
  the generated and the real image. Replicate padding, so a flat image has no edges anywhere.
* :class:`JudgeSurrogate`: the paper's semantic term (1 - Jaccard of a frozen LLM's answers) has
  no gradient. Its differentiable stand-in here runs both images through the frozen teacher +
  segmentation head (the shipped judge) and compares (a) the teacher's tokens (1 - cosine, CLS
  and every patch) and (b) the class content (1 - weighted Jaccard of the per-class pixel
  fractions, the soft version of the class-set Jaccard the judge scores).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = SOBEL_X.t()


def sobel(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 2C, H, W): per channel the x then y Sobel response."""
    b, c, h, w = images.shape
    kernels = torch.stack([SOBEL_X, SOBEL_Y]).to(images)[:, None]  # (2, 1, 3, 3)
    padded = F.pad(images.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kernels).reshape(b, 2 * c, h, w)


def sobel_loss(generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Structural fidelity: mean squared difference of the Sobel edge maps."""
    return F.mse_loss(sobel(generated), sobel(real))


def soft_jaccard_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 - sum(min) / sum(max) over the last dim (weighted Jaccard), per row; 0 for two zeros."""
    inter = torch.minimum(a, b).sum(-1)
    union = torch.maximum(a, b).sum(-1)
    return 1.0 - (inter + eps) / (union + eps)


class JudgeSurrogate(nn.Module):
    """Differentiable semantic consistency through a frozen EventFM teacher + segmentation head.

    ``forward(generated, real)`` -> dict of per-batch losses ``feature`` and ``classes``; both
    images (B, 3, H, W) in [0, 1] are resized to the teacher's input size. The teacher's weights
    never change (no grad, eval mode); gradients flow only into ``generated``.
    """

    def __init__(self, model, feature_weight: float = 1.0, class_weight: float = 1.0) -> None:
        super().__init__()
        if model.teacher is None or "segmentation" not in model.heads:
            raise ValueError("the judge needs a checkpoint with the RGB teacher and a "
                             "segmentation head")
        self.teacher = model.teacher
        self.segmentation = model.heads["segmentation"]
        self.img_size = tuple(model.img_size)
        self.feature_weight = feature_weight
        self.class_weight = class_weight
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> JudgeSurrogate:  # always frozen: BatchNorm stats too
        return super().train(False)

    def _encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.interpolate(images, size=self.img_size, mode="bilinear", align_corners=False)
        feats = self.teacher(x.clamp(0, 1))
        logits = self.segmentation(feats, feats.grid_size)  # at token resolution
        fractions = logits.softmax(1).mean((2, 3))  # (B, classes)
        return feats.cls, feats.patch, fractions

    def forward(self, generated: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            cls_r, patch_r, frac_r = self._encode(real)
        cls_g, patch_g, frac_g = self._encode(generated)
        feature = 0.5 * ((1 - F.cosine_similarity(cls_g, cls_r, dim=-1)).mean()
                         + (1 - F.cosine_similarity(patch_g, patch_r, dim=-1)).mean())
        classes = soft_jaccard_distance(frac_g, frac_r).mean()
        return {"feature": feature, "classes": classes,
                "judge": self.feature_weight * feature + self.class_weight * classes}
