"""The perception engine: decoded packets in, per-window outputs (depth, semantics, pose, ...) out.

Callbacks only call :meth:`PerceptionEngine.add_packet` (decode + append); a worker calls
:meth:`next_window` and :meth:`process`. What a window yields is a registry of
:class:`~event_fm.pipeline.outputs.Output` objects: the standard ones are always registered,
runners with their own checkpoints (reconstruction, forecast) are registered by the caller.
Windows are cut in sensor time and stamped in ROS time through the clock estimate; when the
worker falls behind, only the newest due window runs and the others are dropped and counted.
Testable without ROS: messages are any objects with the EventPacket fields (rclpy or rosbags).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from event_fm.common.devices import resolve_device
from event_fm.common.threads import set_compute_threads
from event_fm.io import make_events
from event_fm.models import MemoryHold, load_model
from event_fm.pipeline.buffer import EventBuffer
from event_fm.pipeline.clock import ClockOffsetEstimator
from event_fm.pipeline.ingest import StreamIngest
from event_fm.pipeline.outputs import Output, Window, standard_outputs
from event_fm.pipeline.scheduler import WindowScheduler, WindowSpec
from event_fm.representations import voxel_grid


@dataclass
class EngineConfig:
    window_mode: str = "rate"
    window_ms: float = 50.0
    window_events: int = 150_000
    output_rate_hz: float = 20.0
    max_window_age_ms: float = 500.0
    buffer_max_events: int = 30_000_000
    memory_hold: bool = True
    memory_hold_min_events: int = 200
    device: str = "auto"
    half: bool = False
    threads: int | None = None  # CPU threads of torch, numba, OpenCV (None: leave them be)
    #: model tiles in sensor pixels (H, W); None: by the model's aspect ratio (plan_tiles)
    tile_size: tuple[int, int] | None = None


def buffer_age_ns(cfg: EngineConfig) -> int:
    """How far behind the newest event the buffer keeps events. A rate window is used only
    while its end is within ``max_window_age_ms`` of the newest event, so its events reach back
    at most that plus its length (+20% for packet granularity): at 20 Mev/s a 2x margin held
    ~170 MB of events no window could use (issue 19's RSS target). A count window's span depends
    on the rate, so it keeps twice that."""
    reach_ms = cfg.max_window_age_ms + cfg.window_ms
    return int(reach_ms * (1.2 if cfg.window_mode == "rate" else 2.0) * 1e6)


@dataclass
class WindowResult:
    spec: WindowSpec
    stamp_ns: int
    num_events: int
    width: int
    height: int
    values: dict[str, Any] = field(default_factory=dict)  # output name -> value (see outputs)
    held: bool = False  # outputs repeated from the last window with events (memory hold)
    latency_s: dict[str, float] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """The value of output ``name``, None when it was not computed."""
        return self.values.get(name)


class PerceptionEngine:
    def __init__(self, model, config: EngineConfig | None = None, topic: str = "events"):
        self.config = cfg = config or EngineConfig()
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device).eval()
        self.half = cfg.half and self.device.type == "cuda"
        if self.half:
            self.model.half()
        self.num_bins = int(model.config.num_bins)
        # numba's kernel beats the torch scatter on the CPU (4.6x vs 2.5x tonic, issue 19)
        self.voxel_backend = "numba" if self.device.type == "cpu" else "torch"
        if cfg.threads is not None:
            set_compute_threads(cfg.threads)
        self.outputs: dict[str, Output] = {}  # registration order: dependencies first
        self.register(*standard_outputs())
        self.buffer = EventBuffer(cfg.buffer_max_events, max_age_ns=buffer_age_ns(cfg))
        self.clock = ClockOffsetEstimator()
        self.ingest = StreamIngest(topic, self.buffer, self.clock)
        self.scheduler = WindowScheduler(cfg.window_mode, int(cfg.window_ms * 1e6),
                                         cfg.output_rate_hz, cfg.window_events)
        self.ingest.on_reset = self.scheduler.reset
        self.hold = MemoryHold(cfg.memory_hold_min_events) if cfg.memory_hold else None
        self.K: np.ndarray | None = None  # intrinsics at sensor resolution
        self.latest_frame: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()  # buffer, clock, scheduler: callbacks and the worker
        self._ingest_lock = threading.Lock()  # the decoder: one packet at a time
        self.counters: Counter = Counter()
        self.latency_sum: Counter = Counter()
        self._remote_stats: dict | None = None  # compute_stats() of a compute process

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: EngineConfig | None = None,
                        topic: str = "events") -> PerceptionEngine:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return cls(load_model(path), config, topic)

    # -- input (callback side) ---------------------------------------------------------------
    def add_packet(self, msg) -> int:
        """Decode outside the worker's lock (the decoder is the callbacks' alone), then admit
        under it: the worker never waits for a decode, nor a decode for a model forward."""
        if not hasattr(msg, "encoding") and hasattr(msg, "events"):
            return self.add_legacy_array(msg)
        with self._ingest_lock:
            decoded = self.ingest.decode(msg)
            if decoded is None:
                return 0
            with self._lock:
                batch = self.ingest.admit(decoded)
        return len(batch) if batch is not None else 0

    def add_batch(self, batch) -> None:
        with self._ingest_lock, self._lock:
            self.ingest.add_batch(batch)

    def add_legacy_array(self, msg) -> int:
        """Buffer one per-event array message (dvs/prophesee/event_array_msgs); its geometry
        becomes the sensor size; a malformed one is counted."""
        with self._ingest_lock, self._lock:
            batch = self.ingest.add_legacy_array(msg)
        return len(batch) if batch is not None else 0

    def add_frame(self, stamp_ns: int, image: np.ndarray | None = None,
                  schedule: bool = True) -> None:
        """A camera frame: its stamp ends a window in 'frame' mode (``schedule``); its image,
        when given, is what image-event outputs match the next windows against."""
        with self._lock:
            if schedule:
                self.scheduler.add_frame(stamp_ns)
            if image is not None:
                self.latest_frame = (int(stamp_ns), image)

    def set_intrinsics(self, K: np.ndarray) -> None:
        self.K = np.asarray(K, dtype=np.float64).reshape(3, 3)

    @property
    def sensor_size(self) -> tuple[int, int]:
        return self.ingest.decoder.width, self.ingest.decoder.height

    # -- outputs -----------------------------------------------------------------------------
    def register(self, *outputs: Output) -> None:
        """Add outputs (after those they require); a name registered again is replaced, and the
        outputs are kept in an order where each comes after what it requires."""
        for output in outputs:
            missing = [r for r in output.requires if r not in self.outputs]
            if missing:
                raise ValueError(f"output {output.name!r} requires {missing}: register them first")
            self.outputs[output.name] = output
        ordered: dict[str, Output] = {}
        while len(ordered) < len(self.outputs):
            ready = [n for n, o in self.outputs.items()
                     if n not in ordered and all(r in ordered for r in o.requires)]
            if not ready:
                cycle = sorted(set(self.outputs) - set(ordered))
                raise ValueError(f"outputs require each other: {cycle}")
            for name in ready:
                ordered[name] = self.outputs[name]
        self.outputs = ordered

    @property
    def available(self) -> set[str]:
        """Outputs this model can compute: their heads exist and what they require is available."""
        heads = set(self.model.heads)
        ok: set[str] = set()
        for name, output in self.outputs.items():
            if set(output.heads) <= heads and all(r in ok for r in output.requires):
                ok.add(name)
        return ok

    def _stitched_keys(self, wanted: set[str]) -> set[str] | None:
        """The model outputs the wanted outputs read (None: one reads everything)."""
        keys: set[str] = set()
        for name in wanted:
            output = self.outputs[name]
            reads = getattr(output, "reads", None)
            if reads is None:
                if output.heads:
                    return None
                continue
            keys.update(reads)
        return keys

    def _with_requirements(self, wanted: set[str]) -> set[str]:
        out = set(wanted)
        for name in reversed(list(self.outputs)):  # dependents come after what they require
            if name in out:
                out.update(self.outputs[name].requires)
        return out

    # -- scheduling (worker side) --------------------------------------------------------------
    def next_window(self, now_ns: int | None = None) -> WindowSpec | None:
        """The newest due window; older due ones are dropped (counted), as are stale ones:
        older than ``max_window_age_ms`` behind the newest event, or — given the ROS time
        ``now_ns`` — behind now (input that waited in the DDS queue is old however fresh it
        looks against the events that came with it)."""
        with self._lock:
            due = self.scheduler.due(self.buffer.t_first, self.buffer.t_last, self.clock)
            t_last = self.buffer.t_last
        if not due:
            return None
        self.counters["windows_due"] += len(due)
        self.counters["windows_dropped_behind"] += len(due) - 1
        spec = due[-1]
        max_age_ns = self.config.max_window_age_ms * 1e6
        if (t_last is not None and t_last - spec.t_end > max_age_ns) or (
                now_ns is not None and now_ns - spec.stamp_ns > max_age_ns):
            self.counters["windows_dropped_stale"] += 1
            return None
        return spec

    def window_events(self, spec: WindowSpec) -> tuple[np.ndarray, int]:
        if spec.t_start is None:
            events = self.buffer.last_events(spec.count, spec.t_end)
            t_start = int(events["t"][0]) if len(events) else spec.t_end
        else:
            events, t_start = self.buffer.window(spec.t_start, spec.t_end), spec.t_start
            self.buffer.discard_before(t_start)  # later windows start later
        return events, t_start

    # -- inference --------------------------------------------------------------------------
    def warm_up(self, size: tuple[int, int] | None = None) -> float:
        """Run every JIT and first-call path once on a synthetic window — voxel kernels, the
        model's tiled forward for all its heads, outputs with a ``warm_up`` — without touching
        the buffer, counters or any output's history, so the first live window costs what the
        others do. ``size``: (height, width) of the sensor, when known. Returns seconds."""
        started = time.perf_counter()
        height, width = size or tuple(self.model.img_size)
        n = 2000
        rng = np.random.default_rng(0)
        events = make_events(rng.integers(0, width, n), rng.integers(0, height, n),
                             np.sort(rng.integers(0, 50_000_000, n)), rng.integers(0, 2, n))
        voxels = voxel_grid(events, self.num_bins, height, width, 0, 50_000_000,
                            backend=self.voxel_backend, device=self.device)
        with torch.inference_mode():
            x = voxels[None].half() if self.half else voxels[None]
            self.model.forward_events_tiled(x, heads=tuple(self.model.heads),
                                            tile_size=self.config.tile_size,
                                            keep=self._stitched_keys(self.available),
                                            native=True)
        for output in self.outputs.values():
            warm = getattr(output, "warm_up", None)
            if warm is not None:
                warm(voxels)
        return time.perf_counter() - started

    def configure_thread(self) -> None:
        """Apply the thread settings in the calling thread (numba's count is per thread): the
        worker calls this once before its first window."""
        if self.config.threads is not None:
            set_compute_threads(self.config.threads)

    def process(self, spec: WindowSpec, outputs: Iterable[str] | None = None) -> WindowResult:
        """Compute the ``outputs`` (default: all available) and what they require for one
        window; the model runs once, for the union of their heads. Every output observes the
        window, computed or not."""
        started = time.perf_counter()
        events, t_start = self.window_events(spec)
        width, height = self.sensor_size
        return self.compute(spec, events, t_start, (width, height), outputs, self.K,
                            self.latest_frame, started)

    def compute(self, spec: WindowSpec, events: np.ndarray, t_start: int,
                sensor_size: tuple[int, int], outputs: Iterable[str] | None = None,
                K: np.ndarray | None = None, frame: tuple[int, np.ndarray] | None = None,
                started: float | None = None) -> WindowResult:
        """The model side of :meth:`process` on a window already cut from the buffer, so it can
        run where the buffer is not (:mod:`event_fm.pipeline.compute_process`)."""
        available = self.available
        wanted = self._with_requirements(available if outputs is None
                                         else set(outputs) & available)
        timings: Counter = Counter()
        t0 = time.perf_counter() if started is None else started
        width, height = sensor_size
        if not (width and height):
            width = int(events["x"].max()) + 1 if len(events) else 1
            height = int(events["y"].max()) + 1 if len(events) else 1
        window = Window(spec, events, t_start, width, height, self.device, K,
                        counters=self.counters, frame=frame)
        held = False
        for output in self.outputs.values():
            output.observe(window)
        heads = sorted({h for name in wanted for h in self.outputs[name].heads})
        if heads or any(getattr(self.outputs[name], "needs_voxels", False) for name in wanted):
            t1 = time.perf_counter()
            voxels = voxel_grid(events, self.num_bins, height, width, t_start, spec.t_end,
                                backend=self.voxel_backend, device=self.device)
            window.voxels = voxels
            timings["voxelize"] += time.perf_counter() - t1
        if heads:
            t1 = time.perf_counter()
            with torch.inference_mode():
                x = voxels[None].half() if self.half else voxels[None]
                # at the model's own resolution: outputs resize only what they publish
                window.heads = self.model.forward_events_tiled(
                    x, heads=heads, tile_size=self.config.tile_size,
                    keep=self._stitched_keys(wanted), native=True)
                if self.hold is not None:
                    window.heads = self.hold(window.heads, len(events))
                    held = bool(self.hold.held.any())
            timings["infer"] += time.perf_counter() - t1
        for name, output in self.outputs.items():
            if name in wanted:
                t1 = time.perf_counter()
                window.values[name] = output.compute(window)
                timings[output.stage or name] += time.perf_counter() - t1
        timings["total"] = time.perf_counter() - t0
        self.counters["windows_processed"] += 1
        self.counters["windows_held"] += int(held)
        self.latency_sum.update(timings)
        return WindowResult(spec, spec.stamp_ns, len(events), width, height, window.values,
                            held, dict(timings))

    def compute_stats(self) -> dict:
        """What :meth:`compute` counted, for a process that cuts windows elsewhere
        (:meth:`absorb_compute_stats` on that side)."""
        return {"counters": dict(self.counters), "latency_sum": dict(self.latency_sum),
                "outputs": {k: v for output in self.outputs.values()
                            for k, v in output.diagnostics().items()}}

    def absorb_compute_stats(self, stats: dict) -> None:
        """The latest :meth:`compute_stats` of the process that computes this engine's
        windows: diagnostics show them beside this side's own counters."""
        self._remote_stats = stats

    # -- reporting -----------------------------------------------------------------------
    def count(self, key: str, n: int = 1) -> None:
        """Add to a diagnostics counter (e.g. the caller's ``window_errors``)."""
        self.counters[key] += n

    def add_latency(self, stage: str, seconds: float) -> None:
        """Add time spent outside :meth:`process` (e.g. publishing) to the latency means."""
        self.latency_sum[stage] += seconds

    def diagnostics(self) -> dict:
        """Counters of ingest, buffer, clock, scheduler, outputs and mean latencies per stage
        (with a compute process's counts when one computes the windows)."""
        stats = self.ingest.stats
        counters, latency = Counter(self.counters), Counter(self.latency_sum)
        output_stats = {k: v for output in self.outputs.values()
                        for k, v in output.diagnostics().items()}
        if self._remote_stats is not None:
            counters.update(self._remote_stats["counters"])
            latency.update(self._remote_stats["latency_sum"])
            output_stats.update(self._remote_stats["outputs"])
        processed = max(1, counters["windows_processed"])
        return {
            "events": stats.events, "messages": stats.messages, "seq_gaps": stats.seq_gaps,
            "sensor_resets": stats.sensor_resets, "seq_backwards": stats.seq_backwards,
            "packets_quarantined": stats.quarantined,
            "windows_skipped_gap": self.scheduler.windows_skipped,
            "decode_ms_per_msg": stats.decode_ns / 1e6 / max(1, stats.messages),
            "malformed": dict(stats.dropped),
            "buffer_events": len(self.buffer), "buffer_evicted": self.buffer.evicted,
            "buffer_out_of_order": self.buffer.out_of_order,
            "clock_offset_ns": self.clock.offset_ns, "clock_drift_ppm": self.clock.drift_ppm,
            "clock_resets": self.clock.resets, "frames_dropped": self.scheduler.frames_dropped,
            **output_stats,
            **dict(counters),
            **{f"latency_{k}_ms": 1e3 * v / processed for k, v in latency.items()},
            **{f"latency_sum_{k}": float(v) for k, v in latency.items()},
        }
