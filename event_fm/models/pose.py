"""Relative camera pose from matched keypoints (robust essential matrix, OpenCV)."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

__all__ = ["RelativePose", "estimate_relative_pose", "rotation_error_deg"]

#: On synthetic pairs USAC_ACCURATE (GC-RANSAC local optimisation + SPRT) was 4-5x more accurate
#: than USAC_MAGSAC and plain RANSAC; with the Sampson refinement below it matches poselib 2.0.5.
_METHODS = {"accurate": "USAC_ACCURATE", "magsac": "USAC_MAGSAC", "ransac": "RANSAC"}

#: 'accurate' runs through UsacParams (issue 19, benchmarks/pose_solver.py on 273 matched window
#: pairs of seven recordings): inner-RANSAC local optimisation with 3 iterations instead of
#: graph-cut with 10, no final polisher (the Sampson refinement below replaces it) and at most
#: 250 hypotheses cut the solver from 13 to 5 ms per pose at equal AUC (33.3/44.4/53.3 vs
#: 32.5/43.6/53.8 at 5/10/20 deg); on the demo bag's match sets from 6.3 to 3.9 ms at better AUC.
_ACCURATE_MAX_ITERS = 250
#: With the refinement on, hypotheses are scored at twice the inlier threshold: matches a pixel
#: or two off still vote, so the adaptive stop comes sooner, and the refinement re-selects the
#: inliers at the caller's threshold. On the same 273 pairs: 2.7 instead of 5.5 ms and AUC
#: 34.8/46.3/55.1 instead of 33.3/44.5/53.3 (1.5x: 3.3 ms, 35.3/46.4/55.0; 3x: 2.2 ms, 55.3).
_HYPOTHESIS_THRESHOLD_SCALE = 2.0
_INNER_LO_ITERATIONS = 3
_INNER_LO_SAMPLE_SIZE = 14


def _usac_params(threshold: float, confidence: float, max_iters: int, polish: bool
                 ) -> cv2.UsacParams:
    params = cv2.UsacParams()
    params.sampler = cv2.SAMPLING_UNIFORM
    params.score = cv2.SCORE_METHOD_MSAC
    params.loMethod = cv2.LOCAL_OPTIM_INNER_LO
    params.loIterations = _INNER_LO_ITERATIONS
    params.loSampleSize = _INNER_LO_SAMPLE_SIZE
    params.neighborsSearch = cv2.NEIGH_GRID
    params.confidence = confidence
    params.maxIterations = max_iters
    params.threshold = threshold
    params.final_polisher = cv2.COV_POLISHER if polish else cv2.NONE_POLISHER
    params.final_polisher_iterations = 3 if polish else 0
    params.randomGeneratorState = 0  # the same pose for the same matches, run after run
    return params


class RelativePose(NamedTuple):
    """X1 = R @ X0 + t for a point X0 in camera 0's frame (OpenCV recoverPose convention).

    ``t`` has unit length (scale is unobservable); ``inliers`` is a boolean mask over the input
    matches. A failed estimate has R = I, t = 0 and no inliers; check ``ok``.
    """

    R: np.ndarray
    t: np.ndarray
    inliers: np.ndarray
    metric: bool = False  # t in metres (scaled by depth), else unit length

    @property
    def ok(self) -> bool:
        return bool(np.linalg.norm(self.t) > 0)


def _failure(n: int) -> RelativePose:
    return RelativePose(np.eye(3), np.zeros(3), np.zeros(n, dtype=bool))


def _to_normalized(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    rays = homogeneous @ np.linalg.inv(K).T
    return rays[:, :2] / rays[:, 2:]


def _is_degenerate(points: np.ndarray) -> bool:
    """All points (nearly) on one line or one spot: the epipolar geometry is unconstrained."""
    centered = points - points.mean(axis=0)
    s = np.linalg.svd(centered, compute_uv=False)
    return bool(s[0] <= 1e-12 or s[1] <= 1e-6 * s[0])


def _skew(v: np.ndarray) -> np.ndarray:
    return _skew_batch(v[None])[0]


def _skew_batch(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices of a stack of vectors (k, 3) -> (k, 3, 3)."""
    out = np.zeros((len(v), 3, 3))
    out[:, 0, 1], out[:, 0, 2], out[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    out[:, 1, 0], out[:, 2, 0], out[:, 2, 1] = v[:, 2], -v[:, 1], v[:, 0]
    return out


def _sampson(E: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """Signed Sampson distances of normalized correspondences to the epipolar constraint."""
    return _sampson_batch(E[None], _homogeneous(x0), _homogeneous(x1))[0]


def _homogeneous(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2],
                     a[0] * b[1] - a[1] * b[0]])


def _tangent_basis(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    axis = np.eye(3)[np.argmin(np.abs(t))]
    b1 = _cross(t, axis)
    b1 /= np.linalg.norm(b1)
    return b1, _cross(t, b1)


def _rotvec_matrices(w: np.ndarray) -> np.ndarray:
    """Rodrigues for a stack of rotation vectors (k, 3) -> (k, 3, 3)."""
    theta = np.linalg.norm(w, axis=1)
    safe = np.where(theta > 1e-12, theta, 1.0)
    k = w / safe[:, None]
    K = _skew_batch(k)
    s, c = np.sin(theta)[:, None, None], (1 - np.cos(theta))[:, None, None]
    return np.eye(3) + s * K + c * (K @ K)


def _sampson_batch(E: np.ndarray, h0: np.ndarray, h1: np.ndarray) -> np.ndarray:
    """Sampson distances for a stack of essential matrices (k, 3, 3) -> (k, N)."""
    Ex0 = h0 @ E.transpose(0, 2, 1)  # (k, N, 3)
    Etx1 = h1 @ E
    algebraic = np.sum(h1 * Ex0, axis=-1)
    gradient = (Ex0[..., 0] ** 2 + Ex0[..., 1] ** 2 + Etx1[..., 0] ** 2 + Etx1[..., 1] ** 2)
    return algebraic / np.sqrt(np.maximum(gradient, 1e-30))


def _refine(
    R: np.ndarray, t: np.ndarray, x0: np.ndarray, x1: np.ndarray, scale: float,
    iterations: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Polish (R, t) on the inliers: Gauss-Newton with Huber weights (IRLS) on Sampson
    distances.

    RANSAC's answer comes from a minimal sample plus local optimisation; using every inlier
    roughly halves the rotation error (what poselib's bundle step does). R is perturbed by a
    rotation vector, t moves on the unit sphere through its tangent plane. The Jacobian comes
    from forward differences of all five parameters in one batched evaluation: a few numpy
    calls per iteration, where scipy's least_squares spent ~15 ms per pose (issue 19). From
    RANSAC's answer it converges in 2-3 steps (6 changed AUC by < 0.1 points).
    """
    h0, h1 = _homogeneous(x0), _homogeneous(x1)
    eps = 1e-7
    steps = np.vstack([np.zeros(5), eps * np.eye(5)])  # the point and its 5 perturbations
    damping = 1e-3
    for _ in range(iterations):
        b1, b2 = _tangent_basis(t)
        Rs = _rotvec_matrices(steps[:, :3]) @ R
        ts = t + steps[:, 3:4] * b1 + steps[:, 4:5] * b2
        ts /= np.linalg.norm(ts, axis=1, keepdims=True)
        r = _sampson_batch(_skew_batch(ts) @ Rs, h0, h1)
        J = (r[1:] - r[0]).T / eps  # (N, 5)
        a = np.abs(r[0])
        w = np.where(a <= scale, 1.0, scale / np.maximum(a, 1e-30))  # Huber IRLS weights
        JtW = J.T * w
        H = JtW @ J
        H[np.diag_indices(5)] *= 1 + damping
        try:
            delta = -np.linalg.solve(H, JtW @ r[0])
        except np.linalg.LinAlgError:
            break
        R = _rotvec_matrices(delta[None, :3])[0] @ R
        t = t + delta[3] * b1 + delta[4] * b2
        t /= np.linalg.norm(t)
        if np.linalg.norm(delta) < 1e-8:
            break
    return R, t


def _cheirality(R: np.ndarray, t: np.ndarray, x0: np.ndarray, x1: np.ndarray,
                max_depth: float = 50.0) -> np.ndarray:
    """Matches in front of both cameras (midpoint depths > 0, not at infinity), vectorized:
    recoverPose's check without its triangulation, ~50x cheaper per candidate."""
    return _cheirality_batch(R[None], t[None], x0, x1, max_depth)[0]


def _cheirality_batch(R: np.ndarray, t: np.ndarray, x0: np.ndarray, x1: np.ndarray,
                      max_depth: float = 50.0) -> np.ndarray:
    """:func:`_cheirality` for a stack of poses R (k, 3, 3), t (k, 3) -> (k, N)."""
    a, b = _homogeneous(x0) @ R.transpose(0, 2, 1), _homogeneous(x1)[None]  # (k, N, 3)
    aa, bb, ab = np.sum(a * a, -1), np.sum(b * b, -1), np.sum(a * b, -1)
    at, bt = a @ t[:, :, None], b @ t[:, :, None]
    at, bt = at[..., 0], bt[..., 0]
    det = aa * bb - ab * ab
    ok = det > 1e-12
    det = np.where(ok, det, 1.0)
    z0 = (-at * bb + ab * bt) / det
    z1 = (aa * bt - ab * at) / det
    return ok & (z0 > 0) & (z1 > 0) & (z0 < max_depth) & (z1 < max_depth)


def _best_decomposition(E: np.ndarray, x0: np.ndarray, x1: np.ndarray, inliers: np.ndarray
                        ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray] | None:
    """The (R, t) of the stacked candidates E (3k, 3) with the most inliers in front of both
    cameras: (count, R, t, mask). The four poses of each candidate are tested at once, on the
    inliers only."""
    index = np.flatnonzero(inliers)
    y0, y1 = x0[index], x1[index]
    best = None
    for k in range(E.shape[0] // 3):
        candidate = E[3 * k:3 * k + 3]
        if not np.isfinite(candidate).all():
            continue
        try:
            R1, R2, t = cv2.decomposeEssentialMat(candidate)
        except cv2.error:
            continue
        t = t.reshape(3)
        Rs, ts = np.stack([R1, R1, R2, R2]), np.stack([t, -t, t, -t])
        front = _cheirality_batch(Rs, ts, y0, y1)
        counts = front.sum(axis=1)
        j = int(np.argmax(counts))  # the first of equals, as the loop over (R1, R2) x (+t, -t)
        if best is None or counts[j] > best[0]:
            best = (int(counts[j]), Rs[j], ts[j], front[j])
    if best is None:
        return None
    mask = np.zeros(len(x0), dtype=bool)
    mask[index[best[3]]] = True
    return best[0], best[1], best[2], mask


def estimate_relative_pose(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    K0: np.ndarray,
    K1: np.ndarray,
    threshold_px: float = 1.0,
    confidence: float = 0.99999,
    max_iters: int | None = None,
    method: str = "accurate",
    refine: bool = True,
) -> RelativePose:
    """Relative pose of camera 1 w.r.t. camera 0 from pixel matches (N, 2) and intrinsics.

    Points are moved to normalized camera coordinates first so the two cameras may differ; the
    inlier threshold is a point-to-epipolar-line distance in pixels. ``method``: 'accurate'
    (USAC with inner local optimisation, default), 'magsac' (USAC_MAGSAC) or 'ransac'.
    ``max_iters`` bounds the hypotheses, the solver's cost (default 250 for 'accurate', whose
    local optimisation needs few, 10000 for the others); ``refine`` polishes the
    robust estimate on all inliers (Sampson distance, Huber loss) and re-selects the inliers.
    Degenerate input (fewer than 5 finite matches, collinear points, bad intrinsics, solver
    failure) returns identity R, zero t and an all-False inlier mask instead of raising.
    """
    p0 = np.asarray(kpts0, dtype=np.float64).reshape(-1, 2)
    p1 = np.asarray(kpts1, dtype=np.float64).reshape(-1, 2)
    if p0.shape != p1.shape:
        raise ValueError(f"keypoint arrays differ in shape: {p0.shape} vs {p1.shape}")
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {sorted(_METHODS)}")
    n = len(p0)
    K0 = np.asarray(K0, dtype=np.float64)
    K1 = np.asarray(K1, dtype=np.float64)
    if K0.shape != (3, 3) or K1.shape != (3, 3):
        return _failure(n)
    if not (np.isfinite(K0).all() and np.isfinite(K1).all()):
        return _failure(n)
    if abs(np.linalg.det(K0)) < 1e-12 or abs(np.linalg.det(K1)) < 1e-12:
        return _failure(n)

    finite = np.isfinite(p0).all(axis=1) & np.isfinite(p1).all(axis=1)
    index = np.flatnonzero(finite)
    if len(index) < 5:
        return _failure(n)
    x0 = _to_normalized(p0[index], K0)
    x1 = _to_normalized(p1[index], K1)
    if _is_degenerate(x0) or _is_degenerate(x1):
        return _failure(n)

    if max_iters is None:
        max_iters = _ACCURATE_MAX_ITERS if method == "accurate" else 10000
    focal = np.mean([K0[0, 0], K0[1, 1], K1[0, 0], K1[1, 1]])
    threshold = threshold_px / focal
    scoring = threshold * _HYPOTHESIS_THRESHOLD_SCALE if refine else threshold
    eye = np.eye(3)
    try:
        if method == "accurate":
            E, mask = cv2.findEssentialMat(
                x0, x1, eye, eye, None, None,
                _usac_params(scoring, confidence, max_iters, polish=not refine))
        else:
            E, mask = cv2.findEssentialMat(
                x0, x1, eye, method=getattr(cv2, _METHODS[method]), prob=confidence,
                threshold=scoring, maxIters=max_iters)
    except cv2.error:
        return _failure(n)
    if E is None or mask is None or E.ndim != 2 or E.shape[1] != 3 or E.shape[0] < 3:
        return _failure(n)

    best = _best_decomposition(E, x0, x1, mask.reshape(-1) > 0)
    if best is None or best[0] < 5:
        return _failure(n)
    _, R, t, pose_mask = best
    norm = np.linalg.norm(t)
    if not (np.isfinite(R).all() and np.isfinite(norm) and norm > 0):
        return _failure(n)
    t = t / norm
    if refine:  # one round: a second refit on the new inliers changed AUC by < 0.2 points
        R, t, pose_mask = _refined(R, t, x0, x1, pose_mask, threshold)
    inliers = np.zeros(n, dtype=bool)
    inliers[index] = pose_mask
    return RelativePose(R, t, inliers)


def _refined(
    R: np.ndarray, t: np.ndarray, x0: np.ndarray, x1: np.ndarray, inliers: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refine on the hypothesis' inliers, then re-select inliers (Sampson + cheirality) at the
    caller's threshold for the new pose.

    Falls back to the unrefined pose (its inliers at that threshold) if the refinement does not
    keep enough support.
    """
    before = _support(R, t, x0, x1, threshold)
    fallback = (R, t, before if before.sum() >= 5 else inliers)
    try:
        R_ref, t_ref = _refine(R, t, x0[inliers], x1[inliers], threshold)
    except (ValueError, np.linalg.LinAlgError):
        return fallback
    if not (np.isfinite(R_ref).all() and np.isfinite(t_ref).all()):
        return fallback
    mask = _support(R_ref, t_ref, x0, x1, threshold)
    if mask.sum() < max(5, before.sum() // 2):
        return fallback
    return R_ref, t_ref, mask


def _support(R: np.ndarray, t: np.ndarray, x0: np.ndarray, x1: np.ndarray, threshold: float
             ) -> np.ndarray:
    """Matches within ``threshold`` of their epipolar lines and in front of both cameras."""
    return (np.abs(_sampson(_skew(t) @ R, x0, x1)) < threshold) & _cheirality(R, t, x0, x1)


def rotation_error_deg(R_est: np.ndarray, R_true: np.ndarray) -> float:
    """Angle of R_est^T R_true in degrees."""
    cos = (np.trace(np.asarray(R_est).T @ np.asarray(R_true)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
