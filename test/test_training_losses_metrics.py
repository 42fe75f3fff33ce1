"""Distillation and head losses, and the evaluation metrics, on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from event_fm.evaluation.metrics import (
    DepthMetrics,
    SegmentationMetrics,
    pose_auc,
    rotation_error_deg,
    translation_angle_deg,
)
from training.losses.distill import (
    GEPProjector,
    gep_stage1_loss,
    realm_loss,
    scaleevent_loss,
)
from training.losses.tasks import (
    correspondences,
    depth_loss,
    matching_loss,
    segmentation_loss,
)


def test_realm_loss_zero_for_identical_tokens_and_masked_mean():
    t = torch.randn(2, 6, 8)
    c = torch.randn(2, 8)
    out = realm_loss(t, t.clone(), c, c.clone())
    assert float(out["loss"]) == pytest.approx(0.0, abs=1e-6)
    s = t.clone()
    s[:, 3:] += 1.0  # only unsupervised tokens differ
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, :3] = True
    assert float(realm_loss(s, t, mask=mask)["loss"]) == pytest.approx(0.0, abs=1e-6)
    assert float(realm_loss(s, t)["l1"]) == pytest.approx(0.5)


def test_scaleevent_structure_losses():
    q = torch.randn(2, 5, 16)
    out = scaleevent_loss(q.clone(), q)
    assert float(out["loss"]) == pytest.approx(0.0, abs=1e-5)
    # a student equal to the teacher up to scale has identical similarity maps
    scaled = scaleevent_loss(q * 3.0, q)
    assert float(scaled["intra"]) == pytest.approx(0.0, abs=1e-5)
    assert float(scaled["cross"]) == pytest.approx(0.0, abs=1e-5)
    assert float(scaled["l1"]) > 0.5
    # weights as published: l1 + 10 intra + 4 cross
    k = torch.randn(2, 5, 16)
    o = scaleevent_loss(k, q)
    expected = o["l1"] + 10 * o["intra"] + 4 * o["cross"]
    assert torch.allclose(o["loss"], expected)
    assert torch.allclose(scaleevent_loss(k, q, use_l1=False)["loss"], expected - o["l1"])


def test_gep_stage1_prefers_matching_pairs():
    torch.manual_seed(0)
    proj = GEPProjector(16, 32, 8)
    t = torch.randn(4, 5, 16)
    good = gep_stage1_loss(t, t, proj(t), proj(t))
    bad = gep_stage1_loss(t, t, proj(t), proj(t.flip(0)))
    assert float(good["regression"]) == 0.0
    assert float(good["contrastive"]) < float(bad["contrastive"])


def test_depth_loss_is_zero_for_perfect_and_scale_invariant_part():
    gt = torch.rand(2, 16, 16) * 50 + 2
    gt[0, :3] = float("nan")
    gt[1, :2] = float("inf")
    perfect = depth_loss(torch.where(torch.isfinite(gt), gt, torch.ones_like(gt)), gt, 1, 81)
    assert float(perfect["loss"]) == pytest.approx(0.0, abs=1e-3)
    scaled = depth_loss(torch.where(torch.isfinite(gt), gt * 2, torch.ones_like(gt)), gt, 1, 81,
                        w_si=1.0)
    # SI-log with lambda 0.85 leaves sqrt(0.15) * log 2 for a global scale error
    assert float(scaled["si_log"]) == pytest.approx(np.sqrt(0.15) * np.log(2), rel=1e-3)
    assert float(scaled["gradient"]) == pytest.approx(0.0, abs=1e-4)


def test_segmentation_loss_ignores_label_255():
    target = torch.randint(0, 3, (2, 8, 8))
    logits = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 20
    assert float(segmentation_loss(logits, target)["loss"]) < 1e-3
    noisy = target.clone()
    noisy[:, :4] = 255
    wrong = logits.clone()
    wrong[:, :, :4] = wrong[:, :, :4].roll(1, dims=1)  # wrong only where ignored
    assert float(segmentation_loss(wrong, noisy)["loss"]) < 1e-3


def test_correspondences_and_matching_loss_on_a_known_motion():
    H, W = 32, 48
    K = torch.tensor([[40.0, 0, 24], [0, 40.0, 16], [0, 0, 1]])[None]
    depth = torch.full((1, H, W), 10.0)
    T0 = torch.eye(4)[None]
    T1 = torch.eye(4)[None].clone()
    T1[0, 0, 3] = 1.0  # camera 1 is 1 m to the right: points move 4 px left
    uv1, valid = correspondences(depth, T0, T1, K, stride=4, depth1=depth)
    assert valid.sum() > 0
    u0 = torch.arange(2, W, 4, dtype=torch.float32)
    assert torch.allclose(uv1[0, 0, :, 0][valid[0, 0]], (u0 - 4.0)[valid[0, 0]], atol=1e-4)
    # descriptors that are a function of the 3D point match perfectly; random ones do not
    h, w = valid.shape[1:]
    xs = torch.linspace(-1, 1, W)[None, None, None].expand(1, 1, H, W)
    base = torch.cat([torch.sin(7 * xs + k) for k in range(8)] + [torch.cos(5 * xs)], 1)
    base = base + torch.linspace(0, 1, H)[None, None, :, None]
    desc1 = base
    shifted = torch.nn.functional.pad(base, (4, 0))[..., :W]  # frame-0 view of the same points
    desc0 = shifted[..., 2::4, 2::4]
    good = matching_loss(desc0, desc1, uv1, valid, (H, W))
    bad = matching_loss(torch.randn_like(desc0), desc1, uv1, valid, (H, W))
    assert float(good) < float(bad)
    assert (h, w) == desc0.shape[2:]


def test_depth_metrics_protocol():
    gt = np.array([[5.0, 15.0, 25.0, 40.0, np.nan]])
    pred = np.array([[6.0, 13.0, 25.0, 30.0, 1.0]])
    m = DepthMetrics()
    m.update(pred, gt)
    out = m.compute()
    assert out["depth_mae_10m"] == pytest.approx(1.0)
    assert out["depth_mae_20m"] == pytest.approx(1.5)
    assert out["depth_mae_30m"] == pytest.approx(1.0)
    assert out["absrel"] == pytest.approx((0.2 + 2 / 15 + 0 + 0.25) / 4)
    assert out["delta1"] == pytest.approx(0.75)  # 30 vs 40 m is off by more than 1.25x


def test_segmentation_metrics_confusion_and_ignore():
    gt = np.array([0, 0, 1, 1, 2, 255])
    pred = np.array([0, 1, 1, 1, 0, 2])
    m = SegmentationMetrics(3)
    m.update(pred, gt)
    out = m.compute()
    # IoU: class0 1/3, class1 2/3, class2 0/1
    assert out["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert out["pixel_acc"] == pytest.approx(3 / 5)


def test_pose_errors_and_auc():
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    assert rotation_error_deg(R, np.eye(3)) == pytest.approx(10.0)
    assert translation_angle_deg(np.array([1, 0, 0]), np.array([0, 2, 0])) == pytest.approx(90)
    auc = pose_auc([0.0, 0.0, 100.0, float("nan")])
    assert auc["auc_5"] == pytest.approx(0.5)
    assert pose_auc([2.5])["auc_5"] == pytest.approx(0.75)  # trapezoid from (0, 0)
