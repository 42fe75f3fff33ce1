"""RGB teacher and event student: output format, what trains, LoRA, token dropping."""

from __future__ import annotations

import copy

import pytest
import torch

from event_fm.models import (
    EventEncoder,
    ImageEncoder,
    VoxelEmbedder,
    create_backbone,
    normalize_voxels,
    tokens_to_map,
)

H, W = 64, 96  # 4 x 6 tokens for the tiny preset (patch 16)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_backbone("tiny")


def make_student(backbone, **kwargs) -> EventEncoder:
    return EventEncoder(copy.deepcopy(backbone), num_bins=5, **kwargs)


def count(params) -> int:
    return sum(p.numel() for p in params)


def test_teacher_outputs_normalized_tokens_and_stays_frozen(tiny):
    teacher = ImageEncoder(copy.deepcopy(tiny))
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not any(m.training for m in teacher.modules())

    images = torch.rand(2, 3, H, W)
    out = teacher(images)
    assert out.cls.shape == (2, 192)
    assert out.patch.shape == (2, 4 * 6, 192)
    assert out.grid_size == (4, 6)
    assert out.registers.shape == (2, 4, 192)
    assert out.patch_map().shape == (2, 192, 4, 6)
    # Final LayerNorm (unit weight, zero bias at init): zero mean, unit variance per token.
    torch.testing.assert_close(out.patch.mean(-1), torch.zeros(2, 24), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.patch.std(-1, unbiased=False), torch.ones(2, 24),
                               atol=1e-3, rtol=0)
    # ImageNet normalization happens inside; uint8 input is scaled the same way.
    as_uint8 = (images * 255).round().to(torch.uint8)
    torch.testing.assert_close(teacher(as_uint8).cls, teacher(as_uint8.float() / 255).cls)


def test_tokens_to_map_is_row_major():
    tokens = torch.arange(6.0).view(1, 6, 1)
    assert tokens_to_map(tokens, (2, 3))[0, 0].tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError):
        tokens_to_map(tokens, (4, 4))


def test_student_matches_teacher_format(tiny):
    student = make_student(tiny)
    out = student(torch.randn(2, 5, H, W))
    assert out.cls.shape == (2, 192) and out.patch.shape == (2, 24, 192)
    assert out.grid_size == (4, 6) and out.registers.shape == (2, 4, 192)
    assert out.keep_indices is None
    with pytest.raises(ValueError, match="expected voxels"):
        student(torch.randn(2, 3, H, W))


def test_default_training_set_is_embedder_lora_and_final_norm(tiny):
    student = make_student(tiny, lora_rank=8, lora_alpha=16)
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    for name in trainable:
        assert name.startswith(("embedder.", "backbone.vit.norm.")) or "lora_" in name, name
    lora = [p for n, p in student.named_parameters() if "lora_" in n]
    # rank 8 on qkv (192 -> 576), proj (192 -> 192), fc1 (192 -> 768), fc2 (768 -> 192), 4 blocks
    assert count(lora) == 4 * 8 * ((192 + 576) + (192 + 192) + (192 + 768) + (768 + 192))
    expected = count(student.embedder.parameters()) + count(lora) + 2 * 192
    assert count(p for p in student.parameters() if p.requires_grad) == expected
    # No adapter on the (removed) RGB patch projection, none outside the blocks.
    assert all(n.startswith("backbone.vit.blocks.") for n, _ in student.named_parameters()
               if "lora_" in n)


def test_full_finetune_trains_everything_without_lora(tiny):
    student = make_student(tiny, full_finetune=True)
    assert not student.has_lora
    assert all(p.requires_grad for p in student.parameters())


def test_gradients_reach_only_trainable_parameters(tiny):
    student = make_student(tiny, lora_rank=4)
    student.train()
    student(torch.randn(2, 5, H, W)).patch.square().mean().backward()
    for name, p in student.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
    # LoRA B starts at zero, so A gets no gradient at step 0, but B does.
    assert any(p.grad.abs().sum() > 0 for n, p in student.named_parameters() if "lora_B" in n)


def test_realm_embedder_parameter_count():
    """REALM (Tab. S6): 5,232,832 embedder parameters for 5 bins into ViT-B width 768."""
    assert count(VoxelEmbedder(5, 768).parameters()) == 5_232_832


def test_embedder_pools_onto_any_token_grid():
    embedder = VoxelEmbedder(5, 32, (8, 8, 16, 16)).eval()
    x = torch.randn(1, 5, 112, 112)  # stride 16 gives 7x7; a patch-14 ViT wants 8x8
    assert embedder(x, (8, 8)).shape == (1, 32, 8, 8)
    assert embedder(x, (7, 7)).shape == (1, 32, 7, 7)


def test_voxel_normalization_is_idempotent_and_keeps_zeros():
    v = torch.zeros(2, 5, 8, 8)
    v[0, :, 2:5, 3:6] = torch.randn(5, 3, 3) * 7 + 3
    n = normalize_voxels(v)
    nz = n[0][v[0] != 0]
    assert abs(nz.mean()) < 1e-5 and abs(nz.std(unbiased=False) - 1) < 1e-4
    assert (n[v == 0] == 0).all() and (n[1] == 0).all()  # empty sample stays zero, no NaN
    torch.testing.assert_close(normalize_voxels(n), n, atol=1e-5, rtol=0)
    assert normalize_voxels(v, "none") is v


@pytest.mark.parametrize("preset", ["tiny", "dinov3_vits16"])
def test_token_positions_survive_dropping(preset):
    """Keeping every token in a shuffled order permutes the output: each token keeps its own
    position (absolute embedding or RoPE) however the kept set is arranged."""
    torch.manual_seed(0)
    backbone = create_backbone(preset).eval()
    patches = torch.randn(2, 4, 5, backbone.embed_dim)
    npt = backbone.num_prefix_tokens
    with torch.no_grad():
        full = backbone.forward_tokens(patches)
        order = torch.stack([torch.randperm(20) for _ in range(2)])
        shuffled = backbone.forward_tokens(patches, keep_indices=order)
    expected = full[:, npt:].gather(1, order[..., None].expand(-1, -1, full.shape[-1]))
    torch.testing.assert_close(shuffled[:, npt:], expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(shuffled[:, :npt], full[:, :npt], atol=1e-4, rtol=1e-4)


def test_drop_ratio_keeps_a_random_subset(tiny):
    student = make_student(tiny).eval()
    voxels = torch.randn(2, 5, H, W)
    out = student(voxels, drop_ratio=0.3, generator=torch.Generator().manual_seed(0))
    keep = out.keep_indices
    assert keep.shape == (2, round(24 * 0.7)) and out.patch.shape == (2, 17, 192)
    assert (keep.diff(dim=1) > 0).all() and keep.max() < 24
    assert not torch.equal(keep[0], keep[1])  # independent per sample
    with pytest.raises(ValueError, match="dropped"):
        out.patch_map()
    with pytest.raises(ValueError, match="drop_ratio"):
        student(voxels, drop_ratio=1.0)


def test_lora_merge_is_exact(tiny):
    student = make_student(tiny, lora_rank=4, lora_alpha=8).eval()
    with torch.no_grad():
        for name, p in student.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    voxels = torch.randn(1, 5, H, W)
    with torch.no_grad():
        before = student(voxels).patch
        assert student.merge_lora() == 4 * 4
        after = student(voxels).patch
    assert not student.has_lora
    assert not any("lora_" in k or "base_layer" in k for k in student.state_dict())
    assert (before - after).abs().max() < 1e-4
