"""Sensor noise statistics of an event recording: background activity, hot pixels, refractory
behaviour and ON/OFF balance, measured the same way on real driver bags and on simulated ones.

Everything works on one event array of the project's ``EVENT_DTYPE`` (x, y, t in ns, p) plus
the sensor size, with vectorised numpy: events are sorted by pixel, then time, once, and every
neighbourhood query is a ``searchsorted`` on the combined (pixel, time) key.

- :func:`noise_stats` -> :class:`NoiseStats` (every field documented with how it is measured),
- :func:`pixel_rates`, :func:`inter_event_intervals`, :func:`isolated_mask`, :func:`hot_pixels`:
  the pieces, for plots and tests,
- :func:`fit_noise_params`: the simulator's noise parameters from real recordings' stats,
- :func:`recording_stats` reads a bag or vendor file (``event_fm.io.read_events``),
- :func:`simulated_stats` runs the project's simulator (a procedural scene, or a static scene
  where only the pixel noise fires) and measures its events.

Core layer: numpy, ``event_fm.io`` and ``event_fm.sim`` only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from event_fm.io.events import EVENT_DTYPE

#: Isolation radius of the background-activity criterion: 3x3 pixels (the pixel itself and its
#: 8 neighbours), +-5 ms — the usual BA-filter support (Delbruck's BAF; v2e's 1-10 ms).
BA_RADIUS_PX = 1
BA_WINDOW_NS = 5_000_000
#: A pixel is hot when its rate is at least this many times both the median active pixel's and
#: the median of its own 8 neighbours' rates, and it has at least HOT_MIN_EVENTS events.
HOT_FACTOR = 10.0
HOT_MIN_EVENTS = 20
#: Percentile of the same-pixel inter-event intervals taken as the refractory period.
REFRACTORY_PERCENTILE = 0.1
MIN_DURATION_NS = 1_000_000
#: Guard around signal: an isolated event counts as background activity only when its
#: space-time cell (1 pixel x a 20 ms bin) has no non-isolated event within 5x5 pixels in the
#: same or an adjacent bin (sparse edges of a slowly moving scene give isolated events too,
#: next to the edge's other events).
GUARD_RADIUS_PX = 2
GUARD_WINDOW_NS = 20_000_000
#: Largest guard grid (time bins x pixels) held in memory at once (100 MB; 2 s of 1280x720).
MAX_GUARD_CELLS = 100_000_000


@dataclass(frozen=True)
class NoiseStats:
    """Noise statistics of one recording. Rates are in Hz (events per second), per pixel where
    the name says so; intervals in microseconds."""

    #: Sensor geometry and size of the recording.
    width: int
    height: int
    n_events: int
    #: Time from the first to the last event, seconds.
    duration_s: float
    #: All events / duration.
    event_rate: float
    #: All events / (pixels x duration): the mean per-pixel rate.
    event_rate_per_pixel: float
    #: Fraction of pixels with at least one event.
    active_pixel_fraction: float
    #: Median per-pixel rate over active pixels (count / duration).
    median_active_rate: float
    #: Background activity, Hz per pixel. An event is isolated when no other event lies within
    #: +-``BA_WINDOW_NS`` (5 ms) in its 3x3 neighbourhood, itself included (the BA-filter
    #: criterion). Hot pixels are left out. The rate is the isolated events in quiet cells over
    #: the quiet pixel-seconds: cells (1 pixel x ``GUARD_WINDOW_NS``) with no non-isolated
    #: event within ``GUARD_RADIUS_PX`` pixels in the same or an adjacent bin. It is corrected
    #: for two noise events falling in each other's neighbourhood (a Poisson event is isolated
    #: with probability exp(-r a), a = 9 x 2 x 5 ms; r exp(-r a) = measured, solved with the
    #: Lambert W function). Sparse scene edges still pass: on a busy scene this is an upper
    #: bound of the sensor's own noise.
    ba_rate: float
    #: Share of all events that pass the isolation criterion.
    isolated_fraction: float
    #: Share of the recording's pixel-seconds that is quiet (the BA rate's denominator).
    #: ``isolated_fraction`` counts every isolated event, quiet cell or not.
    quiet_fraction: float
    #: Pixels whose rate is >= ``HOT_FACTOR`` x both the median active pixel's rate and the
    #: median of their 8 neighbours' rates, with >= ``HOT_MIN_EVENTS`` events (so a busy edge,
    #: whose neighbours are busy too, is not hot): their number, share of all pixels, median
    #: rate (Hz; 0 when there are none) and share of all events.
    hot_pixels: int
    hot_pixel_fraction: float
    hot_pixel_rate: float
    hot_event_fraction: float
    #: Intervals between consecutive events of the same pixel (any polarity), hot pixels
    #: excluded: minimum, 1st and 5th percentile, median; microseconds.
    iei_min_us: float
    iei_p1_us: float
    iei_p5_us: float
    iei_median_us: float
    #: Refractory period estimate: the ``REFRACTORY_PERCENTILE`` (0.1th) percentile of the
    #: same intervals — the lower edge of the distribution, robust to a few timestamp
    #: collisions. A pixel fires back to back only when the scene drives it that fast, so on a
    #: slow scene this is an upper bound of the pixel's dead time.
    refractory_us: float
    #: Fraction of ON events over all events and over the background (BA) events: the
    #: isolated events in quiet cells (NaN when there are none).
    on_fraction: float
    on_fraction_isolated: float

    def to_dict(self) -> dict:
        return asdict(self)


def _check(events: np.ndarray, width: int, height: int) -> np.ndarray:
    events = np.asarray(events)
    if events.dtype.names is None or not {"x", "y", "t", "p"} <= set(events.dtype.names):
        raise ValueError(f"expected an event array with fields x, y, t, p (EVENT_DTYPE "
                         f"{EVENT_DTYPE}), got dtype {events.dtype}")
    if width < 1 or height < 1:
        raise ValueError(f"sensor size must be positive, got {width}x{height}")
    if events.shape[0] == 0:
        raise ValueError("no events: noise statistics need a non-empty recording")
    if int(events["x"].max()) >= width or int(events["y"].max()) >= height:
        raise ValueError(f"events outside the {width}x{height} sensor")
    return events


def _duration_ns(events: np.ndarray) -> int:
    t = events["t"]
    span = int(t.max()) - int(t.min())
    if span < MIN_DURATION_NS:
        raise ValueError(f"recording spans {span} ns; noise statistics need at least "
                         f"{MIN_DURATION_NS} ns")
    return span


def pixel_index(events: np.ndarray, width: int) -> np.ndarray:
    return events["y"].astype(np.int64) * width + events["x"].astype(np.int64)


def pixel_counts(events: np.ndarray, width: int, height: int) -> np.ndarray:
    """Events per pixel, an (height, width) int64 image."""
    events = _check(events, width, height)
    counts = np.bincount(pixel_index(events, width), minlength=width * height)
    return counts.reshape(height, width)


def pixel_rates(events: np.ndarray, width: int, height: int) -> np.ndarray:
    """Per-pixel event rate (Hz): counts / the recording's duration, (height, width)."""
    return pixel_counts(events, width, height) / (_duration_ns(events) * 1e-9)


def _neighbour_median(counts: np.ndarray) -> np.ndarray:
    """Median of each pixel's 8 neighbours (edges padded by reflection)."""
    padded = np.pad(counts, 1, mode="reflect" if min(counts.shape) > 1 else "edge")
    h, w = counts.shape
    stack = [padded[1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]
             for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    return np.median(np.stack(stack), axis=0)


def hot_pixels(events: np.ndarray, width: int, height: int, factor: float = HOT_FACTOR,
               min_events: int = HOT_MIN_EVENTS) -> np.ndarray:
    """Boolean (height, width) mask of hot pixels: count >= ``factor`` x max(median count of
    the active pixels, median count of the pixel's 8 neighbours) and >= ``min_events``."""
    counts = pixel_counts(events, width, height)
    active = counts[counts > 0]
    floor = np.maximum(np.median(active), _neighbour_median(counts))
    return (counts >= factor * floor) & (counts >= min_events)


def _sorted_by_pixel(events: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, pixel, t) of the events sorted by pixel, then time."""
    pix = pixel_index(events, width)
    t = events["t"].astype(np.int64)
    order = np.lexsort((t, pix))
    return order, pix[order], t[order]


def inter_event_intervals(events: np.ndarray, width: int, height: int,
                          exclude: np.ndarray | None = None) -> np.ndarray:
    """Intervals (ns) between consecutive events of the same pixel, any polarity; pixels set in
    the (height, width) mask ``exclude`` are left out."""
    events = _check(events, width, height)
    _, pix, t = _sorted_by_pixel(events, width)
    if exclude is not None:
        keep = ~np.asarray(exclude, bool).reshape(-1)[pix]
        pix, t = pix[keep], t[keep]
    same = pix[1:] == pix[:-1]
    return (t[1:] - t[:-1])[same]


def isolated_mask(events: np.ndarray, width: int, height: int, window_ns: int = BA_WINDOW_NS,
                  radius: int = BA_RADIUS_PX) -> np.ndarray:
    """True for each event with no other event (any polarity) within +-``window_ns`` in the
    (2 radius + 1)^2 pixels around it, the pixel itself included (the BA-filter criterion)."""
    events = _check(events, width, height)
    order, pix, t = _sorted_by_pixel(events, width)
    t0 = int(t.min())
    span = int(t.max()) - t0 + 2 * window_ns + 1
    if (width * height + 1) * span >= 2 ** 62:
        raise ValueError("recording too long for one (pixel, time) key; split it")
    rel = t - t0 + window_ns
    key = pix * span + rel
    xs = pix % width
    ys = pix // width
    neighbours = np.zeros(len(t), np.int64)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            nx, ny = xs + dx, ys + dy
            ok = (nx >= 0) & (nx < width) & (ny >= 0) & (ny < height)
            q = (ny * width + nx) * span
            lo = np.searchsorted(key, q + rel - window_ns, side="left")
            hi = np.searchsorted(key, q + rel + window_ns, side="right")
            neighbours += np.where(ok, hi - lo, 0)
    out = np.empty(len(t), bool)
    out[order] = neighbours <= 1  # the event itself
    return out


def _lambert_w0(z: float) -> float:
    """Principal branch of Lambert W for z in [-1/e, 0] (Halley's iteration)."""
    if z == 0.0:
        return 0.0
    w = z if z > -0.25 else -0.5
    for _ in range(100):
        e = math.exp(w)
        f = w * e - z
        step = f / (e * (w + 1) - (w + 2) * f / (2 * w + 2))
        w -= step
        if abs(step) < 1e-14:
            break
    return w


def _guard_cells(signal: np.ndarray, width: int, height: int, t_first: int, n_bins: int,
                 bin_ns: int, radius: int) -> np.ndarray:
    """Boolean (n_bins, height, width) grid of the space-time cells near signal: a cell (time
    bin of ``bin_ns``, pixel) is marked when a ``signal`` event lies within ``radius`` pixels
    (square) and in the same or an adjacent bin."""
    grid = np.zeros((n_bins, height, width), bool)
    if len(signal):
        b = np.minimum((signal["t"].astype(np.int64) - t_first) // bin_ns, n_bins - 1)
        grid[b, signal["y"].astype(np.int64), signal["x"].astype(np.int64)] = True
    for axis, r in ((2, radius), (1, radius), (0, 1)):  # separable square dilation
        if r <= 0:
            continue
        out = grid.copy()
        n = grid.shape[axis]
        for shift in range(1, r + 1):
            if shift >= n:
                break
            src = [slice(None)] * 3
            dst = [slice(None)] * 3
            src[axis], dst[axis] = slice(shift, None), slice(None, n - shift)
            out[tuple(dst)] |= grid[tuple(src)]
            out[tuple(src)] |= grid[tuple(dst)]
        grid = out
    return grid


def noise_stats(events: np.ndarray, width: int, height: int, window_ns: int = BA_WINDOW_NS,
                hot_factor: float = HOT_FACTOR, guard_px: int = GUARD_RADIUS_PX,
                guard_ns: int = GUARD_WINDOW_NS) -> NoiseStats:
    """Every statistic of :class:`NoiseStats` for one recording (see its fields for how each is
    measured). Raises ValueError on an empty array, events outside the sensor, or a recording
    shorter than 1 ms."""
    events = _check(events, width, height)
    span_ns = _duration_ns(events)
    duration = span_ns * 1e-9
    n_pix = width * height
    n = int(events.shape[0])
    counts = pixel_counts(events, width, height)
    active = counts[counts > 0]
    hot = hot_pixels(events, width, height, factor=hot_factor)
    pix = pixel_index(events, width)
    on_hot = hot.reshape(-1)[pix]
    n_hot = int(hot.sum())

    cold = events[~on_hot]
    t_first = int(events["t"].min())
    iso = isolated_mask(cold, width, height, window_ns) if len(cold) else np.zeros(0, bool)
    # the guard: cells of guard_ns x 1 pixel near a non-isolated (signal) event are not quiet
    n_bins = max(1, -(-span_ns // guard_ns))
    if n_bins * n_pix > MAX_GUARD_CELLS:
        raise ValueError(f"{n_bins} x {n_pix} guard cells: split the recording (at most "
                         f"{MAX_GUARD_CELLS} cells)")
    near = _guard_cells(cold[~iso], width, height, t_first, n_bins, guard_ns, guard_px)
    near[:, hot] = True  # hot pixels are not part of the quiet volume
    bin_len = np.full(n_bins, guard_ns, np.int64)
    bin_len[-1] = span_ns - (n_bins - 1) * guard_ns  # the last bin ends at the last event
    quiet_ns = int(((~near).sum(axis=(1, 2)) * bin_len).sum())
    candidates = cold[iso]
    cb = np.minimum((candidates["t"].astype(np.int64) - t_first) // guard_ns, n_bins - 1)
    in_quiet = ~near[cb, candidates["y"].astype(np.int64), candidates["x"].astype(np.int64)]
    background = candidates[in_quiet]
    n_iso = int(iso.sum())
    n_bg = len(background)
    ba = 0.0
    if quiet_ns > 0 and n_bg:
        a = (2 * BA_RADIUS_PX + 1) ** 2 * 2 * window_ns * 1e-9
        raw = n_bg / (quiet_ns * 1e-9)
        # isolated with probability exp(-r a): solve r exp(-r a) = raw (the smaller root,
        # Lambert W); beyond the maximum 1 / (a e) the correction is undefined: take 1 / a
        x = raw * a
        ba = _lambert_w0(-x) / -a if x < math.exp(-1) else 1.0 / a

    iei = inter_event_intervals(events, width, height, exclude=hot)
    if len(iei):
        q = np.percentile(iei, [REFRACTORY_PERCENTILE, 1.0, 5.0, 50.0]) * 1e-3
        iei_min = float(iei.min()) * 1e-3
    else:
        q = np.full(4, np.nan)
        iei_min = math.nan
    on = events["p"] > 0
    return NoiseStats(
        width=int(width), height=int(height), n_events=n, duration_s=duration,
        event_rate=n / duration, event_rate_per_pixel=n / (n_pix * duration),
        active_pixel_fraction=float(active.size / n_pix),
        median_active_rate=float(np.median(active) / duration),
        ba_rate=float(ba), isolated_fraction=n_iso / n,
        quiet_fraction=float(quiet_ns / (n_pix * span_ns)),
        hot_pixels=n_hot, hot_pixel_fraction=n_hot / n_pix,
        hot_pixel_rate=float(np.median(counts[hot]) / duration) if n_hot else 0.0,
        hot_event_fraction=float(on_hot.sum() / n),
        iei_min_us=iei_min, iei_p1_us=float(q[1]), iei_p5_us=float(q[2]),
        iei_median_us=float(q[3]), refractory_us=float(q[0]),
        on_fraction=float(on.mean()),
        on_fraction_isolated=float(background["p"].astype(bool).mean()) if n_bg else math.nan,
    )


def fit_noise_params(real: list[NoiseStats]) -> dict[str, float]:
    """``EsimParams`` noise fields from the medians over real recordings: the background
    activity split into shot noise (50/50 polarity) and leak events (ON only) so that the ON
    share of the background matches, the refractory estimate, the hot-pixel fraction and rate
    (median over the recordings that have hot pixels). Also ``ba_rate`` and
    ``on_fraction_ba``, the medians themselves."""
    if not real:
        raise ValueError("no recordings to fit")
    ba = float(np.median([s.ba_rate for s in real]))
    on_values = [s.on_fraction_isolated for s in real if math.isfinite(s.on_fraction_isolated)]
    on = float(np.median(on_values)) if on_values else 0.5
    leak = max(2 * on - 1, 0.0) * ba
    hot_rates = [s.hot_pixel_rate for s in real if s.hot_pixels]
    return {
        "refractory_ns": float(np.median([s.refractory_us for s in real])) * 1e3,
        "shot_noise_rate": ba - leak,
        "leak_rate": leak,
        "hot_pixel_fraction": float(np.median([s.hot_pixel_fraction for s in real])),
        "hot_pixel_rate": float(np.median(hot_rates)) if hot_rates else 0.0,
        "ba_rate": ba,
        "on_fraction_ba": on,
    }


# --- recordings -------------------------------------------------------------------------------

def read_recording(path: str | Path, topic: str | None = None
                   ) -> tuple[np.ndarray, int, int]:
    """(events, width, height) of the first event topic of a bag or vendor file (or ``topic``).
    The geometry is the packets' (the largest seen, so a first empty packet cannot hide it)."""
    from event_fm.io.readers import read_events

    batches, width, height, first = [], 0, 0, None
    for batch in read_events(path, topic):
        if first is None and batch.topic:
            first = batch.topic
        if topic is None and first is not None and batch.topic and batch.topic != first:
            continue
        width, height = max(width, batch.width), max(height, batch.height)
        if len(batch):
            batches.append(batch.events)
    if not batches:
        raise ValueError(f"{path}: no events")
    events = np.concatenate(batches)
    if width == 0 or height == 0:  # files without geometry: the events' extent
        width, height = int(events["x"].max()) + 1, int(events["y"].max()) + 1
    return events, width, height


def recording_stats(path: str | Path, topic: str | None = None) -> NoiseStats:
    """:func:`noise_stats` of a bag (directory, .db3, .mcap) or vendor file."""
    events, width, height = read_recording(path, topic)
    return noise_stats(events, width, height)


def simulated_events(kind: str | None = "street", seed: int = 0, width: int = 346,
                     height: int = 260, duration: float = 1.0, esim=None) -> np.ndarray:
    """Events of the project's simulator with its default pixel model (or ``esim``): a
    procedural scene ``kind``, or with ``kind=None`` a static textured frame (only the pixel's
    noise fires: shot noise and leak events)."""
    from event_fm.sim.esim import EsimParams, simulate_from_frames

    params = esim if esim is not None else EsimParams(seed=seed)
    if kind is None:
        img = np.random.default_rng(seed).uniform(0.05, 1.0, (height, width))
        steps = max(2, int(round(duration * 100)) + 1)
        frames = ((int(round(k * duration * 1e9 / (steps - 1))), img) for k in range(steps))
        return simulate_from_frames(frames, params)
    from event_fm.sim.pipeline import SceneSimulator, SimConfig

    config = SimConfig(kind=kind, seed=seed, width=width, height=height, duration=duration,
                       esim=params)
    chunks = [f.events for f in SceneSimulator(config).frames()]
    return np.concatenate(chunks)


def simulated_stats(kind: str | None = "street", seed: int = 0, width: int = 346,
                    height: int = 260, duration: float = 1.0, esim=None) -> NoiseStats:
    """:func:`noise_stats` of :func:`simulated_events`."""
    events = simulated_events(kind, seed, width, height, duration, esim)
    return noise_stats(events, width, height)
