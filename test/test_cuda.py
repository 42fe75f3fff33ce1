"""The CUDA paths (issue 21 item 3), against the CPU results. They need a GPU: skipped on a
machine without one (this project's CI has none); benchmarks/gpu_check.sh runs them where one is.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from event_fm.io.events import make_events

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _events(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n),
                       np.sort(rng.integers(0, 50_000_000, n)), rng.integers(0, 2, n))


def _engine(device: str, **config):
    from event_fm.models import load_model
    from event_fm.pipeline.engine import EngineConfig, PerceptionEngine

    return PerceptionEngine(load_model("models/default"), EngineConfig(device=device, **config),
                            topic="/event_camera/events")


@pytest.mark.parametrize("half", [False, True])
def test_engine_on_cuda_matches_the_cpu(half):
    from event_fm.pipeline.scheduler import WindowSpec

    results = {}
    for device in ("cpu", "cuda"):
        engine = _engine(device, half=half and device == "cuda")
        assert engine.voxel_backend == ("torch" if device == "cuda" else "numba")
        engine.ingest.decoder.width, engine.ingest.decoder.height = 346, 260
        engine.buffer.append(_events(50_000, 346, 260))
        engine.warm_up((260, 346))
        result = engine.process(WindowSpec(t_end=50_000_000, t_start=0, stamp_ns=1),
                                {"depth", "semantic"})
        results[device] = result
    cpu, gpu = results["cpu"].get("depth"), results["cuda"].get("depth")
    assert isinstance(gpu, np.ndarray) and gpu.shape == cpu.shape == (260, 346)
    rel = np.abs(gpu - cpu) / np.maximum(cpu, 1e-3)
    assert np.median(rel) < (0.02 if half else 1e-3)
    agree = (results["cpu"].get("semantic") == results["cuda"].get("semantic")).mean()
    assert agree > (0.95 if half else 0.995)


def test_voxel_grid_is_computed_on_the_device_from_one_upload():
    from event_fm.representations import voxel_grid

    ev = _events(200_000, 640, 480)
    cpu = voxel_grid(ev, 5, 480, 640, 0, 50_000_000, backend="numba")
    torch.cuda.synchronize()
    gpu = voxel_grid(ev, 5, 480, 640, 0, 50_000_000, device="cuda")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("preset", ["dinov2_vits14", "dune_vitb14_448"])
def test_full_size_forward_under_autocast_follows_fp32(preset):
    from event_fm.models import EventFM, EventFMConfig

    model = EventFM(EventFMConfig(preset=preset, merged=True, with_teacher=False)).cuda().eval()
    x = torch.randn(2, 5, 448, 448, device="cuda")
    with torch.inference_mode():
        ref = model.forward_events(x, heads=("depth",))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            amp = model.forward_events(x, heads=("depth",))
    cos = torch.nn.functional.cosine_similarity(ref["patch"].flatten(1).float(),
                                                amp["patch"].flatten(1).float(), dim=1)
    assert (cos > 0.99).all()
    rel = ((amp["depth"].float() - ref["depth"]).abs() / ref["depth"]).median()
    assert float(rel) < 0.05


def test_tiled_forward_batches_every_tile_on_the_device():
    from event_fm.models import load_model

    model = load_model("models/default").cuda().eval()
    x = torch.randn(1, model.config.num_bins, 720, 1280, device="cuda")
    with torch.inference_mode():
        out = model.forward_events_tiled(x, heads=("depth",), keep=("depth",), native=True)
        ref = load_model("models/default").eval().forward_events_tiled(
            x.cpu(), heads=("depth",), keep=("depth",), native=True)
    assert out["depth"].device.type == "cuda"
    torch.testing.assert_close(out["depth"].cpu(), ref["depth"], atol=1e-3, rtol=1e-3)


def test_training_runner_on_cuda_with_amp(tmp_path):
    from helpers.toy_task import ToyTask

    from training.runner import RunConfig, run

    cfg = RunConfig(out_dir=str(tmp_path), steps=40, batch_size=8, lr=1e-2, log_every=1,
                    checkpoint_every=20, device="cuda", amp=True)
    result = run(ToyTask(), cfg)
    losses = [r["loss"] for r in result.history]
    assert result.steps_done == 40 and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_event_matcher_on_cuda_matches_the_cpu():
    from event_fm.models.event_matcher import load_event_matcher
    from event_fm.representations import voxel_grid

    vox = voxel_grid(_events(60_000, 240, 180), 5, 180, 240, 0, 50_000_000)
    cpu = load_event_matcher().eval()
    gpu = load_event_matcher().cuda().eval()
    with torch.inference_mode():
        a = cpu(vox[None])
        b = gpu(vox[None].cuda())
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(y.cpu(), x, atol=1e-3, rtol=1e-3)
