"""SimVP-style deterministic baseline: per-frame CNN encoder, a translator over the stacked
past frames' features, per-frame decoder (Gao et al., SimVP, CVPR 2022 - the idea, small)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from event_fm.common.strict_config import build_dataclass
from event_fm.models.checkpoint import register_kind


@dataclass
class SimVPConfig:
    past: int = 4
    horizon: int = 10
    bins: int = 3
    size: int = 128
    width: int = 32
    hidden: int = 128
    translator_blocks: int = 4

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict, path: str = "simvp_model") -> SimVPConfig:
        """Strict: an unknown key raises ConfigError naming ``path.key`` and the known keys."""
        return build_dataclass(cls, data, path)


def conv_block(dim_in: int, dim_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim_in, dim_out, 3, stride=stride, padding=1),
                         nn.GroupNorm(min(8, dim_out), dim_out), nn.SiLU())


class TranslatorBlock(nn.Module):
    """Depthwise large-kernel conv + pointwise MLP, residual (a light Inception/gSTA block)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.GroupNorm(1, dim)
        self.mlp = nn.Sequential(nn.Conv2d(dim, 2 * dim, 1), nn.SiLU(), nn.Conv2d(2 * dim, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(self.dw(x)))


class SimVP(nn.Module):
    """forward(past (B, P, C, H, W)) -> future (B, horizon, C, H, W), deterministic."""

    def __init__(self, config: SimVPConfig):
        super().__init__()
        self.config = cfg = config
        w = cfg.width
        self.encoder = nn.Sequential(conv_block(cfg.bins, w, 2), conv_block(w, w),
                                     conv_block(w, w, 2), conv_block(w, w))
        self.translator_in = nn.Conv2d(cfg.past * w, cfg.hidden, 1)
        self.translator = nn.Sequential(*[TranslatorBlock(cfg.hidden)
                                          for _ in range(cfg.translator_blocks)])
        self.translator_out = nn.Conv2d(cfg.hidden, cfg.horizon * w, 1)
        self.decoder = nn.Sequential(conv_block(w, w), nn.Upsample(scale_factor=2),
                                     conv_block(w, w), nn.Upsample(scale_factor=2),
                                     conv_block(w, w))
        self.head = nn.Conv2d(w + cfg.bins, cfg.bins, 3, padding=1)

    def forward(self, past: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        b, p, c, h, w = past.shape
        feats = self.encoder(past.reshape(b * p, c, h, w))
        z = feats.reshape(b, p * cfg.width, *feats.shape[-2:])
        z = self.translator_out(self.translator(self.translator_in(z)))
        z = z.reshape(b * cfg.horizon, cfg.width, *feats.shape[-2:])
        dec = self.decoder(z)
        last = past[:, -1:].expand(b, cfg.horizon, c, h, w).reshape(b * cfg.horizon, c, h, w)
        dec = F.interpolate(dec, size=(h, w), mode="nearest") if dec.shape[-2:] != (h, w) else dec
        out = self.head(torch.cat([dec, last], dim=1))
        return out.reshape(b, cfg.horizon, c, h, w)


register_kind("forecast_simvp", SimVP, SimVPConfig)
