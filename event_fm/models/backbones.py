"""ViT backbones built through timm from a preset name, with token-level access.

The event encoder replaces the RGB patch embedding, so it needs the transformer in pieces: position
embedding, optional token dropping, blocks and the final norm. :class:`Backbone` exposes exactly
that for both timm families we use (``VisionTransformer`` for DINOv2/DUNE and ``Eva`` for DINOv3,
whose position information is RoPE). Weights are only ever read from local files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
from timm.layers import apply_keep_indices_nlc
from timm.models.eva import Eva
from torch import nn

__all__ = ["PRESETS", "Backbone", "BackbonePreset", "create_backbone", "get_preset"]


@dataclass(frozen=True)
class BackbonePreset:
    """How to build one backbone: the timm architecture plus our defaults around it."""

    name: str
    timm_name: str
    img_size: tuple[int, int]  # default model input (H, W)
    family: str  # checkpoint layout family: 'dinov2', 'dinov3' or 'dune'
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    embedder_widths: tuple[int, ...] = (64, 128, 256, 512)  # voxel embedder stem + stages


PRESETS: dict[str, BackbonePreset] = {
    p.name: p
    for p in (
        # Small enough for CPU tests and an embedded default: 12x16 tokens of width 192.
        BackbonePreset(
            "tiny", "vit_small_patch14_reg4_dinov2", (192, 256), "dinov2",
            dict(patch_size=16, embed_dim=192, depth=4, num_heads=3),
            embedder_widths=(16, 32, 64, 128),
        ),
        BackbonePreset("dinov2_vits14", "vit_small_patch14_dinov2", (448, 448), "dinov2"),
        BackbonePreset("dinov2_vits14_reg4", "vit_small_patch14_reg4_dinov2", (448, 448), "dinov2"),
        BackbonePreset("dinov3_vits16", "vit_small_patch16_dinov3", (448, 448), "dinov3"),
        # DUNE's encoder: DINOv2 ViT-B/14 with 4 registers trained at 448 px.
        BackbonePreset("dune_vitb14_448", "vit_base_patch14_reg4_dinov2", (448, 448), "dune"),
    )
}


def get_preset(name: str) -> BackbonePreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown backbone preset {name!r}; known: {sorted(PRESETS)}") from None


class Backbone(nn.Module):
    """A timm ViT split into the steps the encoders need.

    ``forward_tokens`` takes patch embeddings on a grid (B, h, w, C), whatever produced them (the
    RGB patch embedding or the voxel embedder), and returns the final-norm tokens. Prefix tokens
    (CLS, registers) come first, as in timm.
    """

    def __init__(self, vit: nn.Module, preset: BackbonePreset) -> None:
        super().__init__()
        self.vit = vit
        self.preset = preset
        self.embed_dim: int = vit.embed_dim
        self.patch_size: int = int(vit.patch_embed.patch_size[0])
        self.num_prefix_tokens: int = vit.num_prefix_tokens
        self.num_registers: int = self.num_prefix_tokens - 1

    @property
    def img_size(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.vit.patch_embed.img_size)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        return height // self.patch_size, width // self.patch_size

    def embed_patches(self, images: torch.Tensor) -> torch.Tensor:
        """RGB patch embedding: (B, 3, H, W) normalized images -> (B, h, w, C)."""
        return self.vit.patch_embed(images)

    def forward_tokens(
        self, patches: torch.Tensor, keep_indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run the transformer on (B, h, w, C) patch embeddings.

        ``keep_indices`` (B, K) selects the patch tokens that enter the blocks (token dropping);
        position information is applied before the selection so kept tokens keep their place.
        Returns the final-norm tokens (B, P + K, C) with P prefix tokens.
        """
        vit = self.vit
        rope = None
        if isinstance(vit, Eva):
            x, rope = vit._pos_embed(patches)
        else:
            x = vit._pos_embed(patches)
        if keep_indices is not None:
            npt = self.num_prefix_tokens
            prefix, tokens = x[:, :npt], x[:, npt:]
            index = keep_indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
            x = torch.cat([prefix, tokens.gather(1, index)], dim=1)
            if rope is not None:
                # (N, dim) -> (B, K, dim) -> (B, 1, K, dim): one table per sample, shared by heads
                rope = apply_keep_indices_nlc(x, rope, keep_indices).unsqueeze(1)
        x = vit.norm_pre(x)
        for block in vit.blocks:
            x = block(x, rope=rope) if rope is not None else block(x)
        return vit.norm(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(self.embed_patches(images))


def create_backbone(
    preset: str | BackbonePreset,
    weights: str | Path | None = None,
    img_size: tuple[int, int] | None = None,
) -> Backbone:
    """Build a preset's architecture (random init, never a download) and load local weights.

    ``img_size`` sets the native grid of the position embedding; any input whose sides are
    multiples of the patch size also works (dynamic image size, embeddings interpolated).
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    size = tuple(img_size) if img_size is not None else preset.img_size
    vit = timm.create_model(
        preset.timm_name,
        pretrained=False,
        num_classes=0,
        dynamic_img_size=True,
        img_size=size,
        **preset.timm_kwargs,
    )
    backbone = Backbone(vit, preset)
    if weights is not None:
        from .remap import load_backbone_weights

        load_backbone_weights(backbone, weights)
    return backbone
