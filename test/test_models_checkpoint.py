"""The assembled EventFM model: API, head selection, checkpoints and LoRA merging."""

from __future__ import annotations

import json

import pytest
import torch

from event_fm.models import EventFM, EventFMConfig, load_model, merge_lora, save_model

H, W = 64, 96


def randomized_model(**config) -> EventFM:
    """Tiny EventFM with non-trivial LoRA, BatchNorm statistics and heads."""
    torch.manual_seed(0)
    model = EventFM(EventFMConfig(preset="tiny", lora_rank=4, lora_alpha=8, **config))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> EventFM:
    return randomized_model()


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 5, H, W, generator=g), torch.rand(1, 3, H, W, generator=g)


def assert_same(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max() <= atol, key


def test_forward_events_outputs(model, inputs):
    voxels, _ = inputs
    with torch.no_grad():
        out = model.forward_events(voxels)
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {
        "cls": (1, 192),
        "patch": (1, 192, 4, 6),
        "depth": (1, 1, H, W),
        "depth_logits": (1, 256, H, W),
        "semantic_logits": (1, 11, H, W),
        "descriptors": (1, 128, H // 8, W // 8),
        "confidence": (1, 1, H // 8, W // 8),
    }
    assert ((out["depth"] >= 1) & (out["depth"] <= 81)).all()


def test_heads_are_selectable(model, inputs):
    voxels, images = inputs
    with torch.no_grad():
        depth_only = model.forward_events(voxels, heads="depth")
        assert set(depth_only) == {"cls", "patch", "depth", "depth_logits"}
        assert set(model.forward_events(voxels, heads=())) == {"cls", "patch"}
        assert set(model.forward_image(images, heads=["segmentation"])) == {
            "cls", "patch", "semantic_logits"}
    with pytest.raises(ValueError, match="not in this model"):
        model.forward_events(voxels, heads="optical_flow")


def test_image_and_event_paths_share_the_heads(model, inputs):
    _, images = inputs
    with torch.no_grad():
        out = model.forward_image(images)
        feats = model.teacher(images)
        direct = model.heads["segmentation"](feats, (H, W))
    torch.testing.assert_close(out["semantic_logits"], direct)


def test_disabled_heads_are_not_built():
    model = EventFM(EventFMConfig(heads=("depth",), with_teacher=False))
    assert list(model.heads) == ["depth"] and model.teacher is None
    with pytest.raises(RuntimeError, match="without the RGB teacher"):
        model.forward_image(torch.rand(1, 3, H, W))
    with pytest.raises(ValueError, match="unknown heads"):
        EventFMConfig(heads=("depth", "flow"))


def test_parameter_counts_of_the_tiny_model():
    counts = EventFM(EventFMConfig(preset="tiny")).parameter_counts()
    assert counts["encoder_trainable"] == counts["embedder"] + counts["lora"] + 2 * 192
    assert counts["trainable"] == counts["encoder_trainable"] + counts["heads"]  # teacher frozen
    assert counts["total"] == counts["encoder"] + counts["teacher"] + counts["heads"]


def test_tiled_forward_on_a_wider_sensor(model):
    voxels = torch.randn(1, 5, 64, 160)  # 1:2.5 vs the model's 3:4 -> overlapping tiles
    with torch.no_grad():
        out = model.forward_events_tiled(voxels, heads=("depth", "matching"))
    assert out["depth"].shape == (1, 1, 64, 160)
    assert out["descriptors"].shape == (1, 128, 8, 20)
    torch.testing.assert_close(out["descriptors"].norm(dim=1), torch.ones(1, 8, 20))


def test_save_load_round_trip_is_identical(tmp_path, model, inputs):
    voxels, images = inputs
    save_model(model, tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {"model.safetensors", "config.json"}
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())["config"]
    assert config["preset"] == "tiny" and config["lora_rank"] == 4 and not config["merged"]
    assert config["depth_range"] == [1.0, 81.0] and len(config["class_names"]) == 11

    for path in (tmp_path / "ckpt", tmp_path / "ckpt" / "model.safetensors"):
        loaded = load_model(path, device="cpu")
        assert not loaded.training and loaded.config == model.config
        with torch.no_grad():
            assert_same(model.forward_events(voxels), loaded.forward_events(voxels))
            assert_same(model.forward_image(images), loaded.forward_image(images))


def test_merge_lora_keeps_outputs_and_merged_checkpoints_load(tmp_path, inputs):
    voxels, images = inputs
    model = randomized_model()
    with torch.no_grad():
        before = model.forward_events(voxels)
        teacher_before = model.forward_image(images)
    merge_lora(model)
    assert model.config.merged and not model.encoder.has_lora
    with torch.no_grad():
        assert_same(before, model.forward_events(voxels), atol=1e-4)
        assert_same(teacher_before, model.forward_image(images))  # teacher never had LoRA

    save_model(model, tmp_path / "merged")
    loaded = load_model(tmp_path / "merged")
    assert loaded.config.merged and not loaded.encoder.has_lora
    with torch.no_grad():
        assert_same(before, loaded.forward_events(voxels), atol=1e-4)


def test_full_finetune_config_round_trips(tmp_path, inputs):
    voxels, _ = inputs
    model = EventFM(EventFMConfig(full_finetune=True, heads=("matching",),
                                  with_teacher=False)).eval()
    assert not model.encoder.has_lora
    assert all(p.requires_grad for p in model.encoder.parameters())
    loaded = load_model(save_model(model, tmp_path / "ft"))
    with torch.no_grad():
        assert_same(model.forward_events(voxels), loaded.forward_events(voxels))


def test_bad_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="directory or a .safetensors"):
        load_model(tmp_path / "model.pth")
    with pytest.raises(ValueError, match="unknown key 'model.bogus'"):
        EventFMConfig.from_dict({"preset": "tiny", "bogus": 1})
