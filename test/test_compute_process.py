"""The engine's model side in a spawned process (issue 19): the same windows give the same
outputs as in one process, history and counters included; a failed window or a dead process
is an error the caller sees, never a hang."""

from __future__ import annotations

import os
import signal
import time
from functools import partial

import numpy as np
import pytest
import torch

from event_fm.io import make_events
from event_fm.models import EventFM, EventFMConfig, save_model
from event_fm.pipeline.compute_process import ComputeProcess, ComputeProcessError
from event_fm.pipeline.engine import EngineConfig, PerceptionEngine
from event_fm.pipeline.scheduler import WindowSpec

W, H = 64, 48
CONFIG = EngineConfig(window_mode="rate", memory_hold=False, device="cpu", threads=1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = EventFM(EventFMConfig(preset="tiny", img_size=(32, 32),
                                  heads=("depth", "segmentation", "matching"),
                                  embedder_widths=(4, 8, 8, 8), with_teacher=False))
    path = tmp_path_factory.mktemp("compute") / "model"
    save_model(model.eval(), path)
    return path


def _windows(n: int) -> list[tuple[WindowSpec, np.ndarray]]:
    """Textured blobs drifting right: windows with structure for depth and matches."""
    rng = np.random.default_rng(3)
    base_x, base_y = rng.integers(0, W, 1500), rng.integers(0, H, 1500)
    out = []
    for k in range(n):
        t0 = k * 50_000_000
        x = (base_x + 2 * k) % W
        out.append((WindowSpec(t_end=t0 + 50_000_000, t_start=t0, stamp_ns=1000 + k),
                    make_events(x, base_y, np.sort(rng.integers(t0, t0 + 50_000_000, 1500)),
                                rng.integers(0, 2, 1500))))
    return out


def test_windows_in_a_compute_process_match_one_process(checkpoint):
    local = PerceptionEngine.from_checkpoint(checkpoint, CONFIG)
    remote = ComputeProcess(partial(PerceptionEngine.from_checkpoint, checkpoint, CONFIG),
                            warm_size=(H, W))
    info = remote.start()
    assert info["device"] == "cpu" and info["warm_up_s"] > 0
    K = np.array([[60.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])
    wanted = {"depth", "semantic", "pose"}
    try:
        for k, (spec, events) in enumerate(_windows(3)):
            here = local.compute(spec, events, spec.t_start, (W, H), wanted, K)
            there, stats = remote.compute(spec, events, spec.t_start, (W, H), wanted, K, None)
            assert set(there.values) == wanted  # not the outputs they derive from
            assert (there.get("pose") is None) == (here.get("pose") is None) == (k == 0)
            np.testing.assert_allclose(there.get("depth"), here.get("depth"), rtol=1e-5)
            np.testing.assert_array_equal(there.get("semantic"), here.get("semantic"))
            assert there.stamp_ns == spec.stamp_ns and there.num_events == len(events)
        # the pose output's history lives in the child: windows 2 and 3 have a pose
        assert here.get("pose") is not None
        np.testing.assert_allclose(there.get("pose").R, here.get("pose").R, atol=1e-6)
        np.testing.assert_allclose(there.get("pose").t, here.get("pose").t, atol=1e-6)
        assert stats["counters"]["windows_processed"] == 3
        assert stats["counters"]["pose_matches"] == local.counters["pose_matches"] > 0
        assert stats["outputs"]["intrinsics_assumed"] is False
        # a second engine that only cuts windows shows the child's counters
        cutter = PerceptionEngine.from_checkpoint(checkpoint, CONFIG)
        cutter.count("windows_due", 3)
        cutter.absorb_compute_stats(stats)
        d = cutter.diagnostics()
        assert d["windows_processed"] == 3 and d["windows_due"] == 3
        assert d["latency_infer_ms"] > 0
        # a window the child cannot compute is an error; the child goes on
        bad = np.zeros(10, dtype=[("q", "<f8")])
        with pytest.raises(ComputeProcessError, match="ValueError|KeyError"):
            remote.compute(spec, bad, spec.t_start, (W, H), wanted, K, None)
        assert remote.alive
        spec, events = _windows(4)[3]
        result, stats = remote.compute(spec, events, spec.t_start, (W, H), {"depth"}, K, None)
        assert set(result.values) == {"depth"}  # only what was asked comes back
        # a large window grows the shared block
        big = make_events(np.arange(600_000) % W, np.arange(600_000) % H,
                          np.linspace(spec.t_start, spec.t_end - 1, 600_000).astype(np.int64),
                          np.arange(600_000) % 2)
        result, _ = remote.compute(spec, big, spec.t_start, (W, H), {"depth"}, K, None)
        assert result.num_events == 600_000
    finally:
        remote.close()
    assert not remote.alive


def test_a_dead_compute_process_is_an_error_not_a_hang(checkpoint):
    remote = ComputeProcess(partial(PerceptionEngine.from_checkpoint, checkpoint, CONFIG))
    remote.start()
    try:
        os.kill(remote._proc.pid, signal.SIGKILL)  # noqa: SLF001 - the child, by its pid
        remote._proc.join(10)  # noqa: SLF001
        spec, events = _windows(1)[0]
        started = time.monotonic()
        with pytest.raises(ComputeProcessError, match="not running|died|went away"):
            remote.compute(spec, events, 0, (W, H), {"depth"}, None, None)
        assert time.monotonic() - started < 5
        remote.close()
        remote.start()  # a restart gives a working child again
        result, _ = remote.compute(spec, events, 0, (W, H), {"depth"}, None, None)
        assert result.get("depth").shape == (H, W)
    finally:
        remote.close()


def test_a_build_that_fails_says_why(tmp_path):
    remote = ComputeProcess(partial(PerceptionEngine.from_checkpoint, tmp_path / "missing"))
    with pytest.raises(ComputeProcessError, match="checkpoint not found"):
        remote.start()
    assert not remote.alive
