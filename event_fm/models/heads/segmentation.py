"""Linear semantic segmentation on patch tokens (REALM / ESS setting)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..image_encoder import EncoderOutput

__all__ = ["DSEC_CLASSES", "SegmentationHead"]

#: The 11 DSEC-Semantic classes used by ESS and REALM, in label order.
DSEC_CLASSES: tuple[str, ...] = (
    "background", "building", "fence", "person", "pole", "road", "sidewalk", "vegetation",
    "car", "wall", "traffic sign",
)


class SegmentationHead(nn.Module):
    """Optional BatchNorm, then a 1x1 conv from patch tokens to class logits, upsampled.

    A linear probe on purpose: trained on the RGB teacher, it transfers to the event student only
    if both encoders put the same semantics in the same feature directions.
    """

    def __init__(
        self,
        embed_dim: int,
        class_names: Sequence[str] = DSEC_CLASSES,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.class_names = tuple(class_names)
        self.norm = nn.BatchNorm2d(embed_dim) if batch_norm else nn.Identity()
        self.classifier = nn.Conv2d(embed_dim, len(self.class_names), 1)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def forward(self, feats: EncoderOutput, out_size: tuple[int, int]) -> torch.Tensor:
        """Class logits (B, num_classes, H, W)."""
        logits = self.classifier(self.norm(feats.patch_map()))
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
