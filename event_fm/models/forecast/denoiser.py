"""A small video diffusion denoiser: factorized space-time UNet over event-voxel frames.

Every frame is patchified (stride ``patch``) to a low internal resolution, run through a 2D UNet
whose blocks are shared over time, with temporal self-attention across frames at every level and
spatial self-attention at the lowest one, then unpatchified (pixel shuffle) back to full size. The
past frames that condition a forecast (the "event prompt") enter as extra input channels with a
mask channel, so one network handles any prompt length up to ``frames``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from event_fm.common.strict_config import build_dataclass
from event_fm.models.checkpoint import register_kind

FORECAST_BASES = ("none", "motion")
DENSITY_MODES = ("free", "past")


@dataclass
class ForecastConfig:
    frames: int = 14  # frames per sequence: past positions + future
    past: int = 4  # past positions; the future starts at index ``past``
    bins: int = 3
    size: int = 128
    patch: int = 4
    widths: tuple[int, ...] = (32, 64, 64)
    emb_dim: int = 128
    heads: int = 4
    prompt_lengths: tuple[int, ...] = (1, 2, 3)  # conditioning lengths drawn in training
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "sample"
    data_scale: float = 1.0  # normalized voxels * data_scale = model space
    #: what the future positions predict: 'none' (the frames themselves) or 'motion' (the
    #: residual over the motion-compensated last frame, which the condition carries there)
    base: str = "none"
    #: 'free' (as sampled) or 'past' (each future frame keeps its strongest pixels, as many
    #: as the past frames had on average: the event rate follows the observed one)
    density: str = "free"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.prompt_lengths = tuple(int(k) for k in self.prompt_lengths)
        if self.size % (self.patch * 2 ** (len(self.widths) - 1)):
            raise ValueError(f"size {self.size} must be divisible by patch * 2^(levels - 1)")
        if not 0 < self.past < self.frames:
            raise ValueError(f"past ({self.past}) must be in [1, frames)")
        if max(self.prompt_lengths) > self.past:
            raise ValueError("prompt lengths cannot exceed the past positions")
        if self.base not in FORECAST_BASES:
            raise ValueError(f"base must be one of {FORECAST_BASES}, got {self.base!r}")
        if self.density not in DENSITY_MODES:
            raise ValueError(f"density must be one of {DENSITY_MODES}, got {self.density!r}")

    @property
    def horizon(self) -> int:
        return self.frames - self.past

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict, path: str = "model") -> ForecastConfig:
        """Strict: an unknown key raises ConfigError naming ``path.key`` and the known keys."""
        return build_dataclass(cls, data, path)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the (diffusion time + frame position) embedding as a
    per-channel scale and shift in between."""

    def __init__(self, dim_in: int, dim_out: int, emb_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, dim_in), dim_in)
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * dim_out)
        self.norm2 = nn.GroupNorm(min(8, dim_out), dim_out)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[..., None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class Attention(nn.Module):
    """Pre-norm multi-head self-attention over the token axis, residual, zero-initialized out."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.norm(tokens)
        return tokens + self.attn(h, h, h, need_weights=False)[0]


class TemporalAttention(Attention):
    """Attention across the frames of one sequence, at every spatial position."""

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # (B*T, C, H, W)
        bt, c, h, w = x.shape
        tokens = x.reshape(bt // frames, frames, c, h * w).permute(0, 3, 1, 2)
        tokens = super().forward(tokens.reshape(-1, frames, c))
        tokens = tokens.reshape(bt // frames, h * w, frames, c).permute(0, 2, 3, 1)
        return tokens.reshape(bt, c, h, w)


class SpatialAttention(Attention):
    """Attention across the positions of one frame."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B*T, C, H, W)
        bt, c, h, w = x.shape
        tokens = super().forward(x.flatten(2).transpose(1, 2))
        return tokens.transpose(1, 2).reshape(bt, c, h, w)


class VideoDenoiser(nn.Module):
    """Predicts the clean sequence (or the noise, per ``prediction_type``) from a noisy one.

    forward(noisy (B, T, C, H, W), timesteps (B,), cond (B, T, C, H, W), mask (B, T)):
    ``cond`` holds the prompt frames where ``mask`` is 1 and zeros elsewhere.
    """

    def __init__(self, config: ForecastConfig):
        super().__init__()
        self.config = cfg = config
        c, p, e = cfg.bins, cfg.patch, cfg.emb_dim
        widths = cfg.widths
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.frame_pos = nn.Parameter(torch.zeros(cfg.frames, e))
        self.stem = nn.Conv2d((2 * c + 1) * p * p, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, w in enumerate(widths):
            w_in = widths[i - 1] if i else widths[0]
            self.down_blocks.append(ResBlock(w_in, w, e))
            self.down_attn.append(TemporalAttention(w, cfg.heads))
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
        deepest = widths[-1]
        self.mid_spatial = SpatialAttention(deepest, cfg.heads)
        self.mid_block = ResBlock(deepest, deepest, e)
        self.mid_temporal = TemporalAttention(deepest, cfg.heads)
        self.up_blocks = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        for i in reversed(range(len(widths) - 1)):
            self.up_blocks.append(ResBlock(widths[i + 1] + widths[i], widths[i], e))
            self.up_attn.append(TemporalAttention(widths[i], cfg.heads))
        self.out_norm = nn.GroupNorm(min(8, widths[0]), widths[0])
        self.out_conv = nn.Conv2d(widths[0], c * p * p, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        b, t, c, h, w = noisy.shape
        if t != cfg.frames or c != cfg.bins:
            raise ValueError(f"expected (B, {cfg.frames}, {cfg.bins}, H, W), got "
                             f"{tuple(noisy.shape)}")
        timesteps = timesteps.reshape(-1).expand(b) if timesteps.numel() == 1 else timesteps
        emb = self.time_mlp(timestep_embedding(timesteps, cfg.emb_dim))  # (B, E)
        emb = (emb[:, None] + self.frame_pos[None, :t]).reshape(b * t, -1)
        mask_plane = mask.to(noisy.dtype)[:, :, None, None, None].expand(b, t, 1, h, w)
        x = torch.cat([noisy, cond, mask_plane], dim=2).reshape(b * t, 2 * c + 1, h, w)
        x = self.stem(F.pixel_unshuffle(x, cfg.patch))
        skips = []
        for i, block in enumerate(self.down_blocks):
            x = self.down_attn[i](block(x, emb), t)
            if i < len(self.downsample):
                skips.append(x)
                x = self.downsample[i](x)
        x = self.mid_temporal(self.mid_block(self.mid_spatial(x), emb), t)
        for block, attn in zip(self.up_blocks, self.up_attn, strict=True):
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = attn(block(torch.cat([x, skip], dim=1), emb), t)
        x = self.out_conv(F.silu(self.out_norm(x)))
        return F.pixel_shuffle(x, cfg.patch).reshape(b, t, c, h, w)


def make_condition(past: torch.Tensor, length: int | torch.Tensor, frames: int,
                   base: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt tensors for a sequence of ``frames`` from past frames (B, P, C, H, W): the last
    ``length`` past frames (per sample when a tensor) at their positions, the rest zero; with
    ``base`` (B, frames - P, C, H, W) the future positions carry it (mask 0: not given, but
    where the residual is measured from)."""
    b, p = past.shape[:2]
    lengths = torch.as_tensor(length, device=past.device).reshape(-1).expand(b)
    positions = torch.arange(p, device=past.device)
    mask_past = (positions[None] >= (p - lengths)[:, None]).to(past.dtype)  # (B, P)
    cond = past.new_zeros((b, frames, *past.shape[2:]))
    cond[:, :p] = past * mask_past[:, :, None, None, None]
    if base is not None:
        cond[:, p:] = base
    mask = past.new_zeros((b, frames))
    mask[:, :p] = mask_past
    return cond, mask


register_kind("forecast_diffusion", VideoDenoiser, ForecastConfig)
