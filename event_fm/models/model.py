"""The assembled EventFM model: event student, optional RGB teacher, and task heads."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from event_fm.common.strict_config import build_dataclass

from .backbones import create_backbone, get_preset
from .checkpoint import register_kind
from .event_encoder import EventEncoder
from .heads import DSEC_CLASSES, DepthHead, MatchingHead, SegmentationHead
from .image_encoder import EncoderOutput, ImageEncoder
from .inference import tiled_forward

__all__ = ["HEADS", "EventFM", "EventFMConfig"]

#: Head names, in the order they run.
HEADS = ("depth", "segmentation", "matching")


@dataclass
class EventFMConfig:
    """Everything needed to rebuild an EventFM model (stored as config.json in checkpoints)."""

    preset: str = "tiny"
    img_size: tuple[int, int] | None = None  # model input (H, W); None: the preset's default
    num_bins: int = 5
    heads: tuple[str, ...] = HEADS
    class_names: tuple[str, ...] = DSEC_CLASSES
    seg_batch_norm: bool = True
    seg_projector_dim: int = 0  # >0: DUNE transformer projector to this width before the probe
    seg_projector_blocks: int = 1
    depth_range: tuple[float, float] = (1.0, 81.0)
    depth_bins: int = 256
    depth_logit_stride: int = 1  # >1: depth distribution on a coarser grid (cheaper on CPU)
    depth_logit_upsample: int = 0  # >0: distribution at this multiple of the patch grid (REALM 4)
    depth_spacing: str = "linear"  # "log": bins even in log depth (REALM: linear)
    descriptor_dim: int = 128
    matching_stride: int = 8
    embedder_widths: tuple[int, ...] | None = None  # None: the preset's widths
    embedder: str = "voxel"  # 'voxel' (VoxelEmbedder) or 'patch' (ViT patch conv, GEP stage 1)
    embedder_stem_stride: int = 2  # VoxelEmbedder stem stride (REALM's release: 1)
    voxel_norm: str = "nonzero"
    image_mean: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_MEAN)
    image_std: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_STD)
    lora_rank: int = 32
    lora_alpha: float = 32.0
    lora_dropout: float = 0.1
    full_finetune: bool = False
    merged: bool = False  # LoRA folded into the transformer (deployment)
    with_teacher: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # free-form metadata, kept verbatim

    def __post_init__(self) -> None:
        preset = get_preset(self.preset)
        self.img_size = tuple(self.img_size) if self.img_size is not None else preset.img_size
        self.embedder_widths = tuple(self.embedder_widths or preset.embedder_widths)
        self.heads = tuple(self.heads)
        unknown = set(self.heads) - set(HEADS)
        if unknown:
            raise ValueError(f"unknown heads {sorted(unknown)}; known: {HEADS}")
        for name in ("class_names", "depth_range", "image_mean", "image_std"):
            setattr(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str = "model") -> EventFMConfig:
        """Strict: an unknown key raises ConfigError naming ``path.key`` and the known keys."""
        return build_dataclass(cls, data, path)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


class EventFM(nn.Module):
    """Event encoder (+ frozen RGB teacher) with depth, segmentation and matching heads.

    ``forward_events`` and ``forward_image`` return the same dict, so heads trained on the teacher
    apply to events unchanged; ``heads=`` picks which heads run (default: all enabled heads).
    Keys: depth (B, 1, H, W) metres and depth_logits (B, bins, H/s, W/s); semantic_logits
    (B, classes, H, W); descriptors (B, D, H/s, W/s) unit vectors and confidence (B, 1, H/s, W/s);
    always cls (B, C) and patch (B, C, h, w).
    """

    def __init__(
        self, config: EventFMConfig | None = None, backbone_weights: str | Path | None = None
    ) -> None:
        super().__init__()
        self.config = config = config or EventFMConfig()
        backbone = create_backbone(config.preset, backbone_weights, config.img_size)
        self.teacher = (
            ImageEncoder(copy.deepcopy(backbone), config.image_mean, config.image_std)
            if config.with_teacher else None
        )
        self.encoder = EventEncoder(
            backbone,
            num_bins=config.num_bins,
            embedder_widths=config.embedder_widths,
            lora_rank=0 if config.merged else config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            full_finetune=config.full_finetune,
            voxel_norm=config.voxel_norm,
            embedder=config.embedder,
            stem_stride=config.embedder_stem_stride,
        )
        dim = backbone.embed_dim
        self.heads = nn.ModuleDict()
        if "depth" in config.heads:
            self.heads["depth"] = DepthHead(
                dim, config.depth_bins, *config.depth_range, config.depth_logit_stride,
                config.depth_logit_upsample, config.depth_spacing,
            )
        if "segmentation" in config.heads:
            self.heads["segmentation"] = SegmentationHead(
                dim, config.class_names, config.seg_batch_norm, config.seg_projector_dim,
                config.seg_projector_blocks, backbone.vit.blocks[0].attn.num_heads,
            )
        if "matching" in config.heads:
            self.heads["matching"] = MatchingHead(
                dim, config.descriptor_dim, config.matching_stride
            )

    @property
    def img_size(self) -> tuple[int, int]:
        return tuple(self.config.img_size)

    def _select(self, heads: str | Iterable[str] | None) -> tuple[str, ...]:
        if heads is None:
            return tuple(self.heads.keys())
        names = (heads,) if isinstance(heads, str) else tuple(heads)
        missing = [h for h in names if h not in self.heads]
        if missing:
            raise ValueError(f"heads {missing} are not in this model (has {list(self.heads)})")
        return tuple(h for h in HEADS if h in names)

    def forward_heads(
        self,
        feats: EncoderOutput,
        out_size: tuple[int, int],
        heads: str | Iterable[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run the selected heads on encoder output for an input of ``out_size`` (H, W)."""
        out: dict[str, torch.Tensor] = {"cls": feats.cls, "patch": feats.patch_map()}
        for name in self._select(heads):
            result = self.heads[name](feats, out_size)
            if isinstance(result, dict):
                out.update(result)
            else:
                out["semantic_logits"] = result
        return out

    def forward_events(
        self, voxels: torch.Tensor, heads: str | Iterable[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Voxel grids (B, bins, H, W), H and W multiples of the patch size."""
        return self.forward_heads(self.encoder(voxels), tuple(voxels.shape[-2:]), heads)

    def forward_image(
        self, images: torch.Tensor, heads: str | Iterable[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """RGB (B, 3, H, W) in [0, 1] or uint8, through the frozen teacher."""
        if self.teacher is None:
            raise RuntimeError("this EventFM model was built without the RGB teacher")
        return self.forward_heads(self.teacher(images), tuple(images.shape[-2:]), heads)

    def forward(
        self, voxels: torch.Tensor, heads: str | Iterable[str] | None = None
    ) -> dict[str, torch.Tensor]:
        return self.forward_events(voxels, heads)

    def forward_events_tiled(
        self,
        voxels: torch.Tensor,
        heads: str | Iterable[str] | None = None,
        tile_size: tuple[int, int] | None = None,
        keep: Iterable[str] | None = None,
        native: bool = False,
    ) -> dict[str, torch.Tensor]:
        """``forward_events`` for inputs of any size/aspect ratio via overlapping tiles;
        ``keep``: the output keys to stitch (default: all); ``native``: dense outputs at the
        model's pixel density instead of the input's (see :func:`tiled_forward`)."""
        out = tiled_forward(
            lambda x: self.forward_events(x, heads), voxels, self.img_size, tile_size, keep,
            native,
        )
        if "descriptors" in out:
            out["descriptors"] = F.normalize(out["descriptors"], dim=1)
        return out

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part, and how many train under the current settings."""
        def count(params: Iterable[nn.Parameter], trainable: bool = False) -> int:
            return sum(p.numel() for p in params if p.requires_grad or not trainable)

        counts = {
            "encoder": count(self.encoder.parameters()),
            "encoder_trainable": count(self.encoder.parameters(), True),
            "embedder": count(self.encoder.embedder.parameters()),
            "lora": sum(p.numel() for n, p in self.encoder.named_parameters() if "lora_" in n),
            "teacher": count(self.teacher.parameters()) if self.teacher is not None else 0,
            "heads": count(self.heads.parameters()),
        }
        counts["total"] = count(self.parameters())
        counts["trainable"] = count(self.parameters(), True)
        return counts


register_kind("event_fm", EventFM, EventFMConfig)
