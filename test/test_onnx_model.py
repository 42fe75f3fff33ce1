"""ONNX export of the event encoder + heads and the ONNX Runtime path behind EventFM's
interface (issues 19 and 21): the shipped default exports, its .onnx file is a checkpoint the
engine runs unchanged, with PyTorch's outputs; bad files get clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from event_fm.cli.main import main as cli
from event_fm.io import make_events
from event_fm.models import load_model
from event_fm.models.checkpoint import embedded_checkpoint, read_kind, read_meta
from event_fm.models.onnx_model import ONNX_OPSET, OnnxEventFM, export_onnx
from event_fm.pipeline.engine import EngineConfig, PerceptionEngine
from event_fm.pipeline.scheduler import WindowSpec

DEFAULT = embedded_checkpoint("default")
KEEP = ("depth", "semantic_logits", "descriptors", "confidence")


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "default.onnx"
    assert cli(["export", str(DEFAULT), str(path)]) == 0
    return path


def _sparse_voxels(height: int, width: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (1, 5, height, width)
    return torch.randn(shape, generator=g) * (torch.rand(shape, generator=g) < 0.05)


def test_the_file_is_a_checkpoint_with_the_models_config(onnx_path):
    import onnx

    graph = onnx.load(str(onnx_path))
    assert graph.opset_import[0].version == ONNX_OPSET
    assert read_kind(onnx_path) == "event_fm"
    assert read_meta(onnx_path) == read_meta(DEFAULT)
    model = load_model(onnx_path)
    torch_model = load_model(DEFAULT)
    assert isinstance(model, OnnxEventFM)
    assert model.config == torch_model.config and model.img_size == (96, 128)
    assert set(model.heads) == set(torch_model.heads)
    assert model.head_outputs["depth"] == ["depth", "depth_logits"]
    with pytest.raises(ValueError, match="float32"):
        model.half()


@pytest.mark.parametrize("size", [(180, 240), (480, 640), (720, 1280)])
def test_tiled_outputs_match_pytorch(onnx_path, size):
    onnx_model, torch_model = load_model(onnx_path), load_model(DEFAULT)
    voxels = _sparse_voxels(*size)
    with torch.inference_mode():
        expected = torch_model.forward_events_tiled(voxels, keep=KEEP, native=True)
        got = onnx_model.forward_events_tiled(voxels, keep=KEEP, native=True)
    assert set(got) == set(expected) == set(KEEP)
    for key in KEEP:
        assert got[key].shape == expected[key].shape
        scale = float(expected[key].abs().max())
        assert scale > 0
        assert float((got[key] - expected[key]).abs().max()) < 1e-4 * max(scale, 1.0), key
    # only what is kept is computed; heads select outputs as EventFM's do
    with torch.inference_mode():
        depth_only = onnx_model.forward_events(voxels[..., :96, :128], heads="depth",
                                               keep=("depth",))
    assert set(depth_only) == {"depth"}
    with pytest.raises(ValueError, match="not in this model"):
        onnx_model.forward_events(voxels[..., :96, :128], heads="flow")


def test_engine_runs_the_onnx_checkpoint_like_the_pytorch_one(onnx_path):
    config = EngineConfig(window_mode="rate", memory_hold=False, device="cpu", threads=1)
    engines = [PerceptionEngine.from_checkpoint(p, config) for p in (DEFAULT, onnx_path)]
    rng = np.random.default_rng(1)
    width, height = 240, 180
    K = np.array([[200.0, 0, 119.5], [0, 200.0, 89.5], [0, 0, 1]])
    results = [[], []]
    for k in range(3):  # a textured patch drifting right
        n = 6000
        x = (rng.integers(40, 140, n) + 3 * k) % width
        y = rng.integers(30, 150, n)
        t0 = k * 50_000_000
        events = make_events(x, y, np.sort(rng.integers(t0, t0 + 50_000_000, n)),
                             rng.integers(0, 2, n))
        spec = WindowSpec(t_end=t0 + 50_000_000, t_start=t0, stamp_ns=1000 + k)
        for engine, out in zip(engines, results, strict=True):
            out.append(engine.compute(spec, events, t0, (width, height),
                                      {"depth", "semantic", "pose"}, K))
    for here, there in zip(*results, strict=True):
        depth = here.get("depth")
        assert depth.shape == (height, width) and np.isfinite(depth).all()
        np.testing.assert_allclose(there.get("depth"), depth, rtol=1e-3, atol=1e-3)
        agree = np.mean(there.get("semantic") == here.get("semantic"))
        assert agree > 0.999
    assert engines[1].counters["windows_processed"] == 3


def test_bad_inputs_get_clear_errors(tmp_path, onnx_path, capsys):
    assert cli(["export", str(DEFAULT), str(tmp_path / "model.pt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.onnx")
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Conv2d(5, 1, 3), (torch.zeros(1, 5, 8, 8),), str(plain),
                      dynamo=False, opset_version=ONNX_OPSET)
    with pytest.raises(ValueError, match="without event_fm's metadata"):
        load_model(plain)
    with pytest.raises(ValueError, match="expected voxels"):
        load_model(onnx_path).forward_events(torch.zeros(1, 3, 96, 128))


def test_export_merges_lora_of_an_unmerged_model(tmp_path):
    from event_fm.models import EventFM, EventFMConfig

    torch.manual_seed(0)
    model = EventFM(EventFMConfig(preset="tiny", img_size=(32, 32), heads=("depth",),
                                  embedder_widths=(4, 8, 8, 8), with_teacher=False,
                                  lora_rank=4)).eval()
    for name, p in model.named_parameters():  # LoRA B starts at zero: make it count
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    path = export_onnx(model, tmp_path / "lora.onnx")
    voxels = _sparse_voxels(32, 32, seed=2)
    with torch.inference_mode():
        expected = model.forward_events(voxels)["depth"]
        got = load_model(path).forward_events(voxels)["depth"]
    assert load_model(path).config.merged
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
