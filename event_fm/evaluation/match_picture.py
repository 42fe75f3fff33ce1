"""A match picture a person can read: the camera frame on the left, the event window on the right
(ON events red, OFF blue on white), one line per match, green for the pose's inliers and red for
the outliers, with a caption (matches, inliers, and whatever the caller adds)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["draw_matches", "event_frame_rgb", "save_match_picture"]


def event_frame_rgb(voxels_or_events, height: int | None = None, width: int | None = None
                    ) -> np.ndarray:
    """(H, W, 3) uint8 of a window: a voxel grid (bins, H, W) (signed sum over the bins) or a
    structured event array (with ``height``, ``width``); ON red, OFF blue, empty white."""
    if isinstance(voxels_or_events, np.ndarray) and voxels_or_events.dtype.names:
        ev = voxels_or_events
        signed = np.zeros((height, width), np.float32)
        x, y = ev["x"].astype(np.int64), ev["y"].astype(np.int64)
        ok = (x < width) & (y < height)
        p = np.where(ev["p"][ok] > 0, 1.0, -1.0).astype(np.float32)
        np.add.at(signed, (y[ok], x[ok]), p)
    else:
        v = np.asarray(voxels_or_events.detach().cpu() if hasattr(voxels_or_events, "detach")
                       else voxels_or_events, np.float32)
        signed = v.sum(0) if v.ndim == 3 else v
    scale = float(np.percentile(np.abs(signed[signed != 0]), 95)) if np.any(signed) else 1.0
    s = np.clip(signed / max(scale, 1e-6), -1, 1)
    img = np.full(s.shape + (3,), 255.0, np.float32)
    on, off = np.clip(s, 0, 1), np.clip(-s, 0, 1)
    img[..., 1] -= 255 * (on + off)
    img[..., 2] -= 255 * on  # ON: red (RGB)
    img[..., 0] -= 255 * off  # OFF: blue
    return np.clip(img, 0, 255).astype(np.uint8)


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image * (255 if image.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def draw_matches(left: np.ndarray, right: np.ndarray, k0: np.ndarray, k1: np.ndarray,
                 inliers: np.ndarray | None = None, caption: str = "", scale: float = 2.0,
                 max_lines: int = 300) -> np.ndarray:
    """(H', W', 3) uint8 RGB: ``left`` and ``right`` side by side (``scale``x), lines between
    matched pixels k0 (in left) and k1 (in right), green inliers over red outliers."""
    a, b = _rgb(left), _rgb(right)
    h = max(a.shape[0], b.shape[0])
    canvas = np.full((h, a.shape[1] + b.shape[1], 3), 255, np.uint8)
    canvas[:a.shape[0], :a.shape[1]] = a
    canvas[:b.shape[0], a.shape[1]:] = b
    canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    k0 = np.asarray(k0, np.float64).reshape(-1, 2)
    k1 = np.asarray(k1, np.float64).reshape(-1, 2)
    inl = np.zeros(len(k0), bool) if inliers is None else np.asarray(inliers, bool)
    order = np.concatenate([np.flatnonzero(~inl), np.flatnonzero(inl)])  # inliers on top
    if len(order) > max_lines:
        order = order[np.linspace(0, len(order) - 1, max_lines).astype(int)]
    for i in order:
        p0 = tuple(int(round((c + 0.5) * scale)) for c in k0[i])
        p1 = (int(round((k1[i, 0] + 0.5 + a.shape[1]) * scale)),
              int(round((k1[i, 1] + 0.5) * scale)))
        color = (0, 170, 0) if inl[i] else (220, 0, 0)
        cv2.line(canvas, p0, p1, color, 1, cv2.LINE_AA)
        cv2.circle(canvas, p0, 2, color, -1)
        cv2.circle(canvas, p1, 2, color, -1)
    text = f"{len(k0)} matches, {int(inl.sum())} inliers" + (f"  {caption}" if caption else "")
    bar = np.full((24, canvas.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, canvas], 0)


def save_match_picture(path: str | Path, frame: np.ndarray, events_right, k0: np.ndarray,
                       k1: np.ndarray, inliers: np.ndarray | None = None, caption: str = "",
                       size: tuple[int, int] | None = None) -> Path:
    """Write the match picture (frame left, event window right) to ``path`` (PNG). The right
    side is an RGB image, a voxel grid or an event array (with ``size`` = (H, W))."""
    if isinstance(events_right, np.ndarray) and events_right.dtype == np.uint8 \
            and events_right.ndim == 3 and events_right.shape[-1] == 3:
        right = events_right
    else:
        h, w = size if size is not None else (None, None)
        right = event_frame_rgb(events_right, h, w)
    picture = draw_matches(frame, right, k0, k1, inliers, caption)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    return path
