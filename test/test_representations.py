"""Representations against slow, obviously-correct Python references, on both backends.

The references loop over events one by one with Python ints (exact) for times; every backend and
input form must agree with them on random (hypothesis) and adversarial inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import event_fm.representations as R
from event_fm.io.events import EVENT_DTYPE, make_events
from event_fm.representations import voxel as voxel_module

EPOCH = 1_700_000_000_123_456_789  # a realistic absolute ns timestamp (~2023)
BACKENDS = ("torch", "numba")
CUDA = torch.cuda.is_available()

# ----------------------------------------------------------------------------- references


def _valid(ev, height, width, t0, t1):
    for x, y, t, p in zip(ev["x"].tolist(), ev["y"].tolist(), ev["t"].tolist(),
                          ev["p"].tolist(), strict=True):
        if x < width and y < height and t0 <= t <= t1:
            yield x, y, t - t0, p


def ref_voxel(ev, bins, height, width, t0, t1):
    out = np.zeros((bins, height, width))
    span = t1 - t0
    for x, y, dt, p in _valid(ev, height, width, t0, t1):
        tn = dt * (bins - 1) / span if span else 0.0  # Python ints: exact, then one rounding
        for b in range(bins):
            w = 1.0 - abs(tn - b)
            if w > 0:
                out[b, y, x] += w if p > 0 else -w
    return out


def ref_counts(ev, bins, height, width, t0, t1, split=True):
    out = np.zeros((bins * (2 if split else 1), height, width), np.int64)
    span = t1 - t0
    for x, y, dt, p in _valid(ev, height, width, t0, t1):
        b = min(dt * bins // span, bins - 1) if span else 0
        out[b + (bins if split and p > 0 else 0), y, x] += 1
    return out


def ref_last(ev, height, width, t0, t1, split):
    out = np.full((2 if split else 1, height, width), -1, np.int64)
    for x, y, dt, p in _valid(ev, height, width, t0, t1):
        c = 1 if split and p > 0 else 0
        out[c, y, x] = max(out[c, y, x], dt)
    return out


def ref_normalize(grid, mode):
    g = np.asarray(grid, np.float64)
    if mode == "none":
        return g
    if mode == "maxabs":
        m = np.abs(g).max()
        return g / m if m > 0 else g
    if mode == "zscore":
        std = g.std()
        return (g - g.mean()) / std if std > 0 else g - g.mean()
    nz = g != 0
    if not nz.any():
        return g
    mean, std = g[nz].mean(), g[nz].std()
    out = np.where(nz, g - mean, 0.0)
    return out / std if std > 0 else out


# ----------------------------------------------------------------------------- helpers


def events(rows) -> np.ndarray:
    rows = list(rows)
    if not rows:
        return np.zeros(0, EVENT_DTYPE)
    x, y, t, p = zip(*rows, strict=True)
    return make_events(x, y, np.array(t, np.int64), p)


def as_dict(ev, device="cpu"):
    return {k: torch.from_numpy(ev[k].astype(np.int64 if k != "p" else np.int8)).to(device)
            for k in "xytp"}


def as_n4(ev, device="cpu"):
    cols = [ev[k].astype(np.int64) for k in "xytp"]
    return torch.from_numpy(np.stack(cols, axis=1) if len(ev) else np.zeros((0, 4), np.int64)
                            ).to(device)


def forms(ev):
    """(backend, input) pairs covering every backend and input form."""
    return [("torch", ev), ("numba", ev), ("torch", as_dict(ev)), ("numba", as_n4(ev)),
            ("torch", as_n4(ev))]


def close(out, ref, n_events):
    # float32 accumulation: error grows with the number of events summed into one cell.
    np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=1e-5, atol=1e-6 * (1 + n_events))


# ----------------------------------------------------------------------------- random inputs


@st.composite
def scenes(draw, max_events=40):
    bins = draw(st.integers(1, 6))
    height, width = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    t0 = draw(st.sampled_from([0, EPOCH, -12_345]))
    span = draw(st.one_of(st.sampled_from([0, 1, 5, 1_000_000_007]), st.integers(0, 10_000)))
    on_bin = st.integers(0, max(bins - 1, 1)).map(lambda k: span * k // max(bins - 1, 1))
    offset = st.one_of(st.integers(-3, span + 3), st.sampled_from([0, span]), on_bin)
    rows = draw(st.lists(st.tuples(st.integers(0, width + 2), st.integers(0, height + 2),
                                   offset.map(lambda o: t0 + o), st.integers(0, 1)),
                         max_size=max_events))
    return events(rows), bins, height, width, t0, t0 + span


SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(scenes())
def test_voxel_grid_matches_reference_on_random_input(scene):
    ev, bins, height, width, t0, t1 = scene
    ref = ref_voxel(ev, bins, height, width, t0, t1)
    for backend, data in forms(ev):
        out = R.voxel_grid(data, bins, height, width, t0, t1, backend=backend)
        assert out.shape == (bins, height, width) and out.dtype == torch.float32
        close(out, ref, len(ev))


@SETTINGS
@given(scenes(), st.sampled_from(["nonzero_zscore", "zscore", "maxabs"]))
def test_normalized_voxel_grid_matches_reference(scene, mode):
    ev, bins, height, width, t0, t1 = scene
    raw = ref_voxel(ev, bins, height, width, t0, t1)
    ref = ref_normalize(raw, mode)
    values = raw[raw != 0] if mode == "nonzero_zscore" else raw
    # A std far below the values' magnitude (e.g. one event split 0.500001 / 0.499999) turns
    # float32 rounding of the grid into O(1) z-scores: only finiteness can be asked for there.
    well_conditioned = mode == "maxabs" or values.size == 0 or (
        values.std() > 1e-3 * np.abs(values).max())
    for backend in BACKENDS:
        out = R.voxel_grid(ev, bins, height, width, t0, t1, normalize=mode, backend=backend)
        assert torch.isfinite(out).all()
        if well_conditioned:
            np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=1e-4)


@SETTINGS
@given(scenes(), st.integers(1, 4))
def test_histogram_tencode_time_surface_match_references(scene, hist_bins):
    ev, _, height, width, t0, t1 = scene
    counts = ref_counts(ev, hist_bins, height, width, t0, t1)
    last = ref_last(ev, height, width, t0, t1, split=True)
    tau = 3_000.0
    ts = np.where(last >= 0, np.exp(-((t1 - t0) - last) / tau), 0.0)
    for backend, data in forms(ev):
        hist = R.stacked_histogram(data, hist_bins, height, width, t0, t1, max_count=2,
                                   backend=backend)
        assert hist.dtype == torch.uint8
        np.testing.assert_array_equal(hist.numpy(), np.minimum(counts, 2))
        surface = R.time_surface(data, height, width, t0, t1, tau=tau, backend=backend)
        np.testing.assert_allclose(surface.numpy(), ts, rtol=1e-6, atol=1e-7)
    presence = ref_counts(ev, 1, height, width, t0, t1) > 0
    any_last = ref_last(ev, height, width, t0, t1, split=False)[0]
    span = t1 - t0
    time = np.where(any_last >= 0, any_last / span if span else 1.0, 0.0)
    for backend in BACKENDS:
        code = R.tencode(ev, height, width, t0, t1, backend=backend).numpy()
        np.testing.assert_array_equal(code[0], presence[1])
        np.testing.assert_array_equal(code[2], presence[0])
        np.testing.assert_allclose(code[1], time, rtol=1e-6, atol=1e-7)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(scenes(max_events=15), min_size=1, max_size=4))
def test_voxel_grid_batch_of_lists_matches_single_calls(batch):
    bins, height, width = batch[0][1:4]
    sets = [s[0] for s in batch]
    bounds = np.array([[s[4], s[5]] for s in batch], np.int64)
    ref = np.stack([ref_voxel(ev, bins, height, width, a, b)
                    for ev, (a, b) in zip(sets, bounds.tolist(), strict=True)])
    for backend in BACKENDS:
        out = R.voxel_grid_batch(sets, bounds, bins, height, width, backend=backend)
        assert out.shape == (len(sets), bins, height, width)
        close(out, ref, sum(len(s) for s in sets))
    out = R.voxel_grid_batch([as_dict(s) for s in sets], bounds, bins, height, width)
    close(out, ref, sum(len(s) for s in sets))


# ----------------------------------------------------------------------------- voxel: exact cases


@pytest.mark.parametrize("backend", BACKENDS)
def test_events_on_bins_contribute_exactly_one(backend):
    # 5 bins over 400 ns: bins at 0, 100, 200, 300, 400; ON at t0 and t1, OFF at 150.
    ev = events([(0, 0, EPOCH, 1), (1, 0, EPOCH + 400, 1), (2, 0, EPOCH + 150, 0),
                 (3, 0, EPOCH + 300, 0)])
    out = R.voxel_grid(ev, 5, 1, 4, EPOCH, EPOCH + 400, backend=backend).numpy()
    expected = np.zeros((5, 1, 4), np.float32)
    expected[0, 0, 0] = 1.0
    expected[4, 0, 1] = 1.0
    expected[1, 0, 2] = expected[2, 0, 2] = -0.5
    expected[3, 0, 3] = -1.0
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_degenerate_window_puts_events_at_that_instant_in_bin_zero(backend):
    ev = events([(0, 0, 10, 1), (0, 0, 10, 1), (1, 0, 10, 0), (1, 0, 11, 1), (1, 0, 9, 1)])
    stats = {}
    out = R.voxel_grid(ev, 3, 1, 2, 10, 10, backend=backend, stats=stats).numpy()
    expected = np.zeros((3, 1, 2), np.float32)
    expected[0, 0] = [2.0, -1.0]
    np.testing.assert_array_equal(out, expected)
    assert stats == {"events": 5, "out_of_bounds": 0, "out_of_window": 2}
    for mode in R.NORMALIZATIONS:
        assert torch.isfinite(R.voxel_grid(ev, 3, 1, 2, 10, 10, normalize=mode)).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", R.NORMALIZATIONS)
def test_zero_events_give_an_all_zero_grid(backend, mode):
    for data in (np.zeros(0, EVENT_DTYPE), as_dict(np.zeros(0, EVENT_DTYPE)),
                 torch.zeros((0, 4), dtype=torch.int64)):
        out = R.voxel_grid(data, 4, 3, 5, 0, 100, normalize=mode, backend=backend)
        assert out.shape == (4, 3, 5)
        assert not out.any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_sensor_events_are_dropped_and_counted(backend):
    ev = events([(4, 0, 5, 1), (0, 3, 5, 1), (65535, 65535, 5, 0), (3, 2, 5, 1), (3, 2, 50, 0)])
    stats = {}
    out = R.voxel_grid(ev, 2, 3, 4, 0, 10, backend=backend, stats=stats)
    assert stats == {"events": 5, "out_of_bounds": 3, "out_of_window": 1}
    assert out.sum().item() == pytest.approx(1.0)
    assert out[:, 2, 3].sum().item() == pytest.approx(1.0)


def test_negative_and_huge_tensor_coordinates_are_outside():
    data = {"x": torch.tensor([-1, 0, 1 << 40, 2], dtype=torch.int64),
            "y": torch.tensor([0, -5, 0, 0], dtype=torch.int64),
            "t": torch.tensor([0, 0, 0, 0], dtype=torch.int64),
            "p": torch.tensor([1, 1, 1, -1], dtype=torch.int64)}
    for backend in BACKENDS:
        stats = {}
        out = R.voxel_grid(data, 1, 2, 3, 0, 0, backend=backend, stats=stats)
        assert stats["out_of_bounds"] == 3
        assert out[0, 0].tolist() == [0.0, 0.0, -1.0]  # p = -1 is OFF


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicates_unsorted_and_epoch_offsets(backend):
    rng = np.random.default_rng(1)
    n = 3000
    t = EPOCH + rng.integers(0, 1_000_000_000, n)  # unsorted, 1 s window at a 2023 epoch
    ev = make_events(rng.integers(0, 3, n), rng.integers(0, 2, n), t, rng.integers(0, 2, n))
    t0, t1 = EPOCH, EPOCH + 1_000_000_000
    out = R.voxel_grid(ev, 7, 2, 3, t0, t1, backend=backend)
    close(out, ref_voxel(ev, 7, 2, 3, t0, t1), n)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_nanosecond_resolution_survives_the_epoch(backend):
    # float32 of absolute ns would merge these; the int64 subtraction keeps them apart.
    ev = events([(0, 0, EPOCH + 1, 1), (1, 0, EPOCH + 2, 1)])
    out = R.voxel_grid(ev, 3, 1, 2, EPOCH, EPOCH + 4, backend=backend).numpy()
    np.testing.assert_allclose(out[:, 0, 0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(out[:, 0, 1], [0.0, 1.0, 0.0])


def test_numba_parallel_split_matches_serial(monkeypatch):
    rng = np.random.default_rng(2)
    n = 20_000
    ev = make_events(rng.integers(0, 40, n), rng.integers(0, 30, n),
                     rng.integers(0, 10_000, n), rng.integers(0, 2, n))
    serial = R.voxel_grid(ev, 4, 30, 40, 0, 9_000, backend="numba")
    monkeypatch.setattr(voxel_module, "NUMBA_SPLIT_MIN", 1)
    stats = {}
    split = R.voxel_grid(ev, 4, 30, 40, 0, 9_000, backend="numba", stats=stats)
    torch.testing.assert_close(split, serial, rtol=1e-5, atol=1e-4)
    assert stats["out_of_window"] == int((ev["t"] > 9_000).sum())


def test_device_argument_moves_the_result():
    ev = events([(0, 0, 0, 1)])
    for backend in BACKENDS:
        assert R.voxel_grid(ev, 2, 1, 1, 0, 1, backend=backend, device="cpu").device.type == "cpu"


@pytest.mark.parametrize("bad", [
    dict(backend="cuda"), dict(normalize="minmax"), dict(num_bins=0), dict(t_end=-1),
    dict(height=0),
])
def test_bad_arguments_are_refused(bad):
    kwargs = dict(num_bins=2, height=2, width=2, t_start=0, t_end=10)
    kwargs.update(bad)
    with pytest.raises(ValueError):
        R.voxel_grid(events([(0, 0, 1, 1)]), **kwargs)


def test_bad_event_inputs_are_refused():
    with pytest.raises(TypeError):
        R.voxel_grid([1, 2, 3], 2, 2, 2, 0, 1)
    with pytest.raises(ValueError):
        R.voxel_grid(torch.zeros((3, 3), dtype=torch.int64), 2, 2, 2, 0, 1)
    with pytest.raises(TypeError):
        R.voxel_grid({"x": np.zeros(2), "y": np.zeros(2), "t": np.zeros(2), "p": np.zeros(2)},
                     2, 2, 2, 0, 1)
    with pytest.raises(ValueError):
        R.voxel_grid({"x": np.zeros(2, int), "y": np.zeros(3, int), "t": np.zeros(2, int),
                      "p": np.zeros(2, int)}, 2, 2, 2, 0, 1)


# ----------------------------------------------------------------------------- batches


def _stream(n=4000, seed=3):
    rng = np.random.default_rng(seed)
    t = np.sort(EPOCH + rng.integers(0, 10_000_000, n))
    return make_events(rng.integers(0, 9, n), rng.integers(0, 7, n), t, rng.integers(0, 2, n))


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_with_windows_uses_their_index_ranges(backend):
    ev = _stream()
    windows = R.fixed_duration_windows(ev, 1_000_000)
    out = R.voxel_grid_batch(ev, windows, 3, 7, 9, backend=backend, normalize="maxabs")
    assert out.shape == (len(windows), 3, 7, 9)
    for k, (sl, t0, t1) in enumerate(windows):
        ref = ref_normalize(ref_voxel(ev[sl], 3, 7, 9, t0, t1), "maxabs")
        np.testing.assert_allclose(out[k].numpy(), ref, rtol=1e-5, atol=1e-5)
    if backend == "torch":  # index ranges from numpy, events as tensors
        tensor_out = R.voxel_grid_batch(as_n4(ev), windows, 3, 7, 9, normalize="maxabs")
        torch.testing.assert_close(tensor_out, out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_with_overlapping_bounds_on_unsorted_events(backend):
    ev = _stream()
    shuffled = ev[np.random.default_rng(4).permutation(len(ev))]
    bounds = np.array([[EPOCH, EPOCH + 4_000_000], [EPOCH + 2_000_000, EPOCH + 2_000_000],
                       [EPOCH + 3_000_000, EPOCH + 9_000_000], [EPOCH - 10, EPOCH - 5]])
    stats = {}
    out = R.voxel_grid_batch(shuffled, bounds, 4, 7, 9, backend=backend, stats=stats)
    for k, (t0, t1) in enumerate(bounds.tolist()):
        close(out[k], ref_voxel(ev, 4, 7, 9, t0, t1), len(ev))
    assert not out[3].any()
    assert stats["out_of_bounds"] == 0 and stats["out_of_window"] == 0
    tensor_out = R.voxel_grid_batch(as_dict(shuffled), torch.from_numpy(bounds), 4, 7, 9)
    torch.testing.assert_close(tensor_out, out, rtol=1e-5, atol=1e-5)


def test_numba_batch_without_a_thread_pool_matches(monkeypatch):
    ev = _stream()
    windows = R.fixed_count_windows(ev, 700)
    parallel = R.voxel_grid_batch(ev, windows, 3, 7, 9, backend="numba")
    monkeypatch.setattr(voxel_module.nb, "get_num_threads", lambda: 1)
    stats = {}
    serial = R.voxel_grid_batch(ev, windows, 3, 7, 9, backend="numba", stats=stats)
    assert torch.equal(serial, parallel)
    assert stats == {"events": 700 * len(windows), "out_of_bounds": 0, "out_of_window": 0}


def test_batch_refuses_mismatched_inputs():
    ev = _stream(10)
    with pytest.raises(ValueError):
        R.voxel_grid_batch([ev, ev], [[0, 1]], 2, 7, 9)
    with pytest.raises(ValueError):
        R.voxel_grid_batch(ev, [[5, 1]], 2, 7, 9)
    with pytest.raises(TypeError):
        R.voxel_grid_batch([ev], R.fixed_count_windows(ev, 5), 2, 7, 9)


# ----------------------------------------------------------------------------- normalization


def test_normalizations_on_a_known_grid():
    grid = torch.tensor([[[0.0, 2.0], [-4.0, 0.0]]])
    torch.testing.assert_close(R.normalize(grid, "maxabs"), grid / 4)
    nz = R.normalize(grid, "nonzero_zscore")
    assert nz[0, 0, 0] == 0 and nz[0, 1, 1] == 0  # zeros stay zero
    vals = nz[grid != 0]
    assert vals.mean().abs() < 1e-6 and (vals.square().mean().sqrt() - 1).abs() < 1e-6
    z = R.normalize(grid, "zscore")
    assert z.mean().abs() < 1e-6 and (z.square().mean().sqrt() - 1).abs() < 1e-6
    one = torch.zeros(2, 3, 3)
    one[1, 1, 1] = -1.0
    for mode in R.NORMALIZATIONS:
        assert torch.isfinite(R.normalize(one, mode)).all()


def test_batch_normalization_is_per_window_and_sequence_is_joint():
    seq = torch.zeros(2, 1, 2, 2)
    seq[0, 0, 0, 0] = 2.0
    seq[1, 0, 0, 0] = 8.0
    per_window = R.normalize(seq, "maxabs")
    assert per_window[0, 0, 0, 0] == 1.0 and per_window[1, 0, 0, 0] == 1.0
    joint = R.normalize_sequence(seq, "maxabs")
    assert joint[0, 0, 0, 0] == 0.25 and joint[1, 0, 0, 0] == 1.0
    assert R.normalize_sequence(torch.zeros(3, 2, 2, 2), "zscore").eq(0).all()
    with pytest.raises(ValueError):
        R.normalize(seq, "l2")


# ------------------------------------------------------------------- other representations


@pytest.mark.parametrize("backend", BACKENDS)
def test_stacked_histogram_layout_and_clipping(backend):
    ev = events([(0, 0, 0, 0)] * 300 + [(1, 0, 99, 1), (1, 0, 100, 1), (0, 0, 50, 1)])
    hist = R.stacked_histogram(ev, 2, 1, 2, 0, 100, backend=backend)
    assert hist.shape == (4, 1, 2) and hist.dtype == torch.uint8
    # channels: OFF b0, OFF b1, ON b0, ON b1; t = 100 (t_end) is in the last bin
    assert hist[:, 0].tolist() == [[255, 0], [0, 0], [0, 0], [1, 2]]
    wide = R.stacked_histogram(ev, 2, 1, 2, 0, 100, max_count=1000, backend=backend)
    assert wide.dtype == torch.int32 and wide[0, 0, 0] == 300


@pytest.mark.parametrize("backend", BACKENDS)
def test_tencode_exact_values(backend):
    ev = events([(0, 0, 100, 1), (0, 0, 150, 0), (1, 0, 200, 0), (1, 0, 200, 0), (2, 0, 300, 1)])
    code = R.tencode(ev, 1, 4, 100, 300, backend=backend)
    assert code.shape == (3, 1, 4) and code.dtype == torch.float32
    assert code[0, 0].tolist() == [1.0, 0.0, 1.0, 0.0]  # R: ON seen
    assert code[1, 0].tolist() == [0.25, 0.5, 1.0, 0.0]  # G: latest event's normalized time
    assert code[2, 0].tolist() == [1.0, 1.0, 0.0, 0.0]  # B: OFF seen
    counted = R.tencode(ev, 1, 4, 100, 300, counts=True, backend=backend)
    assert counted[2, 0].tolist() == [0.5, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_surface_decays(backend):
    ev = events([(0, 0, EPOCH + 500, 1), (0, 0, EPOCH + 900, 1), (1, 0, EPOCH + 1000, 0)])
    t0, t1 = EPOCH, EPOCH + 1000
    exp = R.time_surface(ev, 1, 3, t0, t1, tau=100, backend=backend)
    assert exp.shape == (2, 1, 3)
    assert exp[1, 0, 0].item() == pytest.approx(math.exp(-1.0))
    assert exp[0, 0, 1].item() == 1.0
    assert exp[:, 0, 2].tolist() == [0.0, 0.0] and exp[0, 0, 0] == 0.0
    lin = R.time_surface(ev, 1, 3, t0, t1, tau=400, decay="linear", backend=backend)
    assert lin[1, 0, 0].item() == pytest.approx(0.75)
    assert R.time_surface(ev, 1, 3, t0, t1, tau=50, decay="linear")[1, 0, 0] == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_event_frame_colours(backend):
    ev = events([(0, 0, 0, 1), (1, 0, 0, 0), (2, 0, 0, 1), (2, 0, 1, 0), (3, 0, 0, 0),
                 (3, 0, 1, 0), (3, 0, 2, 1), (9, 9, 0, 1)])
    frame = R.event_frame(ev, 1, 5, backend=backend)
    assert frame.shape == (1, 5, 3) and frame.dtype == torch.uint8
    assert frame[0].tolist() == [[255, 0, 0], [0, 0, 255], [255, 0, 0], [0, 0, 255],
                                 [255, 255, 255]]
    dark = R.event_frame(ev, 1, 5, background="black", t_start=1, t_end=5, backend=backend)
    assert dark[0].tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 255], [255, 0, 0], [0, 0, 0]]


# ----------------------------------------------------------------------------- CUDA


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_matches_cpu():
    ev = _stream(20_000)
    t0, t1 = int(ev["t"][0]), int(ev["t"][-1])
    cpu = R.voxel_grid(ev, 5, 7, 9, t0, t1, backend="numba")
    for data in (ev, as_dict(ev, "cuda"), as_n4(ev, "cuda")):
        out = R.voxel_grid(data, 5, 7, 9, t0, t1, device="cuda", normalize="none")
        assert out.device.type == "cuda"
        torch.testing.assert_close(out.cpu(), cpu, rtol=1e-5, atol=1e-3)
    windows = R.fixed_count_windows(ev, 3000)
    batch = R.voxel_grid_batch(as_dict(ev, "cuda"), windows, 5, 7, 9)
    torch.testing.assert_close(batch.cpu(), R.voxel_grid_batch(ev, windows, 5, 7, 9,
                                                               backend="numba"),
                               rtol=1e-5, atol=1e-3)
    hist = R.stacked_histogram(ev, 3, 7, 9, t0, t1, device="cuda")
    assert torch.equal(hist.cpu(), R.stacked_histogram(ev, 3, 7, 9, t0, t1, backend="numba"))
    ts = R.time_surface(as_dict(ev, "cuda"), 7, 9, t0, t1, tau=1e6)
    torch.testing.assert_close(ts.cpu(), R.time_surface(ev, 7, 9, t0, t1, tau=1e6))
