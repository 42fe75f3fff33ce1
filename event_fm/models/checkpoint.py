"""One checkpoint format for every model family: ``model.safetensors`` + ``config.json``.

``config.json`` always has the same top-level shape::

    {"format_version": 1, "kind": "<family>", "config": {<architecture>}, "meta": {<notes>}}

``config`` rebuilds the architecture (strictly: an unknown key is an error), ``meta`` is free-form
(source, training recipe, sampling settings, a note) and never affects the weights. Each family
registers its kind with :func:`register_kind`; :func:`load` dispatches on ``kind``. Nothing is
ever unpickled: the config is plain JSON and the weights are safetensors, so loading a checkpoint
from elsewhere cannot execute code.

A config dataclass with an ``extra`` dict field carries the meta in memory: :func:`save` writes
``config.extra`` (updated by ``meta``) under "meta" and :func:`load` puts "meta" back there.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from event_fm.common.strict_config import ConfigError, build_dataclass, check_keys

if TYPE_CHECKING:
    from .model import EventFM

__all__ = ["CONFIG_NAME", "FORMAT_VERSION", "WEIGHTS_NAME", "CheckpointError",
           "embedded_checkpoint", "kinds", "load", "load_model", "merge_lora", "read_kind",
           "read_meta", "register_kind", "save", "save_model"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
TOP_LEVEL = ("format_version", "kind", "config", "meta")
#: The largest model a config may describe (parameters and buffers): checked on the meta
#: device before anything is allocated, so a config with absurd dimensions is an error, not an
#: out-of-memory kill. The full-size FM families are ~1.2 GB in float32.
MAX_MODEL_BYTES = 8 * 2**30

#: Modules whose import registers the built-in kinds (imported on first lookup, so that this
#: module stays importable from the families themselves).
_FAMILIES = ("event_fm.models.model", "event_fm.models.forecast.denoiser",
             "event_fm.models.forecast.simvp", "event_fm.models.gep",
             "event_fm.models.reconstruction", "event_fm.models.event_matcher")


class CheckpointError(ValueError):
    """A checkpoint's config.json is not the version-1 layout, or names an unknown kind."""


@dataclasses.dataclass(frozen=True)
class _Kind:
    name: str
    model_cls: type[nn.Module]
    config_cls: type
    build: Callable[[Any], nn.Module]


_KINDS: dict[str, _Kind] = {}


def register_kind(name: str, model_cls: type[nn.Module], config_cls: type,
                  build: Callable[[Any], nn.Module] | None = None) -> None:
    """Make ``name`` loadable: its config rebuilds from JSON with ``config_cls`` (a dataclass,
    built strictly) and the model with ``build(config)`` (default ``model_cls(config)``)."""
    _KINDS[name] = _Kind(name, model_cls, config_cls, build or model_cls)


def _kinds() -> dict[str, _Kind]:
    for module in _FAMILIES:
        importlib.import_module(module)
    return _KINDS


def kinds() -> tuple[str, ...]:
    """The registered kinds, sorted."""
    return tuple(sorted(_kinds()))


def _lookup(name: Any, where: Path) -> _Kind:
    registry = _kinds()
    if name not in registry:
        raise CheckpointError(f"{where}: unknown checkpoint kind {name!r} "
                              f"(known: {', '.join(sorted(registry))})")
    return registry[name]


def embedded_checkpoint(name: str) -> Path:
    """A checkpoint shipped under ``models/NAME``: in the source tree, else in the installed
    ament share dir (setup.py installs ``models/*`` there)."""
    here = Path(__file__).resolve().parents[2] / "models" / name
    if here.exists():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("event_fm")) / "models" / name
    except Exception:  # noqa: BLE001 - not in an ament environment
        return here


def _config_dict(config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(architecture, in-memory meta) of a config dataclass; tuples become JSON lists."""
    data = json.loads(json.dumps(dataclasses.asdict(config)))
    extra = data.pop("extra", None) if "extra" in {f.name for f in dataclasses.fields(config)} \
        else None
    return data, dict(extra or {})


def save(model: nn.Module, directory: str | Path, kind: str,
         meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` + ``config.json`` of ``kind`` into ``directory`` (created);
    ``meta`` is merged over the config's in-memory ``extra``. Returns the directory."""
    directory = Path(directory)
    spec = _lookup(kind, directory)
    if not isinstance(model, spec.model_cls):
        raise TypeError(f"kind {kind!r} saves {spec.model_cls.__name__}, got "
                        f"{type(model).__name__}")
    config, notes = _config_dict(model.config)
    notes.update(json.loads(json.dumps(dict(meta or {}), default=str)))
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    document = {"format_version": FORMAT_VERSION, "kind": kind, "config": config, "meta": notes}
    (directory / CONFIG_NAME).write_text(json.dumps(document, indent=2) + "\n")
    return directory


def _paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, config.json) of a checkpoint directory or of its .safetensors file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return path, path.with_name(CONFIG_NAME)
    if path.is_dir() or not path.suffix:  # a missing directory: FileNotFoundError later
        return path / WEIGHTS_NAME, path / CONFIG_NAME
    raise ValueError(f"{path}: expected a checkpoint directory or a .safetensors file")


def _read(config_path: Path) -> dict[str, Any]:
    """The validated version-1 document in ``config_path``."""
    if not config_path.is_file():
        raise FileNotFoundError(f"checkpoint file missing: {config_path}")
    try:
        data = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_path}: not JSON ({err})") from err
    if not isinstance(data, dict) or "format_version" not in data or "kind" not in data:
        found = ", ".join(sorted(data)[:6]) if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{config_path}: not a version-{FORMAT_VERSION} checkpoint config (expected top-level "
            f"keys {', '.join(TOP_LEVEL)}; found {found}, ...): an old layout - rewrite it in the "
            "new one (config under 'config', notes under 'meta')")
    if data["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{config_path}: format_version {data['format_version']!r}, this "
                              f"code reads {FORMAT_VERSION}")
    try:
        check_keys(data, TOP_LEVEL)
    except ConfigError as err:
        raise CheckpointError(f"{config_path}: {err}") from err
    for key in ("config", "meta"):
        if not isinstance(data.get(key, {}), dict):
            raise CheckpointError(f"{config_path}: '{key}' must be a JSON object")
    return data


def read_document(path: str | Path) -> dict[str, Any]:
    """The whole checkpoint document (format_version, kind, config, meta) of a checkpoint
    directory, .safetensors or .onnx file, without loading the weights."""
    if Path(path).suffix == ".onnx":
        from .onnx_model import read_onnx_document

        return read_onnx_document(path)
    return _read(_paths(path)[1])


def read_meta(path: str | Path) -> dict[str, Any]:
    """The free-form notes of a checkpoint (directory, .safetensors or .onnx file), without
    loading it."""
    return copy.deepcopy(read_document(path).get("meta", {}))


def read_kind(path: str | Path) -> str:
    """The kind a checkpoint declares, without loading it."""
    return str(read_document(path)["kind"])


def load(path: str | Path, device: str | torch.device | None = None,
         expect: str | tuple[str, ...] | None = None) -> nn.Module:
    """Rebuild the model of any registered kind from a checkpoint directory (or its .safetensors
    file with config.json beside it): eval mode, on ``device`` if given. ``expect`` names the
    kind(s) the caller can use; another kind raises CheckpointError naming the file."""
    weights, config_path = _paths(path)
    for required in (weights, config_path):
        if not required.is_file():
            raise FileNotFoundError(f"checkpoint file missing: {required}")
    data = _read(config_path)
    spec = _lookup(data["kind"], config_path)
    wanted = (expect,) if isinstance(expect, str) else expect
    if wanted and spec.name not in wanted:
        raise CheckpointError(f"{config_path}: a {spec.name!r} checkpoint, expected "
                              f"{' or '.join(repr(k) for k in wanted)}")
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    config_data = dict(data.get("config", {}))
    if "extra" in fields:
        if "extra" in config_data:
            raise CheckpointError(f"{config_path}: 'config.extra' belongs under 'meta'")
        config_data["extra"] = copy.deepcopy(data.get("meta", {}))
    try:
        config = build_dataclass(spec.config_cls, config_data, "config")
    except ConfigError as err:
        raise CheckpointError(f"{config_path}: {err}") from err
    _check_size_and_shapes(spec, config, weights, config_path)
    model = spec.build(config)
    model.load_state_dict(load_file(str(weights), device="cpu"), strict=True)
    model.eval()
    return model.to(device) if device is not None else model


def _check_size_and_shapes(spec: _Kind, config: Any, weights: Path, config_path: Path) -> None:
    """Build the architecture on the meta device (no memory), bound its size, and compare its
    tensors with the weights file's header, so a bad config fails before any allocation."""
    try:
        with torch.device("meta"):
            skeleton = spec.build(config)
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as err:
        raise CheckpointError(f"{config_path}: config does not build a model: {err}") from err
    tensors = {**dict(skeleton.named_parameters()), **dict(skeleton.named_buffers())}
    n_bytes = sum(t.numel() * t.element_size() for t in tensors.values())
    if n_bytes > MAX_MODEL_BYTES:
        raise CheckpointError(f"{config_path}: the config describes a {n_bytes / 2**30:.1f} GiB "
                              f"model, over the {MAX_MODEL_BYTES / 2**30:.0f} GiB limit")
    expected = {k: tuple(t.shape) for k, t in skeleton.state_dict().items()}
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for a corrupt header
        raise CheckpointError(f"{weights}: unreadable safetensors file ({err})") from err
    # buffers a model fills in itself when an older checkpoint lacks them
    optional = set(getattr(skeleton, "optional_state", ()))
    missing = sorted(set(expected) - set(stored) - optional)
    unexpected = sorted(set(stored) - set(expected))
    wrong = [k for k in expected.keys() & stored.keys() if expected[k] != stored[k]]
    if missing or unexpected or wrong:
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
            ", ".join(f"{k} is {stored[k]} in the weights, {expected[k]} in the config"
                      for k in sorted(wrong)[:3])) if part)
        raise CheckpointError(f"{config_path}: weights do not match the config: {detail}")


# -- EventFM conveniences (many callers) ------------------------------------------------------
def save_model(model: EventFM, directory: str | Path,
               meta: Mapping[str, Any] | None = None) -> Path:
    """An EventFM checkpoint (kind 'event_fm')."""
    return save(model, directory, "event_fm", meta)


def load_model(path: str | Path, device: str | torch.device | None = None) -> EventFM:
    """An EventFM model from its checkpoint (kind 'event_fm'), eval mode. A ``.onnx`` file
    (``event-fm export``) gives the same interface run by ONNX Runtime
    (:class:`event_fm.models.onnx_model.OnnxEventFM`)."""
    if Path(path).suffix == ".onnx":
        from .onnx_model import load_onnx_model

        return load_onnx_model(path, device)  # type: ignore[return-value]
    return load(path, device, expect="event_fm")  # type: ignore[return-value]


def merge_lora(model: EventFM) -> EventFM:
    """Fold the LoRA adapters into the event encoder's transformer, in place (deployment).

    Outputs are unchanged up to float rounding; the merged model saves and loads like any other
    (its config records ``merged``), with plain linears in place of the LoRA wrappers.
    """
    model.encoder.merge_lora()
    model.config.merged = True
    return model
