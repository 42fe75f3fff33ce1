"""Strict loaders for peer projects' published checkpoint layouts into :class:`EventFM`.

REALM (github.com/utiasSTARS/REALM) releases its event model as separate files. Key names and
shapes come from its public code: ``realm/realm/model_factory.py`` (the event encoder is DUNE's
ViT with ``patch_embed`` replaced by ``Vox2PatchEmbed``, wrapped as ``get_peft_model`` of a
module holding it as ``encoder``, saved under ``model_state_dict`` with the LoRA settings under
``config.model.lora``, merged at load), ``realm/realm/embedding.py`` (``stem``: 7x7 stride-1
conv + BN; ``encoder.<i>``: ``conv1/norm1/conv2/norm2/residual.{0,1}``; ``to_patch_embed``: 1x1
conv + BN + GELU; adaptive pooling to 32x32), ``realm/realm/dune/encoder/vision_transformer.py``
and ``realm/realm/dune/options.py`` (DINOv2 ViT-B/14, 4 registers, LayerScale, blocks possibly
chunked as ``blocks.<chunk>.<index>``; the MLP's ``fc1``/``fc2`` as in facebookresearch/dinov2
``dinov2/layers/mlp.py``, REALM's own ``dune/common/mlp.py`` not being indexed),
``realm/realm/dune/dune.py`` and ``realm/realm/dune/projector/tp.py`` (the DUNE file: ``encoder.*``
plus ``projectors.<teacher>.blocks.<i>.*`` / ``.linear``; REALM segments through
``dino2reg_vitlarge_14``, 768 -> 1024, applied to the patch tokens), ``realm/realm/model.py``,
``realm/realm/heads/depth_head.py`` (``bin_centers``, ``head_patch`` 1x1 conv, ``head_cls``
linear; logits upsampled x4), ``realm/realm/heads/seg_head.py`` (``classifier`` 1x1 conv) and
``realm/realm/configs/{depth,segmentation}.yaml`` (5 bins, 256 depth bins over 1.95-82 m, 11
classes). The peft names are peft's: ``base_model.model.<module>``, a wrapped linear's
``base_layer.{weight,bias}``, ``lora_A.default.weight`` (r, in) and ``lora_B.default.weight``
(out, r); merging gives W + (alpha / r) B A.

GEP (github.com/Wernerson/generative_event_pretraining) stage 1 saves ``{"event_encoder":
vit.state_dict(), "optimizer": ..., "epoch": ...}`` (``src/gra.py``) for a DINOv2 ViT-S/14 with
4 registers, 20 input channels, ``block_chunks=0`` and LayerScale, position grid 37x37 (img 518)
interpolated bilinearly with DINOv2's 0.1 offset at run time
(``dinov2/dinov2/models/vision_transformer.py``; settings from ``src/config.py`` GraConfig).

Every loader is strict: a checkpoint key that is not used, a model key that is not filled, or a
shape that differs raises :class:`LayoutError` naming them. No code is taken from those
repositories; only names, shapes and settings are.
"""

from __future__ import annotations

import argparse
import math
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .backbones import Backbone, get_preset
from .checkpoint import CheckpointError
from .heads import DSEC_CLASSES
from .model import EventFM, EventFMConfig
from .remap import read_state_dict, remap_state_dict, unwrap_checkpoint

__all__ = [
    "GEP_PRESET",
    "REALM_DEFAULT_ALPHA",
    "REALM_PRESET",
    "REALM_PROJECTOR",
    "LayoutError",
    "load_gep_student",
    "load_realm_checkpoint",
]

REALM_PRESET = "dune_vitb14_448"
REALM_PROJECTOR = "dino2reg_vitlarge_14"
GEP_PRESET = "dinov2_vits14_reg4"
#: REALM's factory falls back to this alpha when a checkpoint's LoRA config lacks one.
REALM_DEFAULT_ALPHA = 32.0

_PEFT_PREFIX = "base_model.model."
_CHUNKED = re.compile(r"^blocks\.\d+\.(\d+)\.")
_FIRST_BLOCK = re.compile(r"^blocks\.0\.(?:\d+\.)?norm1\.weight$")
_SHOW = 10

Source = str | Path | Mapping[str, Any]

# REALM Vox2PatchEmbed names (under patch_embed.) -> VoxelEmbedder names (under encoder.embedder.)
_REALM_EMBEDDER = (
    (re.compile(r"^stem\.([01])\.(.+)$"), r"stem.\1.\2"),
    (re.compile(r"^encoder\.(\d+)\.conv([12])\.(.+)$"), r"stages.\1.conv\2.\3"),
    (re.compile(r"^encoder\.(\d+)\.norm([12])\.(.+)$"), r"stages.\1.bn\2.\3"),
    (re.compile(r"^encoder\.(\d+)\.residual\.([01])\.(.+)$"), r"stages.\1.shortcut.\2.\3"),
    (re.compile(r"^to_patch_embed\.([01])\.(.+)$"), r"proj.\1.\2"),
)
# REALM LinearDepthHead -> DepthHead; SegHead -> SegmentationHead; DUNE projector -> TokenProjector
_REALM_DEPTH = ((re.compile(r"^head_patch\.(.+)$"), r"spatial.\1"),
                (re.compile(r"^head_cls\.(.+)$"), r"glob.\1"),
                (re.compile(r"^bin_centers$"), "bins"))
_REALM_SEG = ((re.compile(r"^classifier\.(.+)$"), r"classifier.\1"),)
_DUNE_PROJECTOR = ((re.compile(r"^blocks\.(\d+)\.(.+)$"), r"blocks.\1.\2"),
                   (re.compile(r"^linear\.(.+)$"), r"linear.\1"))


class LayoutError(CheckpointError):
    """A published checkpoint does not fit the model: names what is missing, unused or misshapen.

    ``missing``: model keys no checkpoint key fills; ``unexpected``: checkpoint keys (as
    ``'<file>: <key>'``) nothing uses; ``mismatched``: (model key, checkpoint shape, model shape).
    """

    def __init__(self, layout: str, missing: list[str] = (), unexpected: list[str] = (),
                 mismatched: list[tuple[str, tuple, tuple]] = (), hint: str = "") -> None:
        self.missing, self.unexpected = list(missing), list(unexpected)
        self.mismatched = list(mismatched)
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} model keys not filled: {_listing(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} checkpoint keys not used: "
                         f"{_listing(self.unexpected)}")
        if self.mismatched:
            shown = ", ".join(f"{k} is {a} in the checkpoint, {b} in the model"
                              for k, a, b in self.mismatched[:_SHOW])
            more = f" (+{len(self.mismatched) - _SHOW} more)" if len(self.mismatched) > _SHOW \
                else ""
            parts.append(f"{len(self.mismatched)} shapes differ: {shown}{more}")
        if hint:
            parts.append(hint)
        super().__init__(f"{layout} checkpoint does not fit EventFM: " + "; ".join(parts))


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


# ------------------------------------------------------------------------------------ reading
def _read(source: Source, what: str) -> Mapping[str, Any]:
    """A checkpoint object from a path (.pth/.pt/.bin/.safetensors) or an in-memory mapping."""
    if isinstance(source, Mapping):
        return source
    try:
        # DUNE training files pickle their argparse options next to the weights; a Namespace
        # holds data only, so allowing it keeps the no-code-execution guarantee.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return read_state_dict(source)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as err:
        raise CheckpointError(
            f"{what} {source}: cannot be read without unpickling arbitrary objects ({err}); "
            "load it in a trusted environment and pass the state dict, or convert it to "
            "safetensors"
        ) from err


def _tensors(obj: Mapping[str, Any], container: str) -> dict[str, torch.Tensor]:
    """The tensors of ``obj[container]`` if present, else of the usual training containers."""
    inner = obj.get(container)
    return unwrap_checkpoint(inner if isinstance(inner, Mapping) else obj)


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[dict[str, torch.Tensor], str]:
    """Remove ``prefix`` when every key carries it; returns the state and what was removed."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}, prefix
    return dict(state), ""


def _patch_size(preset: str) -> int:
    spec = get_preset(preset)
    if "patch_size" in spec.timm_kwargs:
        return int(spec.timm_kwargs["patch_size"])
    return int(re.search(r"patch(\d+)", spec.timm_name).group(1))


class _Plan:
    """Collects model tensors from checkpoint keys; what is left over is reported, not dropped.

    Each file has its working state (``left``: keys not used yet) and a map from working names
    back to the keys as stored (``names``), so every error names the key the file really holds.
    """

    def __init__(self, layout: str) -> None:
        self.layout = layout
        self.left: dict[str, dict[str, torch.Tensor]] = {}
        self.names: dict[str, dict[str, str]] = {}
        self.filled: dict[str, torch.Tensor] = {}
        self.origin: dict[str, str] = {}  # model key -> '<file>: <stored key>'
        self.extra: list[str] = []  # converted keys the model has no place for

    def add(self, label: str, state: Mapping[str, torch.Tensor],
            names: Mapping[str, str] | str = "") -> None:
        self.left[label] = dict(state)
        self.names[label] = ({k: names + k for k in state} if isinstance(names, str)
                             else dict(names))

    def stored(self, label: str, key: str) -> str:
        return f"{label}: {self.names[label].get(key, key)}"

    def put(self, target: str, label: str, key: str) -> None:
        self.filled[target] = self.left[label].pop(key)
        self.origin[target] = self.stored(label, key)

    def rename(self, label: str, rules: tuple, target_prefix: str, under: str = "") -> None:
        """Move every key of ``label`` under ``under`` that a (pattern, replacement) rule matches
        to ``target_prefix`` + its new name; unmatched keys stay (and are reported)."""
        for key in [k for k in self.left[label] if k.startswith(under)]:
            name = key[len(under):]
            for pattern, replacement in rules:
                if pattern.match(name):
                    self.put(target_prefix + pattern.sub(replacement, name), label, key)
                    break

    def vit(self, label: str, keys: list[str], backbone: Backbone, target_prefix: str) -> None:
        """DINOv2-layout ViT keys of ``label`` -> ``backbone``'s timm names (remap's conversion:
        register tokens, CLS position folded, chunked blocks, mask token dropped)."""
        state = {k: self.left[label][k] for k in keys}
        if not any(_FIRST_BLOCK.match(k) for k in state):
            return  # no ViT here: its model keys are reported missing, these keys unused
        try:
            converted = remap_state_dict(state, backbone)
        except (KeyError, RuntimeError, ValueError) as err:
            raise LayoutError(self.layout, hint=f"{label}: the ViT tensors do not convert "
                              f"({type(err).__name__}: {err})") from err
        unchunked = {_CHUNKED.sub(r"blocks.\1.", k): k for k in state}
        own = set(backbone.vit.state_dict())
        for key in keys:
            self.left[label].pop(key)
        for key, value in converted.items():
            source = unchunked.get(key, key)
            if key in own:
                self.filled[target_prefix + key] = value
                self.origin[target_prefix + key] = self.stored(label, source)
            else:
                self.extra.append(self.stored(label, source))

    def load_into(self, model: EventFM, hint: str = "") -> EventFM:
        """Check names and shapes against ``model`` (built on the meta device), then load."""
        target = model.state_dict()
        missing = sorted(set(target) - set(self.filled))
        unexpected = self.extra + [self.stored(label, k) for label, left in self.left.items()
                                   for k in sorted(left)]
        unexpected += sorted(self.origin[k] for k in set(self.filled) - set(target))
        mismatched = sorted(
            (k, tuple(self.filled[k].shape), tuple(target[k].shape))
            for k in set(self.filled) & set(target) if self.filled[k].shape != target[k].shape
        )
        if missing or unexpected or mismatched:
            raise LayoutError(self.layout, missing, unexpected, mismatched, hint)
        state = {k: v.detach().to(target[k].dtype).clone() for k, v in self.filled.items()}
        model.load_state_dict(state, strict=True, assign=True)
        on_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if on_meta:  # a non-persistent buffer would stay unallocated
            raise RuntimeError(f"{self.layout}: tensors left unallocated: {on_meta[:_SHOW]}")
        model.encoder.set_trainable()
        if model.teacher is not None:
            model.teacher.requires_grad_(False)
        return model.eval()


def _unwrap_modules_to_save(state: dict[str, torch.Tensor], names: dict[str, str]) -> None:
    """peft ``modules_to_save``: keep ``X.modules_to_save.default.*`` as ``X.*`` and drop the
    frozen ``X.original_module.*`` copy (in place)."""
    for key in [k for k in state if ".modules_to_save.default." in k]:
        plain = key.replace(".modules_to_save.default.", ".")
        state[plain] = state.pop(key)
        names[plain] = names.get(key, key)
        state.pop(key.replace(".modules_to_save.default.", ".original_module."), None)


def _merge_lora(state: dict[str, torch.Tensor], alpha: float, names: dict[str, str],
                expected_rank: int | None = None) -> tuple[int, list[str]]:
    """Fold peft LoRA pairs on linears into their base weights, in place: W + (alpha / r) B A.

    Merged modules get plain ``X.weight``/``X.bias`` keys (``names`` maps them to the stored
    ``base_layer`` keys). Incomplete or non-linear adapters keep their peft names, so the strict
    check reports them. Returns the rank and the merged module names.
    """
    ranks, merged = set(), []
    for a_key in sorted(k for k in state if k.endswith(".lora_A.default.weight")):
        base = a_key[: -len(".lora_A.default.weight")]
        b_key, w_key = f"{base}.lora_B.default.weight", f"{base}.base_layer.weight"
        if b_key not in state or w_key not in state:
            continue
        a, b, w = state[a_key], state[b_key], state[w_key]
        if a.ndim != 2 or b.ndim != 2 or w.ndim != 2 or b.shape[1] != a.shape[0] \
                or (b.shape[0], a.shape[1]) != tuple(w.shape):
            continue
        rank = a.shape[0]
        ranks.add(rank)
        state[f"{base}.weight"] = (w.double() + (alpha / rank) * (b.double() @ a.double())).to(
            w.dtype)
        names[f"{base}.weight"] = names.get(w_key, w_key)
        for key in (a_key, b_key, w_key):
            del state[key]
        bias = f"{base}.base_layer.bias"
        if bias in state:
            state[f"{base}.bias"] = state.pop(bias)
            names[f"{base}.bias"] = names.get(bias, bias)
        merged.append(base)
    if len(ranks) > 1:
        raise CheckpointError(f"LoRA adapters of ranks {sorted(ranks)}: a rank pattern is not "
                              "supported")
    rank = ranks.pop() if ranks else 0
    if expected_rank is not None and merged and rank != expected_rank:
        raise CheckpointError(f"LoRA rank {rank} in the tensors, {expected_rank} in the "
                              "checkpoint's LoRA config")
    return rank, merged


def _lora_config(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """``config.model.lora`` of a REALM checkpoint (REALM's factory reads it from there)."""
    node: Any = obj
    for key in ("config", "model", "lora"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _need(state: Mapping[str, torch.Tensor], key: str, layout: str, where: str) -> torch.Tensor:
    if key not in state:
        raise LayoutError(layout, hint=f"{where} has no {key!r}, needed to size the model "
                          f"(its keys start {sorted(state)[:5]})")
    return state[key]


# ---------------------------------------------------------------------------------------- REALM
def load_realm_checkpoint(
    encoder: Source,
    *,
    depth_head: Source | None = None,
    segmentation_head: Source | None = None,
    dune: Source | None = None,
    preset: str = REALM_PRESET,
    lora_alpha: float | None = None,
    projector: str = REALM_PROJECTOR,
    class_names: tuple[str, ...] | None = None,
    with_teacher: bool | None = None,
    voxel_norm: str = "nonzero",
) -> EventFM:
    """Build an :class:`EventFM` from REALM's released files, LoRA merged, strictly.

    ``encoder``: the event encoder file (``REALM_final_rank32_*.pth``: ``model_state_dict`` in
    peft's layout, ``config.model.lora``); ``depth_head`` / ``segmentation_head``: the head files
    (``heads/depth.pth``, ``heads/segmentation.pth``, ``model_state_dict``); ``dune``: DUNE's
    base file (``dune_vitbase14_448_paper.pth``), needed for the segmentation projector
    (``projectors.<projector>``) and for the RGB teacher (its ``encoder``; ``with_teacher``
    defaults to whether ``dune`` is given). Of the DUNE file only those two parts are read (its
    other projectors and teacher norms belong to DUNE's training). Each is a path
    (.pth/.pt/.safetensors) or an in-memory checkpoint / state dict.

    The LoRA scale is alpha / rank, the rank from the tensors, alpha from the checkpoint's LoRA
    config, else ``lora_alpha``, else REALM's default 32. The model's native grid is the
    checkpoint's (448 px for the release); REALM pools the embedder to that grid, so it is exact
    there. ``voxel_norm`` 'nonzero' standardizes the non-zero voxels as REALM's data pipeline
    does (REALM divides by the sample std, N - 1, ours by the population std: a relative
    difference of 1/(2N)); 'none' takes the voxels as given.
    """
    layout = "REALM"
    plan = _Plan(layout)
    raw = _read(encoder, "REALM encoder")
    state, peft = _strip(_tensors(raw, "model_state_dict"), _PEFT_PREFIX)
    state, wrapper = _strip(state, "encoder.")
    names = {k: peft + wrapper + k for k in state}
    _unwrap_modules_to_save(state, names)
    where = f"the REALM encoder (keys under {peft + wrapper!r})"

    # Sizes from the tensors: input bins and widths of the embedder, the token grid.
    stem = _need(state, "patch_embed.stem.0.weight", layout, where)
    stages = sorted({int(m.group(1)) for k in state
                     if (m := re.match(r"^patch_embed\.encoder\.(\d+)\.conv1\.weight$", k))})
    if stages != [0, 1, 2]:
        raise LayoutError(layout, hint=f"the REALM embedder has {len(stages)} downsampling "
                          "blocks; EventFM's VoxelEmbedder has 3 (REALM's num_downsample=3)")
    widths = (stem.shape[0], *(state[f"patch_embed.encoder.{i}.conv1.weight"].shape[0]
                               for i in stages))
    pos = _need(state, "pos_embed", layout, where)
    side = math.isqrt(pos.shape[1] - 1)
    if side * side != pos.shape[1] - 1:
        raise LayoutError(layout, hint=f"pos_embed {tuple(pos.shape)} is not a square grid plus "
                          "the CLS position")

    lora = _lora_config(raw)
    alpha = float(lora.get("lora_alpha", REALM_DEFAULT_ALPHA if lora_alpha is None
                           else lora_alpha))
    rank, merged = _merge_lora(state, alpha, names,
                               int(lora["rank"]) if "rank" in lora else None)
    plan.add("encoder", state, names)

    heads: list[str] = []
    config: dict[str, Any] = {}
    extra: dict[str, Any] = {"source_layout": "realm", "lora": {
        "rank": rank, "alpha": alpha, "scale": alpha / rank if rank else 0.0,
        "merged_modules": len(merged),
        "targets": sorted({m.rsplit(".", 1)[-1] for m in merged})}}
    if depth_head is not None:
        heads.append("depth")
        depth_state = _tensors(_read(depth_head, "REALM depth head"), "model_state_dict")
        plan.add("depth head", depth_state)
        bins = _need(depth_state, "bin_centers", layout, "the REALM depth head")
        config.update(depth_bins=int(bins.numel()), depth_logit_upsample=4,
                      depth_range=(float(bins[0]), float(bins[-1])))
    seg_width = 0
    if segmentation_head is not None:
        heads.append("segmentation")
        seg_state = _tensors(_read(segmentation_head, "REALM segmentation head"),
                             "model_state_dict")
        plan.add("segmentation head", seg_state)
        weight = _need(seg_state, "classifier.weight", layout, "the REALM segmentation head")
        k, seg_width = int(weight.shape[0]), int(weight.shape[1])
        names_k = class_names or (DSEC_CLASSES if k == len(DSEC_CLASSES)
                                  else tuple(f"class_{i}" for i in range(k)))
        config.update(class_names=tuple(names_k), seg_batch_norm=False)
    dune_state = _tensors(_read(dune, "DUNE"), "model") if dune is not None else None
    teacher = dune_state is not None if with_teacher is None else with_teacher
    if teacher and dune_state is None:
        raise CheckpointError("with_teacher needs the DUNE file (dune=...): REALM's encoder file "
                              "has no RGB patch embedding")
    hint = ""
    if segmentation_head is not None and dune_state is not None:
        under = f"projectors.{projector}."
        plan.add("DUNE", {k: v for k, v in dune_state.items() if k.startswith(under)})
        blocks = {int(m.group(1)) for k in plan.left["DUNE"]
                  if (m := re.match(rf"^{re.escape(under)}blocks\.(\d+)\.", k))}
        if not plan.left["DUNE"]:
            raise LayoutError(layout, hint=f"the DUNE file has no projector {projector!r} "
                              f"(projectors: {_projectors(dune_state)})")
        config.update(seg_projector_dim=seg_width, seg_projector_blocks=max(len(blocks), 1))
        extra["projector"] = projector
    elif segmentation_head is not None:
        hint = (f"REALM's segmentation head reads DUNE's projector {projector!r}: pass dune=<the "
                "DUNE file>")

    patch = _patch_size(preset)
    cfg = EventFMConfig(
        preset=preset, img_size=(side * patch, side * patch), num_bins=int(stem.shape[1]),
        heads=tuple(heads), embedder_widths=tuple(int(w) for w in widths),
        embedder_stem_stride=1, voxel_norm=voxel_norm, lora_rank=rank, lora_alpha=alpha,
        merged=True, with_teacher=teacher, extra=extra, **config,
    )
    with torch.device("meta"):
        model = EventFM(cfg)
    if seg_width and seg_width == model.encoder.embed_dim and "DUNE" not in plan.left:
        hint = ""  # a probe straight on the encoder tokens needs no projector

    plan.rename("encoder", _REALM_EMBEDDER, "encoder.embedder.", under="patch_embed.")
    vit_keys = [k for k in plan.left["encoder"] if not k.startswith("patch_embed.")]
    plan.vit("encoder", vit_keys, model.encoder.backbone, "encoder.backbone.vit.")
    if "depth head" in plan.left:
        plan.rename("depth head", _REALM_DEPTH, "heads.depth.")
    if "segmentation head" in plan.left:
        plan.rename("segmentation head", _REALM_SEG, "heads.segmentation.")
    if "DUNE" in plan.left:
        plan.rename("DUNE", _DUNE_PROJECTOR, "heads.segmentation.projector.",
                    under=f"projectors.{projector}.")
    if teacher:
        encoder_state = {k: v for k, v in dune_state.items() if k.startswith("encoder.")}
        plan.add("DUNE encoder", _strip(encoder_state, "encoder.")[0], "encoder.")
        plan.vit("DUNE encoder", list(plan.left["DUNE encoder"]), model.teacher.backbone,
                 "teacher.backbone.vit.")
        for name in ("mean", "std"):  # the teacher's input normalization: config constants
            value = getattr(cfg, f"image_{name}")
            plan.filled[f"teacher.{name}"] = torch.tensor(value).view(1, 3, 1, 1)
            plan.origin[f"teacher.{name}"] = f"config: image_{name}"
    return plan.load_into(model, hint)


def _projectors(state: Mapping[str, torch.Tensor]) -> list[str]:
    return sorted({k.split(".")[1] for k in state if k.startswith("projectors.")})


# ------------------------------------------------------------------------------------------ GEP
def _resample_dinov2_pos(pos: torch.Tensor, grid: tuple[int, int],
                         mode: str = "bilinear", offset: float = 0.1) -> torch.Tensor:
    """DINOv2's run-time position interpolation, (1, 1 + M*M, C) -> (1, 1 + h*w, C).

    As ``interpolate_pos_encoding`` of GEP's DINOv2 copy: scale factors (h + offset) / M and
    (w + offset) / M, bilinear, no antialiasing, the CLS position untouched.
    """
    m = math.isqrt(pos.shape[1] - 1)
    if m * m != pos.shape[1] - 1:
        raise LayoutError("GEP stage 1", hint=f"pos_embed {tuple(pos.shape)} is not a square "
                          "grid plus the CLS position")
    if (m, m) == tuple(grid):
        return pos
    dim = pos.shape[-1]
    patches = pos[:, 1:].float().reshape(1, m, m, dim).permute(0, 3, 1, 2)
    scale = ((grid[0] + offset) / m, (grid[1] + offset) / m)
    patches = F.interpolate(patches, scale_factor=scale, mode=mode, antialias=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([pos[:, :1].float(), patches], dim=1).to(pos.dtype)


def load_gep_student(
    student: Source,
    *,
    preset: str = GEP_PRESET,
    img_size: tuple[int, int] = (448, 448),
    voxel_norm: str = "none",
) -> EventFM:
    """Build an :class:`EventFM` (no heads, no teacher) from GEP's stage-1 event encoder.

    ``student``: GEP's stage-1 file (``{"event_encoder": ..., "optimizer": ..., "epoch": ...}``)
    or the encoder's state dict (path or mapping). Its patch embedding (20 input channels)
    becomes a ``PatchEmbedder``; the 37x37 position grid is resampled once to ``img_size``
    (multiples of 14) the way GEP's ViT does at run time, so the model matches GEP at that size.
    Inputs are GEP's event tensors as its pipeline makes and normalizes them (``voxel_norm``
    'none').
    """
    layout = "GEP stage 1"
    plan = _Plan(layout)
    state = _tensors(_read(student, "GEP student"), "event_encoder")
    names = {k: k for k in state}
    if "encoder.pos_embed" in state:  # GEP's ProjectedEncoder: ViT under encoder., plus proj.
        state = {k.removeprefix("encoder."): v for k, v in state.items()}
    plan.add("student", state, names={k.removeprefix("encoder."): k for k in names})
    proj = _need(state, "patch_embed.proj.weight", layout, "the GEP student")
    patch = _patch_size(preset)
    if tuple(proj.shape[-2:]) != (patch, patch):
        raise LayoutError(layout, hint=f"patch size {tuple(proj.shape[-2:])} in the checkpoint, "
                          f"{patch} in preset {preset!r}")
    if img_size[0] % patch or img_size[1] % patch:
        raise ValueError(f"img_size {tuple(img_size)} must be multiples of the patch size {patch}")
    cfg = EventFMConfig(
        preset=preset, img_size=tuple(img_size), num_bins=int(proj.shape[1]), heads=(),
        embedder="patch", voxel_norm=voxel_norm, lora_rank=0, full_finetune=True,
        with_teacher=False, extra={"source_layout": "gep_stage1"},
    )
    with torch.device("meta"):
        model = EventFM(cfg)
    plan.rename("student", ((re.compile(r"^patch_embed\.proj\.(weight|bias)$"), r"proj.\1"),),
                "encoder.embedder.")
    left = plan.left["student"]
    if "pos_embed" in left:
        left["pos_embed"] = _resample_dinov2_pos(
            left["pos_embed"], (img_size[0] // patch, img_size[1] // patch))
    vit_keys = [k for k in left if not k.startswith("proj.")]
    plan.vit("student", vit_keys, model.encoder.backbone, "encoder.backbone.vit.")
    hint = ("the student is wider than its teacher (GEP's ProjectedEncoder): EventFM has no "
            "place for that projection") if "proj.weight" in left else ""
    return plan.load_into(model, hint)
