"""Dense descriptors + confidence, keypoint selection and mutual-nearest-neighbour matching.

Descriptors come from the same manifold for RGB and events, so one head serves event-event and
image-event matching. Keypoints are pixel coordinates (x, y) of the model input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from event_fm.common.filters import max_filter

from ..image_encoder import EncoderOutput

__all__ = [
    "MatchingHead",
    "detect_keypoints",
    "find_matches",
    "mutual_nearest_neighbors",
    "sample_descriptors",
]


class MatchingHead(nn.Module):
    """A 3x3 conv + GELU + 1x1 conv on the patch grid, upsampled to ``stride``.

    Outputs L2-normalized descriptors (B, D, H/stride, W/stride) and a confidence in (0, 1) at the
    same stride; running the small convs on the coarse grid and upsampling their output keeps the
    cost independent of the stride.
    """

    def __init__(
        self,
        embed_dim: int,
        descriptor_dim: int = 128,
        stride: int = 8,
        hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.descriptor_dim = descriptor_dim
        self.net = nn.Sequential(
            nn.Conv2d(embed_dim, hidden_dim, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden_dim, descriptor_dim + 1, 1),
        )

    def forward(self, feats: EncoderOutput, out_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        size = (out_size[0] // self.stride, out_size[1] // self.stride)
        x = self.net(feats.patch_map())
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        descriptors = F.normalize(x[:, :-1], dim=1)
        confidence = x[:, -1:].sigmoid()
        return {"descriptors": descriptors, "confidence": confidence}


def detect_keypoints(
    confidence: torch.Tensor,
    stride: int,
    max_keypoints: int = 1024,
    nms_radius: int = 2,
    min_confidence: float = 0.0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Top-k local maxima of a confidence map (B, 1, h, w) at ``stride`` pixels per cell.

    Returns per sample (keypoints (K, 2) float32 pixel x, y of the cell centres, scores (K,)),
    strongest first.
    """
    if confidence.ndim == 3:
        confidence = confidence.unsqueeze(1)
    conf = confidence[:, 0]
    if nms_radius > 0:
        k = 2 * nms_radius + 1
        pooled = max_filter(conf, k)
        conf = torch.where(conf == pooled, conf, torch.zeros_like(conf))
    b, h, w = conf.shape
    flat = conf.reshape(b, -1)
    num = min(max_keypoints, flat.shape[1])
    scores, index = flat.topk(num, dim=1)
    out = []
    for i in range(b):
        keep = scores[i] > min_confidence
        idx = index[i][keep]
        xy = torch.stack([idx % w, idx // w], dim=1).float()  # float32 even for fp16 maps
        out.append(((xy + 0.5) * stride - 0.5, scores[i][keep]))
    return out


def sample_descriptors(
    descriptors: torch.Tensor, keypoints: torch.Tensor, stride: int
) -> torch.Tensor:
    """Bilinearly sample a descriptor map (D, h, w) at pixel keypoints (K, 2); (K, D) normalized."""
    d, h, w = descriptors.shape
    keypoints = keypoints.float()
    scale = keypoints.new_tensor([w * stride, h * stride])
    grid = (keypoints + 0.5) / scale * 2 - 1  # pixel centres -> [-1, 1], align_corners=False
    sampled = F.grid_sample(
        descriptors[None], grid[None, None].to(descriptors.dtype), mode="bilinear",
        padding_mode="border", align_corners=False,
    )
    return F.normalize(sampled[0, :, 0].t(), dim=1)


def mutual_nearest_neighbors(
    desc0: torch.Tensor, desc1: torch.Tensor, min_similarity: float = -1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs (i, j) where j is i's nearest neighbour and i is j's (cosine similarity).

    Returns (indices into desc0, indices into desc1, similarities).
    """
    if desc0.shape[0] == 0 or desc1.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long, device=desc0.device)
        return empty, empty, torch.zeros(0, dtype=desc0.dtype, device=desc0.device)
    sim = desc0 @ desc1.t()
    best01 = sim.argmax(dim=1)
    best10 = sim.argmax(dim=0)
    idx0 = torch.arange(desc0.shape[0], device=desc0.device)
    scores = sim[idx0, best01]
    keep = (best10[best01] == idx0) & (scores >= min_similarity)
    return idx0[keep], best01[keep], scores[keep]


def find_matches(
    descriptors0: torch.Tensor,
    confidence0: torch.Tensor,
    descriptors1: torch.Tensor,
    confidence1: torch.Tensor,
    stride: int,
    max_keypoints: int = 1024,
    nms_radius: int = 2,
    min_confidence: float = 0.0,
    min_similarity: float = -1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keypoints and MNN matches between two views (single sample: (D, h, w), (1, h, w)).

    Returns matched pixel keypoints (M, 2) in view 0 and view 1, and their similarities.
    """
    options = (stride, max_keypoints, nms_radius, min_confidence)
    (k0, _), = detect_keypoints(confidence0[None], *options)
    (k1, _), = detect_keypoints(confidence1[None], *options)
    d0 = sample_descriptors(descriptors0, k0, stride)
    d1 = sample_descriptors(descriptors1, k1, stride)
    i0, i1, sim = mutual_nearest_neighbors(d0, d1, min_similarity)
    return k0[i0], k1[i1], sim
