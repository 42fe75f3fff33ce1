"""EVT 3.0 encoder: exact round trips through the decoder, state across packets, vectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from event_fm.io.decoders import make_decoder
from event_fm.io.events import EVENT_DTYPE, TRIGGER_DTYPE, make_events
from event_fm.io.evt3_encoder import Evt3Encoder, encode_evt3

ROLL_US = 1 << 24  # the 24-bit microsecond counter period


def _codes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, "<u2") >> 12


@st.composite
def streams(draw, max_groups: int = 25):
    """Sorted events made of row groups (same t, y, p; increasing x, so vectors can form)
    plus sorted triggers; times in whole microseconds, spanning counter rollovers."""
    t_us = draw(st.integers(0, 3 * ROLL_US))
    rows = []
    trig = []
    for _ in range(draw(st.integers(0, max_groups))):
        t_us += draw(st.sampled_from([0, 1, 7, 4095, 4096, 70_000, ROLL_US - 5, 3 * ROLL_US]))
        y = draw(st.integers(0, 2047))
        p = draw(st.integers(0, 1))
        x0 = draw(st.integers(0, 2000))
        xs = sorted(draw(st.sets(st.integers(x0, min(x0 + 40, 2047)), min_size=1, max_size=20)))
        if draw(st.booleans()):  # sensor order is not always x-sorted
            xs = xs[::-1] if draw(st.booleans()) else draw(st.permutations(xs))
        rows += [(x, y, t_us * 1000, p) for x in xs]
        if draw(st.integers(0, 3)) == 0:
            trig.append((t_us * 1000, draw(st.integers(0, 1)), draw(st.integers(0, 15))))
    ev = np.array(rows, dtype=EVENT_DTYPE)
    tr = np.array(trig, dtype=TRIGGER_DTYPE)
    return ev, tr


def _split(arr: np.ndarray, cuts_t: list[int]) -> list[np.ndarray]:
    idx = np.searchsorted(arr["t"], cuts_t, side="left")
    return np.split(arr, idx)


@settings(max_examples=120, deadline=None)
@given(stream=streams(), vectors=st.booleans(), cuts=st.lists(st.integers(0, 10**11), max_size=4))
def test_round_trip_split_across_packets(stream, vectors, cuts):
    ev, tr = stream
    cuts = sorted(cuts)
    enc = Evt3Encoder(use_vectors=vectors)
    dec = make_decoder("evt3", 2048, 2048)
    out_ev, out_tr = [], []
    for e, t in zip(_split(ev, cuts), _split(tr, cuts), strict=True):
        b = dec.decode(enc.encode(e, t))
        out_ev.append(b.events)
        out_tr.append(b.triggers)
        assert b.dropped == {}
    np.testing.assert_array_equal(np.concatenate(out_ev), ev)
    np.testing.assert_array_equal(np.concatenate(out_tr), tr)
    # and in one piece
    one = make_decoder("evt3", 2048, 2048).decode(encode_evt3(ev, tr, use_vectors=vectors))
    np.testing.assert_array_equal(one.events, ev)
    np.testing.assert_array_equal(one.triggers, tr)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 300),
    start=st.integers(ROLL_US - 3000, ROLL_US - 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_random_across_rollover(n, start, seed):
    rng = np.random.default_rng(seed)
    offsets = np.sort(np.concatenate([[0, 6000], rng.integers(0, 6000, n - 2)]))
    t = (start + offsets) * 1000
    ev = make_events(rng.integers(0, 1280, n), rng.integers(0, 720, n), t, rng.integers(0, 2, n))
    for vectors in (False, True):
        out = make_decoder("evt3", 1280, 720).decode(encode_evt3(ev, use_vectors=vectors))
        np.testing.assert_array_equal(out.events, ev)
    assert ev["t"][0] < ROLL_US * 1000 <= ev["t"][-1]


def test_huge_gaps_are_bridged():
    """Gaps of hours would be invisible to a 24-bit counter without extra TIME_HIGH words."""
    t = np.array([0, 5, ROLL_US, ROLL_US + 1, 3 * 3600 * 10**6, 3 * 3600 * 10**6 + ROLL_US - 8])
    ev = make_events(np.arange(6), np.arange(6), t * 1000, [0, 1, 0, 1, 0, 1])
    raw = encode_evt3(ev)
    out = make_decoder("evt3", 640, 480).decode(raw)
    np.testing.assert_array_equal(out.events, ev)
    assert np.count_nonzero(_codes(raw) == 0x8) < 1400  # steps of 2048 x 4096 us


def test_stateful_encoder_carries_time_and_row():
    enc = Evt3Encoder()
    first = enc.encode(make_events([1], [2], [5_000_000], [1]))
    assert _codes(first).tolist() == [0x8, 0x6, 0x0, 0x2]
    # same microsecond and row: no time / row words at all
    assert _codes(enc.encode(make_events([3], [2], [5_000_000], [0]))).tolist() == [0x2]
    # same high, new low, same row
    assert _codes(enc.encode(make_events([4], [2], [5_001_000], [0]))).tolist() == [0x6, 0x2]
    # triggers only
    tr = np.array([(5_002_000, 1, 2)], dtype=TRIGGER_DTYPE)
    raw = enc.encode(make_events([], [], [], []), tr)
    assert _codes(raw).tolist() == [0x6, 0xA]
    enc.reset()
    assert _codes(enc.encode(make_events([4], [2], [5_001_000], [0])))[:2].tolist() == [0x8, 0x6]


def test_vectors_are_used_and_smaller():
    x = np.array([3, 4, 5, 9, 14, 15, 16, 30, 31, 600, 601])
    ev = make_events(x, 7, 1_000_000, 1)
    plain, vec = encode_evt3(ev), encode_evt3(ev, use_vectors=True)
    codes = _codes(vec).tolist()
    assert 0x3 in codes and (0x4 in codes or 0x5 in codes)
    assert len(vec) < len(plain)
    for raw in (plain, vec):
        np.testing.assert_array_equal(make_decoder("evt3", 640, 480).decode(raw).events, ev)


def test_vect8_and_vect12_masks():
    ev = make_events([0, 1, 11, 12, 13], 0, 0, 0)
    words = np.frombuffer(encode_evt3(ev, use_vectors=True), "<u2").tolist()
    # base 0: x 0, 1, 11 -> VECT_12; then 12, 13 fit a VECT_8 at base 12
    assert words[-3:] == [0x3000, 0x4803, 0x5003]


def test_sub_microsecond_times_are_floored():
    ev = make_events([1, 2], [1, 1], [1_999, 2_001], [0, 1])
    out = make_decoder("evt3", 640, 480).decode(encode_evt3(ev)).events
    assert out["t"].tolist() == [1000, 2000]


def test_empty():
    assert encode_evt3(make_events([], [], [], [])) == b""


@pytest.mark.parametrize(
    "ev, msg",
    [
        (make_events([2048], [0], [0], [0]), "x outside"),
        (make_events([0], [5000], [0], [0]), "y outside"),
        (make_events([0], [0], [0], [2]), "p outside"),
        (make_events([0, 0], [0, 0], [5000, 1000], [0, 0]), "sorted"),
        (make_events([0], [0], [-1000], [0]), "negative"),
    ],
)
def test_invalid_input(ev, msg):
    with pytest.raises(ValueError, match=msg):
        encode_evt3(ev)


def test_invalid_trigger_and_time_going_back():
    with pytest.raises(ValueError, match="id outside"):
        encode_evt3(make_events([], [], [], []), np.array([(0, 1, 16)], dtype=TRIGGER_DTYPE))
    enc = Evt3Encoder()
    enc.encode(make_events([0], [0], [10_000], [0]))
    with pytest.raises(ValueError, match="before the previous packet"):
        enc.encode(make_events([0], [0], [9_000], [0]))
