"""Forward optical flow ground truth, from depth, camera poses and object velocities.

Cheap because nothing is rendered twice: each pixel's 3D point (or, for the sky, its direction
at infinity) is moved with its object's velocity and projected with the camera pose at the next
time. Flow is in pixels, (du, dv) per pixel, NaN where the point ends up behind the camera.
It does not say whether the point is still visible then (occlusion is not modelled).
"""

from __future__ import annotations

import numpy as np

from event_fm.sim.render import Renderer, RenderOutput


def optical_flow(out: RenderOutput, renderer: Renderer, t_next: float) -> np.ndarray:
    """(H, W, 2) float32 flow from the frame ``out`` to time ``t_next`` (seconds)."""
    K, scene = renderer.intrinsics, renderer.scene
    T_next = scene.trajectory.pose(t_next)
    v, u = np.mgrid[: K.height, : K.width].astype(np.float64)
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], -1)
    finite = np.isfinite(out.depth)
    w = finite.astype(np.float64)[..., None]  # homogeneous: 0 = direction at infinity
    points = rays * np.where(finite, out.depth, 1.0)[..., None]
    world = points @ out.pose[:3, :3].T + w * out.pose[:3, 3]
    obj = out.object_id
    moving = obj >= 0
    moving[moving] = scene.moving[obj[moving]]
    world[moving] += scene.box_vel[obj[moving]] * (t_next - out.t)
    cam = (world - w * T_next[:3, 3]) @ T_next[:3, :3]
    with np.errstate(divide="ignore", invalid="ignore"):
        un = K.fx * cam[..., 0] / cam[..., 2] + K.cx
        vn = K.fy * cam[..., 1] / cam[..., 2] + K.cy
    flow = np.stack([un - u, vn - v], -1)
    flow[cam[..., 2] <= 1e-6] = np.nan
    return flow.astype(np.float32)
