"""REALM's event student: a convolutional voxel embedder in front of a LoRA-adapted ViT.

The RGB patch embedding (one linear map per 14x14 or 16x16 patch) cannot read sparse, signed,
multi-bin voxel grids well, so a small ResNet-style stem replaces it and its features are pooled
onto the ViT's token grid. The transformer keeps its pretrained weights; low-rank adapters on the
attention and MLP linears close the modality gap without forgetting the RGB prior.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import Backbone
from .image_encoder import EncoderOutput, split_tokens
from .lora import add_lora, has_lora, merge_lora_layers

__all__ = ["EventEncoder", "PatchEmbedder", "ResidualDownBlock", "VoxelEmbedder",
           "normalize_voxels"]

VOXEL_NORMS = ("none", "nonzero")
#: 'voxel': the convolutional VoxelEmbedder (REALM); 'patch': one strided conv per ViT patch over
#: the input channels (a plain ViT patch embedding, as GEP's stage-1 student).
EMBEDDERS = ("voxel", "patch")


def normalize_voxels(
    voxels: torch.Tensor, mode: str = "nonzero", eps: float = 1e-6
) -> torch.Tensor:
    """Per-sample normalization of voxel grids (B, bins, H, W).

    'nonzero' standardizes the non-zero entries to zero mean and unit variance and leaves empty
    voxels at zero (as E2VID), so the scale no longer depends on the event rate; it is idempotent,
    so already-normalized inputs pass through unchanged.
    """
    if mode == "none":
        return voxels
    if mode != "nonzero":
        raise ValueError(f"unknown voxel normalization {mode!r}; use one of {VOXEL_NORMS}")
    dims = tuple(range(1, voxels.ndim))
    mask = voxels != 0
    count = mask.sum(dim=dims, keepdim=True).clamp(min=1)
    mean = (voxels * mask).sum(dim=dims, keepdim=True) / count
    var = (((voxels - mean) * mask) ** 2).sum(dim=dims, keepdim=True) / count
    normalized = (voxels - mean) / (var.sqrt() + eps)
    return torch.where(mask, normalized, torch.zeros_like(voxels))


class ResidualDownBlock(nn.Module):
    """ResNet basic block that halves the resolution (3x3 convs, 1x1 strided shortcut)."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_chs, out_chs, 1, stride=2, bias=False), nn.BatchNorm2d(out_chs)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.shortcut(x))


class VoxelEmbedder(nn.Module):
    """Voxel grid (B, bins, H, W) -> patch embeddings (B, C, h, w) on the ViT's token grid.

    7x7 stride-2 stem, three stride-2 residual stages (overall stride 16), a 1x1 projection to the
    ViT width with BatchNorm + GELU, then adaptive average pooling onto the token grid (which also
    bridges stride 16 to patch-14 grids). With REALM's widths (64, 128, 256, 512) and width 768
    this has 5,232,832 parameters, as reported in the paper. ``stem_stride`` 1 keeps the stem at
    full resolution (overall stride 8), as REALM's released embedder does.
    """

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError("widths: one for the stem and one for each of three stages")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, widths[0], 7, stride=stem_stride, padding=3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        self.stages = nn.Sequential(
            *(ResidualDownBlock(widths[i], widths[i + 1]) for i in range(3))
        )
        self.proj = nn.Sequential(
            nn.Conv2d(widths[-1], embed_dim, 1, bias=False), nn.BatchNorm2d(embed_dim), nn.GELU()
        )

    def forward(self, voxels: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
        x = self.proj(self.stages(self.stem(voxels)))
        if tuple(x.shape[-2:]) != tuple(grid_size):
            x = F.adaptive_avg_pool2d(x, grid_size)
        return x


class PatchEmbedder(nn.Module):
    """A ViT patch embedding over the event channels: (B, bins, H, W) -> (B, C, H/p, W/p).

    One strided convolution per patch, the RGB patch embedding with ``in_chans`` inputs (GEP's
    stage-1 student, 20 channels). Its grid is the ViT's token grid for any input size.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)

    def forward(self, voxels: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
        x = self.proj(voxels)
        if tuple(x.shape[-2:]) != tuple(grid_size):
            x = F.adaptive_avg_pool2d(x, grid_size)
        return x


class EventEncoder(nn.Module):
    """Event student: voxel embedder + the backbone's transformer with LoRA.

    Trainable by default: the embedder, the LoRA matrices and the final norm; everything else is
    frozen. ``full_finetune`` (ScaleEvent's setting) trains the whole transformer and adds no
    LoRA. The backbone passed in is taken over (its RGB patch projection is removed); give the
    teacher its own copy.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_bins: int = 5,
        embedder_widths: Sequence[int] | None = None,
        lora_rank: int = 32,
        lora_alpha: float = 32.0,
        lora_dropout: float = 0.1,
        full_finetune: bool = False,
        voxel_norm: str = "nonzero",
        embedder: str = "voxel",
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        if voxel_norm not in VOXEL_NORMS:
            raise ValueError(f"unknown voxel normalization {voxel_norm!r}; use {VOXEL_NORMS}")
        if embedder not in EMBEDDERS:
            raise ValueError(f"unknown embedder {embedder!r}; use one of {EMBEDDERS}")
        self.num_bins = num_bins
        self.voxel_norm = voxel_norm
        self.full_finetune = full_finetune
        if embedder == "patch":
            self.embedder = PatchEmbedder(num_bins, backbone.embed_dim, backbone.patch_size)
        else:
            widths = tuple(embedder_widths or backbone.preset.embedder_widths)
            self.embedder = VoxelEmbedder(num_bins, backbone.embed_dim, widths, stem_stride)
        backbone.vit.patch_embed.proj = nn.Identity()  # replaced by the embedder
        self.backbone = backbone
        if lora_rank > 0 and not full_finetune:
            add_lora(backbone.vit, lora_rank, lora_alpha, lora_dropout)
        self.set_trainable()

    @property
    def embed_dim(self) -> int:
        return self.backbone.embed_dim

    @property
    def patch_size(self) -> int:
        return self.backbone.patch_size

    @property
    def has_lora(self) -> bool:
        return has_lora(self.backbone)

    def set_trainable(self) -> None:
        """(Re)apply the training rule: embedder + LoRA + final norm, or everything."""
        for name, p in self.named_parameters():
            train = (
                self.full_finetune
                or name.startswith("embedder.")
                or "lora_" in name
                or name.startswith("backbone.vit.norm.")
            )
            p.requires_grad_(train)

    def merge_lora(self) -> int:
        """Fold the adapters into the transformer (deployment); returns layers merged."""
        merged = merge_lora_layers(self.backbone.vit)
        self.set_trainable()
        return merged

    def forward(
        self,
        voxels: torch.Tensor,
        drop_ratio: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> EncoderOutput:
        """Encode voxel grids (B, bins, H, W); H, W multiples of the patch size.

        ``drop_ratio`` > 0 keeps a random (1 - drop_ratio) share of the patch tokens per sample
        (REALM's MAE-style curriculum uses 0.3); the output then holds only the kept tokens and
        their grid positions in ``keep_indices``.
        """
        if voxels.ndim != 4 or voxels.shape[1] != self.num_bins:
            raise ValueError(
                f"expected voxels (B, {self.num_bins}, H, W), got {tuple(voxels.shape)}"
            )
        if not 0.0 <= drop_ratio < 1.0:
            raise ValueError(f"drop_ratio must be in [0, 1), got {drop_ratio}")
        grid = self.backbone.grid_size(*voxels.shape[-2:])
        x = normalize_voxels(voxels, self.voxel_norm)
        patches = self.embedder(x, grid).permute(0, 2, 3, 1)  # (B, h, w, C) as timm's embed
        keep = None
        if drop_ratio > 0:
            b, n = patches.shape[0], grid[0] * grid[1]
            num_keep = max(1, round(n * (1.0 - drop_ratio)))
            noise = torch.rand(b, n, device=patches.device, generator=generator)
            keep = noise.argsort(dim=1)[:, :num_keep].sort(dim=1).values
        tokens = self.backbone.forward_tokens(patches, keep)
        return split_tokens(tokens, self.backbone.num_prefix_tokens, grid, keep)
