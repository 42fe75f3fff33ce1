"""Sensor noise statistics (event_fm.evaluation.sensor_noise): known synthetic noise is
recovered, the real driver bags give plausible figures, and the simulator's default pixel model
matches the real bags it was fitted to."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from event_fm.evaluation import sensor_noise as sn
from event_fm.io.events import make_events
from event_fm.sim.esim import EsimParams

W, H = 128, 96
S = 1_000_000_000
REAL = ("evt3_metavision_640x480", "evt3_trigger_1280x720", "libcaer_cmp_davis346",
        "libcaer_rollover_640x480")


def _poisson_noise(rng, rate_hz, duration_s, on_fraction, width=W, height=H):
    n = rng.poisson(rate_hz * width * height * duration_s)
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n),
                       rng.integers(0, int(duration_s * S), n), rng.random(n) < on_fraction)


def _moving_bar(duration_s, speed_px_s=400.0, x0=0, x1=40):
    """OFF events of a vertical edge sweeping columns x0..x1 back and forth (every row fires
    when the edge passes, 1 / speed apart per column): dense signal in one region."""
    ts, xs, ys = [], [], []
    period = (x1 - x0) / speed_px_s
    for k in range(int(duration_s / period)):
        for c in range(x1 - x0):
            col = x0 + (c if k % 2 == 0 else x1 - x0 - 1 - c)
            t = int((k * period + c / speed_px_s) * S)
            for rep in range(3):  # three events per crossing, 300 us apart
                ts.append(np.full(H, t + rep * 300_000))
                xs.append(np.full(H, col))
                ys.append(np.arange(H))
    t = np.concatenate(ts)
    return make_events(np.concatenate(xs), np.concatenate(ys), t, np.zeros(len(t)))


def _sorted(*parts):
    ev = np.concatenate(parts)
    return ev[np.argsort(ev["t"], kind="stable")]


def test_empty_and_malformed_input_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="no events"):
        sn.noise_stats(make_events([], [], [], []), W, H)
    with pytest.raises(ValueError, match="fields x, y, t, p"):
        sn.noise_stats(np.zeros(5), W, H)
    with pytest.raises(ValueError, match="outside"):
        sn.noise_stats(make_events([W], [0], [0], [1]), W, H)
    with pytest.raises(ValueError, match="at least"):
        sn.noise_stats(make_events([1, 2], [1, 2], [0, 10], [1, 0]), W, H)


def test_isolation_criterion_matches_brute_force():
    rng = np.random.default_rng(3)
    n = 600
    ev = make_events(rng.integers(0, 20, n), rng.integers(0, 15, n),
                     np.sort(rng.integers(0, 200_000_000, n)), rng.integers(0, 2, n))
    got = sn.isolated_mask(ev, 20, 15, window_ns=5_000_000)
    x, y, t = (ev[k].astype(np.int64) for k in ("x", "y", "t"))
    near = ((np.abs(x[:, None] - x[None]) <= 1) & (np.abs(y[:, None] - y[None]) <= 1)
            & (np.abs(t[:, None] - t[None]) <= 5_000_000))
    np.testing.assert_array_equal(got, near.sum(1) == 1)
    assert 0 < got.sum() < n


@pytest.mark.parametrize("rate", [0.2, 1.0, 3.0])
def test_background_rate_and_its_on_share_are_recovered_next_to_dense_signal(rate):
    rng = np.random.default_rng(int(rate * 10))
    duration = 4.0
    noise = _poisson_noise(rng, rate, duration, on_fraction=0.7)
    events = _sorted(noise, _moving_bar(duration))
    stats = sn.noise_stats(events, W, H)
    assert stats.ba_rate == pytest.approx(rate, rel=0.12)
    assert stats.on_fraction_isolated == pytest.approx(0.7, abs=0.04)
    # the bar's columns are busy most of the time (noise pairs, more of them at higher rates,
    # also take their neighbourhood out of the quiet volume)
    assert 0.3 < stats.quiet_fraction < 0.9
    assert stats.on_fraction == pytest.approx((noise["p"] > 0).sum() / len(events), abs=1e-9)
    assert stats.hot_pixels == 0
    assert stats.event_rate == pytest.approx(len(events) / stats.duration_s)


def test_a_known_hot_pixel_is_found_and_its_rate_measured():
    rng = np.random.default_rng(1)
    duration = 3.0
    noise = _poisson_noise(rng, 0.5, duration, on_fraction=0.5)
    n_hot = rng.poisson(200 * duration)
    hot = make_events(np.full(n_hot, 17), np.full(n_hot, 40),
                      rng.integers(0, int(duration * S), n_hot), np.ones(n_hot))
    events = _sorted(noise, hot, _moving_bar(duration, x0=70, x1=110))
    mask = sn.hot_pixels(events, W, H)
    assert mask.sum() == 1 and mask[40, 17]
    stats = sn.noise_stats(events, W, H)
    assert stats.hot_pixels == 1 and stats.hot_pixel_fraction == pytest.approx(1 / (W * H))
    assert stats.hot_pixel_rate == pytest.approx(200, rel=0.1)
    assert stats.hot_event_fraction == pytest.approx(n_hot / len(events), rel=0.05)
    # the hot pixel's events are not background activity
    assert stats.ba_rate == pytest.approx(0.5, rel=0.15)


def test_a_known_refractory_period_is_the_lower_edge_of_the_intervals():
    rng = np.random.default_rng(2)
    refractory = 300_000
    parts = []
    for pix in range(2000):  # bursts: gaps of refractory + exponential(1 ms)
        gaps = refractory + rng.exponential(1_000_000, 40).astype(np.int64)
        t = rng.integers(0, 10_000_000) + np.cumsum(gaps)
        parts.append(make_events(np.full(40, pix % W), np.full(40, pix // W), t,
                                 rng.integers(0, 2, 40)))
    events = _sorted(*parts)
    stats = sn.noise_stats(events, W, H)
    assert stats.iei_min_us >= refractory / 1e3
    assert refractory / 1e3 <= stats.refractory_us <= 1.02 * refractory / 1e3
    assert stats.iei_p5_us == pytest.approx((refractory + 1_000_000 * -math.log(0.95)) / 1e3,
                                            rel=0.05)
    assert stats.iei_median_us == pytest.approx((refractory + 1e6 * math.log(2)) / 1e3, rel=0.05)
    assert stats.on_fraction == pytest.approx(0.5, abs=0.02)


@pytest.fixture(scope="module")
def real_stats(real_bags):
    return {name: sn.recording_stats(real_bags / name) for name in REAL}


def test_real_bag_statistics_are_finite_and_plausible(real_stats):
    for name, s in real_stats.items():
        values = s.to_dict()
        assert all(math.isfinite(v) for v in values.values()), (name, values)
        assert 1e-3 < s.ba_rate < 5.0, name  # Hz per pixel
        assert 0.3 < s.quiet_fraction <= 1.0
        assert s.hot_pixel_fraction < 0.01 and 0 <= s.hot_event_fraction < 0.5
        assert 10 < s.refractory_us < 5000 and s.iei_min_us <= s.refractory_us
        assert 0.1 < s.on_fraction < 0.9 and 0.05 < s.on_fraction_isolated < 0.95
        assert 1e3 < s.event_rate < 1e8
    trigger = real_stats["evt3_trigger_1280x720"]
    assert (trigger.width, trigger.height) == (1280, 720)
    assert trigger.n_events == pytest.approx(trigger.event_rate * trigger.duration_s)


def test_simulator_defaults_are_the_real_bags_medians(real_stats):
    fit = sn.fit_noise_params(list(real_stats.values()))
    defaults = EsimParams()
    names = {f.name for f in fields(EsimParams)}
    for key in ("refractory_ns", "shot_noise_rate", "leak_rate", "hot_pixel_fraction",
                "hot_pixel_rate"):
        assert key in names
        assert getattr(defaults, key) == pytest.approx(fit[key], rel=0.1, abs=1e-4), key


def test_simulator_noise_with_its_defaults_matches_the_real_median(real_stats):
    real = list(real_stats.values())
    ba = float(np.median([s.ba_rate for s in real]))
    on = float(np.median([s.on_fraction_isolated for s in real]))
    hot = float(np.median([s.hot_pixel_fraction for s in real]))
    events = sn.simulated_events(None, seed=5, width=240, height=180, duration=3.0)
    sim = sn.noise_stats(events, 240, 180)
    assert ba / 2 < sim.ba_rate < 2 * ba
    assert on / 2 < sim.on_fraction_isolated < 2 * on
    assert abs(sim.on_fraction_isolated - on) < 0.05
    assert sim.hot_pixels >= 1 and hot / 2 < sim.hot_pixel_fraction < 2 * hot
    assert sim.hot_pixel_rate == pytest.approx(EsimParams().hot_pixel_rate, rel=0.3)
    # a procedural scene with the defaults has the same hot pixels and a refractory floor
    scene = sn.simulated_events("room", seed=1, width=96, height=72, duration=0.5)
    iei = sn.inter_event_intervals(scene, 96, 72, exclude=sn.hot_pixels(scene, 96, 72))
    signal_iei = iei[iei > 0]
    assert np.percentile(signal_iei, 0.5) >= 0.9 * EsimParams().refractory_ns
