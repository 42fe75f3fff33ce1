"""Backbone presets and loading local checkpoints in the official layouts (never downloads).

Each test builds a preset with random weights, re-keys its state dict into the layout the
official repository publishes (the inverse of the loader's mapping, written out here), saves it,
loads it back through ``create_backbone(preset, weights=...)`` and checks nothing changed.
"""

from __future__ import annotations

import re

import pytest
import torch
from helpers.official_layouts import (
    randomize,
    to_dinov2_official,
    to_dinov3_official,
    to_dune_official,
)
from safetensors.torch import save_file

from event_fm.models import PRESETS, create_backbone, read_state_dict, remap_state_dict


def same_tensors(sa: dict[str, torch.Tensor], sb: dict[str, torch.Tensor]) -> None:
    """Equal keys, shapes and values (up to the rounding of CLS/position re-folding)."""
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].shape == sb[key].shape, key
        assert (sa[key].float() - sb[key].float()).abs().max() <= 1e-6, key


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    same_tensors(a.state_dict(), b.state_dict())


def same_output(a, b, size: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=1e-4)


def test_presets_build_without_download():
    assert {"tiny", "dinov2_vits14", "dinov3_vits16", "dune_vitb14_448"} <= set(PRESETS)
    tiny = create_backbone("tiny")
    assert (tiny.embed_dim, tiny.patch_size, tiny.num_prefix_tokens) == (192, 16, 5)
    tokens = tiny(torch.randn(1, 3, 192, 256))
    assert tokens.shape == (1, 5 + 12 * 16, 192)
    with pytest.raises(ValueError, match="unknown backbone preset"):
        create_backbone("vit_huge_from_the_internet")


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_tiny_loads_official_dinov2_layout(tmp_path, suffix):
    original = create_backbone("tiny")
    randomize(original)
    official = to_dinov2_official(original.vit.state_dict())
    path = tmp_path / f"tiny{suffix}"
    if suffix == ".safetensors":
        save_file(official, str(path))
    else:
        torch.save({"model": official}, path)
    loaded = create_backbone("tiny", weights=path)
    same_state(original.vit, loaded.vit)
    same_output(original, loaded, (64, 96))


def test_dino_training_checkpoint_uses_the_teacher(tmp_path):
    """DINOv2 training checkpoints: student and teacher, 'backbone.' prefix, chunked blocks."""
    original = create_backbone("tiny")
    randomize(original)
    official = to_dinov2_official(original.vit.state_dict())
    teacher = {"backbone." + re.sub(r"^blocks\.(\d+)\.", r"blocks.0.\1.", k): v
               for k, v in official.items()}
    teacher["dino_head.mlp.0.weight"] = torch.randn(8, 192)
    student = {k: torch.zeros_like(v) for k, v in teacher.items()}
    torch.save({"student": student, "teacher": teacher, "iteration": 5}, tmp_path / "train.pth")
    same_state(original.vit, create_backbone("tiny", weights=tmp_path / "train.pth").vit)


def test_tiny_loads_timm_layout(tmp_path):
    original = create_backbone("tiny")
    randomize(original)
    save_file(original.vit.state_dict(), str(tmp_path / "timm.safetensors"))
    same_state(original.vit, create_backbone("tiny", weights=tmp_path / "timm.safetensors").vit)


@pytest.mark.parametrize("preset", ["dinov2_vits14", "dinov2_vits14_reg4"])
def test_dinov2_official_checkpoint(tmp_path, preset):
    original = create_backbone(preset)
    randomize(original)
    save_file(to_dinov2_official(original.vit.state_dict()), str(tmp_path / "w.safetensors"))
    loaded = create_backbone(preset, weights=tmp_path / "w.safetensors")
    same_state(original.vit, loaded.vit)
    same_output(original, loaded, (56, 70))


def test_dinov2_hub_position_grid_is_resampled(tmp_path):
    """Hub weights carry a 37x37 (518 px) position grid; the 448 px preset needs 32x32."""
    model = create_backbone("dinov2_vits14")
    state = to_dinov2_official(model.vit.state_dict())
    state["pos_embed"] = torch.randn(1, 1 + 37 * 37, 384)
    save_file(state, str(tmp_path / "hub.safetensors"))
    loaded = create_backbone("dinov2_vits14", weights=tmp_path / "hub.safetensors")
    assert loaded.vit.pos_embed.shape == (1, 1 + 32 * 32, 384)
    torch.testing.assert_close(loaded.vit.pos_embed[:, 0], state["pos_embed"][:, 0])


def test_dinov3_official_checkpoint(tmp_path):
    original = create_backbone("dinov3_vits16")
    randomize(original)
    official = to_dinov3_official(original.vit.state_dict())
    assert "storage_tokens" in official and "blocks.0.ls1.gamma" in official
    torch.save(official, tmp_path / "dinov3_vits16.pth")
    loaded = create_backbone("dinov3_vits16", weights=tmp_path / "dinov3_vits16.pth")
    same_state(original.vit, loaded.vit)
    same_output(original, loaded, (64, 80))


def test_dinov3_nonzero_qkv_bias_is_refused(tmp_path):
    model = create_backbone("dinov3_vits16")
    official = to_dinov3_official(model.vit.state_dict())
    official["blocks.3.attn.qkv.bias"] = torch.ones(3 * 384)
    save_file(official, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="qkv.bias is non-zero"):
        create_backbone("dinov3_vits16", weights=tmp_path / "w.safetensors")


@pytest.fixture(scope="module")
def dune_backbone():
    """DUNE's ViT-B/14 at 448 px, built once for this module."""
    model = create_backbone("dune_vitb14_448")
    randomize(model)
    return model


def test_dune_checkpoint_loads_from_file(tmp_path, dune_backbone):
    assert (dune_backbone.embed_dim, dune_backbone.patch_size) == (768, 14)
    assert dune_backbone.num_prefix_tokens == 5 and dune_backbone.img_size == (448, 448)
    checkpoint = to_dune_official(dune_backbone.vit.state_dict())
    assert "encoder.blocks.3.11.mlp.fc2.weight" in checkpoint["model"]
    assert checkpoint["model"]["encoder.pos_embed"].shape == (1, 1 + 32 * 32, 768)
    torch.save(checkpoint, tmp_path / "dune.pth")
    loaded = create_backbone("dune_vitb14_448", weights=tmp_path / "dune.pth")
    same_state(dune_backbone.vit, loaded.vit)
    same_output(dune_backbone, loaded, (28, 42))


def test_dune_ddp_prefix_is_stripped(dune_backbone):
    checkpoint = to_dune_official(dune_backbone.vit.state_dict(), ddp=True)
    same_tensors(remap_state_dict(checkpoint, dune_backbone), dune_backbone.vit.state_dict())


def test_wrong_preset_for_weights_is_a_clear_error(tmp_path):
    save_file(create_backbone("tiny").vit.state_dict(), str(tmp_path / "tiny.safetensors"))
    with pytest.raises(ValueError, match="do not fit preset"):
        create_backbone("dinov2_vits14", weights=tmp_path / "tiny.safetensors")


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickled_code_is_never_executed(tmp_path):
    torch.save({"model": {"x": torch.zeros(1)}, "payload": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(Exception, match="(?i)weights.only|unpickl|unsupported"):
        read_state_dict(tmp_path / "evil.pth")
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "missing.safetensors")
