"""State dicts in the official releases' layouts (DINOv2 hub, DINOv3, DUNE), built from timm
modules: the inverse of event_fm.models.remap's mapping, written out for tests."""

from __future__ import annotations

import re

import torch


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Make every mapped tensor distinctive: timm's init leaves layer scales at 1e-5, CLS and
    register tokens near 1e-6 and norms at exactly 1/0, which would hide mapping mistakes.
    Large matrices keep their (already random) init to keep this quick."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            one = name.endswith(("gamma", "gamma_1", "gamma_2")) or (
                "norm" in name and name.endswith("weight")
            )
            if one or p.numel() <= 100_000 or "token" in name or "pos_embed" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if one else 0.0))


def to_dinov2_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm DINOv2 -> facebookresearch/dinov2 hub layout."""
    out = dict(state)
    dim = state["cls_token"].shape[-1]
    out["mask_token"] = torch.zeros(1, dim)
    if "reg_token" in out:
        # Official: CLS gets pos_embed[:, 0]; registers get no position; timm folds pos into CLS.
        pos0 = torch.randn(1, 1, dim)
        out["register_tokens"] = out.pop("reg_token")
        out["cls_token"] = state["cls_token"] - pos0
        out["pos_embed"] = torch.cat([pos0, state["pos_embed"]], dim=1)
    return out


def to_dinov3_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm Eva (DINOv3) -> facebookresearch/dinov3 layout."""
    out = {}
    dim = state["cls_token"].shape[-1]
    for key, value in state.items():
        key = key.replace("reg_token", "storage_tokens")
        key = re.sub(r"\.gamma_([12])$", r".ls\1.gamma", key)
        out[key] = value
        if key.endswith("attn.qkv.weight"):
            out[key.replace("weight", "bias")] = torch.zeros(3 * dim)
            out[key.replace("weight", "bias_mask")] = torch.cat(
                [torch.ones(dim), torch.zeros(dim), torch.ones(dim)]
            )
    out["mask_token"] = torch.zeros(1, dim)
    out["rope_embed.periods"] = torch.rand(16)
    return out


def to_dune_official(state: dict[str, torch.Tensor], ddp: bool = False) -> dict:
    """timm DINOv2-reg -> naver/dune training checkpoint: chunked blocks under model/encoder."""
    official = to_dinov2_official(state)
    prefix = "module.encoder." if ddp else "encoder."
    model = {}
    for key, value in official.items():
        key = re.sub(r"^blocks\.(\d+)\.", lambda m: f"blocks.{int(m.group(1)) // 3}.{m.group(1)}.",
                     key)
        model[prefix + key] = value
    model["projectors.dino2.proj.weight"] = torch.randn(4, 4)
    model["teacher_norms.mast3r.mean"] = torch.zeros(4)
    return {"model": model, "epoch": 99}
