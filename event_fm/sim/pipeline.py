"""Procedural scene -> events + frames + ground truth, with adaptive temporal sampling.

The ESIM model interpolates log intensity linearly between samples, which is only faithful when
consecutive samples differ by a fraction of the contrast threshold. Between two camera frames
the renderer is therefore asked for intermediate samples: after each sample the step is chosen
so that the ``quantile`` (default 99th percentile) of the per-pixel log change would be
``max_log_step * threshold`` at the rate just observed (bounded by ``min_step_s`` and the frame
interval, growing at most 2x per sample). A quantile rather than the maximum is used because
point-sampled object edges jump by a whole contrast step whatever the step size; chasing them
would only render more sub-frames without improving anything.

Frames are at ``k / fps`` seconds (k = 0 .. round(duration * fps) - 1); the events of frame k
are those in (t_{k-1}, t_k]. All times here are simulation time in ns starting at 0. Events are
made from the linear luminance of clean renders; frames are sRGB-encoded 8-bit like a camera's.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from event_fm.io.events import empty_events
from event_fm.sim.camera import Intrinsics
from event_fm.sim.degrade import DegradeParams, degrade, exposure_times, to_uint8
from event_fm.sim.esim import EsimParams, EventSimulator
from event_fm.sim.photos import with_photo_textures
from event_fm.sim.render import Renderer, RenderOutput, luminance
from event_fm.sim.scene import Scene, generate_scene


@dataclass(frozen=True)
class SimConfig:
    kind: str = "street"
    seed: int = 0
    width: int = 346
    height: int = 260
    duration: float = 1.0
    fps: float = 20.0
    esim: EsimParams = field(default_factory=EsimParams)
    degrade: DegradeParams | None = None
    flow: bool = False
    max_log_step: float = 0.5
    quantile: float = 0.99
    min_step_s: float = 1e-4
    #: fraction of surfaces (boxes and ground bands) showing a real photograph (sim.photos)
    photo_textures: float = 0.0

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.fps <= 0:
            raise ValueError("duration and fps must be positive")
        if self.width < 1 or self.height < 1:
            raise ValueError("resolution must be positive")
        if self.max_log_step <= 0 or not 0 < self.quantile <= 1:
            raise ValueError("max_log_step must be positive and quantile in (0, 1]")
        if not 0.0 <= self.photo_textures <= 1.0:
            raise ValueError(f"photo_textures must be in [0, 1], got {self.photo_textures}")

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.duration * self.fps)))

    def frame_time_ns(self, k: int) -> int:
        return int(round(k * 1e9 / self.fps))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_frames"] = self.n_frames
        return d


@dataclass
class SimFrame:
    """One camera frame with the events since the previous one (absent fields: not simulated)."""

    index: int
    t_ns: int
    events: np.ndarray
    image: np.ndarray  # uint8 sRGB as delivered (degraded if configured)
    clean: np.ndarray | None = None  # uint8 sRGB without degradation, when degraded
    depth: np.ndarray | None = None
    semantic: np.ndarray | None = None
    pose: np.ndarray | None = None
    object_id: np.ndarray | None = None
    flow: np.ndarray | None = None  # forward flow to the next frame (px), when configured
    samples: int = 1  # renders used for the events of this frame


class SceneSimulator:
    """Runs one procedural scene; iterate :meth:`frames` to get :class:`SimFrame` in order."""

    def __init__(self, config: SimConfig, scene: Scene | None = None):
        self.config = config
        self.scene = scene or generate_scene(config.kind, config.seed, config.duration)
        if config.photo_textures > 0:
            self.scene = photo_scene(self.scene, config.photo_textures)
        self.intrinsics = Intrinsics.from_fov(config.width, config.height, self.scene.hfov_deg)
        self.renderer = Renderer(self.scene, self.intrinsics)
        self.samples = 0
        #: per intermediate sample: the ``quantile`` of |log change| since the previous one
        self.changes: list[float] = []
        self._rng = np.random.default_rng([config.seed, 7])

    def _log(self, out: RenderOutput) -> np.ndarray:
        return np.log(luminance(out.rgb).astype(np.float64) + self.config.esim.eps)

    def _frame(self, k: int, out: RenderOutput, events: np.ndarray, samples: int) -> SimFrame:
        cfg = self.config
        clean = to_uint8(out.rgb)
        image, clean_out = clean, None
        if cfg.degrade is not None:
            subframes = None
            if cfg.degrade.mode == "blur":
                times = exposure_times(out.t, cfg.degrade)[:-1]
                subframes = [self.renderer.render(float(t)).rgb for t in times] + [out.rgb]
            image, clean_out = to_uint8(degrade(out.rgb, cfg.degrade, self._rng, subframes)), clean
        flow = None
        if cfg.flow:
            from event_fm.sim.flow import optical_flow

            flow = optical_flow(out, self.renderer, cfg.frame_time_ns(k + 1) * 1e-9)
        return SimFrame(k, cfg.frame_time_ns(k), events, image, clean_out, out.depth,
                        out.semantic, out.pose, out.object_id, flow, samples)

    def frames(self) -> Iterator[SimFrame]:
        cfg = self.config
        esim = EventSimulator(cfg.width, cfg.height, cfg.esim)
        out = self.renderer.render(0.0)
        log_prev = self._log(out)
        esim.reset(log_prev, 0)
        self.samples = 1
        yield self._frame(0, out, empty_events(), 1)
        target = cfg.max_log_step * min(cfg.esim.threshold_on, cfg.esim.threshold_off)
        min_step = max(1, int(cfg.min_step_s * 1e9))
        interval = cfg.frame_time_ns(1)
        dt = max(min_step, interval // 16)
        t = 0
        stride = max(1, cfg.width * cfg.height // 20000)
        for k in range(1, cfg.n_frames):
            t_k = cfg.frame_time_ns(k)
            chunks, samples = [], 0
            while t < t_k:
                t_next = min(t + dt, t_k)
                if t_k - t_next < min_step:
                    t_next = t_k
                out = self.renderer.render(t_next * 1e-9)
                log_now = self._log(out)
                chunks.append(esim.step(log_now, t_next))
                change = float(np.quantile(np.abs(log_now - log_prev).ravel()[::stride],
                                           cfg.quantile))
                self.changes.append(change)
                rate = change / (t_next - t)
                wanted = target / rate if rate > 0 else math.inf
                dt = int(min(max(wanted, min_step), 2 * dt, interval))
                t, log_prev = t_next, log_now
                samples += 1
            self.samples += samples
            events = np.concatenate(chunks) if chunks else empty_events()
            yield self._frame(k, out, events, samples)


def photo_scene(scene: Scene, fraction: float) -> Scene:
    """``scene`` with about ``fraction`` of its boxes and ground bands showing photographs,
    drawn from their own generator: the layout and the motion of the seed stay as they are."""
    rng = np.random.default_rng([scene.seed, zlib.crc32(scene.kind.encode()), 11])
    box_tex, box_params = with_photo_textures(scene.box_tex, scene.box_params,
                                              2.0 * scene.box_geo[:, 3:6].max(axis=1), fraction,
                                              rng)
    ground_tex, ground_params = with_photo_textures(scene.ground_tex, scene.ground_params,
                                                    np.full(len(scene.ground_tex), 4.0),
                                                    fraction, rng)
    extra = {**scene.extra, "photo_textures": float(fraction)}
    return replace(scene, box_tex=box_tex, box_params=box_params, ground_tex=ground_tex,
                   ground_params=ground_params, extra=extra)


def simulate_scene(config: SimConfig) -> Iterator[SimFrame]:
    """Frames of a procedural scene (see :class:`SceneSimulator`)."""
    return SceneSimulator(config).frames()


def simulate_video(path, params: EsimParams = EsimParams(), fps: float | None = None,
                   size: tuple[int, int] | None = None, max_duration: float | None = None
                   ) -> Iterator[SimFrame]:
    """Frames of a folder of images or a video with the events simulated between them."""
    from event_fm.sim.esim import iter_events_from_frames
    from event_fm.sim.frames_io import read_frames

    frames = read_frames(path, fps=fps, size=size, max_duration=max_duration)
    for k, (t_ns, frame, events) in enumerate(iter_events_from_frames(frames, params)):
        yield SimFrame(k, t_ns, events, frame)
