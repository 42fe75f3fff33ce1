"""Distillation masks: exact patch decisions on hand-made grids and events."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from event_fm.io.events import make_events
from event_fm.representations import (
    activation_mask,
    activation_mask_from_events,
    dilate,
    occupancy_mask,
    occupancy_mask_from_events,
    patch_sums,
    stacked_histogram,
)


def _counts() -> torch.Tensor:
    """(2 bins, 4, 6) counts; patches of 2: sums per patch [[64, 0, 3], [0, 63, 0]]."""
    g = torch.zeros(2, 4, 6, dtype=torch.int32)
    g[0, 0, 0], g[1, 1, 1] = 40, 24  # patch (0, 0): 64 over both bins
    g[0, 0, 4], g[1, 0, 5] = 1, 2  # patch (0, 2): 3
    g[0, 2, 2], g[0, 3, 3] = 60, 3  # patch (1, 1): 63
    return g


def test_patch_sums_and_activation_threshold():
    g = _counts()
    assert patch_sums(g.sum(0), 2).tolist() == [[64, 0, 3], [0, 63, 0]]
    assert activation_mask(g, 2).tolist() == [[True, False, False], [False, False, False]]
    assert activation_mask(g, 2, tau=3).tolist() == [[True, False, True], [False, True, False]]


def test_voxel_values_count_by_magnitude():
    v = torch.zeros(3, 2, 2)
    v[0, 0, 0], v[1, 1, 1], v[2, 0, 1] = -30.0, 20.0, -14.5
    assert activation_mask(v, 2).tolist() == [[True]]  # |.| sums to 64.5
    assert activation_mask(v[:2], 2).tolist() == [[False]]


def test_non_divisible_sizes_are_padded():
    g = torch.ones(5, 5)
    assert patch_sums(g, 2).tolist() == [[4, 4, 2], [4, 4, 2], [2, 2, 1]]
    assert activation_mask(g, 2, tau=2).tolist() == [[True, True, True]] * 2 + [
        [True, True, False]]


def test_occupancy_and_dilation():
    g = torch.zeros(1, 10, 10)
    g[0, 4, 4] = 1.0  # patch (2, 2) of a 5x5 patch grid
    base = occupancy_mask(g, 2)
    assert base.sum() == 1 and base[2, 2]
    one = occupancy_mask(g, 2, dilation=1)
    assert one.int().tolist() == [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0],
                                  [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]
    assert occupancy_mask(g, 2, dilation=2).all()
    assert torch.equal(dilate(base, 0), base)
    with pytest.raises(ValueError):
        dilate(base, -1)


def test_batched_masks():
    batch = torch.stack([_counts(), torch.zeros(2, 4, 6, dtype=torch.int32)])
    act = activation_mask(batch, 2)
    assert act.shape == (2, 2, 3) and act[0, 0, 0] and not act[1].any()
    occ = occupancy_mask(batch, 2, dilation=1)
    assert occ.shape == (2, 2, 3) and occ[0].all() and not occ[1].any()
    with pytest.raises(ValueError):
        activation_mask(torch.zeros(1, 1, 1, 2, 2))


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_masks_from_events_match_masks_from_grids(backend):
    rng = np.random.default_rng(0)
    n = 5000
    ev = make_events(rng.integers(0, 34, n), rng.integers(0, 18, n), rng.integers(0, 1000, n),
                     rng.integers(0, 2, n))
    hist = stacked_histogram(ev, 3, 16, 32, 0, 999, max_count=10_000, backend=backend)
    direct = activation_mask_from_events(ev, 16, 32, patch_size=8, tau=64, t_start=0,
                                         t_end=999, backend=backend)
    assert direct.shape == (2, 4)
    assert torch.equal(direct, activation_mask(hist, 8, 64))
    assert torch.equal(direct, patch_sums(hist.sum(0), 8) >= 64)
    occ = occupancy_mask_from_events(ev[:3], 16, 32, patch_size=8, dilation=1, backend=backend)
    assert torch.equal(occ, occupancy_mask(stacked_histogram(ev[:3], 1, 16, 32, 0, 999), 8, 1))
