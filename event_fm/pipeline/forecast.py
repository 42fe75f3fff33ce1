"""Live motion forecasts: a rolling history of past events and the forecaster around it.

The engine discards buffered events before each window's start, so the forecast keeps its own
short history (the last ``past`` x 20 ms of events, fed from the events the engine already cut
into windows). At a window's end it builds the prompt frames ending there, samples the diffusion
forecaster (guided, E-Motion's Algorithm 2) and returns future frames stamped at the window's end
+ k x 20 ms. No ROS here; the node publishes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from event_fm.io.events import empty_events
from event_fm.models.checkpoint import read_meta
from event_fm.models.forecast import (
    FRAME_NS,
    frames_from_events,
    load_forecaster,
    normalize_by_prompt,
    sample_forecast,
)
from event_fm.models.forecast.motion import motion_compensated_forecast
from event_fm.pipeline.outputs import Output, Window


class EventHistory:
    """The most recent events, enough for ``span_ns`` before the newest window end."""

    def __init__(self, span_ns: int, max_events: int = 20_000_000):
        self.span_ns, self.max_events = int(span_ns), int(max_events)
        self._chunks: list[np.ndarray] = []
        self._t_seen: int | None = None  # events up to here are already held
        self.evicted = 0

    def add(self, events: np.ndarray, t_end: int) -> None:
        """Append a window's events (overlap with earlier windows is skipped), forget old ones."""
        if len(events):
            if self._t_seen is not None:
                events = events[events["t"] > self._t_seen]
            if len(events):
                self._chunks.append(np.ascontiguousarray(events))
        self._t_seen = t_end if self._t_seen is None else max(self._t_seen, int(t_end))
        self._trim(int(t_end) - self.span_ns)

    def _trim(self, t_min: int) -> None:
        kept = [c for c in self._chunks if len(c) and int(c["t"].max()) >= t_min]
        total = sum(len(c) for c in kept)
        while kept and total > self.max_events:
            total -= len(kept[0])
            self.evicted += len(kept.pop(0))
        self._chunks = kept

    def events(self, t_start: int, t_end: int) -> np.ndarray:
        if not self._chunks:
            return empty_events()
        all_events = np.concatenate(self._chunks)
        t = all_events["t"]
        return all_events[(t >= t_start) & (t <= t_end)]

    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks)


@dataclass
class ForecastResult:
    stamp_ns: int  # input window end, ROS time
    stamps_ns: list[int]  # end of each predicted frame, ROS time
    frames: np.ndarray  # (horizon, bins, size, size) float32, signed event density
    crop: tuple[int, int, int]  # crop_x, crop_y, crop_size on the sensor
    frame_ns: int = FRAME_NS
    latency_s: float = 0.0
    prompt: np.ndarray | None = field(default=None, repr=False)  # the past frames, same units


FORECAST_METHODS = ("diffusion", "motion", "motion_similarity")


@dataclass
class ForecastSettings:
    steps: int = 10
    horizon: int | None = None  # frames published (<= the model's; None: all of them)
    guide_frames: int = 4
    tau: int = 100
    prompt_length: int = 3
    seed: int = 0
    #: 'diffusion' (the forecaster) or 'motion' (the last frame carried along the flow of the
    #: past frames, event_fm.models.forecast.motion: milliseconds, no sampling)
    method: str = "diffusion"

    def __post_init__(self) -> None:
        if self.method not in FORECAST_METHODS:
            raise ValueError(f"forecast method must be one of {FORECAST_METHODS}, "
                             f"got {self.method!r}")


class LiveForecaster:
    """Forecaster + history; :meth:`observe` on every window, :meth:`predict` when wanted."""

    def __init__(self, model: torch.nn.Module, settings: ForecastSettings | None = None,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        cfg = model.config
        self.settings = s = settings or ForecastSettings()
        s.horizon = cfg.horizon if s.horizon is None else int(s.horizon)
        if not 1 <= s.horizon <= cfg.horizon:
            raise ValueError(f"forecast horizon must be in [1, {cfg.horizon}], got {s.horizon}")
        if not 1 <= s.steps <= 1000:
            raise ValueError(f"forecast steps must be in [1, 1000], got {s.steps}")
        if not 0 <= s.guide_frames <= cfg.past:
            raise ValueError(f"guide frames must be in [0, {cfg.past}]")
        s.prompt_length = min(s.prompt_length, max(cfg.prompt_lengths))
        self.history = EventHistory(cfg.past * FRAME_NS + FRAME_NS)
        self.generator = torch.Generator(device=self.device).manual_seed(s.seed)
        self.computed = 0

    @classmethod
    def from_checkpoint(cls, path: str | Path, settings: ForecastSettings | None = None,
                        device: str | torch.device = "cpu") -> LiveForecaster:
        path = Path(path)
        model = load_forecaster(path, device)
        if not hasattr(model.config, "data_scale"):
            raise ValueError(f"{path}: not a diffusion forecaster")
        if settings is None:  # the checkpoint's recommended sampling, if it has one
            notes = read_meta(path)
            settings = ForecastSettings(**{k: v for k, v in notes.get("sampling", {}).items()
                                           if k in ForecastSettings.__dataclass_fields__})
        return cls(model, settings, device)

    def observe(self, events: np.ndarray, t_end: int) -> None:
        self.history.add(events, t_end)

    @torch.no_grad()
    def predict(self, t_end: int, width: int, height: int, stamp_ns: int) -> ForecastResult:
        """Forecast after the window ending at sensor time ``t_end`` (stamped ``stamp_ns``)."""
        t0 = time.perf_counter()
        cfg, s = self.model.config, self.settings
        t_start = int(t_end) - cfg.past * FRAME_NS
        events = self.history.events(t_start, int(t_end))
        past = frames_from_events(events, t_start, cfg.past, width, height, cfg.bins, cfg.size)
        normalized, scale = normalize_by_prompt(past[None], cfg.past)
        if s.method in ("motion", "motion_similarity"):
            motion = "similarity" if s.method == "motion_similarity" else "dense"
            future = motion_compensated_forecast(normalized[:, :cfg.past], s.horizon, motion)[0]
            future = future.clamp(-1, 1)
        else:
            x0 = sample_forecast(self.model, normalized.to(self.device) * cfg.data_scale,
                                 s.steps, s.prompt_length, s.guide_frames, s.tau,
                                 generator=self.generator)
            future = (x0[0, cfg.past:cfg.past + s.horizon] / cfg.data_scale).clamp(-1, 1)
        frames = (future.cpu() * scale[0]).numpy().astype(np.float32)
        side = min(width, height)
        crop = ((width - side) // 2, (height - side) // 2, side)
        self.computed += 1
        return ForecastResult(int(stamp_ns),
                              [int(stamp_ns) + (k + 1) * FRAME_NS for k in range(s.horizon)],
                              frames, crop, FRAME_NS, time.perf_counter() - t0, past.numpy())


def frame_to_rgb(frame: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """(bins, H, W) signed voxels -> (H, W, 3) uint8: ON red, OFF blue on black."""
    net = np.asarray(frame, dtype=np.float32).sum(0)
    vmax = float(vmax if vmax else max(np.abs(net).max(), 1e-6))
    level = np.clip(np.abs(net) / vmax, 0, 1) * 255
    rgb = np.zeros((*net.shape, 3), np.uint8)
    rgb[..., 0] = np.where(net > 0, level, 0).astype(np.uint8)
    rgb[..., 2] = np.where(net < 0, level, 0).astype(np.uint8)
    return rgb


def forecast_strip(result: ForecastResult, gap: int = 2) -> np.ndarray:
    """The last past frame and the predicted frames side by side, one shared color scale."""
    frames = list(result.frames)
    if result.prompt is not None:
        frames = [result.prompt[-1], *frames]
    vmax = max(float(np.abs(np.asarray(f).sum(0)).max()) for f in frames) or 1e-6
    tiles = [frame_to_rgb(f, vmax) for f in frames]
    h = tiles[0].shape[0]
    spacer = np.full((h, gap, 3), 255, np.uint8)
    parts = []
    for i, tile in enumerate(tiles):
        parts.extend([tile, spacer] if i < len(tiles) - 1 else [tile])
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


class ForecastOutput(Output):
    """'forecast': a ForecastResult after each window. Observes every window (wanted or not):
    the engine's buffer forgets events before each window's start, the history must not."""

    name = stage = "forecast"

    def __init__(self, forecaster: LiveForecaster) -> None:
        self.forecaster = forecaster

    def observe(self, window: Window) -> None:
        self.forecaster.observe(window.events, window.t_end)

    def compute(self, window: Window) -> ForecastResult:
        window.counters["forecasts_computed"] += 1
        return self.forecaster.predict(window.t_end, window.width, window.height,
                                       window.stamp_ns)


class ForecastImageOutput(Output):
    """'forecast_image': the forecast as an rgb strip (:func:`forecast_strip`) for viewing."""

    name, requires, stage = "forecast_image", ("forecast",), "forecast"

    def compute(self, window: Window) -> np.ndarray:
        return forecast_strip(window.values["forecast"])


def forecast_outputs(forecaster: LiveForecaster) -> list[Output]:
    """What ``engine.register`` needs for the forecast topics, in dependency order."""
    return [ForecastOutput(forecaster), ForecastImageOutput()]
