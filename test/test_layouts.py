"""Published checkpoint layouts (REALM's release, GEP's stage-1 student) load strictly into EventFM.

State dicts are built here in each release's layout from the key names and shapes of its public
code (see event_fm/models/layouts.py), with random values; reference forwards computed straight
from those tensors (LoRA unmerged) check that the loaded model computes the same thing.
"""

from __future__ import annotations

import argparse
import math
import time

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from torch import nn

from event_fm.models.checkpoint import CheckpointError, load_model, save_model
from event_fm.models.heads import DSEC_CLASSES
from event_fm.models.layouts import LayoutError, load_gep_student, load_realm_checkpoint

P = "base_model.model.encoder."  # peft's PeftModel around REALM's _EncoderWrapper
PROJ = "dino2reg_vitlarge_14"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------ layout builders
class _Rand:
    def __init__(self, seed: int) -> None:
        self.g = torch.Generator().manual_seed(seed)

    def w(self, *shape: int) -> torch.Tensor:  # fan-in scaled weights
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
        return torch.randn(*shape, generator=self.g) / math.sqrt(fan_in)

    def b(self, n: int, scale: float = 0.1) -> torch.Tensor:
        return torch.randn(n, generator=self.g) * scale

    def near_one(self, n: int) -> torch.Tensor:
        return 1.0 + 0.1 * torch.randn(n, generator=self.g)

    def bn(self, pre: str, n: int) -> dict[str, torch.Tensor]:
        return {pre + "weight": self.near_one(n), pre + "bias": self.b(n),
                pre + "running_mean": self.b(n), pre + "running_var": 0.5 + torch.rand(
                    n, generator=self.g), pre + "num_batches_tracked": torch.tensor(7)}


def _linear(r: _Rand, name: str, out: int, inp: int, lora: tuple[int] | None) -> dict:
    """One nn.Linear, plain or as peft wraps it (base_layer + lora_A/lora_B 'default')."""
    if lora is None:
        return {f"{name}.weight": r.w(out, inp), f"{name}.bias": r.b(out)}
    rank = lora[0]
    return {f"{name}.base_layer.weight": r.w(out, inp), f"{name}.base_layer.bias": r.b(out),
            f"{name}.lora_A.default.weight": r.w(rank, inp),
            f"{name}.lora_B.default.weight": r.w(out, rank)}


def dinov2_vit(r: _Rand, dim: int, depth: int, grid: int, regs: int, chunked: bool,
               rank: int = 0, targets: tuple[str, ...] = (), in_chans: int = 0,
               patch: int = 14) -> dict[str, torch.Tensor]:
    """A DINOv2 DinoVisionTransformer state dict (LayerScale, registers; blocks chunked as
    blocks.0.<i> when block_chunks=1) with optional peft LoRA on the named block linears."""
    s = {"cls_token": r.b(dim).view(1, 1, dim), "pos_embed": 0.1 * torch.randn(
        1, 1 + grid * grid, dim, generator=r.g), "mask_token": torch.zeros(1, dim)}
    if regs:
        s["register_tokens"] = r.b(dim * regs).view(1, regs, dim)
    if in_chans:
        s["patch_embed.proj.weight"] = r.w(dim, in_chans, patch, patch)
        s["patch_embed.proj.bias"] = r.b(dim)
    for i in range(depth):
        pre = f"blocks.0.{i}." if chunked else f"blocks.{i}."
        lo = (rank,) if rank else None
        s |= {pre + "norm1.weight": r.near_one(dim), pre + "norm1.bias": r.b(dim),
              pre + "norm2.weight": r.near_one(dim), pre + "norm2.bias": r.b(dim),
              pre + "ls1.gamma": r.near_one(dim) * 0.3, pre + "ls2.gamma": r.near_one(dim) * 0.3}
        s |= _linear(r, pre + "attn.qkv", 3 * dim, dim, lo if "qkv" in targets else None)
        s |= _linear(r, pre + "attn.proj", dim, dim, lo if "proj" in targets else None)
        s |= _linear(r, pre + "mlp.fc1", 4 * dim, dim, lo if "fc1" in targets else None)
        s |= _linear(r, pre + "mlp.fc2", dim, 4 * dim, lo if "fc2" in targets else None)
    s |= {"norm.weight": r.near_one(dim), "norm.bias": r.b(dim)}
    return s


def realm_encoder(seed: int = 0, dim: int = 192, depth: int = 4, grid: int = 8, bins: int = 5,
                  widths: tuple[int, ...] = (8, 16, 32, 64), rank: int = 4,
                  targets: tuple[str, ...] = ("qkv", "proj", "fc1", "fc2"),
                  alpha: float | None = 8.0) -> dict:
    """REALM's event encoder file: {'model_state_dict': peft state, 'config': {model: {lora}}}.

    Vox2PatchEmbed under patch_embed: stem (7x7 conv, BN), encoder.<i> (conv1, norm1, conv2,
    norm2, residual.0 conv 1x1, residual.1 BN), to_patch_embed (1x1 conv, BN)."""
    r = _Rand(seed)
    e = {"patch_embed.stem.0.weight": r.w(widths[0], bins, 7, 7)}
    e |= r.bn("patch_embed.stem.1.", widths[0])
    for i in range(3):
        pre, cin, cout = f"patch_embed.encoder.{i}.", widths[i], widths[i + 1]
        e |= {pre + "conv1.weight": r.w(cout, cin, 3, 3), pre + "conv2.weight": r.w(
            cout, cout, 3, 3), pre + "residual.0.weight": r.w(cout, cin, 1, 1)}
        e |= r.bn(pre + "norm1.", cout) | r.bn(pre + "norm2.", cout) | r.bn(
            pre + "residual.1.", cout)
    e["patch_embed.to_patch_embed.0.weight"] = r.w(dim, widths[3], 1, 1)
    e |= r.bn("patch_embed.to_patch_embed.1.", dim)
    e |= dinov2_vit(r, dim, depth, grid, 4, True, rank, targets)
    lora = {"rank": rank, "target_modules": list(targets), "lora_dropout": 0.05}
    if alpha is not None:
        lora["lora_alpha"] = alpha
    return {"model_state_dict": {P + k: v for k, v in e.items()},
            "config": {"model": {"lora": lora}}, "epoch": 3}


def realm_depth_head(seed: int = 1, dim: int = 192, bins: int = 256) -> dict:
    r = _Rand(seed)
    return {"model_state_dict": {
        "bin_centers": torch.linspace(1.95, 82.0, bins), "head_patch.weight": r.w(
            bins, dim, 1, 1), "head_patch.bias": r.b(bins), "head_cls.weight": r.w(bins, dim),
        "head_cls.bias": r.b(bins)}}


def realm_seg_head(seed: int = 2, width: int = 96, classes: int = 11) -> dict:
    r = _Rand(seed)
    return {"model_state_dict": {"classifier.weight": r.w(classes, width, 1, 1),
                                 "classifier.bias": r.b(classes)}}


def dune_file(seed: int = 3, dim: int = 192, depth: int = 4, grid: int = 8, patch: int = 16,
              width: int = 96, encoder: bool = True) -> dict:
    """DUNE's training file: model -> encoder.* (DINOv2, chunked), projectors.<teacher>.{blocks,
    linear}, teacher_norms.*; args (an argparse Namespace), iter."""
    r = _Rand(seed)
    model = {}
    if encoder:
        model |= {"encoder." + k: v for k, v in dinov2_vit(
            r, dim, depth, grid, 4, True, in_chans=3, patch=patch).items()}
    for name, out in ((PROJ, width), ("dino2_vitgiant_14", 24)):
        block = {k.removeprefix("blocks.0.0."): v for k, v in dinov2_vit(
            r, dim, 1, 1, 0, True).items() if k.startswith("blocks.")}
        model |= {f"projectors.{name}.blocks.0.{k}": v for k, v in block.items()}
        model |= {f"projectors.{name}.linear.weight": r.w(out, dim),
                  f"projectors.{name}.linear.bias": r.b(out)}
        model[f"teacher_norms.{name}.cls.mean"] = torch.zeros(out)
    return {"model": model, "args": argparse.Namespace(image_size=grid * patch), "iter": 10}


# ----------------------------------------------------------------------- reference forwards
def _bn(x: torch.Tensor, s: dict, pre: str) -> torch.Tensor:
    return F.batch_norm(x, s[pre + "running_mean"], s[pre + "running_var"], s[pre + "weight"],
                        s[pre + "bias"], False, 0.0, 1e-5)


def ref_realm_embedder(s: dict, voxels: torch.Tensor, grid: int) -> torch.Tensor:
    """Vox2PatchEmbed from the REALM-layout tensors: (B, C, grid, grid)."""
    q = P + "patch_embed."
    x = F.relu(_bn(F.conv2d(voxels, s[q + "stem.0.weight"], padding=3), s, q + "stem.1."))
    for i in range(3):
        b = f"{q}encoder.{i}."
        y = F.relu(_bn(F.conv2d(x, s[b + "conv1.weight"], stride=2, padding=1), s, b + "norm1."))
        y = _bn(F.conv2d(y, s[b + "conv2.weight"], padding=1), s, b + "norm2.")
        x = F.relu(y + _bn(F.conv2d(x, s[b + "residual.0.weight"], stride=2), s,
                           b + "residual.1."))
    x = F.gelu(_bn(F.conv2d(x, s[q + "to_patch_embed.0.weight"]), s, q + "to_patch_embed.1."))
    return F.adaptive_avg_pool2d(x, grid)


def _lin(x: torch.Tensor, s: dict, name: str, scale: float) -> torch.Tensor:
    if name + ".weight" in s:
        return F.linear(x, s[name + ".weight"], s[name + ".bias"])
    base = F.linear(x, s[name + ".base_layer.weight"], s[name + ".base_layer.bias"])
    a, b = s[name + ".lora_A.default.weight"], s[name + ".lora_B.default.weight"]
    return base + scale * F.linear(F.linear(x, a), b)


def ref_block(x: torch.Tensor, s: dict, pre: str, heads: int, scale: float = 0.0,
              eps: float = 1e-6) -> torch.Tensor:
    """A DINOv2 block (pre-norm attention and MLP with LayerScale), LoRA applied unmerged."""
    b, n, c = x.shape
    h = F.layer_norm(x, (c,), s[pre + "norm1.weight"], s[pre + "norm1.bias"], eps)
    qkv = _lin(h, s, pre + "attn.qkv", scale).reshape(b, n, 3, heads, c // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
    x = x + s[pre + "ls1.gamma"] * _lin(a, s, pre + "attn.proj", scale)
    h = F.layer_norm(x, (c,), s[pre + "norm2.weight"], s[pre + "norm2.bias"], eps)
    h = _lin(F.gelu(_lin(h, s, pre + "mlp.fc1", scale)), s, pre + "mlp.fc2", scale)
    return x + s[pre + "ls2.gamma"] * h


def ref_dinov2(s: dict, pre: str, patches: torch.Tensor, pos: torch.Tensor, depth: int,
               heads: int, chunked: bool, scale: float = 0.0) -> tuple[torch.Tensor, ...]:
    """DINOv2 forward_features from (B, N, C) patch embeddings: CLS + positions, registers after
    CLS without positions, blocks, final norm -> (cls, patch tokens)."""
    b, _, c = patches.shape
    x = torch.cat([s[pre + "cls_token"].expand(b, -1, -1), patches], dim=1) + pos
    regs = s[pre + "register_tokens"]
    x = torch.cat([x[:, :1], regs.expand(b, -1, -1), x[:, 1:]], dim=1)
    for i in range(depth):
        x = ref_block(x, s, pre + (f"blocks.0.{i}." if chunked else f"blocks.{i}."), heads, scale)
    x = F.layer_norm(x, (c,), s[pre + "norm.weight"], s[pre + "norm.bias"], 1e-6)
    return x[:, 0], x[:, 1 + regs.shape[1]:]


def _close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 2e-4) -> None:
    torch.testing.assert_close(actual, expected, atol=tol, rtol=tol)


# ------------------------------------------------------------------------------------ REALM
def test_realm_small_layout_reproduces_the_reference_forward():
    enc, depth, seg, dune = realm_encoder(), realm_depth_head(), realm_seg_head(), dune_file()
    model = load_realm_checkpoint(enc, depth_head=depth, segmentation_head=seg, dune=dune,
                                  preset="tiny", voxel_norm="none")
    cfg = model.config
    assert cfg.img_size == (128, 128) and cfg.num_bins == 5 and cfg.embedder_stem_stride == 1
    assert cfg.embedder_widths == (8, 16, 32, 64) and cfg.merged and not model.encoder.has_lora
    assert cfg.depth_bins == 256 and cfg.depth_range == pytest.approx((1.95, 82.0))
    assert cfg.seg_projector_dim == 96 and cfg.class_names == DSEC_CLASSES
    assert cfg.extra["lora"] == {"rank": 4, "alpha": 8.0, "scale": 2.0, "merged_modules": 16,
                                 "targets": ["fc1", "fc2", "proj", "qkv"]}
    assert model.teacher is not None and not model.training

    s = enc["model_state_dict"]
    voxels = torch.randn(2, 5, 128, 128, generator=torch.Generator().manual_seed(5))
    voxels[:, :, ::3] = 0.0
    with torch.no_grad():
        # Embedder stage.
        emb = ref_realm_embedder(s, voxels, 8)
        _close(model.encoder.embedder(voxels, (8, 8)), emb, 1e-5)
        # Merged LoRA linear: W + (alpha / r) B A.
        q = P + "blocks.0.2.attn.qkv."
        merged = s[q + "base_layer.weight"] + 2.0 * s[q + "lora_B.default.weight"] @ s[
            q + "lora_A.default.weight"]
        _close(model.encoder.backbone.vit.blocks[2].attn.qkv.weight, merged, 1e-6)
        assert torch.equal(model.encoder.backbone.vit.blocks[2].attn.qkv.bias,
                           s[q + "base_layer.bias"])
        # Whole encoder (LoRA unmerged in the reference).
        cls, patch = ref_dinov2(s, P, emb.flatten(2).transpose(1, 2), s[P + "pos_embed"], 4, 3,
                                True, scale=2.0)
        feats = model.encoder(voxels)
        _close(feats.cls, cls)
        _close(feats.patch, patch)
        # Depth head: 1x1 conv, x4 bilinear, + CLS logits, softmax over bins, expectation, resize.
        d = depth["model_state_dict"]
        grid_map = patch.transpose(1, 2).reshape(2, -1, 8, 8)
        logits = F.interpolate(F.conv2d(grid_map, d["head_patch.weight"], d["head_patch.bias"]),
                               scale_factor=4, mode="bilinear", align_corners=False)
        logits = logits + F.linear(cls, d["head_cls.weight"], d["head_cls.bias"])[..., None, None]
        ref_depth = (logits.softmax(1) * d["bin_centers"].view(1, -1, 1, 1)).sum(1, keepdim=True)
        ref_depth = F.interpolate(ref_depth, size=(128, 128), mode="bilinear",
                                  align_corners=False)
        out = model.forward_events(voxels)
        assert out["depth_logits"].shape == (2, 256, 32, 32)
        _close(out["depth"], ref_depth)
        # Segmentation: DUNE projector on the patch tokens, linear, then the 1x1 classifier.
        t = dune["model"]
        pre = f"projectors.{PROJ}."
        proj = ref_block(patch, t, pre + "blocks.0.", 3)
        proj = F.linear(proj, t[pre + "linear.weight"], t[pre + "linear.bias"])
        c = seg["model_state_dict"]
        seg_logits = F.conv2d(proj.transpose(1, 2).reshape(2, 96, 8, 8), c["classifier.weight"],
                              c["classifier.bias"])
        seg_logits = F.interpolate(seg_logits, size=(128, 128), mode="bilinear",
                                   align_corners=False)
        _close(out["semantic_logits"], seg_logits)
        # The RGB teacher is DUNE's encoder (its own remap is tested with the backbones).
        assert torch.equal(model.teacher.backbone.vit.patch_embed.proj.weight,
                           t["encoder.patch_embed.proj.weight"])
        assert model.forward_image(torch.rand(1, 3, 128, 128))["depth"].shape == (1, 1, 128, 128)


def test_realm_true_sizes_load_strictly():
    """REALM's release: DUNE ViT-B/14 at 448 (32x32 tokens), LoRA rank 32 on qkv, embedder
    64-128-256-512 with a stride-1 stem, 256 depth bins over 1.95-82 m, the 1024-d projector."""
    start = time.perf_counter()
    enc = realm_encoder(dim=768, depth=12, grid=32, widths=(64, 128, 256, 512), rank=32,
                        targets=("qkv",), alpha=None)
    model = load_realm_checkpoint(
        enc, depth_head=realm_depth_head(dim=768),
        segmentation_head=realm_seg_head(width=1024),
        dune=dune_file(dim=768, depth=12, grid=32, patch=14, width=1024, encoder=False),
        with_teacher=False,
    )
    cfg = model.config
    assert cfg.preset == "dune_vitb14_448" and cfg.img_size == (448, 448)
    assert cfg.extra["lora"] == {"rank": 32, "alpha": 32.0, "scale": 1.0, "merged_modules": 12,
                                 "targets": ["qkv"]}
    assert cfg.depth_bins == 256 and cfg.seg_projector_dim == 1024 and model.teacher is None
    assert model.encoder.backbone.grid_size(448, 448) == (32, 32)
    assert model.parameter_counts()["embedder"] == 5_232_832
    assert model.encoder.backbone.vit.pos_embed.shape == (1, 1024, 768)
    assert model.encoder.backbone.vit.reg_token.shape == (1, 4, 768)
    assert model.heads["segmentation"].classifier.weight.shape == (11, 1024, 1, 1)
    s = enc["model_state_dict"]
    k = P + "blocks.0.11.attn.qkv."
    merged = s[k + "base_layer.weight"] + s[k + "lora_B.default.weight"] @ s[
        k + "lora_A.default.weight"]
    _close(model.encoder.backbone.vit.blocks[11].attn.qkv.weight, merged, 1e-6)
    assert torch.equal(model.encoder.backbone.vit.blocks[11].mlp.fc1.weight,
                       s[P + "blocks.0.11.mlp.fc1.weight"])
    assert time.perf_counter() - start < 60


def test_realm_missing_and_extra_keys_are_named():
    enc = realm_encoder()
    s = enc["model_state_dict"]
    del s[P + "blocks.0.1.norm2.bias"]
    s[P + "blocks.0.1.attn.foo.weight"] = torch.zeros(3)
    s[P + "patch_embed.stem.2.weight"] = torch.zeros(3)
    depth = realm_depth_head()
    depth["model_state_dict"]["head_extra.weight"] = torch.zeros(1)
    with pytest.raises(LayoutError) as info:
        load_realm_checkpoint(enc, depth_head=depth, preset="tiny")
    err = info.value
    message = str(err)
    assert "1 model keys not filled: encoder.backbone.vit.blocks.1.norm2.bias" in message
    assert "3 checkpoint keys not used" in message
    for key in (f"encoder: {P}blocks.0.1.attn.foo.weight", f"encoder: {P}patch_embed.stem.2.weight",
                "depth head: head_extra.weight"):
        assert key in err.unexpected and key in message
    assert isinstance(err, CheckpointError) and isinstance(err, ValueError)


def test_realm_shapes_and_missing_parts_are_named():
    enc = realm_encoder()
    enc["model_state_dict"][P + "blocks.0.3.mlp.fc2.base_layer.bias"] = torch.zeros(7)
    with pytest.raises(LayoutError, match=r"blocks\.3\.mlp\.fc2\.bias is \(7,\) in the "
                                          r"checkpoint, \(192,\) in the model"):
        load_realm_checkpoint(enc, preset="tiny")
    # REALM segments through DUNE's projector: without the DUNE file the error says so.
    with pytest.raises(LayoutError, match="dune=") as info:
        load_realm_checkpoint(realm_encoder(), segmentation_head=realm_seg_head(), preset="tiny")
    assert any(k == "heads.segmentation.classifier.weight" for k, _, _ in info.value.mismatched)
    # Half an adapter is not merged silently: its peft keys are reported.
    enc = realm_encoder()
    del enc["model_state_dict"][P + "blocks.0.0.mlp.fc1.lora_B.default.weight"]
    with pytest.raises(LayoutError) as info:
        load_realm_checkpoint(enc, preset="tiny")
    assert f"encoder: {P}blocks.0.0.mlp.fc1.lora_A.default.weight" in info.value.unexpected
    assert "encoder.backbone.vit.blocks.0.mlp.fc1.weight" in info.value.missing
    with pytest.raises(LayoutError, match="patch_embed.stem.0.weight"):
        load_realm_checkpoint({"model_state_dict": {P + "pos_embed": torch.zeros(1, 5, 4)}})


def test_realm_lora_alpha_comes_from_the_checkpoint_else_the_argument():
    enc = realm_encoder(alpha=None)
    s = enc["model_state_dict"]
    q = P + "blocks.0.0.attn.qkv."
    delta = s[q + "lora_B.default.weight"] @ s[q + "lora_A.default.weight"]
    for alpha, scale in ((None, 32.0 / 4), (2.0, 0.5)):
        model = load_realm_checkpoint(enc, preset="tiny", lora_alpha=alpha)
        _close(model.encoder.backbone.vit.blocks[0].attn.qkv.weight,
               s[q + "base_layer.weight"] + scale * delta, 1e-6)
    model = load_realm_checkpoint(realm_encoder(alpha=8.0), preset="tiny", lora_alpha=2.0)
    assert model.config.extra["lora"]["alpha"] == 8.0  # the checkpoint's own setting wins


def test_realm_embedder_saved_by_peft_modules_to_save():
    """If the embedder was a peft ``modules_to_save`` module, its trained copy is the one used."""
    enc = realm_encoder()
    plain = load_realm_checkpoint(enc, preset="tiny")
    s = enc["model_state_dict"]
    for key in [k for k in s if k.startswith(P + "patch_embed.")]:
        tail = key[len(P + "patch_embed."):]
        s[P + "patch_embed.original_module." + tail] = torch.zeros_like(s[key])
        s[P + "patch_embed.modules_to_save.default." + tail] = s.pop(key)
    wrapped = load_realm_checkpoint(enc, preset="tiny")
    for key, value in plain.encoder.embedder.state_dict().items():
        assert torch.equal(wrapped.encoder.embedder.state_dict()[key], value)


def test_peft_names_and_merge_match_the_layout():
    """The generator's peft keys are what peft itself writes, and the loader's merge equals
    peft's merge_and_unload, for a skeleton with REALM's module names."""
    depth, dim, rank, alpha = 2, 16, 4, 8.0

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.Module()
            self.attn.qkv, self.attn.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            self.mlp = nn.Module()
            self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    class Wrapper(nn.Module):  # REALM's _EncoderWrapper around the DUNE encoder
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Module()
            self.encoder.blocks = nn.ModuleList([nn.ModuleList([Block() for _ in range(depth)])])
            self.encoder.patch_embed = nn.Module()
            self.encoder.patch_embed.stem = nn.Sequential(nn.Conv2d(2, 3, 1))

    peft_model = get_peft_model(Wrapper(), LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=["qkv", "fc2"], modules_to_save=["patch_embed"]))
    peft_keys = {k for k in peft_model.state_dict() if ".blocks." in k}
    layout = {P + k for k in dinov2_vit(_Rand(0), dim, depth, 1, 0, True, rank, ("qkv", "fc2"))
              if ".attn." in k or ".mlp." in k}
    assert peft_keys == layout
    assert {P + "patch_embed.modules_to_save.default.stem.0.weight",
            P + "patch_embed.original_module.stem.0.weight"} <= set(peft_model.state_dict())

    from event_fm.models.layouts import _merge_lora

    state = {k: torch.randn_like(v) for k, v in peft_model.state_dict().items() if k in layout}
    peft_model.load_state_dict(state, strict=False)
    plain = {"base_model.model." + k: v
             for k, v in peft_model.merge_and_unload().state_dict().items()}
    names = {k: k for k in state}
    assert _merge_lora(state, alpha, names)[0] == rank
    assert set(state) == {k for k in plain if ".blocks." in k}
    for key, value in state.items():
        _close(value, plain[key], 1e-6)


class _Opaque:
    """Any class outside torch's allow-list: reading it would mean unpickling code."""


def test_realm_files_on_disk(tmp_path):
    enc = realm_encoder()
    torch.save(enc, tmp_path / "REALM_final_rank32.pth")
    dune = dune_file()
    torch.save(dune, tmp_path / "dune.pth")  # with its argparse Namespace
    torch.save(realm_seg_head(), tmp_path / "segmentation.pth")
    save_file(realm_depth_head()["model_state_dict"], str(tmp_path / "depth.safetensors"))
    model = load_realm_checkpoint(tmp_path / "REALM_final_rank32.pth", preset="tiny",
                                  depth_head=tmp_path / "depth.safetensors",
                                  segmentation_head=tmp_path / "segmentation.pth",
                                  dune=str(tmp_path / "dune.pth"), with_teacher=False)
    assert set(model.heads) == {"depth", "segmentation"} and model.teacher is None
    # A flat safetensors export of the encoder has no LoRA config: alpha from the argument.
    save_file(enc["model_state_dict"], str(tmp_path / "encoder.safetensors"))
    flat = load_realm_checkpoint(tmp_path / "encoder.safetensors", preset="tiny", lora_alpha=8.0)
    voxels = torch.randn(1, 5, 128, 128)
    with torch.no_grad():
        _close(flat.encoder(voxels).patch, model.encoder(voxels).patch, 1e-6)

    torch.save({"model_state_dict": {}, "config": _Opaque()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="without unpickling"):
        load_realm_checkpoint(tmp_path / "evil.pth")


def test_loaded_realm_model_saves_and_loads_as_an_event_fm_checkpoint(tmp_path):
    model = load_realm_checkpoint(realm_encoder(), depth_head=realm_depth_head(),
                                  segmentation_head=realm_seg_head(), dune=dune_file(),
                                  preset="tiny", with_teacher=False)
    again = load_model(save_model(model, tmp_path / "realm"))
    assert again.config == model.config
    voxels = torch.randn(1, 5, 128, 128)
    with torch.no_grad():
        a, b = model(voxels), again(voxels)
    for key in ("depth", "semantic_logits", "patch"):
        torch.testing.assert_close(a[key], b[key])


def test_import_command_writes_a_checkpoint_the_nodes_load(tmp_path, capsys):
    from event_fm.cli.main import main as cli_main

    torch.save(realm_encoder(), tmp_path / "encoder.pth")
    torch.save(realm_depth_head(), tmp_path / "depth.pth")
    torch.save(realm_seg_head(), tmp_path / "segmentation.pth")
    torch.save(dune_file(), tmp_path / "dune.pth")
    out = tmp_path / "realm_ckpt"
    assert cli_main(["import", "realm", str(tmp_path / "encoder.pth"), "--depth-head",
                     str(tmp_path / "depth.pth"), "--segmentation-head",
                     str(tmp_path / "segmentation.pth"), "--dune", str(tmp_path / "dune.pth"),
                     "--preset", "tiny", "--out", str(out)]) == 0
    assert "depth, segmentation, with its RGB teacher" in capsys.readouterr().out
    direct = load_realm_checkpoint(realm_encoder(), depth_head=realm_depth_head(),
                                   segmentation_head=realm_seg_head(), dune=dune_file(),
                                   preset="tiny")
    loaded = load_model(out)
    voxels = torch.randn(1, 5, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(voxels)["depth"], direct(voxels)["depth"])
    # a file with a key the layout does not have: one line naming it, exit 2 (bad input)
    bad = realm_encoder()
    bad["model_state_dict"]["base_model.model.encoder.surprise"] = torch.zeros(3)
    torch.save(bad, tmp_path / "bad.pth")
    assert cli_main(["import", "realm", str(tmp_path / "bad.pth"), "--preset", "tiny",
                     "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "surprise" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


# -------------------------------------------------------------------------------------- GEP
def gep_file(seed: int = 4, dim: int = 192, depth: int = 4, grid: int = 10, patch: int = 16,
             in_chans: int = 20) -> dict:
    """GEP stage 1: {'event_encoder': DINOv2 ViT (block_chunks=0, 4 registers, LayerScale,
    in_chans 20), 'optimizer': ..., 'epoch': ...}."""
    vit = dinov2_vit(_Rand(seed), dim, depth, grid, 4, False, in_chans=in_chans, patch=patch)
    return {"event_encoder": vit, "optimizer": {"state": {}, "param_groups": []}, "epoch": 999}


def test_gep_small_layout_reproduces_the_reference_forward():
    ckpt = gep_file()
    model = load_gep_student(ckpt, preset="tiny", img_size=(128, 96))
    assert model.config.embedder == "patch" and model.config.num_bins == 20
    assert not model.heads and model.teacher is None
    s = ckpt["event_encoder"]
    x = torch.randn(2, 20, 128, 96, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        patches = F.conv2d(x, s["patch_embed.proj.weight"], s["patch_embed.proj.bias"],
                           stride=16)
        _close(model.encoder.embedder(x, (8, 6)), patches, 1e-5)
        # GEP's DINOv2 interpolates the 10x10 grid bilinearly with the 0.1 offset.
        grid = s["pos_embed"][:, 1:].reshape(1, 10, 10, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=(8.1 / 10, 6.1 / 10), mode="bilinear")
        pos = torch.cat([s["pos_embed"][:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
        cls, patch = ref_dinov2(s, "", patches.flatten(2).transpose(1, 2), pos, 4, 3, False)
        feats = model.encoder(x)
        _close(feats.cls, cls)
        _close(feats.patch, patch)


def test_gep_true_sizes_load_strictly():
    """GEP's released student: DINOv2 ViT-S/14, 4 registers, 20 channels, 37x37 positions."""
    ckpt = gep_file(dim=384, depth=12, grid=37, patch=14)
    model = load_gep_student(ckpt)
    assert model.config.preset == "dinov2_vits14_reg4" and model.config.img_size == (448, 448)
    assert model.encoder.embedder.proj.weight.shape == (384, 20, 14, 14)
    assert model.encoder.backbone.vit.pos_embed.shape == (1, 1024, 384)
    assert torch.equal(model.encoder.backbone.vit.blocks[11].ls2.gamma,
                       ckpt["event_encoder"]["blocks.11.ls2.gamma"])
    with torch.no_grad():
        assert model.encoder(torch.randn(1, 20, 448, 448)).patch.shape == (1, 1024, 384)


def test_gep_missing_and_extra_keys_are_named():
    ckpt = gep_file()
    s = ckpt["event_encoder"]
    del s["blocks.2.ls1.gamma"]
    s["blocks.2.attn.extra"] = torch.zeros(2)
    with pytest.raises(LayoutError) as info:
        load_gep_student(ckpt, preset="tiny", img_size=(128, 128))
    assert info.value.missing == ["encoder.backbone.vit.blocks.2.ls1.gamma"]
    assert info.value.unexpected == ["student: blocks.2.attn.extra"]
    assert "blocks.2.ls1.gamma" in str(info.value) and "blocks.2.attn.extra" in str(info.value)
    # A student wider than its teacher (GEP's ProjectedEncoder) has a projection EventFM lacks.
    wide = {"event_encoder": {"encoder." + k: v for k, v in gep_file()["event_encoder"].items()}
            | {"proj.weight": torch.zeros(384, 192), "proj.bias": torch.zeros(384)}}
    with pytest.raises(LayoutError, match="ProjectedEncoder") as info:
        load_gep_student(wide, preset="tiny", img_size=(128, 128))
    assert info.value.unexpected == ["student: proj.bias", "student: proj.weight"]
