"""Motion-compensated extrapolation of event frames (issue 20): the simple forecast that moves
what is there instead of repeating it (copy-last) or predicting nothing (zero).

The motion is the dense optical flow between the last two past frames' event-density images
(Farneback on Gaussian-blurred sum |voxel|), assumed constant: future frame k is the last
frame carried k flow steps along. Warping moves the events without changing how many there are,
so the forecast keeps the observed event rate.
"""

from __future__ import annotations

import numpy as np
import torch

#: Farneback settings for 128x128 event-density images (pyramid 0.5 x 3 levels, 15 px window)
_FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.1,
                  flags=0)


def density_image(frame: np.ndarray, blur: float = 1.5) -> np.ndarray:
    """(C, S, S) voxel frame -> (S, S) uint8 event density for the flow (max-scaled)."""
    import cv2

    d = np.abs(frame).sum(axis=0).astype(np.float32)
    if blur > 0:
        d = cv2.GaussianBlur(d, (0, 0), blur)
    top = float(d.max())
    return np.zeros(d.shape, np.uint8) if top <= 0 else (255.0 * d / top).astype(np.uint8)


def event_flow(previous: np.ndarray, last: np.ndarray) -> np.ndarray:
    """(S, S, 2) flow in pixels per frame from ``previous`` to ``last`` (C, S, S) frames."""
    import cv2

    a, b = density_image(previous), density_image(last)
    if not a.any() or not b.any():
        return np.zeros((*a.shape, 2), np.float32)
    return cv2.calcOpticalFlowFarneback(a, b, None, **_FARNEBACK)


def advect(frame: np.ndarray, flow: np.ndarray, steps: int) -> np.ndarray:
    """``frame`` (C, S, S) moved ``steps`` times along ``flow`` (backward warping: a pixel
    takes the value ``steps * flow`` behind it; outside the frame is empty)."""
    import cv2

    size = frame.shape[-1]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    map_x = xs - steps * flow[..., 0]
    map_y = ys - steps * flow[..., 1]
    return np.stack([cv2.remap(c.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0) for c in frame])


def motion_compensated_forecast(past: torch.Tensor, horizon: int) -> torch.Tensor:
    """(N, P, C, S, S) past frames -> (N, horizon, C, S, S): the last frame advected along the
    flow of the last two (copy-last where there is only one past frame)."""
    past_np = past.detach().cpu().numpy()
    out = np.empty((past_np.shape[0], horizon, *past_np.shape[2:]), np.float32)
    for i, seq in enumerate(past_np):
        last = seq[-1]
        flow = event_flow(seq[-2], last) if len(seq) > 1 else np.zeros((*last.shape[1:], 2),
                                                                        np.float32)
        for k in range(horizon):
            out[i, k] = advect(last, flow, k + 1)
    return torch.from_numpy(out).to(past.dtype)
