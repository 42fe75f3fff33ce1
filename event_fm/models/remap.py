"""Read local checkpoints safely and re-key official layouts into timm's.

Official releases differ from timm in naming and in how they wrap the encoder:

* DINOv2 (facebookresearch/dinov2 hub): ``register_tokens``, ``mask_token``, CLS position folded in
  ``pos_embed``; training checkpoints may chunk blocks (``blocks.<chunk>.<index>.``).
* DINOv3 (facebookresearch/dinov3): ``storage_tokens``, ``ls1.gamma``, a masked ``qkv.bias``,
  RoPE ``periods`` buffers.
* DUNE (naver/dune): the DINOv2-style student under ``model`` -> ``encoder.``, chunked blocks,
  plus projectors and teacher norms we do not need; DDP may add ``module.``.

Unwrapping and prefixes are handled here; the per-family renaming is timm's own
``checkpoint_filter_fn`` (vision_transformer for DINOv2/DUNE, eva for DINOv3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from timm.models import eva as timm_eva
from timm.models import vision_transformer as timm_vit
from timm.models.eva import Eva

from .backbones import Backbone

__all__ = [
    "load_backbone_weights",
    "read_state_dict",
    "remap_state_dict",
    "strip_encoder_prefix",
    "unwrap_checkpoint",
]

#: Container keys that training scripts wrap state dicts in, in order of preference (DINO-style
#: training checkpoints hold 'student' and 'teacher'; the teacher is the one to use).
_CONTAINER_KEYS = ("model", "state_dict", "module", "teacher")
_CHUNKED_BLOCK = re.compile(r"^blocks\.\d+\.(\d+)\.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load tensors from .safetensors, or from .pth/.pt/.bin without unpickling arbitrary code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    # weights_only refuses anything but tensors and plain containers, so a crafted file cannot run
    # code; nested dicts (e.g. {'model': {...}, 'epoch': 3}) are unwrapped by the caller.
    return torch.load(path, map_location="cpu", weights_only=True)


def unwrap_checkpoint(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """Descend into training containers and drop DDP/compile prefixes; keep tensors only."""
    state = checkpoint
    while True:
        inner = next((state[k] for k in _CONTAINER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def strip_encoder_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the ViT under whatever prefix wraps it (``encoder.``, ``model.``, ...).

    The prefix is found from the first transformer block's norm; when several modules carry a ViT,
    one named 'encoder' or 'student' (DUNE's distilled encoder) wins, then the shortest.
    """
    found = set()
    for key in state:
        m = re.match(r"^(.*?)blocks\.0\.(?:0\.)?norm1\.weight$", key)
        if m:
            found.add(m.group(1))
    if not found:
        raise ValueError("checkpoint holds no ViT blocks (no '...blocks.0.norm1.weight' key)")
    if "" in found:
        prefix = ""
    else:
        def rank(p: str) -> tuple[int, int]:
            preferred = "student" in p or p.endswith("encoder.")
            return (0 if preferred else 1, len(p))

        prefix = min(found, key=rank)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _unchunk_blocks(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DINOv2 BlockChunk keys ``blocks.<chunk>.<global index>.`` -> ``blocks.<global index>.``."""
    chunked = any(_CHUNKED_BLOCK.match(k) for k in state)
    if not chunked:
        return dict(state)
    return {_CHUNKED_BLOCK.sub(r"blocks.\1.", k): v for k, v in state.items()}


def _drop_zero_qkv_bias(state: dict[str, torch.Tensor], model: Eva) -> dict[str, torch.Tensor]:
    """DINOv3 S/B/L store an all-zero masked qkv bias; timm's variant we build has none.

    Dropping it is exact only when it is zero, so refuse silently wrong features otherwise.
    """
    if getattr(model.blocks[0].attn, "q_bias", None) is not None:
        return state
    out = {}
    for key, value in state.items():
        if key.endswith("attn.qkv.bias"):
            mask = state.get(key + "_mask")
            effective = value * mask if mask is not None else value
            if effective.abs().max() > 0:
                raise ValueError(
                    f"{key} is non-zero but this preset's attention has no qkv bias; "
                    "build the '_qkvb' timm variant for this checkpoint"
                )
            continue
        out[key] = value
    return out


def remap_state_dict(
    checkpoint: Mapping, backbone: Backbone
) -> dict[str, torch.Tensor]:
    """Turn an official (or timm) checkpoint into the timm state dict of ``backbone.vit``."""
    state = strip_encoder_prefix(unwrap_checkpoint(checkpoint))
    state = _unchunk_blocks(state)
    model = backbone.vit
    if isinstance(model, Eva):
        state = _drop_zero_qkv_bias(state, model)
        return timm_eva.checkpoint_filter_fn(state, model)
    if "register_tokens" in state and "mask_token" not in state:
        # timm recognises the DINOv2 layout by its mask token; some exports drop it (unused).
        state["mask_token"] = torch.zeros(1, model.embed_dim)
    return timm_vit.checkpoint_filter_fn(state, model)


def load_backbone_weights(backbone: Backbone, path: str | Path) -> None:
    """Load a local checkpoint (any supported layout) into ``backbone``; all keys must match."""
    try:
        state = remap_state_dict(read_state_dict(path), backbone)
    except (RuntimeError, KeyError) as exc:  # e.g. a position grid that cannot be resampled
        raise ValueError(
            f"weights {path} do not fit preset {backbone.preset.name!r}: {exc}"
        ) from exc
    target = backbone.vit.state_dict()
    # Heads of classification checkpoints are irrelevant to a feature encoder.
    state = {k: v for k, v in state.items() if not k.startswith(("head.", "fc_norm."))
             or k in target}
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    if missing or unexpected:
        raise ValueError(
            f"weights {path} do not fit preset {backbone.preset.name!r}: "
            f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
        )
    for key, value in state.items():
        if value.shape != target[key].shape:
            raise ValueError(
                f"weights {path}: {key} has shape {tuple(value.shape)}, "
                f"preset {backbone.preset.name!r} expects {tuple(target[key].shape)}"
            )
    backbone.vit.load_state_dict(state, strict=True)
