"""GEP stage 2: a causal transformer over interleaved event-window and frame tokens.

GEP (Generative Event Pretraining) aligns an event encoder to a frozen image model (stage 1, the
distillation here), then pretrains a causal transformer by next-token regression over mixed
event/image token sequences so it learns how a scene evolves in feature space (stage 2, this
module). Each window contributes one group of tokens per modality: its CLS token followed by
its patch-token map average-pooled to a small grid (the spatiotemporal aggregation that lets
several windows fit in the context). Groups are interleaved in time, events of window t before
the frame that closes it::

    [E_0 | F_0 | E_1 | F_1 | ...],   E_t = [cls, p_00, p_01, ..., p_(gh-1)(gw-1)]

Every token gets a modality embedding and a learned position; position i predicts token i + 1.
GEP's released model is 12 blocks of width 384 over 4096 tokens; the defaults here are scaled
down to the tiny encoder (4 blocks, width 192, 8 windows of 26 tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from event_fm.common.strict_config import build_dataclass
from event_fm.models.checkpoint import load, register_kind, save

__all__ = [
    "EVENT",
    "FRAME",
    "GEPConfig",
    "GEPTransformer",
    "aggregate_patches",
    "interleave",
    "load_gep",
    "modality_ids",
    "save_gep",
    "split_window_tokens",
    "upsample_patches",
    "window_tokens",
]

EVENT, FRAME = 0, 1  # modality ids, in the order the groups of one window appear
REFERENCES = ("last", "mean_last2", "ar")


def aggregate_patches(patch_map: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(..., C, h, w) patch map -> (..., gh*gw, C) tokens, average-pooled, row-major."""
    lead = patch_map.shape[:-3]
    c, h, w = patch_map.shape[-3:]
    pooled = F.adaptive_avg_pool2d(patch_map.reshape(-1, c, h, w), grid)
    return pooled.flatten(2).transpose(1, 2).reshape(*lead, grid[0] * grid[1], c)


def upsample_patches(tokens: torch.Tensor, grid: tuple[int, int],
                     size: tuple[int, int]) -> torch.Tensor:
    """(B, gh*gw, C) aggregated tokens -> (B, C, h, w) map at the heads' token grid (bilinear)."""
    b, n, c = tokens.shape
    if n != grid[0] * grid[1]:
        raise ValueError(f"{n} tokens do not fill a {grid[0]}x{grid[1]} grid")
    small = tokens.transpose(1, 2).reshape(b, c, *grid)
    if tuple(grid) == tuple(size):
        return small
    return F.interpolate(small, size=size, mode="bilinear", align_corners=False)


def window_tokens(cls: torch.Tensor, patch_map: torch.Tensor,
                  grid: tuple[int, int]) -> torch.Tensor:
    """One modality group per window: CLS (..., C) then the pooled patches -> (..., 1+n, C)."""
    return torch.cat([cls.unsqueeze(-2), aggregate_patches(patch_map, grid)], dim=-2)


def split_window_tokens(group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 1+n, C) group -> CLS (..., C), patches (..., n, C)."""
    return group[..., 0, :], group[..., 1:, :]


def interleave(events: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
    """(B, T, K, C) event groups and frame groups -> (B, T*2*K, C), E_0 F_0 E_1 F_1 ...

    ``frames=None`` gives an event-only sequence (B, T*K, C).
    """
    if frames is None:
        b, t, k, c = events.shape
        return events.reshape(b, t * k, c)
    if events.shape != frames.shape:
        raise ValueError(f"event groups {tuple(events.shape)} and frame groups "
                         f"{tuple(frames.shape)} differ")
    b, t, k, c = events.shape
    return torch.stack([events, frames], dim=2).reshape(b, t * 2 * k, c)


def modality_ids(windows: int, group_size: int, with_frames: bool = True) -> torch.Tensor:
    """Modality id of every position of an interleaved sequence (matches :func:`interleave`)."""
    per_window = [EVENT, FRAME] if with_frames else [EVENT]
    ids = torch.tensor(per_window).repeat_interleave(group_size)
    return ids.repeat(windows)


@dataclass
class GEPConfig:
    """Everything that rebuilds a GEP transformer (stored as config.json beside the weights)."""

    token_dim: int = 192  # the encoders' embedding width
    width: int = 192
    depth: int = 4
    num_heads: int = 3
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    agg_grid: tuple[int, int] = (3, 4)  # patch grid after aggregation
    max_windows: int = 8  # context length in windows
    with_frames: bool = True  # interleave frame groups (GEP's mixed sequences)
    residual: bool = True  # predict the change from a simple extrapolation (``reference``)
    #: what a residual prediction starts from: "last" (the same slot one window earlier,
    #: copy-last), "mean_last2" (the mean of that slot in the last two windows) or "ar" (a
    #: per-channel linear combination of the slot's last ``ar_windows`` windows, one set of
    #: weights per modality, fitted in closed form on the training tokens)
    reference: str = "last"
    ar_windows: int = 4
    target: str = "group"  # "group": each token predicts its slot in the next group; "token"
    encoder_checkpoint: str = ""  # the aligned encoders the tokens came from (metadata)

    def __post_init__(self) -> None:
        self.agg_grid = tuple(self.agg_grid)
        if self.target not in ("group", "token"):
            raise ValueError(f"target must be 'group' or 'token', got {self.target!r}")
        if self.reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {self.reference!r}")
        if self.ar_windows < 1:
            raise ValueError(f"ar_windows must be at least 1, got {self.ar_windows}")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by {self.num_heads} heads")

    @property
    def group_size(self) -> int:
        return 1 + self.agg_grid[0] * self.agg_grid[1]

    @property
    def max_tokens(self) -> int:
        return self.max_windows * self.group_size * (2 if self.with_frames else 1)

    @classmethod
    def from_dict(cls, data: dict, path: str = "model") -> GEPConfig:
        """Strict: an unknown key raises ConfigError naming ``path.key`` and the known keys."""
        return build_dataclass(cls, data, path)


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """``cache`` (decoding): a list holding this layer's keys and values of all earlier
        positions, extended in place; new positions attend to it and causally to each other."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(
            2, 0, 3, 1, 4)
        causal = True
        if cache is not None:
            if cache:
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
                causal = n > 1
                if causal:  # a block of new positions after a cached prefix
                    raise ValueError("decode one token at a time after the prefix")
            cache[:] = [k, v]
        x = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block with causal attention."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cache)
        return x + self.mlp(self.norm2(x))


class GEPTransformer(nn.Module):
    """Causal transformer predicting the next token of an interleaved event/frame sequence.

    Takes raw encoder tokens (B, N, C) and returns raw-space predictions (B, N, C), where
    output i predicts input i + 1. Tokens are standardized with per-channel statistics of the
    training set (``token_mean``/``token_std`` buffers) so the regression loss weighs channels
    evenly; :meth:`next_token_loss` is that MSE. With ``residual`` the head predicts the change
    from a simple extrapolation: the token in the same slot one window earlier (copy-last), the
    mean of that slot in the last two windows (``reference: mean_last2``) or a fitted linear
    combination of its last windows (``reference: ar``, ``ar_weights``), plus a learned update
    times ``update_scale``; the head starts near zero, so an untrained model is close to that
    extrapolation — still causal, since those tokens lie before the predicting position.
    """

    def __init__(self, config: GEPConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or GEPConfig()
        self.register_buffer("token_mean", torch.zeros(cfg.token_dim))
        self.register_buffer("token_std", torch.ones(cfg.token_dim))
        # reference "ar": weights (modality of the target, windows back, channel); copy-last
        # until fitted
        ar = torch.zeros(2, cfg.ar_windows, cfg.token_dim)
        ar[:, 0] = 1.0
        self.register_buffer("ar_weights", ar)
        # how much of the learned update is added (calibrated on validation recordings)
        self.register_buffer("update_scale", torch.ones(()))
        self.embed = nn.Linear(cfg.token_dim, cfg.width)
        self.modality_embed = nn.Parameter(torch.zeros(2, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(cfg.max_tokens, cfg.width))
        self.blocks = nn.ModuleList(
            Block(cfg.width, cfg.num_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.token_dim)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.modality_embed, std=0.02)
        self.apply(self._init_weights)
        if cfg.residual:  # start near copy-last; not exactly zero, so the trunk gets gradients
            nn.init.trunc_normal_(self.head.weight, std=1e-3)

    #: buffers a checkpoint from before them lacks: copy-last weights, the full update
    optional_state = ("ar_weights", "update_scale")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for name in self.optional_state:
            state_dict.setdefault(prefix + name, getattr(self, name).detach().clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def shift(self) -> int:
        """How far ahead each position predicts: 1 (next token) or a group (the same slot of
        the next group, so a whole group comes out of one pass, as GEP's aggregated groups)."""
        return 1 if self.config.target == "token" else self.config.group_size

    @property
    def period(self) -> int:
        """Tokens per window (the distance to the same slot one window earlier)."""
        return self.config.group_size * (2 if self.config.with_frames else 1)

    def set_token_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.token_mean.copy_(mean)
        self.token_std.copy_(std.clamp_min(1e-4))

    def _embed(self, tokens: torch.Tensor, modality: torch.Tensor, offset: int) -> torch.Tensor:
        n = tokens.shape[1]
        if offset + n > self.config.max_tokens:
            raise ValueError(f"{offset + n} tokens exceed the context of "
                             f"{self.config.max_tokens}")
        x = self.embed((tokens - self.token_mean) / self.token_std)
        return x + self.modality_embed[modality.to(x.device)] + self.pos_embed[offset:offset + n]

    def hidden(self, tokens: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """Final-norm hidden states (B, N, width): the features for downstream heads."""
        x = self._embed(tokens, modality, 0)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def copy_last(self, tokens: torch.Tensor) -> torch.Tensor:
        """The copy-last prediction at every position i: the target i + shift's token one
        window earlier (i + shift - period), or the mean token inside the first window."""
        b, n, c = tokens.shape
        d = self.period - self.shift
        ref = self.token_mean.expand(b, n, c)
        if d == 0:
            return tokens
        if n > d:
            ref = torch.cat([ref[:, :d], tokens[:, :n - d]], dim=1)
        return ref

    def slot_history(self, tokens: torch.Tensor, windows: int) -> list[torch.Tensor]:
        """Per position i, the target's slot 1..``windows`` windows earlier (each (B, N, C));
        where a window does not exist, the earliest one that does (the mean token inside the
        first window), so every reference stays causal."""
        ref = self.copy_last(tokens)
        out = [ref]
        n = tokens.shape[1]
        for m in range(2, windows + 1):
            d = m * self.period - self.shift
            if n > d:
                ref = torch.cat([ref[:, :d], tokens[:, :n - d]], dim=1)
            out.append(ref)
        return out

    def mean_last_two(self, tokens: torch.Tensor) -> torch.Tensor:
        """The mean-of-the-last-two-windows prediction at every position: the mean of the
        target's slot one and two windows earlier (copy-last where only one exists)."""
        last, earlier = self.slot_history(tokens, 2)
        return (last + earlier) / 2

    def target_modality(self, n: int) -> torch.Tensor:
        """The modality of the token each of ``n`` positions predicts."""
        pattern = modality_ids(1, self.config.group_size, self.config.with_frames)
        return pattern[(torch.arange(n) + self.shift) % self.period]

    def linear_extrapolation(self, tokens: torch.Tensor) -> torch.Tensor:
        """Reference "ar": per channel, the fitted weights over the slot's earlier windows."""
        weights = self.ar_weights[self.target_modality(tokens.shape[1]).to(tokens.device)]
        history = self.slot_history(tokens, self.config.ar_windows)
        return sum(weights[:, m] * h for m, h in enumerate(history))

    def set_ar_weights(self, weights: torch.Tensor) -> None:
        if weights.shape != self.ar_weights.shape:
            raise ValueError(f"ar weights {tuple(weights.shape)}, expected "
                             f"{tuple(self.ar_weights.shape)}")
        self.ar_weights.copy_(weights)

    def _reference(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per position i, the raw token the prediction of i + shift starts from."""
        if not self.config.residual:
            return self.token_mean.expand(*tokens.shape)
        if self.config.reference == "mean_last2":
            return self.mean_last_two(tokens)
        if self.config.reference == "ar":
            return self.linear_extrapolation(tokens)
        return self.copy_last(tokens)

    def update(self, tokens: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """The learned change (raw units) the prediction adds to the reference, unscaled."""
        return self.head(self.hidden(tokens, modality)) * self.token_std

    def forward(self, tokens: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        return self._reference(tokens) + self.update_scale * self.update(tokens, modality)

    def next_token_errors(self, pred: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Squared errors (standardized) of the predictions of tokens ``period`` onwards
        (B, N - period, C): the first window has no earlier window to go from, its tokens are
        context only (scoring them would spend the model on guessing a scene's first view)."""
        p, s, n = self.period, self.shift, tokens.shape[1]
        return ((pred[:, p - s:n - s] - tokens[:, p:]) / self.token_std) ** 2

    def next_token_loss(self, tokens: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """Next-token MSE (standardized units) over every window after the first."""
        return self.next_token_errors(self(tokens, modality), tokens).mean()

    @torch.no_grad()
    def generate(self, context: torch.Tensor, context_modality: torch.Tensor,
                 modalities: torch.Tensor) -> torch.Tensor:
        """Roll out ``len(modalities)`` tokens after ``context`` (B, N, C), feeding each
        prediction back; returns (B, len(modalities), C). Token targets decode one token at a
        time with cached keys and values; group targets one group per pass."""
        if self.shift > 1:
            return self._generate_groups(context, context_modality, modalities)
        caches: list[list] = [[] for _ in self.blocks]
        seq = context
        x = self._embed(context, context_modality, 0)
        out = []
        mods = modalities.tolist()
        for step in range(len(mods)):
            for block, cache in zip(self.blocks, caches, strict=True):
                x = block(x, cache)
            delta = self.head(self.norm(x[:, -1:])) * self.token_std * self.update_scale
            nxt = self._reference(seq)[:, -1:] + delta
            out.append(nxt)
            if step + 1 < len(mods):
                seq = torch.cat([seq, nxt], dim=1)
                x = self._embed(nxt, torch.tensor([mods[step]]), seq.shape[1] - 1)
        return torch.cat(out, dim=1)


    def _generate_groups(self, context: torch.Tensor, context_modality: torch.Tensor,
                         modalities: torch.Tensor) -> torch.Tensor:
        k = self.shift
        if len(modalities) % k or context.shape[1] % k:
            raise ValueError(f"group decoding needs whole groups of {k} tokens")
        seq, mods = context, context_modality.cpu()
        for start in range(0, len(modalities), k):
            nxt = self(seq, mods)[:, -k:]
            seq = torch.cat([seq, nxt], dim=1)
            mods = torch.cat([mods, modalities[start:start + k].cpu()])
        return seq[:, context.shape[1]:]


register_kind("gep", GEPTransformer, GEPConfig)


def save_gep(model: GEPTransformer, directory: str | Path,
             meta: dict[str, Any] | None = None) -> Path:
    """A 'gep' checkpoint (event_fm.models.checkpoint's one format)."""
    return save(model, directory, "gep", meta)


def load_gep(directory: str | Path, device: str | torch.device | None = None) -> GEPTransformer:
    """A GEP transformer from its 'gep' checkpoint, eval mode."""
    return load(directory, device, expect="gep")  # type: ignore[return-value]
