"""Left-right mirroring in the distillation stages: labels, intrinsics and poses move with the
pixels, so the matching loss's ground-truth correspondences stay right on mirrored pairs."""

from __future__ import annotations

import math

import torch

from training.losses.tasks import correspondences
from training.stages.common import Batch, StageTask, flip_batch


def _pose(yaw: float, t: tuple[float, float, float]) -> torch.Tensor:
    c, s = math.cos(yaw), math.sin(yaw)
    T = torch.eye(4)
    T[:3, :3] = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    T[:3, 3] = torch.tensor(t)
    return T


def _batch(depth: torch.Tensor, pose: torch.Tensor, K: torch.Tensor) -> Batch:
    B, H, W = depth.shape
    voxels = torch.arange(B * 5 * H * W, dtype=torch.float32).reshape(B, 5, H, W)
    semantic = (torch.arange(W)[None, None].expand(B, H, W) % 4).long()
    counts = torch.arange(B * 2 * 4, dtype=torch.float32).reshape(B, 2, 4)
    return Batch(voxels, None, None, depth, semantic, pose, K, counts,
                 torch.full((B,), 100))


def test_flip_keeps_correspondences_and_labels_consistent():
    # W = 4 * 8 + 1: the stride-8 sampling grid (4, 12, 20, 28) is its own mirror image
    H, W, stride = 17, 33, 8
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    depth = (2.0 + 0.05 * xx + 0.03 * yy).float()[None].repeat(2, 1, 1)
    K = torch.tensor([[20.0, 0, 13.0], [0, 20.0, 8.0], [0, 0, 1]])[None].repeat(2, 1, 1)
    pose0 = torch.stack([_pose(0.1, (0.3, -0.2, 1.0)), _pose(-0.2, (1.0, 0.0, 0.5))])
    pose1 = torch.stack([_pose(0.15, (0.4, -0.2, 1.1)), _pose(-0.1, (1.1, 0.1, 0.5))])
    flags = torch.tensor([True, False])
    a, b = _batch(depth, pose0, K), _batch(depth, pose1, K)
    fa, fb = flip_batch(a, flags), flip_batch(b, flags)

    uv, valid = correspondences(a.depth, a.pose, b.pose, a.K, stride)
    fuv, fvalid = correspondences(fa.depth, fa.pose, fb.pose, fa.K, stride)
    # mirrored sample: grid column j is the original's column (n-1-j), landing at W-1-u
    assert torch.equal(fvalid[0], valid[0].flip(-1))
    assert valid[0].sum() > 4
    m = valid[0]
    expect_u = (W - 1) - uv[0, ..., 0].flip(-1)
    assert torch.allclose(fuv[0, ..., 0][m.flip(-1)], expect_u[m.flip(-1)], atol=1e-3)
    assert torch.allclose(fuv[0, ..., 1], uv[0, ..., 1].flip(-1), atol=1e-3)
    # the unflagged sample is untouched
    assert torch.equal(fuv[1], uv[1]) and torch.equal(fvalid[1], valid[1])
    assert torch.equal(fa.voxels[1], a.voxels[1])
    # pixels and labels move together
    assert torch.equal(fa.voxels[0], a.voxels[0].flip(-1))
    assert torch.equal(fa.semantic[0], a.semantic[0].flip(-1))
    assert torch.equal(fa.counts[0], a.counts[0].flip(-1))
    assert float(fa.K[0, 0, 2]) == W - 1 - 13.0 and float(fa.K[1, 0, 2]) == 13.0
    # relative motion is mirrored (x translation negated), not lost
    rel = torch.linalg.inv(a.pose[0]) @ b.pose[0]
    frel = torch.linalg.inv(fa.pose[0]) @ fb.pose[0]
    assert math.isclose(float(frel[0, 3]), -float(rel[0, 3]), abs_tol=1e-5)
    assert math.isclose(float(frel[2, 3]), float(rel[2, 3]), abs_tol=1e-5)


def test_flip_flags_follow_the_probability_and_the_seed():
    class Stage(StageTask):
        pass

    off, on = Stage(), Stage()
    on.augment = {"flip": 0.5}
    assert not off.flip_flags(64).any()
    flags = on.flip_flags(4000)
    assert 0.45 < flags.float().mean() < 0.55
    again = Stage()
    again.augment = {"flip": 0.5}
    assert torch.equal(again.flip_flags(4000), flags)
