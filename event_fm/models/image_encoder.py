"""The frozen RGB teacher and the output format both encoders share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from .backbones import Backbone

__all__ = ["EncoderOutput", "ImageEncoder", "split_tokens", "tokens_to_map"]


def tokens_to_map(tokens: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """(B, h*w, C) row-major patch tokens -> (B, C, h, w) feature map."""
    b, n, c = tokens.shape
    h, w = grid_size
    if n != h * w:
        raise ValueError(f"{n} tokens do not fill a {h}x{w} grid")
    return tokens.transpose(1, 2).reshape(b, c, h, w)


@dataclass
class EncoderOutput:
    """LayerNorm-normalized encoder tokens (DINOv2's x_norm_clstoken / x_norm_patchtokens).

    ``patch`` is (B, N, C) in row-major grid order; with token dropping, N is the number kept and
    ``keep_indices`` (B, N) gives their positions in the full h*w grid.
    """

    cls: torch.Tensor
    patch: torch.Tensor
    grid_size: tuple[int, int]
    registers: torch.Tensor | None = None
    keep_indices: torch.Tensor | None = None

    def patch_map(self) -> torch.Tensor:
        """Patch tokens as a (B, C, h, w) map; only defined when no token was dropped."""
        if self.keep_indices is not None:
            raise ValueError("patch tokens were dropped; gather targets at keep_indices instead")
        return tokens_to_map(self.patch, self.grid_size)


def split_tokens(
    tokens: torch.Tensor, num_prefix_tokens: int, grid_size: tuple[int, int],
    keep_indices: torch.Tensor | None = None,
) -> EncoderOutput:
    """Split final-norm tokens (B, P + N, C) into CLS, registers and patches."""
    registers = tokens[:, 1:num_prefix_tokens] if num_prefix_tokens > 1 else None
    return EncoderOutput(
        cls=tokens[:, 0],
        patch=tokens[:, num_prefix_tokens:],
        grid_size=grid_size,
        registers=registers,
        keep_indices=keep_indices,
    )


class ImageEncoder(nn.Module):
    """Frozen RGB foundation model: the distillation target and the heads' training encoder.

    Takes RGB in [0, 1] (float) or uint8, (B, 3, H, W), H and W multiples of the patch size;
    ImageNet normalization happens here so callers never feed mis-normalized images.
    """

    def __init__(
        self,
        backbone: Backbone,
        mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        std: Sequence[float] = IMAGENET_DEFAULT_STD,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.train(False)

    @property
    def embed_dim(self) -> int:
        return self.backbone.embed_dim

    @property
    def patch_size(self) -> int:
        return self.backbone.patch_size

    def train(self, mode: bool = True) -> ImageEncoder:
        # The teacher never trains: stay in eval so dropout / drop-path never perturb targets.
        return super().train(False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        images = images.to(self.mean.dtype)
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        h, w = images.shape[-2:]
        grid = self.backbone.grid_size(h, w)
        tokens = self.backbone(self.normalize(images))
        return split_tokens(tokens, self.backbone.num_prefix_tokens, grid)
