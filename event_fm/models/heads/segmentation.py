"""Linear semantic segmentation on patch tokens (REALM / ESS setting)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from ..image_encoder import EncoderOutput, tokens_to_map

__all__ = ["DSEC_CLASSES", "SegmentationHead", "TokenProjector"]

#: The 11 DSEC-Semantic classes used by ESS and REALM, in label order.
DSEC_CLASSES: tuple[str, ...] = (
    "background", "building", "fence", "person", "pole", "road", "sidewalk", "vegetation",
    "car", "wall", "traffic sign",
)


class TokenProjector(nn.Module):
    """DUNE's transformer projector: pre-norm ViT blocks with LayerScale, then a linear map.

    DUNE distils several teachers into one encoder through one such projector per teacher; REALM
    segments through the DINOv2 one (768 -> 1024) applied to the patch tokens alone.
    """

    def __init__(
        self, dim: int, out_dim: int, num_heads: int, num_blocks: int = 1, mlp_ratio: float = 4.0
    ) -> None:
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, qkv_bias=True, init_values=1e-4, norm_layer=norm)
            for _ in range(num_blocks)
        )
        self.linear = nn.Linear(dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return self.linear(tokens)


class SegmentationHead(nn.Module):
    """Optional BatchNorm, then a 1x1 conv from patch tokens to class logits, upsampled.

    A linear probe on purpose: trained on the RGB teacher, it transfers to the event student only
    if both encoders put the same semantics in the same feature directions. ``projector_dim`` > 0
    first maps the patch tokens through a :class:`TokenProjector` of that width (REALM: DUNE's
    DINOv2 projector, 1024, no BatchNorm).
    """

    def __init__(
        self,
        embed_dim: int,
        class_names: Sequence[str] = DSEC_CLASSES,
        batch_norm: bool = True,
        projector_dim: int = 0,
        projector_blocks: int = 1,
        projector_heads: int = 12,
    ) -> None:
        super().__init__()
        self.class_names = tuple(class_names)
        self.projector = (
            TokenProjector(embed_dim, projector_dim, projector_heads, projector_blocks)
            if projector_dim > 0 else None
        )
        width = projector_dim if projector_dim > 0 else embed_dim
        self.norm = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.classifier = nn.Conv2d(width, len(self.class_names), 1)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def forward(self, feats: EncoderOutput, out_size: tuple[int, int]) -> torch.Tensor:
        """Class logits (B, num_classes, H, W)."""
        x = feats.patch_map()
        if self.projector is not None:
            x = tokens_to_map(self.projector(feats.patch), feats.grid_size)
        logits = self.classifier(self.norm(x))
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
