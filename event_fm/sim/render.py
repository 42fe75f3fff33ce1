"""Ray-casting renderer for procedural scenes: RGB, z-depth, semantics and object ids.

Every pixel's ray is intersected with the ground plane and all boxes (slab method in each box's
own frame, so yawed and moving boxes cost the same) and the nearest hit wins; boxes are culled
per frame to those whose projected bounds contain the pixel and visited nearest first, so the
search stops at the first box that starts behind the current hit. The kernel is numba-parallel
over image rows (all cores).

Ray directions are ``R @ ((u - cx) / fx, (v - cy) / fy, 1)``, so the ray parameter at a hit *is*
the z-depth along the optical axis: depth needs no conversion. Outputs:

- ``rgb``: float32 linear radiance in [0, 1] (Lambertian: albedo * (ambient + diffuse * n.l)),
- ``depth``: float32 metres (z-depth); **sky pixels are +inf**,
- ``semantic``: uint8 class ids of :mod:`event_fm.sim.classes`; sky is background (0),
- ``object_id``: int32 box index in the scene, -1 ground, -2 sky.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from event_fm.sim.camera import Intrinsics
from event_fm.sim.photos import empty_atlas, photo_atlas, uses_photos
from event_fm.sim.scene import Scene
from event_fm.sim.textures import shade_texture, sky_color

NEAR = 1e-3
GROUND_ID, SKY_ID = -1, -2

# corner signs of a unit box, (8, 3)
_CORNERS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                    dtype=np.float64)


@dataclass
class RenderOutput:
    t: float
    pose: np.ndarray
    rgb: np.ndarray
    depth: np.ndarray
    semantic: np.ndarray
    object_id: np.ndarray


@nb.njit(cache=True, inline="always")
def _slab(o, d, h, tn, tf, an, af, axis):
    """Clip [tn, tf] by the slab |o + t d| <= h of one axis; records the limiting axes."""
    if abs(d) < 1e-12:
        if abs(o) > h:
            return 1.0, -1.0, an, af  # parallel and outside: empty interval
        return tn, tf, an, af
    t1 = (-h - o) / d
    t2 = (h - o) / d
    if t1 > t2:
        t1, t2 = t2, t1
    if t1 > tn:
        tn, an = t1, axis
    if t2 < tf:
        tf, af = t2, axis
    return tn, tf, an, af


@nb.njit(parallel=True, cache=True)
def _cast(o, R, fx, fy, cx, cy, geo, bbox, zmin, btex, bparams, bcls, ground_on, gedges, gcls, gtex,
          gparams, sky_on, sky, sun, ambient, diffuse, photos, rgb, depth, sem, obj):
    height, width = depth.shape
    nbox = geo.shape[0]
    for v in nb.prange(height):
        for u in range(width):
            dcx = (u - cx) / fx
            dcy = (v - cy) / fy
            dx = R[0, 0] * dcx + R[0, 1] * dcy + R[0, 2]
            dy = R[1, 0] * dcx + R[1, 1] * dcy + R[1, 2]
            dz = R[2, 0] * dcx + R[2, 1] * dcy + R[2, 2]
            dnorm = math.sqrt(dx * dx + dy * dy + dz * dz)
            best = np.inf
            hit = SKY_ID
            axis = -1
            sign = 0.0
            if ground_on and dz < -1e-12:
                s = -o[2] / dz
                if s > NEAR:
                    best = s
                    hit = GROUND_ID
            for k in range(nbox):
                if zmin[k] >= best:
                    break  # boxes are sorted by zmin: none further on can be nearer
                if u < bbox[k, 0] or u > bbox[k, 1] or v < bbox[k, 2] or v > bbox[k, 3]:
                    continue
                c, sn = geo[k, 6], geo[k, 7]
                px, py, pz = o[0] - geo[k, 0], o[1] - geo[k, 1], o[2] - geo[k, 2]
                lox, loy = c * px + sn * py, -sn * px + c * py
                ldx, ldy = c * dx + sn * dy, -sn * dx + c * dy
                tn, tf, an, af = -np.inf, np.inf, -1, -1
                tn, tf, an, af = _slab(lox, ldx, geo[k, 3], tn, tf, an, af, 0)
                tn, tf, an, af = _slab(loy, ldy, geo[k, 4], tn, tf, an, af, 1)
                tn, tf, an, af = _slab(pz, dz, geo[k, 5], tn, tf, an, af, 2)
                if tn > tf or tf <= NEAR:
                    continue
                if tn > NEAR:
                    s, ax = tn, an
                else:  # the camera is inside the box (a room): the far face, seen from inside
                    s, ax = tf, af
                if s < best:
                    best = s
                    hit = k
                    axis = ax
                    ld = ldx if ax == 0 else (ldy if ax == 1 else dz)
                    sign = -1.0 if ld > 0 else 1.0
            if hit == SKY_ID:
                depth[v, u] = np.inf
                sem[v, u] = 0
                obj[v, u] = SKY_ID
                if sky_on:
                    r, g, b = sky_color(dx / dnorm, dy / dnorm, dz / dnorm, 1.0 / fx, sky)
                else:
                    r, g, b = 0.0, 0.0, 0.0
                rgb[v, u, 0] = min(max(r, 0.0), 1.0)
                rgb[v, u, 1] = min(max(g, 0.0), 1.0)
                rgb[v, u, 2] = min(max(b, 0.0), 1.0)
                continue
            hx, hy, hz = o[0] + best * dx, o[1] + best * dy, o[2] + best * dz
            if hit == GROUND_ID:
                ay = abs(hy)
                band = 0 if ay < gedges[0] else (1 if ay < gedges[1] else 2)
                nx, ny, nz = 0.0, 0.0, 1.0
                tu, tv = hx, hy
                tex, prow, pars, label = gtex[band], band, gparams, gcls[band]
            else:
                c, sn = geo[hit, 6], geo[hit, 7]
                px, py = hx - geo[hit, 0], hy - geo[hit, 1]
                lx, ly, lz = c * px + sn * py, -sn * px + c * py, hz - geo[hit, 2]
                lnx = sign if axis == 0 else 0.0
                lny = sign if axis == 1 else 0.0
                nz = sign if axis == 2 else 0.0
                nx, ny = c * lnx - sn * lny, sn * lnx + c * lny
                if axis == 2:
                    tu, tv = lx + geo[hit, 3], ly + geo[hit, 4]
                elif axis == 0:
                    tu, tv = ly + geo[hit, 4], lz + geo[hit, 5]
                else:
                    tu, tv = lx + geo[hit, 3], lz + geo[hit, 5]
                tex, prow, pars, label = btex[hit], hit, bparams, bcls[hit]
            cos_view = abs(nx * dx + ny * dy + nz * dz) / dnorm
            footprint = best * dnorm / fx / max(cos_view, 0.05)
            r, g, b = shade_texture(tex, pars, prow, tu, tv, footprint, photos)
            light = ambient + diffuse * max(0.0, nx * sun[0] + ny * sun[1] + nz * sun[2])
            rgb[v, u, 0] = min(max(r * light, 0.0), 1.0)
            rgb[v, u, 1] = min(max(g * light, 0.0), 1.0)
            rgb[v, u, 2] = min(max(b * light, 0.0), 1.0)
            depth[v, u] = best
            sem[v, u] = label
            obj[v, u] = hit


class Renderer:
    """Renders one scene through one camera at any time ``t`` (seconds)."""

    def __init__(self, scene: Scene, intrinsics: Intrinsics):
        self.scene = scene
        self.intrinsics = intrinsics
        geo = scene.box_geo
        self._half = geo[:, 3:6]
        self._cos, self._sin = np.cos(geo[:, 6]), np.sin(geo[:, 6])
        shown = uses_photos(scene.box_tex) or uses_photos(scene.ground_tex)
        self._photos = photo_atlas() if shown else empty_atlas()

    def box_centers(self, t: float) -> np.ndarray:
        return self.scene.box_geo[:, :3] + self.scene.box_vel * t

    def _visible(self, centers: np.ndarray, T_wc: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes that may be seen, nearest first: indices, conservative pixel bounds and the
        smallest z-depth of each (no point of the box is nearer)."""
        K = self.intrinsics
        n = len(centers)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros((0, 4), np.int64), np.zeros(0)
        local = _CORNERS[None] * self._half[:, None, :]  # (N, 8, 3)
        cx = self._cos[:, None] * local[..., 0] - self._sin[:, None] * local[..., 1]
        cy = self._sin[:, None] * local[..., 0] + self._cos[:, None] * local[..., 1]
        world = np.stack([cx, cy, local[..., 2]], -1) + centers[:, None, :]
        cam = (world - T_wc[:3, 3]) @ T_wc[:3, :3]  # R^T (X - o), row vectors
        z = cam[..., 2]
        front = z > 0.05
        keep = front.any(axis=1)
        straddle = keep & ~front.all(axis=1)
        zs = np.where(front, z, 1.0)
        u = K.fx * cam[..., 0] / zs + K.cx
        v = K.fy * cam[..., 1] / zs + K.cy
        box = np.stack([np.floor(np.where(front, u, np.inf).min(1)) - 1,
                        np.ceil(np.where(front, u, -np.inf).max(1)) + 1,
                        np.floor(np.where(front, v, np.inf).min(1)) - 1,
                        np.ceil(np.where(front, v, -np.inf).max(1)) + 1], 1)
        box[straddle] = (-1, K.width, -1, K.height)  # crosses the camera plane: anywhere
        box[~keep] = -1.0
        keep &= (box[:, 1] >= 0) & (box[:, 0] < K.width) & (box[:, 3] >= 0) & (box[:, 2] < K.height)
        idx = np.flatnonzero(keep)
        zmin = z.min(axis=1)[idx]
        order = np.argsort(zmin, kind="stable")  # near first, so the kernel can stop early
        idx, zmin = idx[order], zmin[order]
        return idx, np.clip(box[idx], -1, max(K.width, K.height)).astype(np.int64), zmin

    def render(self, t: float, pose: np.ndarray | None = None) -> RenderOutput:
        scene, K = self.scene, self.intrinsics
        T_wc = scene.trajectory.pose(t) if pose is None else pose
        centers = self.box_centers(t)
        idx, bbox, zmin = self._visible(centers, T_wc)
        geo = np.empty((len(idx), 8))
        geo[:, :3] = centers[idx]
        geo[:, 3:6] = self._half[idx]
        geo[:, 6], geo[:, 7] = self._cos[idx], self._sin[idx]
        rgb = np.empty((K.height, K.width, 3), dtype=np.float32)
        depth = np.empty((K.height, K.width), dtype=np.float32)
        sem = np.empty((K.height, K.width), dtype=np.uint8)
        obj = np.empty((K.height, K.width), dtype=np.int32)
        sky = (scene.sky if scene.sky is not None else np.zeros(10)).reshape(1, -1)
        _cast(np.ascontiguousarray(T_wc[:3, 3]), np.ascontiguousarray(T_wc[:3, :3]),
              K.fx, K.fy, K.cx, K.cy, geo, bbox, zmin, scene.box_tex[idx],
              np.ascontiguousarray(scene.box_params[idx]), scene.box_class[idx], True,
              scene.ground_edges, scene.ground_class, scene.ground_tex, scene.ground_params,
              scene.sky is not None, sky, scene.sun, scene.ambient, scene.diffuse,
              self._photos, rgb, depth, sem, obj)
        hit = obj >= 0
        obj[hit] = idx[obj[hit]]  # candidate index -> scene box index
        return RenderOutput(t, T_wc, rgb, depth, sem, obj)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of linear RGB (float in [0, 1] or uint8 -> float32 in [0, 1])."""
    rgb = np.asarray(rgb)
    scale = 1.0 / 255.0 if rgb.dtype == np.uint8 else 1.0
    if rgb.ndim == 2:
        return rgb.astype(np.float32) * np.float32(scale)
    w = np.array([0.299, 0.587, 0.114], dtype=np.float32) * np.float32(scale)
    return rgb[..., :3].astype(np.float32, copy=False) @ w
