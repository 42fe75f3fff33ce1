"""The perception engine: decoded packets in, per-window depth / semantics / pose out.

Callbacks only call :meth:`PerceptionEngine.add_packet` (decode + append); a worker calls
:meth:`next_window` and :meth:`process`. Windows are cut in sensor time and stamped in ROS time
through the clock estimate; when the worker falls behind, only the newest due window runs and the
others are dropped and counted. Testable without ROS: messages are any objects with the
EventPacket fields (rclpy or rosbags).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from event_fm.common.devices import resolve_device
from event_fm.models import MemoryHold, estimate_relative_pose, find_matches, load_model
from event_fm.models.pose import RelativePose
from event_fm.pipeline.buffer import EventBuffer
from event_fm.pipeline.clock import ClockOffsetEstimator
from event_fm.pipeline.ingest import StreamIngest
from event_fm.pipeline.scheduler import WindowScheduler, WindowSpec
from event_fm.representations import event_frame, voxel_grid

#: Engine outputs and the model heads they need.
OUTPUT_HEADS = {"depth": "depth", "semantic": "segmentation", "pose": "matching"}

# DSEC-Semantic palette (display colors per class id), 255 = ignore in black.
PALETTE = np.array([[0, 0, 0], [70, 70, 70], [190, 153, 153], [220, 20, 60], [153, 153, 153],
                    [128, 64, 128], [244, 35, 232], [107, 142, 35], [0, 0, 142],
                    [102, 102, 156], [220, 220, 0]], dtype=np.uint8)


def colorize(labels: np.ndarray) -> np.ndarray:
    palette = np.zeros((256, 3), np.uint8)
    palette[:len(PALETTE)] = PALETTE
    return palette[labels]


@dataclass
class EngineConfig:
    window_mode: str = "rate"
    window_ms: float = 50.0
    window_events: int = 150_000
    output_rate_hz: float = 20.0
    max_window_age_ms: float = 500.0
    buffer_max_events: int = 50_000_000
    memory_hold: bool = True
    memory_hold_min_events: int = 200
    device: str = "auto"
    half: bool = False


@dataclass
class WindowResult:
    spec: WindowSpec
    stamp_ns: int
    num_events: int
    width: int
    height: int
    depth: np.ndarray | None = None  # (H, W) float32 metres
    semantic: np.ndarray | None = None  # (H, W) uint8 class ids
    pose: RelativePose | None = None  # motion from the previous processed window to this one
    pose_matches: int = 0
    events_image: np.ndarray | None = None  # (H, W, 3) uint8
    reconstruction: np.ndarray | None = None  # (H, W, 3) uint8 image from events (LLM-EvRep)
    forecast: object | None = None  # event_fm.pipeline.forecast.ForecastResult (E-Motion)
    held: bool = False  # outputs repeated from the last window with events (memory hold)
    latency_s: dict[str, float] = field(default_factory=dict)


class PerceptionEngine:
    def __init__(self, model, config: EngineConfig | None = None, topic: str = "events"):
        self.config = cfg = config or EngineConfig()
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device).eval()
        self.half = cfg.half and self.device.type == "cuda"
        if self.half:
            self.model.half()
        self.num_bins = int(model.config.num_bins)
        self.available = {out for out, head in OUTPUT_HEADS.items() if head in model.heads}
        self.reconstructor = None  # event_fm.pipeline.reconstruction.ReconstructionRunner
        self.forecaster = None  # event_fm.pipeline.forecast.LiveForecaster
        self.buffer = EventBuffer(cfg.buffer_max_events,
                                  max_age_ns=int(max(cfg.max_window_age_ms, cfg.window_ms) * 4e6))
        self.clock = ClockOffsetEstimator()
        self.ingest = StreamIngest(topic, self.buffer, self.clock)
        self.scheduler = WindowScheduler(cfg.window_mode, int(cfg.window_ms * 1e6),
                                         cfg.output_rate_hz, cfg.window_events)
        self.ingest.on_reset = self.scheduler.reset
        self.hold = MemoryHold(cfg.memory_hold_min_events) if cfg.memory_hold else None
        self.K: np.ndarray | None = None  # intrinsics at sensor resolution
        self.K_assumed = False
        self._previous: tuple[torch.Tensor, torch.Tensor] | None = None
        self._lock = threading.Lock()
        self.counters: Counter = Counter()
        self.latency_sum: Counter = Counter()

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: EngineConfig | None = None,
                        topic: str = "events") -> PerceptionEngine:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return cls(load_model(path), config, topic)

    # -- input (callback side) ---------------------------------------------------------------
    def add_packet(self, msg) -> int:
        with self._lock:
            batch = self.ingest.add_packet(msg)
        return len(batch) if batch is not None else 0

    def add_batch(self, batch) -> None:
        with self._lock:
            self.ingest.add_batch(batch)

    def add_frame(self, stamp_ns: int) -> None:
        with self._lock:
            self.scheduler.add_frame(stamp_ns)

    def set_intrinsics(self, K: np.ndarray) -> None:
        self.K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        self.K_assumed = False

    @property
    def sensor_size(self) -> tuple[int, int]:
        return self.ingest.decoder.width, self.ingest.decoder.height

    def attach_reconstructor(self, runner) -> None:
        """Enable the 'reconstruction' output (a callable: events, H, W, t0, t1 -> image)."""
        self.reconstructor = runner
        self.available.add("reconstruction")

    def attach_forecaster(self, forecaster) -> None:
        """Enable the 'forecast' output; the forecaster sees every window's events (it keeps
        its own history: the buffer forgets events before each window's start)."""
        self.forecaster = forecaster
        self.available.add("forecast")

    # -- scheduling (worker side) --------------------------------------------------------------
    def next_window(self) -> WindowSpec | None:
        """The newest due window; older due ones are dropped (counted), as are stale ones."""
        with self._lock:
            due = self.scheduler.due(self.buffer.t_first, self.buffer.t_last, self.clock)
            t_last = self.buffer.t_last
        if not due:
            return None
        self.counters["windows_due"] += len(due)
        self.counters["windows_dropped_behind"] += len(due) - 1
        spec = due[-1]
        if t_last is not None and t_last - spec.t_end > self.config.max_window_age_ms * 1e6:
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
    def process(self, spec: WindowSpec, outputs: set[str] | None = None,
                events_image: bool = True) -> WindowResult:
        """Run the model on one window; ``outputs``: which of depth/semantic/pose to compute."""
        wanted = (self.available if outputs is None else set(outputs)) & self.available
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        events, t_start = self.window_events(spec)
        width, height = self.sensor_size
        if not (width and height):
            width = int(events["x"].max()) + 1 if len(events) else 1
            height = int(events["y"].max()) + 1 if len(events) else 1
        result = WindowResult(spec, spec.stamp_ns, len(events), width, height)
        if self.forecaster is not None:
            self.forecaster.observe(events, spec.t_end)
            if "forecast" in wanted:
                t4 = time.perf_counter()
                result.forecast = self.forecaster.predict(spec.t_end, width, height,
                                                          spec.stamp_ns)
                timings["forecast"] = time.perf_counter() - t4
                self.counters["forecasts_computed"] += 1
        voxels = voxel_grid(events, self.num_bins, height, width, t_start, spec.t_end,
                            device=self.device)
        if events_image:
            result.events_image = event_frame(events, height, width, t_start, spec.t_end,
                                              device=self.device).cpu().numpy()
        timings["voxelize"] = time.perf_counter() - t0
        if "reconstruction" in wanted:
            t3 = time.perf_counter()
            result.reconstruction = self.reconstructor(events, height, width, t_start,
                                                       spec.t_end)
            timings["reconstruct"] = time.perf_counter() - t3
        if wanted & OUTPUT_HEADS.keys():
            t1 = time.perf_counter()
            heads = sorted({OUTPUT_HEADS[o] for o in wanted if o in OUTPUT_HEADS})
            with torch.inference_mode():
                x = voxels[None].half() if self.half else voxels[None]
                out = self.model.forward_events_tiled(x, heads=heads)
                if self.hold is not None:
                    out = self.hold(out, len(events))
                    result.held = bool(self.hold.held.any())
            timings["infer"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            self._postprocess(out, wanted, result, (height, width))
            timings["postprocess"] = time.perf_counter() - t2
        timings["total"] = time.perf_counter() - t0
        result.latency_s = timings
        self.counters["windows_processed"] += 1
        self.counters["windows_held"] += int(result.held)
        self.latency_sum.update(timings)
        return result

    def _postprocess(self, out: dict, wanted: set[str], result: WindowResult,
                     size: tuple[int, int]) -> None:
        if "depth" in wanted:
            depth = out["depth"].float()
            if tuple(depth.shape[-2:]) != size:
                depth = F.interpolate(depth, size=size, mode="bilinear", align_corners=False)
            result.depth = depth[0, 0].cpu().numpy().astype(np.float32)
        if "semantic" in wanted:
            logits = out["semantic_logits"].float()
            if tuple(logits.shape[-2:]) != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            result.semantic = logits[0].argmax(0).to(torch.uint8).cpu().numpy()
        if "pose" in wanted:
            desc, conf = out["descriptors"][0].float(), out["confidence"][0].float()
            result.pose, result.pose_matches = self._relative_pose(desc, conf, size)
            self._previous = (desc, conf)

    def _relative_pose(self, desc: torch.Tensor, conf: torch.Tensor,
                       size: tuple[int, int]) -> tuple[RelativePose | None, int]:
        if self._previous is None:
            return None, 0
        stride = size[0] / desc.shape[-2]
        k0, k1, _ = find_matches(self._previous[0], self._previous[1], desc, conf,
                                 stride=int(round(stride)), max_keypoints=1024, nms_radius=0)
        if self.K is None:
            h, w = size
            f = float(max(h, w))
            self.K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
            self.K_assumed = True
        pose = estimate_relative_pose(k0.cpu().numpy(), k1.cpu().numpy(), self.K, self.K,
                                      threshold_px=max(1.0, stride / 4))
        self.counters["pose_ok" if pose.ok else "pose_failed"] += 1
        return pose, int(len(k0))

    # -- reporting -----------------------------------------------------------------------
    def diagnostics(self) -> dict:
        stats = self.ingest.stats
        processed = max(1, self.counters["windows_processed"])
        return {
            "events": stats.events, "messages": stats.messages, "seq_gaps": stats.seq_gaps,
            "sensor_resets": stats.sensor_resets,
            "decode_ms_per_msg": stats.decode_ns / 1e6 / max(1, stats.messages),
            "malformed": dict(stats.dropped),
            "buffer_events": len(self.buffer), "buffer_evicted": self.buffer.evicted,
            "buffer_out_of_order": self.buffer.out_of_order,
            "clock_offset_ns": self.clock.offset_ns, "clock_drift_ppm": self.clock.drift_ppm,
            "clock_resets": self.clock.resets, "frames_dropped": self.scheduler.frames_dropped,
            "intrinsics_assumed": self.K_assumed,
            **dict(self.counters),
            **{f"latency_{k}_ms": 1e3 * v / processed for k, v in self.latency_sum.items()},
        }
