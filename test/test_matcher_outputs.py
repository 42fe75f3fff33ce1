"""The event matcher inside the perception engine: ~/pose from the matcher's keypoints and
~/image_pose (a camera frame or keyframe against the window), computed in dependency order."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from event_fm.io.events import EVENT_DTYPE
from event_fm.models import EventFM, EventFMConfig
from event_fm.models.event_matcher import from_xfeat
from event_fm.models.xfeat import load_xfeat
from event_fm.pipeline.engine import EngineConfig, PerceptionEngine
from event_fm.pipeline.matcher_outputs import matcher_outputs
from event_fm.sim.esim import EsimParams, simulate_from_frames

H, W = 180, 240
K = np.array([[200.0, 0, 119.5], [0, 200.0, 89.5], [0, 0, 1]])


def _texture() -> np.ndarray:
    rng = np.random.default_rng(4)
    base = cv2.resize(rng.integers(0, 255, (45, 90), dtype=np.uint8), (720, 360),
                      interpolation=cv2.INTER_NEAREST)
    return cv2.GaussianBlur(base, (5, 5), 0)


def _view(texture: np.ndarray, x: float) -> np.ndarray:
    M = np.float32([[1, 0, -x], [0, 1, -90]])
    return cv2.warpAffine(texture, M, (W, H), flags=cv2.INTER_LINEAR)


def _events(texture, speed_px_s: float, duration_s: float = 0.3) -> np.ndarray:
    frames = [(int(t * 1e9), cv2.cvtColor(_view(texture, 100 + speed_px_s * t),
                                          cv2.COLOR_GRAY2RGB))
              for t in np.arange(0, duration_s, 0.002)]
    events = simulate_from_frames(frames, EsimParams(shot_noise_rate=0.0, leak_rate=0.0,
                                                     hot_pixel_fraction=0.0))
    return np.ascontiguousarray(events.astype(EVENT_DTYPE))


@pytest.fixture(scope="module")
def engine():
    torch.manual_seed(0)
    model = EventFM(EventFMConfig(preset="tiny", with_teacher=False))
    engine = PerceptionEngine(model, EngineConfig(window_mode="rate", window_ms=50.0,
                                                  output_rate_hz=20.0, memory_hold=False,
                                                  device="cpu"))
    engine.register(*matcher_outputs(from_xfeat(), load_xfeat("cpu"), image_pose=True))
    engine.set_intrinsics(K)
    return engine


def test_matcher_outputs_replace_the_head_pose_in_dependency_order(engine):
    names = list(engine.outputs)
    assert names.index("event_features") < names.index("pose") < names.index("odometry")
    assert names.index("event_features") < names.index("image_pose")
    assert engine.outputs["pose"].heads == ()  # the model's matching head is not run for it
    assert {"pose", "image_pose", "event_features"} <= engine.available


def test_pose_and_image_pose_from_a_moving_texture(engine):
    texture = _texture()
    events = _events(texture, speed_px_s=120.0)
    engine.add_frame(0, cv2.cvtColor(_view(texture, 100.0 + 120.0 * 0.1), cv2.COLOR_GRAY2RGB),
                     schedule=False)
    batch_spec = _run(engine, events, {"pose", "image_pose"})
    assert len(batch_spec) >= 3
    features = [r.get("event_features") for r in batch_spec]
    assert all(f is not None and len(f.keypoints) > 20 for f in features)
    poses = [r.get("pose") for r in batch_spec[1:]]
    assert all(p is not None for p in poses)
    assert engine.counters["pose_matches"] > 0
    image_poses = [r.get("image_pose") for r in batch_spec]
    assert all(p is not None for p in image_poses)
    assert engine.counters["image_pose_matches"] > 0
    diag = engine.diagnostics()
    assert diag["image_pose_reference"] == "latest frame" and diag["pose_cell_px"] == 8.0


def test_image_pose_without_a_frame_is_counted_not_raised():
    torch.manual_seed(0)
    model = EventFM(EventFMConfig(preset="tiny", with_teacher=False))
    engine = PerceptionEngine(model, EngineConfig(memory_hold=False, device="cpu"))
    engine.register(*matcher_outputs(from_xfeat(), load_xfeat("cpu"), image_pose=True))
    results = _run(engine, _events(_texture(), 120.0, 0.12), {"image_pose"})
    assert results and all(r.get("image_pose") is None for r in results)
    assert engine.counters["image_pose_no_frame"] == len(results)


def _run(engine, events: np.ndarray, wanted: set[str]) -> list:
    """Packets of 10 ms, each window processed as it falls due (as the node's worker does)."""
    results = []
    edges = np.searchsorted(events["t"], np.arange(0, int(events["t"][-1]) + 10**7, 10**7))
    for lo, hi in zip(edges, edges[1:], strict=False):
        if hi > lo:
            engine.add_batch(_as_batch(events[lo:hi]))
        while (spec := engine.next_window()) is not None:
            results.append(engine.process(spec, wanted))
    return results


def _as_batch(events: np.ndarray):
    from event_fm.io.events import EventBatch

    return EventBatch(events=events, stamp_ns=int(events["t"][-1]), width=W, height=H)
