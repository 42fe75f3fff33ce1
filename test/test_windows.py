"""Window slicing: exact index ranges and times on small hand-made streams."""

from __future__ import annotations

import numpy as np
import pytest

from event_fm.io.events import make_events
from event_fm.representations import (
    fixed_count_windows,
    fixed_duration_windows,
    windows_ending_at,
)

T = np.array([10, 12, 20, 20, 25, 31, 40, 41, 49, 50], dtype=np.int64)
EVENTS = make_events(np.zeros(10), np.zeros(10), T, np.ones(10))


def test_fixed_duration_back_to_back_half_open():
    w = fixed_duration_windows(EVENTS, 10)
    # default span [10, 51): [10,20) [20,30) [30,40) [40,50); [50,60) would pass t_end
    assert w.time.tolist() == [[10, 20], [20, 30], [30, 40], [40, 50]]
    assert w.index.tolist() == [[0, 2], [2, 5], [5, 6], [6, 9]]
    assert w.counts.tolist() == [2, 3, 1, 3]
    kept = fixed_duration_windows(T, 10, drop_last=False)
    assert kept.time.tolist()[-1] == [50, 60] and kept.index.tolist()[-1] == [9, 10]


def test_fixed_duration_with_stride_and_explicit_span():
    w = fixed_duration_windows(T, 20, stride=10, t_start=0, t_end=50)
    assert w.time.tolist() == [[0, 20], [10, 30], [20, 40], [30, 50]]
    assert w.index.tolist() == [[0, 2], [0, 5], [2, 6], [5, 9]]
    slices = [(s, a, b) for s, a, b in w]
    assert slices[1] == (slice(0, 5), 10, 30)


def test_fixed_count():
    w = fixed_count_windows(EVENTS, 4)
    assert w.index.tolist() == [[0, 4], [4, 8]]
    assert w.time.tolist() == [[10, 20], [25, 41]]
    w = fixed_count_windows(EVENTS, 4, drop_last=False)
    assert w.index.tolist() == [[0, 4], [4, 8], [8, 10]] and w.time.tolist()[-1] == [49, 50]
    w = fixed_count_windows(EVENTS, 4, stride=3)
    assert w.index.tolist() == [[0, 4], [3, 7], [6, 10]]
    assert len(fixed_count_windows(EVENTS)) == 0  # 150,000 by default: not enough here


def test_windows_ending_at_frames_by_duration():
    w = windows_ending_at(EVENTS, [20, 41, 5], duration=10)
    # (10, 20] -> 12, 20, 20 ; (31, 41] -> 40, 41 ; (-5, 5] -> nothing
    assert w.index.tolist() == [[1, 4], [6, 8], [0, 0]]
    assert w.time.tolist() == [[10, 20], [31, 41], [-5, 5]]


def test_windows_ending_at_frames_by_count():
    w = windows_ending_at(EVENTS, [25, 12, 5, 100], count=3)
    assert w.index.tolist() == [[2, 5], [0, 2], [0, 0], [7, 10]]
    assert w.time.tolist() == [[20, 25], [10, 12], [5, 5], [41, 100]]


def test_empty_stream_and_bad_input():
    empty = np.zeros(0, np.int64)
    assert len(fixed_duration_windows(empty, 10)) == 0
    assert len(fixed_count_windows(empty, 10, drop_last=False)) == 0
    w = windows_ending_at(empty, [7], count=2)
    assert w.index.tolist() == [[0, 0]] and w.time.tolist() == [[7, 7]]
    with pytest.raises(ValueError, match="sorted"):
        fixed_count_windows(T[::-1], 2)
    with pytest.raises(ValueError):
        windows_ending_at(T, [20], duration=5, count=2)
    with pytest.raises(ValueError):
        fixed_duration_windows(T, 0)
    with pytest.raises(TypeError):
        fixed_count_windows(T.astype(float), 2)
