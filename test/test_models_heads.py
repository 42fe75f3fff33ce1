"""Depth, segmentation and matching heads, keypoint matching, and relative pose."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from event_fm.models import (
    DSEC_CLASSES,
    DepthHead,
    EncoderOutput,
    MatchingHead,
    SegmentationHead,
    detect_keypoints,
    estimate_relative_pose,
    find_matches,
    mutual_nearest_neighbors,
    rotation_error_deg,
    sample_descriptors,
)


def features(b: int = 2, dim: int = 32, grid: tuple[int, int] = (4, 6)) -> EncoderOutput:
    g = torch.Generator().manual_seed(0)
    return EncoderOutput(
        cls=torch.randn(b, dim, generator=g),
        patch=torch.randn(b, grid[0] * grid[1], dim, generator=g),
        grid_size=grid,
    )


# ---------------------------------------------------------------------------------------- depth


def test_depth_head_shapes_and_range():
    head = DepthHead(32, num_bins=256, min_depth=1.0, max_depth=81.0)
    out = head(features(), (64, 96))
    assert out["depth"].shape == (2, 1, 64, 96)
    assert out["depth_logits"].shape == (2, 256, 64, 96)
    assert out["depth"].min() >= 1.0 and out["depth"].max() <= 81.0
    assert head.depth_range == (1.0, 81.0)


def test_depth_is_the_expected_bin_value():
    head = DepthHead(32, num_bins=5, min_depth=2.0, max_depth=10.0)  # bins 2, 4, 6, 8, 10
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
    torch.testing.assert_close(head(features(), (8, 8))["depth"], torch.full((2, 1, 8, 8), 6.0))
    with torch.no_grad():
        head.glob.bias[3] = 50.0  # the global (CLS) path alone picks bin 3 everywhere
    torch.testing.assert_close(head(features(), (8, 8))["depth"], torch.full((2, 1, 8, 8), 8.0))


def test_log_spaced_depth_bins_give_every_octave_the_same_share():
    head = DepthHead(32, num_bins=5, min_depth=0.25, max_depth=4.0, spacing="log")
    torch.testing.assert_close(head.bins, torch.tensor([0.25, 0.5, 1.0, 2.0, 4.0]))
    assert head.depth_range == pytest.approx((0.25, 4.0))
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
        head.glob.bias[1] = 50.0  # all mass on the 0.5 m bin: a tabletop depth is reachable
    torch.testing.assert_close(head(features(), (8, 8))["depth"], torch.full((2, 1, 8, 8), 0.5))
    linear = DepthHead(32, num_bins=128, min_depth=0.2, max_depth=81.0)
    logbins = DepthHead(32, num_bins=128, min_depth=0.2, max_depth=81.0, spacing="log")
    assert int((linear.bins < 1.0).sum()) == 2 and int((logbins.bins < 1.0).sum()) == 35


def test_depth_head_rejects_an_unknown_spacing_and_log_bins_from_zero():
    with pytest.raises(ValueError, match="spacing must be one of"):
        DepthHead(32, spacing="quadratic")
    with pytest.raises(ValueError, match="min_depth > 0"):
        DepthHead(32, min_depth=0.0, spacing="log")


def test_model_config_carries_the_depth_spacing_through_a_checkpoint(tmp_path):
    from event_fm.models import EventFM, EventFMConfig, load_model, save_model

    cfg = EventFMConfig(preset="tiny", img_size=(32, 48), with_teacher=False, lora_rank=2,
                        depth_bins=8, depth_range=(0.2, 80.0), depth_spacing="log")
    save_model(EventFM(cfg), tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.config.depth_spacing == "log"
    torch.testing.assert_close(loaded.heads["depth"].bins,
                               torch.logspace(np.log10(0.2), np.log10(80.0), 8))


def test_depth_logit_stride_gives_full_resolution_depth():
    head = DepthHead(32, logit_stride=4)
    out = head(features(), (64, 96))
    assert out["depth"].shape == (2, 1, 64, 96) and out["depth_logits"].shape == (2, 256, 16, 24)


# --------------------------------------------------------------------------------- segmentation


def test_segmentation_head():
    head = SegmentationHead(32)
    assert head.class_names == DSEC_CLASSES and head.num_classes == 11
    assert head(features(), (64, 96)).shape == (2, 11, 64, 96)
    plain = SegmentationHead(32, ("road", "car"), batch_norm=False)
    assert plain(features(), (32, 48)).shape == (2, 2, 32, 48)


# ------------------------------------------------------------------------------------- matching


def test_matching_head_outputs():
    head = MatchingHead(32, descriptor_dim=64, stride=8)
    out = head(features(), (64, 96))
    assert out["descriptors"].shape == (2, 64, 8, 12)
    assert out["confidence"].shape == (2, 1, 8, 12)
    torch.testing.assert_close(out["descriptors"].norm(dim=1), torch.ones(2, 8, 12))
    assert ((out["confidence"] > 0) & (out["confidence"] < 1)).all()


def test_keypoints_are_local_maxima_in_pixels():
    conf = torch.zeros(1, 1, 10, 12)
    conf[0, 0, 2, 3] = 0.9
    conf[0, 0, 2, 4] = 0.8  # suppressed by NMS (neighbour of a stronger peak)
    conf[0, 0, 7, 9] = 0.7
    (kpts, scores), = detect_keypoints(conf, stride=8, max_keypoints=10, nms_radius=1,
                                       min_confidence=0.1)
    assert scores.tolist() == pytest.approx([0.9, 0.7])
    # cell (row 2, col 3) at stride 8 is centred on pixel x = 3.5 * 8 - 0.5, y = 2.5 * 8 - 0.5
    assert kpts.tolist() == [[27.5, 19.5], [75.5, 59.5]]
    (kpts, _), = detect_keypoints(conf, stride=8, max_keypoints=1, nms_radius=0)
    assert kpts.shape == (1, 2)


def test_descriptor_sampling_and_mutual_nearest_neighbours():
    g = torch.Generator().manual_seed(0)
    desc = torch.nn.functional.normalize(torch.randn(16, 6, 8, generator=g), dim=0)
    cells = torch.tensor([[1, 2], [5, 0], [7, 5]])  # (x, y) cells
    kpts = (cells.float() + 0.5) * 4 - 0.5
    sampled = sample_descriptors(desc, kpts, stride=4)
    torch.testing.assert_close(sampled, desc[:, cells[:, 1], cells[:, 0]].t())

    d0 = torch.nn.functional.normalize(torch.randn(20, 16, generator=g), dim=1)
    perm = torch.randperm(20, generator=g)
    i0, i1, sim = mutual_nearest_neighbors(d0, d0[perm])
    assert len(i0) == 20 and (perm[i1] == i0).all()
    torch.testing.assert_close(sim, torch.ones(20))
    assert len(mutual_nearest_neighbors(d0, d0[:0])[0]) == 0


def test_find_matches_on_identical_views():
    head = MatchingHead(32, descriptor_dim=32, stride=8)
    with torch.no_grad():
        out = head(features(1), (64, 96))
    k0, k1, sim = find_matches(out["descriptors"][0], out["confidence"][0],
                               out["descriptors"][0], out["confidence"][0], stride=8,
                               max_keypoints=20, nms_radius=1)
    assert len(k0) > 0 and torch.equal(k0, k1)


# ----------------------------------------------------------------------------------------- pose


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.radians(degrees)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def _scene(n=200, noise=0.0, outliers=0.0, seed=0, K1_scale=1.0):
    rng = np.random.default_rng(seed)
    K0 = np.array([[320.0, 0, 320], [0, 320, 240], [0, 0, 1]])
    K1 = K0.copy()
    K1[:2] *= K1_scale
    R = _rotation([0.2, 1.0, 0.1], 12.0)
    t = np.array([0.6, -0.1, 0.2])
    X0 = np.c_[rng.uniform(-3, 3, n), rng.uniform(-2, 2, n), rng.uniform(4, 10, n)]
    X1 = X0 @ R.T + t  # the convention under test: X1 = R X0 + t
    assert (X1[:, 2] > 0).all()
    p0 = X0 @ K0.T
    p1 = X1 @ K1.T
    p0, p1 = p0[:, :2] / p0[:, 2:], p1[:, :2] / p1[:, 2:]
    p0 += rng.normal(scale=noise, size=p0.shape)
    p1 += rng.normal(scale=noise, size=p1.shape)
    bad = rng.permutation(n)[: int(outliers * n)]
    p1[bad] = np.c_[rng.uniform(0, 640, len(bad)), rng.uniform(0, 480, len(bad))]
    inlier = np.ones(n, bool)
    inlier[bad] = False
    return p0, p1, K0, K1, R, t / np.linalg.norm(t), inlier


def _angle_deg(a, b) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))))


@pytest.mark.parametrize("K1_scale", [1.0, 1.3])
def test_pose_exact_correspondences(K1_scale):
    p0, p1, K0, K1, R, t, _ = _scene(K1_scale=K1_scale)
    pose = estimate_relative_pose(p0, p1, K0, K1)
    assert pose.ok
    assert rotation_error_deg(pose.R, R) < 1.0
    assert _angle_deg(pose.t, t) < 1.0 and abs(np.linalg.norm(pose.t) - 1) < 1e-9
    assert pose.inliers.dtype == bool and pose.inliers.mean() > 0.95


@pytest.mark.parametrize("method", ["accurate", "magsac", "ransac"])
def test_pose_with_half_outliers(method):
    p0, p1, K0, K1, R, t, inlier = _scene(n=300, noise=0.5, outliers=0.5, seed=3)
    pose = estimate_relative_pose(p0, p1, K0, K1, threshold_px=1.5, method=method)
    assert pose.ok
    assert rotation_error_deg(pose.R, R) < 2.0
    if method == "accurate":  # the default; MAGSAC/RANSAC without local optimisation drift more
        assert _angle_deg(pose.t, t) < 5.0
    found = pose.inliers
    assert (found & inlier).sum() >= 0.8 * inlier.sum()  # most true inliers marked
    assert (found & ~inlier).sum() <= 0.05 * (~inlier).sum()  # few outliers let through


def test_pose_degenerate_inputs_never_raise():
    p0, p1, K0, K1, *_ = _scene(n=50)

    def failed(pose, n):
        return (not pose.ok and np.array_equal(pose.R, np.eye(3)) and not pose.t.any()
                and pose.inliers.shape == (n,) and not pose.inliers.any())

    assert failed(estimate_relative_pose(p0[:4], p1[:4], K0, K1), 4)
    assert failed(estimate_relative_pose(np.zeros((0, 2)), np.zeros((0, 2)), K0, K1), 0)
    line = np.c_[np.linspace(0, 600, 30), np.linspace(10, 400, 30)]
    assert failed(estimate_relative_pose(line, line + [5.0, 0.0], K0, K1), 30)
    same = np.tile([[100.0, 100.0]], (10, 1))
    assert failed(estimate_relative_pose(same, same, K0, K1), 10)
    assert failed(estimate_relative_pose(np.full((10, 2), np.nan), p1[:10], K0, K1), 10)
    assert failed(estimate_relative_pose(p0, p1, np.full((3, 3), np.nan), K1), 50)
    assert failed(estimate_relative_pose(p0, p1, np.zeros((3, 3)), K1), 50)
    # A few NaN rows among good matches are ignored, not fatal.
    q0 = p0.copy()
    q0[:3] = np.nan
    pose = estimate_relative_pose(q0, p1, K0, K1)
    assert pose.ok and not pose.inliers[:3].any()
    with pytest.raises(ValueError):
        estimate_relative_pose(p0, p1[:10], K0, K1)
