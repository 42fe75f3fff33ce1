"""LLM-EvRep's generator: a U-Net of EfficientNetV2 blocks, Tencode in, image out.

The encoder is EfficientNetV2-shaped (Fused-MBConv in the shallow, high-resolution stages, MBConv
with squeeze-excitation in the deep ones, each stage after the first halving the resolution); the
decoder upsamples, concatenates the encoder's skip of the same scale and refines it with a block
of that stage's kind. Upsampling goes to the skip's exact size, so any input size works (no
padding to a multiple of 2^stages). Output: an image in [0, 1] (sigmoid).

Checkpoints are a directory with ``model.safetensors`` and ``config.json`` (no pickles).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from event_fm.common.strict_config import build_dataclass

from .checkpoint import load, register_kind, save
from .reconstruction_blocks import ConvNormAct, make_block

__all__ = ["ReconstructionConfig", "ReconstructionUNet", "load_generator", "save_generator"]



@dataclass
class ReconstructionConfig:
    """Architecture and input convention of a generator (stored as config.json)."""

    in_chans: int = 3  # Tencode: R = ON, G = last timestamp, B = OFF
    out_chans: int = 3  # RGB
    widths: tuple[int, ...] = (16, 24, 40, 64)
    depths: tuple[int, ...] = (1, 1, 2, 2)
    kinds: tuple[str, ...] = ("fused", "fused", "mb", "mb")
    expand_ratios: tuple[float, ...] = (1.0, 4.0, 4.0, 4.0)
    decoder_expand: float = 2.0
    drop_path: float = 0.0
    tencode_counts: bool = False  # input convention: Tencode with binary (False) or count R/B
    extra: dict[str, Any] = field(default_factory=dict)  # metadata (training recipe), verbatim

    def __post_init__(self) -> None:
        for name in ("widths", "depths", "kinds", "expand_ratios"):
            setattr(self, name, tuple(getattr(self, name)))
        n = len(self.widths)
        if not n or any(len(getattr(self, k)) != n for k in ("depths", "kinds", "expand_ratios")):
            raise ValueError("widths, depths, kinds and expand_ratios need one entry per stage")
        if any(d < 1 for d in self.depths):
            raise ValueError(f"every stage needs at least one block, got depths {self.depths}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str = "model") -> ReconstructionConfig:
        """Strict: an unknown key raises ConfigError naming ``path.key`` and the known keys."""
        return build_dataclass(cls, data, path)


class ReconstructionUNet(nn.Module):
    """Tencode (B, 3, H, W) in [0, 1] -> image (B, out_chans, H, W) in [0, 1]."""

    def __init__(self, config: ReconstructionConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ReconstructionConfig()
        total = sum(cfg.depths)
        rates = [cfg.drop_path * i / max(1, total - 1) for i in range(total)]  # linspace
        self.stem = ConvNormAct(cfg.in_chans, cfg.widths[0], 3)
        self.stages = nn.ModuleList()
        in_chs, k = cfg.widths[0], 0
        for i, (width, depth, kind, expand) in enumerate(
                zip(cfg.widths, cfg.depths, cfg.kinds, cfg.expand_ratios, strict=True)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(make_block(kind, in_chs, width, stride, expand, rates[k]))
                in_chs, k = width, k + 1
            self.stages.append(nn.Sequential(*blocks))
        self.fuse = nn.ModuleList()
        self.refine = nn.ModuleList()
        for i in range(len(cfg.widths) - 2, -1, -1):  # deepest skip first
            self.fuse.append(ConvNormAct(cfg.widths[i + 1] + cfg.widths[i], cfg.widths[i], 1))
            self.refine.append(make_block(cfg.kinds[i], cfg.widths[i], cfg.widths[i], 1,
                                          cfg.decoder_expand))
        self.head = nn.Conv2d(cfg.widths[0], cfg.out_chans, 1)

    def forward(self, tencode: torch.Tensor) -> torch.Tensor:
        x = self.stem(tencode)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for fuse, refine in zip(self.fuse, self.refine, strict=True):
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = refine(fuse(torch.cat([x, skip], dim=1)))
        return torch.sigmoid(self.head(x))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


register_kind("reconstruction", ReconstructionUNet, ReconstructionConfig)


def save_generator(model: ReconstructionUNet, directory: str | Path,
                   meta: dict[str, Any] | None = None) -> Path:
    """A 'reconstruction' checkpoint (event_fm.models.checkpoint's one format); the config's
    ``extra`` (training recipe) goes under "meta"."""
    return save(model, directory, "reconstruction", meta)


def load_generator(path: str | Path, device: str | torch.device | None = None
                   ) -> ReconstructionUNet:
    """A generator from its 'reconstruction' checkpoint (eval mode, on ``device`` if given)."""
    return load(path, device, expect="reconstruction")  # type: ignore[return-value]
