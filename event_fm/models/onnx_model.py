"""The event encoder + heads as one ONNX graph, run by ONNX Runtime behind EventFM's interface.

A ``.onnx`` file written by :func:`export_onnx` is a complete checkpoint: the graph (LoRA merged,
every head, a dynamic batch of tiles) and, in its metadata, the checkpoint document of the model
it came from (kind, config, meta), so ``load_model("model.onnx")`` rebuilds the configuration
and the perception engine, eval and the node run it unchanged (the checkpoint's suffix selects
the runtime). Opset 17: what TensorRT 8.6+ parses. ONNX Runtime picks TensorRT / CUDA
execution providers when the installed build has them and the device is CUDA, else the CPU.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from event_fm.common.strict_config import build_dataclass

from .inference import tiled_forward
from .model import EventFM, EventFMConfig

__all__ = ["ONNX_OPSET", "OnnxEventFM", "export_onnx", "load_onnx_model", "read_onnx_document"]

ONNX_OPSET = 17
DOCUMENT_KEY = "event_fm_checkpoint"
HEAD_OUTPUTS_KEY = "event_fm_head_outputs"
INPUT_NAME = "voxels"


class _Graph(nn.Module):
    """forward_events with every head, as a tuple in a fixed order (ONNX outputs are named)."""

    def __init__(self, model: EventFM, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, voxels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.forward_events(voxels)
        return tuple(out[name] for name in self.names)


def _float_outputs(out: dict[str, Any]) -> list[str]:
    return [k for k, v in out.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]


def export_onnx(model: EventFM, path: str | Path, document: dict[str, Any] | None = None,
                opset: int = ONNX_OPSET) -> Path:
    """Write ``model`` (merged LoRA; a copy is merged if it is not) as one ONNX graph of input
    ``voxels`` (tiles, bins, H, W) at the model's size and one named output per float output of
    ``forward_events``. ``document``: the checkpoint document stored in the metadata (default:
    built from the model's config)."""
    import onnx  # the export needs it; inference needs only onnxruntime

    from .checkpoint import FORMAT_VERSION, _config_dict, merge_lora

    path = Path(path)
    model = copy.deepcopy(model).cpu().float().eval()
    if not model.config.merged and model.config.lora_rank > 0:
        merge_lora(model)
    config, notes = _config_dict(model.config)
    if document is None:
        document = {"format_version": FORMAT_VERSION, "kind": "event_fm", "config": config,
                    "meta": notes}
    document = copy.deepcopy(document)
    document["config"] = config  # merged, as the graph is
    height, width = model.img_size
    example = torch.zeros(1, model.config.num_bins, height, width)
    with torch.inference_mode():
        names = _float_outputs(model.forward_events(example))
        head_outputs = {head: sorted(set(_float_outputs(model.forward_events(example, head)))
                                     - {"cls", "patch"}) for head in model.heads}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the tracer's notes on shape checks it folds to constants
        warnings.simplefilter("ignore")
        # the TorchScript exporter: torch.export cannot trace timm's position-embedding resize
        torch.onnx.export(_Graph(model, names), (example,), str(path),
                          input_names=[INPUT_NAME], output_names=names,
                          dynamic_axes={INPUT_NAME: {0: "tiles"}}, opset_version=opset,
                          dynamo=False)
    graph = onnx.load(str(path))
    for key, value in ((DOCUMENT_KEY, document), (HEAD_OUTPUTS_KEY, head_outputs)):
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(graph, str(path))
    return path


def _metadata(path: Path) -> dict[str, str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def read_onnx_document(path: str | Path) -> dict[str, Any]:
    """The checkpoint document (format_version, kind, config, meta) stored by export_onnx."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file missing: {path}")
    metadata = _metadata(path)
    if DOCUMENT_KEY not in metadata:
        raise ValueError(f"{path}: an ONNX file without event_fm's metadata; write it with "
                         "`event-fm export CHECKPOINT OUT.onnx`")
    return json.loads(metadata[DOCUMENT_KEY])


class OnnxEventFM:
    """What the perception engine, eval and the nodes use of :class:`EventFM` (config, heads,
    img_size, forward_events, forward_events_tiled, to/eval), computed by ONNX Runtime.

    The session is made on the first forward, in the thread that runs it, with that thread's
    torch intra-op thread count (the engine sets it from its ``threads`` parameter).
    """

    def __init__(self, path: str | Path, device: str | torch.device | None = None) -> None:
        self.path = Path(path)
        metadata = _metadata(self.path)
        if DOCUMENT_KEY not in metadata:
            raise ValueError(f"{self.path}: an ONNX file without event_fm's metadata")
        document = json.loads(metadata[DOCUMENT_KEY])
        from .checkpoint import CheckpointError

        try:
            config_data = dict(document["config"], extra=document.get("meta", {}))
            self.config: EventFMConfig = build_dataclass(EventFMConfig, config_data, "config")
        except Exception as err:  # noqa: BLE001 - any malformed document
            raise CheckpointError(f"{self.path}: bad event_fm metadata ({err})") from err
        self.head_outputs: dict[str, list[str]] = json.loads(metadata[HEAD_OUTPUTS_KEY])
        self.heads = {name: None for name in self.head_outputs}  # names, as EventFM.heads
        self.device = torch.device(device or "cpu")
        self._session = None

    # -- EventFM's interface ---------------------------------------------------------------
    @property
    def img_size(self) -> tuple[int, int]:
        return tuple(self.config.img_size)

    def to(self, device: str | torch.device) -> OnnxEventFM:
        device = torch.device(device)
        if device != self.device:
            self.device, self._session = device, None
        return self

    def eval(self) -> OnnxEventFM:
        return self

    def half(self) -> OnnxEventFM:
        raise ValueError("ONNX checkpoints run in float32: set half to false")

    def providers(self) -> list[str]:
        """Execution providers for this device, best first, among those installed."""
        import onnxruntime as ort

        available = set(ort.get_available_providers())
        wanted = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] + wanted
        return [p for p in wanted if p in available]

    def _run(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = max(1, torch.get_num_threads())
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.log_severity_level = 3
            self._session = ort.InferenceSession(str(self.path), options,
                                                 providers=self.providers())
        return self._session.run(names, {INPUT_NAME: x})

    def output_names(self, heads: str | Iterable[str] | None = None,
                     keep: Iterable[str] | None = None) -> list[str]:
        if heads is None:
            selected = list(self.head_outputs)
        else:
            selected = [heads] if isinstance(heads, str) else list(heads)
            missing = [h for h in selected if h not in self.head_outputs]
            if missing:
                raise ValueError(f"heads {missing} are not in this model (has "
                                 f"{list(self.head_outputs)})")
        names = ["cls", "patch"] + [n for h in selected for n in self.head_outputs[h]]
        if keep is not None:
            wanted = set(keep)
            names = [n for n in names if n in wanted]
        return list(dict.fromkeys(names))

    def forward_events(self, voxels: torch.Tensor, heads: str | Iterable[str] | None = None,
                       keep: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Voxel grids (B, bins, H, W) at the model's size; ``keep``: only these outputs are
        computed (ONNX Runtime runs what they need)."""
        if voxels.ndim != 4 or voxels.shape[1] != self.config.num_bins:
            raise ValueError(f"expected voxels (B, {self.config.num_bins}, H, W), got "
                             f"{tuple(voxels.shape)}")
        names = self.output_names(heads, keep)
        if not names:
            return {}
        x = voxels.detach().to("cpu", torch.float32).contiguous().numpy()
        values = self._run(x, names)
        return {name: torch.from_numpy(value).to(voxels.device)
                for name, value in zip(names, values, strict=True)}

    __call__ = forward_events

    def forward_events_tiled(self, voxels: torch.Tensor,
                             heads: str | Iterable[str] | None = None,
                             tile_size: tuple[int, int] | None = None,
                             keep: Iterable[str] | None = None,
                             native: bool = False) -> dict[str, torch.Tensor]:
        """As :meth:`EventFM.forward_events_tiled`."""
        out = tiled_forward(lambda x: self.forward_events(x, heads, keep), voxels,
                            self.img_size, tile_size, keep, native)
        if "descriptors" in out:
            out["descriptors"] = F.normalize(out["descriptors"], dim=1)
        return out


def load_onnx_model(path: str | Path, device: str | torch.device | None = None) -> OnnxEventFM:
    """An :class:`OnnxEventFM` from a file written by :func:`export_onnx`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file missing: {path}")
    try:
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ImportError("ONNX checkpoints need onnxruntime: pip install onnxruntime "
                          "(onnxruntime-gpu for CUDA/TensorRT)") from err
    return OnnxEventFM(path, device)
