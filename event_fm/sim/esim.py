"""Video-to-events simulation (the ESIM / v2e pixel model).

Each pixel compares its log intensity ``L = log(Y + eps)`` (Y = luminance in [0, 1]) with a
reference level memorised at its last event. Between two samples L is linear in time; every
time ``L - ref`` crosses ``+C_on`` (``-C_off``) the pixel emits an ON (OFF) event at the
linearly interpolated crossing time and moves its reference by one threshold, so a change of
``n * C`` produces exactly ``n`` events. Non-idealities:

- per-pixel thresholds ``C ~ N(C0, sigma)`` drawn once per run from the seed (floored at 0.01),
- a refractory period: crossings within it after an emitted event are dropped (the reference
  still moves, as the change is lost while the pixel is blind),
- leak events: the reference drifts down at ``leak_rate * C_on`` per second, so a static pixel
  fires ON events at ``leak_rate`` Hz (initial phases are random so pixels do not fire together),
- shot noise: Poisson events of random polarity at ``shot_noise_rate`` Hz per pixel, which do
  not touch the reference,
- hot pixels: a ``hot_pixel_fraction`` of the pixels (drawn once per run from the seed) fire
  Poisson events of random polarity at ``hot_pixel_rate`` Hz on top of everything else.

The noise defaults are fitted to the real driver recordings in ``test/data/real_bags``
(``benchmarks/sensor_noise.py`` measures them with ``event_fm.evaluation.sensor_noise``; the
table is ``docs/sensor_noise.md``): each is the median over the four bags with events of the
same statistic, per pixel and per second so that it holds at any resolution.

For 8-bit footage the pixel values are taken as intensities (value / 255, as v2e does); ``eps``
keeps quantisation steps in dark pixels from firing events.

Because L is interpolated linearly between samples, crossing times inside one sample interval
are exact for that interpolation: a frame sequence needs no extra sub-steps, and the renderer
only has to sample finely enough that linear interpolation is faithful (see ``pipeline``).
Events come out sorted by time (int64 ns) per step, and steps are consecutive, so a whole run
is time-ordered.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import numba as nb
import numpy as np

from event_fm.io.events import EVENT_DTYPE, empty_events


@dataclass(frozen=True)
class EsimParams:
    """Pixel model parameters (thresholds in log units, rates in Hz per pixel)."""

    threshold_on: float = 0.25
    threshold_off: float = 0.25
    sigma: float = 0.03
    #: 0.1th percentile of same-pixel inter-event intervals, median over the real bags
    #: (1005, 248, 281, 195 us): 265 us.
    refractory_ns: int = 265_000
    #: Background activity: isolated events in quiet cells, median over the real bags (0.100,
    #: 0.038, 0.152, 0.406 Hz per pixel): 0.126 Hz, split between shot noise (ON/OFF 50/50)
    #: and leak events (ON only) so that the ON share of the background is the bags' median
    #: (0.159, 0.506, 0.643, 0.520): 0.513, i.e. leak = (2 x 0.513 - 1) x 0.126 = 0.0033 Hz,
    #: shot = 0.126 - 0.0033 = 0.123 Hz.
    shot_noise_rate: float = 0.123
    leak_rate: float = 0.0033
    #: Hot pixels (rate >= 10x both the median active pixel's and their neighbours'), median
    #: over the real bags: 1.65e-4 of the pixels (2.8e-4, 5.0e-5, 2.2e-5, 1.07e-3), firing at
    #: 27.7 Hz (23.6, 18.4, 150, 31.8 Hz).
    hot_pixel_fraction: float = 1.65e-4
    hot_pixel_rate: float = 27.7
    eps: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.threshold_on <= 0 or self.threshold_off <= 0:
            raise ValueError("contrast thresholds must be positive")
        if self.sigma < 0 or self.refractory_ns < 0:
            raise ValueError("sigma and refractory period must be non-negative")
        if self.shot_noise_rate < 0 or self.leak_rate < 0 or self.hot_pixel_rate < 0:
            raise ValueError("noise rates must be non-negative")
        if not 0 <= self.hot_pixel_fraction <= 1:
            raise ValueError("hot_pixel_fraction must be in [0, 1]")
        if self.eps <= 0:
            raise ValueError("eps must be positive")

    def to_dict(self) -> dict:
        return asdict(self)


def log_intensity(image: np.ndarray, eps: float = 0.01) -> np.ndarray:
    """log(Y + eps) of an RGB / grey image (uint8 or float in [0, 1]) as float64."""
    from event_fm.sim.render import luminance

    return np.log(luminance(image).astype(np.float64) + eps)


@nb.njit(cache=True)
def _count(d, delta, c_on, c_off):
    """Upper bound of the events of one step (before the refractory filter)."""
    n = 0
    for i in range(d.shape[0]):
        d1 = d[i] + delta[i]
        if d1 >= c_on[i]:
            n += int(d1 / c_on[i])
        elif d1 <= -c_off[i]:
            n += int(-d1 / c_off[i])
    return n


@nb.njit(cache=True)
def _fill(d, delta, c_on, c_off, last_t, t0, dt, refractory, width, out_x, out_y, out_t, out_p):
    """Emit the threshold crossings of every pixel between t0 and t0 + dt; updates d, last_t."""
    n = 0
    for i in range(d.shape[0]):
        d0 = d[i]
        step = delta[i]
        d1 = d0 + step
        if d1 >= c_on[i]:
            c, pol, k = c_on[i], 1, int(d1 / c_on[i])
        elif d1 <= -c_off[i]:
            c, pol, k = -c_off[i], 0, int(-d1 / c_off[i])
        else:
            d[i] = d1
            continue
        for j in range(1, k + 1):
            frac = (j * c - d0) / step if step != 0.0 else 0.0
            t = t0 + np.int64(frac * dt + 0.5)
            if t < t0:
                t = t0
            elif t > t0 + dt:
                t = t0 + dt
            if t - last_t[i] >= refractory:
                out_x[n] = i % width
                out_y[n] = i // width
                out_t[n] = t
                out_p[n] = pol
                last_t[i] = t
                n += 1
        d[i] = d1 - k * c
    return n


class EventSimulator:
    """Stateful pixel array: :meth:`reset` with the first sample, then :meth:`step` per sample."""

    def __init__(self, width: int, height: int, params: EsimParams = EsimParams()):
        self.width, self.height, self.params = width, height, params
        self.rng = np.random.default_rng(params.seed)
        n = width * height
        self.c_on = np.maximum(params.threshold_on + params.sigma * self.rng.standard_normal(n),
                               0.01)
        self.c_off = np.maximum(params.threshold_off + params.sigma * self.rng.standard_normal(n),
                                0.01)
        self._d = np.zeros(n)  # L - reference, kept in (-C_off, C_on)
        self._last_log: np.ndarray | None = None
        self._last_t = np.full(n, np.iinfo(np.int64).min // 2, dtype=np.int64)
        self.t_ns: int | None = None
        #: flat indices of the hot pixels (own generator: the thresholds above stay the same)
        n_hot = int(round(params.hot_pixel_fraction * n))
        self.hot = np.sort(np.random.default_rng([params.seed, 1]).choice(n, n_hot, replace=False)
                           ) if n_hot and params.hot_pixel_rate > 0 else np.zeros(0, np.int64)

    @property
    def started(self) -> bool:
        return self._last_log is not None

    def reset(self, log_frame: np.ndarray, t_ns: int) -> None:
        """Memorise the first sample (all references at the current level)."""
        self._last_log = np.asarray(log_frame, dtype=np.float64).reshape(-1).copy()
        if self._last_log.shape[0] != self.width * self.height:
            raise ValueError(f"frame has {self._last_log.shape[0]} pixels, expected "
                             f"{self.width}x{self.height}")
        self._d[:] = 0.0
        if self.params.leak_rate > 0:  # random leak phase per pixel
            self._d[:] = self.rng.uniform(0.0, 1.0, self._d.shape) * self.c_on
        self._last_t[:] = np.iinfo(np.int64).min // 2
        self.t_ns = int(t_ns)

    def step(self, log_frame: np.ndarray, t_ns: int) -> np.ndarray:
        """Events between the previous sample and this one, sorted by time."""
        if self._last_log is None or self.t_ns is None:
            raise RuntimeError("call reset() with the first sample before step()")
        t_ns = int(t_ns)
        dt = t_ns - self.t_ns
        if dt < 0:
            raise ValueError(f"sample times must not decrease ({t_ns} after {self.t_ns})")
        log_now = np.asarray(log_frame, dtype=np.float64).reshape(-1)
        delta = log_now - self._last_log
        p = self.params
        if p.leak_rate > 0:
            delta = delta + p.leak_rate * self.c_on * (dt * 1e-9)
        events = empty_events()
        if dt > 0:
            cap = _count(self._d, delta, self.c_on, self.c_off)
            x = np.empty(cap, np.uint16)
            y = np.empty(cap, np.uint16)
            t = np.empty(cap, np.int64)
            pol = np.empty(cap, np.int8)
            n = _fill(self._d, delta, self.c_on, self.c_off, self._last_t, np.int64(self.t_ns),
                      np.int64(dt), np.int64(p.refractory_ns), self.width, x, y, t, pol)
            events = _pack(x[:n], y[:n], t[:n], pol[:n])
            if p.shot_noise_rate > 0:
                events = np.concatenate([events, self._shot_noise(self.t_ns, dt)])
            if len(self.hot):
                events = np.concatenate([events, self._hot_events(self.t_ns, dt)])
            events = events[np.argsort(events["t"], kind="stable")]
        else:
            self._d += delta  # a repeated timestamp: take the new level without events
        self._last_log = log_now.copy()
        self.t_ns = t_ns
        return events

    def _shot_noise(self, t0: int, dt: int) -> np.ndarray:
        n_pix = self.width * self.height
        n = int(self.rng.poisson(self.params.shot_noise_rate * n_pix * dt * 1e-9))
        pix = self.rng.integers(0, n_pix, n)
        t = t0 + 1 + self.rng.integers(0, dt, n)
        return _pack(pix % self.width, pix // self.width, t, self.rng.integers(0, 2, n))

    def _hot_events(self, t0: int, dt: int) -> np.ndarray:
        n = int(self.rng.poisson(self.params.hot_pixel_rate * len(self.hot) * dt * 1e-9))
        pix = self.hot[self.rng.integers(0, len(self.hot), n)]
        t = t0 + 1 + self.rng.integers(0, dt, n)
        return _pack(pix % self.width, pix // self.width, t, self.rng.integers(0, 2, n))


def _pack(x, y, t, p) -> np.ndarray:
    out = np.empty(len(x), dtype=EVENT_DTYPE)
    out["x"], out["y"], out["t"], out["p"] = x, y, t, p
    return out


def iter_events_from_frames(frames: Iterable[tuple[int, np.ndarray]], params: EsimParams
                            ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(t_ns, frame, events since the previous frame) for each (t_ns, frame) of a sequence."""
    sim: EventSimulator | None = None
    for t_ns, frame in frames:
        log_frame = log_intensity(frame, params.eps)
        if sim is None:
            sim = EventSimulator(log_frame.shape[1], log_frame.shape[0], params)
            sim.reset(log_frame, t_ns)
            yield int(t_ns), frame, empty_events()
        else:
            yield int(t_ns), frame, sim.step(log_frame, t_ns)


def simulate_from_frames(frames: Iterable[tuple[int, np.ndarray]],
                         params: EsimParams = EsimParams()) -> np.ndarray:
    """All events of a frame sequence ((t_ns, HxW or HxWx3 image) pairs), sorted by time."""
    chunks = [ev for _, _, ev in iter_events_from_frames(frames, params)]
    return np.concatenate(chunks) if chunks else empty_events()
