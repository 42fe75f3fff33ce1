"""Video-to-events simulation: the pixel model, its noise, and reading user footage."""

from __future__ import annotations

import numpy as np
import pytest

from event_fm.sim.esim import EsimParams, EventSimulator, log_intensity, simulate_from_frames
from event_fm.sim.frames_io import read_frames

W, H = 64, 48
MS = 1_000_000
IDEAL = dict(sigma=0.0, refractory_ns=0, shot_noise_rate=0.0, leak_rate=0.0,
             hot_pixel_fraction=0.0)
NO_NOISE = dict(shot_noise_rate=0.0, leak_rate=0.0, hot_pixel_fraction=0.0)


def _ramp_frames(delta_log: float, n: int = 11, base: float = 0.2, eps: float = 0.01,
                 region=np.s_[:, : W // 2]):
    """Grey frames whose ``region`` changes log(I + eps) linearly by ``delta_log`` in n-1 steps."""
    frames = []
    for k in range(n):
        img = np.full((H, W), base, dtype=np.float64)
        level = np.log(base + eps) + delta_log * k / (n - 1)
        img[region] = np.exp(level) - eps
        frames.append((k * 10 * MS, img))
    return frames


def _per_pixel(events, polarity=None):
    ev = events if polarity is None else events[events["p"] == polarity]
    counts = np.zeros((H, W), dtype=np.int64)
    np.add.at(counts, (ev["y"].astype(int), ev["x"].astype(int)), 1)
    return counts


@pytest.mark.parametrize("threshold", [0.2, 0.25, 0.3])
def test_brightening_half_gives_floor_delta_over_threshold_on_events_there_only(threshold):
    delta = 1.13
    events = simulate_from_frames(_ramp_frames(delta), EsimParams(threshold, threshold, **IDEAL))
    counts = _per_pixel(events)
    expected = int(np.floor(delta / threshold))
    assert np.all(counts[:, : W // 2] == expected)
    assert np.all(counts[:, W // 2:] == 0)
    assert np.all(events["p"] == 1)


def test_darkening_gives_off_events_with_interpolated_times():
    frames = _ramp_frames(-0.9, n=2, region=np.s_[10:20, 30:40])
    events = simulate_from_frames(frames, EsimParams(0.25, 0.25, **IDEAL))
    assert np.all(events["p"] == 0)
    assert np.all(_per_pixel(events)[10:20, 30:40] == 3) and len(events) == 300
    # linear interpolation: crossings at 0.25/0.9, 0.5/0.9, 0.75/0.9 of the 10 ms interval
    expected = np.round(np.array([0.25, 0.5, 0.75]) / 0.9 * 10 * MS)
    np.testing.assert_allclose(np.unique(events["t"]), expected, atol=1)


def test_event_count_falls_as_threshold_rises():
    rng = np.random.default_rng(0)
    texture = rng.uniform(0.05, 1.0, (H, W + 40))
    frames = [(k * MS, texture[:, k: k + W]) for k in range(0, 40, 2)]
    counts = [len(simulate_from_frames(frames, EsimParams(c, c, seed=1))) for c in
              (0.1, 0.2, 0.4, 0.8)]
    assert counts[0] > counts[1] > counts[2] > counts[3] > 0


def test_static_scene_makes_no_events_without_noise_and_poisson_noise_with_it():
    img = np.random.default_rng(1).uniform(0, 1, (H, W))
    frames = [(k * 10 * MS, img) for k in range(101)]  # 1 s
    assert len(simulate_from_frames(frames, EsimParams(**IDEAL))) == 0
    rate = 2.0
    events = simulate_from_frames(frames, EsimParams(**{**NO_NOISE, "shot_noise_rate": rate},
                                                     sigma=0.0))
    expected = rate * W * H * 1.0
    assert abs(len(events) - expected) < 5 * np.sqrt(expected)
    assert 0.4 < events["p"].mean() < 0.6
    leak = simulate_from_frames(frames, EsimParams(**{**NO_NOISE, "leak_rate": rate}, sigma=0.0))
    assert np.all(leak["p"] == 1)
    assert abs(len(leak) - expected) < 0.05 * expected


def test_refractory_period_limits_each_pixels_rate():
    frames = _ramp_frames(10.1, n=2)  # 40 crossings in 10 ms per pixel of the left half
    refractory = 1 * MS
    params = EsimParams(0.25, 0.25, sigma=0.0, refractory_ns=refractory)
    events = simulate_from_frames(frames, params)
    counts = _per_pixel(events)
    span, gap = 10 * MS, 10 * MS / 40
    assert counts.max() <= span // refractory + 1  # never faster than one per period
    assert counts[:, : W // 2].min() >= span // (refractory + gap)  # next crossing after it
    free = simulate_from_frames(frames, EsimParams(0.25, 0.25, **IDEAL))
    assert _per_pixel(free)[:, : W // 2].min() == 40
    for key in [(0, 0), (47, 31)]:  # gaps between one pixel's events
        sel = (events["y"] == key[0]) & (events["x"] == key[1])
        assert np.diff(events["t"][sel]).min() >= refractory


def test_timestamps_sorted_and_within_each_sample_interval():
    rng = np.random.default_rng(2)
    texture = rng.uniform(0.05, 1.0, (H, W + 40))
    sim = EventSimulator(W, H, EsimParams(shot_noise_rate=5.0, leak_rate=1.0, seed=3))
    sim.reset(log_intensity(texture[:, :W]), 0)
    for k in range(1, 20):
        t0, t1 = (k - 1) * 3 * MS, k * 3 * MS
        events = sim.step(log_intensity(texture[:, k: k + W]), t1)
        assert len(events) > 0
        assert np.all(np.diff(events["t"]) >= 0)
        assert events["t"].min() >= t0 and events["t"].max() <= t1
        assert events["x"].max() < W and events["y"].max() < H


def test_per_pixel_thresholds_are_fixed_by_the_seed():
    a, b = (EventSimulator(W, H, EsimParams(sigma=0.05, seed=s)) for s in (4, 4))
    c = EventSimulator(W, H, EsimParams(sigma=0.05, seed=5))
    np.testing.assert_array_equal(a.c_on, b.c_on)
    assert not np.array_equal(a.c_on, c.c_on)
    assert 0.04 < a.c_on.std() < 0.06


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError):
        EsimParams(threshold_on=-0.1)
    with pytest.raises(ValueError):
        EsimParams(shot_noise_rate=-1)


def _moving_bar(k: int) -> np.ndarray:
    img = np.full((H, W, 3), 40, dtype=np.uint8)
    img[:, 5 + 4 * k: 13 + 4 * k] = 220
    return img


def test_folder_of_images_with_timestamps_and_a_video_file(tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(8):
        cv2.imwrite(str(folder / f"img{k}.png"), _moving_bar(k)[..., ::-1])
    (folder / "timestamps.txt").write_text("".join(f"{100 + 0.01 * k:.3f}\n" for k in range(8)))
    frames = list(read_frames(folder))
    assert [t for t, _ in frames] == [k * 10 * MS for k in range(8)]
    np.testing.assert_array_equal(frames[3][1], _moving_bar(3))
    events = simulate_from_frames(frames, EsimParams(**IDEAL))
    assert len(events) > 0 and np.all(np.diff(events["t"]) >= 0)
    assert set(np.unique(events["p"])) == {0, 1}  # leading edge ON, trailing edge OFF

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (W, H))
    for k in range(8):
        writer.write(cv2.cvtColor(_moving_bar(k), cv2.COLOR_RGB2BGR))
    writer.release()
    decoded = list(read_frames(video))
    assert len(decoded) == 8 and decoded[1][0] == 40 * MS
    assert decoded[0][1].shape == (H, W, 3)
    assert len(simulate_from_frames(decoded, EsimParams(**IDEAL))) > 0
    resized = next(read_frames(video, fps=50.0, size=(32, 24)))[1]
    assert resized.shape == (24, 32, 3)
    with pytest.raises(ValueError, match="fps"):
        next(read_frames(_no_stamps(folder, tmp_path)))


def _no_stamps(folder, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.png").write_bytes((folder / "img0.png").read_bytes())
    return plain
