"""Pipeline engine parts without ROS: buffer, clock alignment, window scheduling, ingest."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from event_fm.io import make_events
from event_fm.io.rosbag import BagReader
from event_fm.pipeline.buffer import EventBuffer
from event_fm.pipeline.clock import ClockOffsetEstimator
from event_fm.pipeline.ingest import StreamIngest
from event_fm.pipeline.scheduler import WindowScheduler, WindowSpec


def _events(t):
    t = np.asarray(t, dtype=np.int64)
    return make_events(np.arange(len(t)) % 7, np.arange(len(t)) % 5, t, np.arange(len(t)) % 2)


def test_buffer_windows_are_exact_and_bounded():
    buf = EventBuffer(max_events=1000, max_age_ns=10**12)
    for k in range(10):
        buf.append(_events(np.arange(100) + 100 * k))
    assert len(buf) == 1000 and buf.evicted == 0
    np.testing.assert_array_equal(buf.window(250, 730)["t"], np.arange(250, 730))
    np.testing.assert_array_equal(buf.last_events(150, 500)["t"], np.arange(350, 500))
    buf.append(_events(np.arange(1000, 1050)))
    assert len(buf) == 1000 and buf.evicted == 50
    assert buf.t_first == 50 and buf.t_last == 1049
    buf.append(_events([10, 20, 1049, 1060]))  # two stale events are dropped and counted
    assert buf.out_of_order == 2 and buf.t_last == 1060


def test_buffer_drops_by_age():
    buf = EventBuffer(max_events=10**9, max_age_ns=1000)
    buf.append(_events(np.arange(0, 100)))
    buf.append(_events(np.arange(5000, 5100)))
    assert buf.t_first == 5000 and buf.evicted == 100


def test_clock_offset_is_min_delay_and_tracks_drift():
    rng = np.random.default_rng(0)
    clock = ClockOffsetEstimator(window_ns=2_000_000_000)
    true_offset = 1_700_000_000_000_000_000
    for k in range(20000):
        sensor = k * 1_000_000
        drift = int(sensor * 50e-6)  # 50 ppm
        delay = int(rng.exponential(300_000)) + 100_000
        clock.update(true_offset + sensor + drift + delay, sensor)
    final_drift = int(19999 * 1_000_000 * 50e-6)
    assert abs(clock.offset_ns - (true_offset + final_drift + 100_000)) < 150_000
    assert 30 < clock.drift_ppm < 70
    assert clock.to_sensor(clock.to_ros(123)) == 123


def test_clock_detects_resets():
    clock = ClockOffsetEstimator()
    for k in range(10):
        clock.update(10**18 + k * 10**8, k * 10**8)
    clock.update(10**18 + 11 * 10**8, 5)  # sensor restarted from zero
    assert clock.resets == 1
    assert clock.offset_ns == 10**18 + 11 * 10**8 - 5


class _Clock:
    offset_ns = 1000

    def to_ros(self, t):
        return t + 1000

    def to_sensor(self, t):
        return t - 1000


def test_rate_windows_on_a_grid():
    sched = WindowScheduler("rate", duration_ns=50, rate_hz=1e7)  # period 100 ns
    assert sched.due(0, 10, _Clock()) == []
    wins = sched.due(0, 420, _Clock())
    assert [(w.t_start, w.t_end, w.stamp_ns) for w in wins] == [
        (50, 100, 1100), (150, 200, 1200), (250, 300, 1300), (350, 400, 1400)]
    assert sched.due(0, 420, _Clock()) == []


def test_frame_windows_end_at_converted_frame_stamps():
    sched = WindowScheduler("frame", duration_ns=30)
    for stamp in (1100, 1200, 1150, 1300):  # 1150 is out of order: ignored
        sched.add_frame(stamp)
    wins = sched.due(0, 250, _Clock())
    assert [(w.t_start, w.t_end, w.stamp_ns) for w in wins] == [(70, 100, 1100), (170, 200, 1200)]
    assert [w.t_end for w in sched.due(0, 301, _Clock())] == [300]


def test_count_windows_take_the_newest_events():
    sched = WindowScheduler("count", count=3, rate_hz=1e7)
    wins = sched.due(0, 250, _Clock())
    assert [w.t_end for w in wins] == [100, 200] and all(w.t_start is None for w in wins)


def test_bad_scheduler_arguments():
    with pytest.raises(ValueError):
        WindowScheduler("sliding")
    with pytest.raises(ValueError):
        WindowScheduler("rate", duration_ns=0)


def test_ingest_real_driver_packets(real_bags):
    buf, clock = EventBuffer(), ClockOffsetEstimator()
    ingest = StreamIngest("/event_camera/events", buf, clock)
    deltas, total = [], 0
    with BagReader(real_bags / "evt3_metavision_640x480") as bag:
        for i, message in enumerate(bag.messages()):
            msg = bag.deserialize(message)
            if i in (100, 101, 300):
                continue  # simulate lost packets: seq gaps
            batch = ingest.add_packet(msg)
            total += len(batch)
            if len(batch):
                deltas.append(batch.stamp_ns - batch.t_first)
    assert ingest.stats.seq_gaps == 3
    assert ingest.stats.events == total == len(buf) + buf.evicted
    assert ingest.stats.sensor_resets == 0
    # the estimate is the minimum delta of the recent window
    assert clock.offset_ns >= min(deltas)
    assert clock.offset_ns in deltas


def test_ingest_counts_malformed_packets():
    class Bad:
        pass

    ingest = StreamIngest("/x", EventBuffer(), ClockOffsetEstimator())
    assert ingest.add_packet(Bad()) is None
    assert ingest.stats.dropped["malformed_message"] == 1


def test_engine_output_registry_computes_what_is_asked_and_what_it_requires():
    """Outputs are a registry: one class and one register() call add an output; the model runs
    only for outputs that need heads, requirements are computed first, every output observes
    every window, and outputs report their own diagnostics."""
    from event_fm.models import EventFM, EventFMConfig
    from event_fm.pipeline.engine import PerceptionEngine
    from event_fm.pipeline.outputs import Output, Window
    from event_fm.pipeline.scheduler import WindowSpec

    class Count(Output):
        name = "count"

        def __init__(self) -> None:
            self.seen = 0

        def observe(self, window: Window) -> None:
            self.seen += 1

        def compute(self, window: Window) -> int:
            return len(window.events)

        def diagnostics(self) -> dict:
            return {"count_seen": self.seen}

    class Double(Output):
        name, requires = "double", ("count",)

        def compute(self, window: Window) -> int:
            return 2 * window.values["count"]

    model = EventFM(EventFMConfig(preset="tiny", img_size=(32, 32), heads=("depth",),
                                  embedder_widths=(4, 8, 8, 8), with_teacher=False))
    engine = PerceptionEngine(model)
    with pytest.raises(ValueError, match="requires"):
        engine.register(Double())
    engine.register(Count(), Double())
    assert {"depth", "events_image", "count", "double"} <= engine.available
    assert not {"semantic", "semantic_color", "pose"} & engine.available  # no such heads
    engine.ingest.decoder.width, engine.ingest.decoder.height = 40, 30
    engine.buffer.append(make_events(np.arange(100) % 40, np.arange(100) % 30,
                                     np.arange(100) * 1_000_000, np.arange(100) % 2))
    result = engine.process(WindowSpec(t_end=50_000_000, t_start=0, stamp_ns=7), {"double"})
    assert result.values == {"count": 50, "double": 100}
    assert "infer" not in result.latency_s  # nothing asked needs the model
    result = engine.process(WindowSpec(t_end=99_000_000, t_start=50_000_000, stamp_ns=8),
                            {"depth", "semantic"})  # semantic: not available, ignored
    assert set(result.values) == {"depth"} and result.get("depth").shape == (30, 40)
    assert result.latency_s["infer"] > 0 and result.stamp_ns == 8
    d = engine.diagnostics()
    assert d["count_seen"] == 2 and d["windows_processed"] == 2
    assert d["intrinsics_assumed"] is False


def test_engine_stitches_only_the_model_outputs_its_outputs_read(monkeypatch):
    from event_fm.models import EventFM, EventFMConfig
    from event_fm.pipeline.engine import PerceptionEngine
    from event_fm.pipeline.outputs import Output, Window
    from event_fm.pipeline.scheduler import WindowSpec

    model = EventFM(EventFMConfig(preset="tiny", img_size=(32, 32),
                                  heads=("depth", "segmentation", "matching"),
                                  embedder_widths=(4, 8, 8, 8), with_teacher=False))
    engine = PerceptionEngine(model)
    seen: list[set[str]] = []

    class Patch(Output):  # reads every key of its heads (no ``reads``)
        name, heads = "patch_norm", ("depth",)

        def compute(self, window: Window) -> float:
            seen.append(set(window.heads))
            return float(window.heads["patch"].norm())

    engine.ingest.decoder.width, engine.ingest.decoder.height = 64, 32
    engine.buffer.append(make_events(np.arange(300) % 64, np.arange(300) % 32,
                                     np.arange(300) * 300_000, np.arange(300) % 2))
    spec = WindowSpec(t_end=50_000_000, t_start=0, stamp_ns=1)
    engine.process(spec, {"depth", "semantic", "pose"})
    assert engine._stitched_keys({"depth", "semantic", "pose"}) == {
        "depth", "semantic_logits", "descriptors", "confidence"}
    engine.register(Patch())
    assert engine._stitched_keys({"depth", "patch_norm"}) is None
    result = engine.process(WindowSpec(t_end=90_000_000, t_start=50_000_000, stamp_ns=2),
                            {"patch_norm"})
    assert result.get("patch_norm") > 0 and {"patch", "depth_logits"} <= seen[0]


def _tiny_engine(**config):
    from event_fm.models import EventFM, EventFMConfig
    from event_fm.pipeline.engine import EngineConfig, PerceptionEngine

    model = EventFM(EventFMConfig(preset="tiny", img_size=(32, 32),
                                  heads=("depth", "segmentation", "matching"),
                                  embedder_widths=(4, 8, 8, 8), with_teacher=False))
    return PerceptionEngine(model, EngineConfig(**config), topic="/event_camera/events")


def test_packets_decode_outside_the_lock_the_worker_holds(real_bags):
    """A long model forward (the worker holding the engine lock) does not hold up decoding:
    only the append waits (issue 19: decode cost 4-20x more inside the node)."""
    import threading

    engine = _tiny_engine()
    with BagReader(real_bags / "evt3_metavision_640x480") as bag:
        msgs = [bag.deserialize(m) for _, m in zip(range(3), bag.messages(), strict=False)]
    done = threading.Event()
    with engine._lock:  # the worker, mid-window
        thread = threading.Thread(target=lambda: (engine.add_packet(msgs[0]), done.set()))
        thread.start()
        for _ in range(500):
            if engine.ingest.stats.messages == 1:
                break
            time.sleep(0.01)
        assert engine.ingest.stats.messages == 1  # decoded while the lock was held
        assert len(engine.buffer) == 0 and not done.is_set()  # the append waits for it
    thread.join(10)
    assert done.is_set() and len(engine.buffer) > 0
    assert engine.add_packet(msgs[1]) > 0 and engine.ingest.stats.messages == 2


def test_warm_up_leaves_no_trace_in_counters_buffer_or_output_history():
    before = torch.get_num_threads()
    engine = _tiny_engine(threads=1)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(before)
    assert engine.voxel_backend == "numba"  # the CPU engine's voxel kernel
    seconds = engine.warm_up((30, 40))
    assert seconds > 0
    d = engine.diagnostics()
    assert d.get("windows_processed", 0) == 0 and len(engine.buffer) == 0
    assert not any(k.startswith("pose_") and v for k, v in d.items() if k != "pose_cell_px")
    assert engine.outputs["pose"]._previous is None
    # the first real window after the warm-up gets no pose (nothing before it to match)
    engine.ingest.decoder.width, engine.ingest.decoder.height = 40, 30
    engine.buffer.append(make_events(np.arange(400) % 40, np.arange(400) % 30,
                                     np.arange(400) * 100_000, np.arange(400) % 2))
    result = engine.process(WindowSpec(t_end=40_000_000, t_start=0, stamp_ns=1))
    assert result.get("pose") is None and result.get("depth").shape == (30, 40)


def test_compute_threads_are_set_explicitly():
    import cv2
    import numba

    from event_fm.common.threads import set_compute_threads

    before = torch.get_num_threads()
    try:
        used = set_compute_threads(1)
        assert used == {"torch": 1, "numba": 1, "opencv": 1}
        assert numba.get_num_threads() == 1 and cv2.getNumThreads() == 1
        with pytest.raises(ValueError, match="threads must be >= 1"):
            set_compute_threads(0)
    finally:
        set_compute_threads(before)


def test_compute_threads_hold_in_a_fresh_process():
    """In a new process (the compute process is spawned) numba's pool starts on its first
    set_num_threads and resets the OpenMP count torch shares: torch read 2 threads after being
    set to 1. Then one kernel of each runs and the counts still hold."""
    import subprocess
    import sys

    code = ("import numpy as np, torch; from event_fm.common.threads import set_compute_threads;"
            "print(set_compute_threads(1));"
            "from event_fm.io import make_events; from event_fm.representations import voxel_grid;"
            "e = make_events(np.arange(50) % 8, np.arange(50) % 6, np.arange(50), np.ones(50));"
            "voxel_grid(e, 3, 6, 8, 0, 50, backend='numba');"
            "torch.ones(64, 64) @ torch.ones(64, 64);"
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[-1] == "1" and "'torch': 1" in " ".join(out)


def test_engine_buffer_keeps_what_a_window_can_still_use():
    """Rate windows: events reach back max_window_age + window (+20%), no further, and the
    oldest window still served has all of its events; count windows keep twice the reach."""
    from event_fm.pipeline.engine import EngineConfig, buffer_age_ns

    cfg = EngineConfig(window_mode="rate", window_ms=50.0, max_window_age_ms=500.0)
    assert buffer_age_ns(cfg) == 660_000_000
    assert buffer_age_ns(EngineConfig(window_mode="count")) == 1_100_000_000
    buf = EventBuffer(max_events=10**9, max_age_ns=buffer_age_ns(cfg))
    for k in range(2000):  # 2 s of 1 ms packets, 10 events each
        buf.append(_events(np.sort(k * 1_000_000 + np.arange(10) * 100_000)))
    newest = buf.t_last
    assert newest - buf.t_first <= buffer_age_ns(cfg) + 1_000_000  # whole 1 ms packets
    assert buf.evicted == 20_000 - len(buf) > 0  # counted, not silently lost
    # the window ending max_window_age before the newest event is complete
    t_end = newest - 500_000_000
    window = buf.window(t_end - 50_000_000, t_end)
    assert len(window) == 500 and window["t"][0] == t_end - 50_000_000
