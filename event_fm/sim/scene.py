"""Scene description and procedural generation from a seed.

A scene is a ground plane split into three bands by distance from the street axis (road,
sidewalk, outer), oriented boxes (buildings, walls, fences, poles, signs, trees, cars, persons;
each with a class, a texture and an optional constant velocity), a sky at infinity and a
directional light, plus the camera trajectory through it. Everything is drawn from one
``numpy.random.Generator`` seeded by ``(seed, kind)``, so a seed reproduces a scene exactly and
different seeds give different layouts, textures, object counts and speeds.

Kinds: ``street`` (urban canyon, parked and moving cars, pedestrians), ``highway`` (wide road,
guard rails, fast traffic, trees and distant buildings), ``park`` (path through trees and lawns,
walkers), ``room`` (an indoor hall: walls, pillars, crates, people; no sky).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from event_fm.sim import classes as C
from event_fm.sim import textures as T
from event_fm.sim.camera import Trajectory

SCENE_KINDS = ("street", "highway", "park", "room")


@dataclass
class Scene:
    """Geometry, appearance and camera motion of one procedural scene (world: x fwd, z up)."""

    kind: str
    seed: int
    #: (N, 7) box centre xyz at t = 0, half sizes xyz, yaw about z (rad)
    box_geo: np.ndarray
    #: (N, 3) constant velocity (m/s); zero for static boxes
    box_vel: np.ndarray
    box_class: np.ndarray
    box_tex: np.ndarray
    box_params: np.ndarray
    #: |y| limits of the road and sidewalk bands; beyond them the outer band
    ground_edges: np.ndarray
    ground_class: np.ndarray
    ground_tex: np.ndarray
    ground_params: np.ndarray
    sky: np.ndarray | None
    sun: np.ndarray
    ambient: float
    diffuse: float
    trajectory: Trajectory
    hfov_deg: float = 80.0
    extra: dict = field(default_factory=dict)

    @property
    def moving(self) -> np.ndarray:
        """Per box: whether it moves on its own."""
        return np.any(self.box_vel != 0.0, axis=1)

    def summary(self) -> dict:
        counts = np.bincount(self.box_class, minlength=C.NUM_CLASSES)
        return {
            "kind": self.kind, "seed": self.seed, "boxes": int(len(self.box_geo)),
            "moving_boxes": int(self.moving.sum()),
            "boxes_per_class": {C.CLASS_NAMES[i]: int(n) for i, n in enumerate(counts) if n},
            "ground_edges_m": self.ground_edges.tolist(),
            "ground_classes": [C.CLASS_NAMES[i] for i in self.ground_class],
            "sky": self.sky is not None, "sun_direction": self.sun.tolist(),
            "trajectory": self.trajectory.to_dict(), "hfov_deg": self.hfov_deg, **self.extra,
        }


class _Builder:
    """Accumulates boxes, then packs them into the arrays the renderer reads."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.rows: list[tuple] = []

    def seed(self) -> int:
        return int(self.rng.integers(1, 1_000_000))

    def box(self, center, half, cls: int, tex: int, params: np.ndarray, yaw: float = 0.0,
            velocity=(0.0, 0.0, 0.0)) -> None:
        self.rows.append((tuple(center), tuple(half), yaw, tuple(velocity), cls, tex, params))

    def on_ground(self, x: float, y: float, half, cls: int, tex: int, params: np.ndarray,
                  z0: float = 0.0, yaw: float = 0.0, velocity=(0.0, 0.0, 0.0)) -> None:
        """A box standing at height ``z0`` (its bottom face) over (x, y)."""
        self.box((x, y, z0 + half[2]), half, cls, tex, params, yaw, velocity)

    def pack(self) -> dict:
        n = len(self.rows)
        geo = np.zeros((n, 7))
        vel = np.zeros((n, 3))
        cls = np.zeros(n, dtype=np.uint8)
        tex = np.zeros(n, dtype=np.int32)
        params = np.zeros((n, T.N_PARAMS))
        for i, (c, h, yaw, v, k, t, p) in enumerate(self.rows):
            geo[i, :3], geo[i, 3:6], geo[i, 6] = c, h, yaw
            vel[i], cls[i], tex[i], params[i] = v, k, t, p
        return dict(box_geo=geo, box_vel=vel, box_class=cls, box_tex=tex, box_params=params)


# -- colours ------------------------------------------------------------------------------------
def _jitter(rng, color, amount: float = 0.15) -> tuple[float, float, float]:
    c = np.asarray(color) * rng.uniform(1 - amount, 1 + amount, 3)
    return tuple(np.clip(c, 0.01, 0.95).tolist())


BRICK_COLORS = ((0.45, 0.2, 0.13), (0.55, 0.35, 0.25), (0.35, 0.3, 0.28), (0.6, 0.5, 0.4))
PLASTER_COLORS = ((0.7, 0.65, 0.55), (0.55, 0.55, 0.6), (0.75, 0.6, 0.45), (0.5, 0.45, 0.4))
CAR_COLORS = ((0.6, 0.05, 0.05), (0.05, 0.1, 0.4), (0.8, 0.8, 0.8), (0.1, 0.1, 0.1),
              (0.5, 0.5, 0.52), (0.1, 0.3, 0.1), (0.7, 0.6, 0.1))
CLOTH_COLORS = ((0.1, 0.1, 0.3), (0.5, 0.1, 0.1), (0.6, 0.6, 0.6), (0.05, 0.05, 0.05),
                (0.2, 0.4, 0.2), (0.7, 0.5, 0.2))


def _pick(rng, colors) -> tuple[float, float, float]:
    return _jitter(rng, colors[int(rng.integers(len(colors)))])


# -- object kits --------------------------------------------------------------------------------
def _building(b: _Builder, x0: float, x1: float, y_near: float, side: int, height: float,
              depth: float) -> None:
    rng = b.rng
    if rng.random() < 0.5:
        params = T.texture_row(_pick(rng, BRICK_COLORS), (0.55, 0.55, 0.52),
                               rng.uniform(0.8, 1.3), b.seed())
        tex = T.BRICK
    else:
        params = T.texture_row(_pick(rng, PLASTER_COLORS), _jitter(rng, (0.06, 0.08, 0.1)),
                               rng.uniform(0.8, 1.3), b.seed())
        tex = T.FACADE
    b.on_ground((x0 + x1) / 2, side * (y_near + depth / 2), ((x1 - x0) / 2, depth / 2, height / 2),
                C.BUILDING, tex, params)


def _car(b: _Builder, x: float, y: float, velocity=(0.0, 0.0, 0.0), yaw: float = 0.0) -> None:
    rng = b.rng
    length, width = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9)
    body_h, cabin_h = rng.uniform(0.55, 0.75), rng.uniform(0.45, 0.6)
    color = _pick(rng, CAR_COLORS)
    seed = b.seed()
    b.on_ground(x, y, (length / 2, width / 2, body_h / 2), C.CAR, T.CAR,
                T.texture_row(color, color, 1.0, seed), z0=0.25, yaw=yaw, velocity=velocity)
    b.on_ground(x - 0.1 * length, y, (0.3 * length, width / 2 - 0.08, cabin_h / 2), C.CAR, T.CAR,
                T.texture_row(color, _jitter(rng, (0.05, 0.07, 0.09)), 1.0, seed,
                              extra1=rng.uniform(0.8, 1.3)),
                z0=0.25 + body_h, yaw=yaw, velocity=velocity)


def _person(b: _Builder, x: float, y: float, velocity=(0.0, 0.0, 0.0)) -> None:
    rng = b.rng
    h = rng.uniform(1.55, 1.9)
    b.on_ground(x, y, (0.16, 0.25, h / 2), C.PERSON, T.CLOTH,
                T.texture_row(_pick(rng, CLOTH_COLORS), _pick(rng, CLOTH_COLORS),
                              rng.uniform(0.8, 1.2), b.seed(), extra1=0.45 * h),
                velocity=velocity)


def _tree(b: _Builder, x: float, y: float, scale: float = 1.0) -> None:
    rng = b.rng
    trunk_h = rng.uniform(1.8, 3.0) * scale
    b.on_ground(x, y, (0.15, 0.15, trunk_h / 2), C.VEGETATION, T.BARK,
                T.texture_row(_jitter(rng, (0.25, 0.17, 0.1)), scale=1.0, seed=b.seed()))
    r = rng.uniform(0.9, 1.8) * scale
    b.on_ground(x, y, (r, r, rng.uniform(0.8, 1.5) * r), C.VEGETATION, T.FOLIAGE,
                T.texture_row(_jitter(rng, (0.1, 0.3, 0.06)), _jitter(rng, (0.25, 0.4, 0.1)),
                              rng.uniform(0.7, 1.3), b.seed()), z0=trunk_h - 0.2)


def _pole(b: _Builder, x: float, y: float, side: int, sign_prob: float = 0.4,
          sign_size: float = 0.35) -> None:
    rng = b.rng
    h = rng.uniform(3.5, 7.0)
    b.on_ground(x, y, (0.08, 0.08, h / 2), C.POLE, T.METAL,
                T.texture_row(_jitter(rng, (0.45, 0.45, 0.45)), _jitter(rng, (0.2, 0.2, 0.2)),
                              rng.uniform(0.7, 1.5), b.seed()))
    if rng.random() < sign_prob:
        colors = ((0.7, 0.05, 0.05), (0.05, 0.15, 0.6), (0.8, 0.7, 0.05))
        b.on_ground(x - 0.12, y - side * 0.1, (0.03, sign_size, sign_size), C.SIGN, T.SIGN,
                    T.texture_row(_pick(rng, colors), (0.9, 0.9, 0.9), rng.uniform(0.8, 1.5),
                                  b.seed()), z0=min(h - 2 * sign_size, 2.2))


def _fence(b: _Builder, x0: float, x1: float, y: float, height: float, cls: int = C.FENCE) -> None:
    rng = b.rng
    tex = T.FENCE if cls == C.FENCE else T.BRICK
    params = T.texture_row(_jitter(rng, (0.5, 0.45, 0.4)), _jitter(rng, (0.1, 0.1, 0.1)),
                           rng.uniform(0.8, 1.3), b.seed(), extra1=height)
    b.on_ground((x0 + x1) / 2, y, ((x1 - x0) / 2, 0.05 if cls == C.FENCE else 0.15, height / 2),
                cls, tex, params)


def _sun(rng) -> np.ndarray:
    el, az = math.radians(rng.uniform(25, 65)), rng.uniform(-math.pi, math.pi)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def _sky(rng) -> np.ndarray:
    horizon = _jitter(rng, (0.75, 0.8, 0.85), 0.1)
    zenith = _jitter(rng, (0.3, 0.45, 0.75), 0.15)
    return T.texture_row(horizon, zenith, rng.uniform(0.1, 0.45), int(rng.integers(1, 10**6)))


def _wobble(rng, lateral: float, yaw: float) -> tuple[tuple[float, float, float], ...]:
    def w(amp, f_lo, f_hi):
        return (float(amp * rng.uniform(0.5, 1.0)), float(rng.uniform(f_lo, f_hi)),
                float(rng.uniform(0, 2 * math.pi)))
    return (w(lateral, 0.15, 0.4), w(0.05, 0.8, 1.5), w(yaw, 0.2, 0.5), w(0.02, 0.5, 1.0),
            w(0.015, 0.3, 0.8))


# -- layouts ------------------------------------------------------------------------------------
def _street(b: _Builder, length: float) -> dict:
    rng = b.rng
    road_half, sidewalk = rng.uniform(5.0, 8.0), rng.uniform(1.5, 4.0)
    speed = rng.uniform(5.0, 12.0)
    cam_y = -rng.uniform(1.3, 2.0)
    edge = road_half + sidewalk
    for side in (-1, 1):
        x = -30.0
        while x < length:
            w = rng.uniform(8, 25)
            setback = rng.uniform(0.0, 1.5)
            if rng.random() < 0.15:
                _fence(b, x, x + w, side * (edge + 0.2), rng.uniform(1.0, 2.2),
                       C.FENCE if rng.random() < 0.6 else C.WALL)
            else:
                _building(b, x, x + w, edge + setback, side, rng.uniform(6, 30),
                          rng.uniform(8, 15))
            x += w + rng.uniform(0.0, 0.6)
        x = rng.uniform(-10, 10)
        while x < length:
            _pole(b, x, side * (road_half + 0.4), side)
            x += rng.uniform(12, 25)
        x = rng.uniform(-10, 10)
        while x < length:
            if rng.random() < 0.6:
                _tree(b, x, side * (road_half + min(0.6 * sidewalk, 1.5)))
            x += rng.uniform(8, 20)
        x = rng.uniform(-10, 0)
        while x < length:
            if rng.random() < 0.5:
                _car(b, x, side * (road_half - 1.1))
            x += rng.uniform(6, 12)
        for _ in range(int(rng.poisson(length / 12))):
            v = 0.0 if rng.random() < 0.4 else rng.choice([-1, 1]) * rng.uniform(0.8, 1.6)
            _person(b, rng.uniform(-10, length), side * (road_half + rng.uniform(0.4, sidewalk)),
                    (v, 0.0, 0.0))
    for _ in range(int(rng.integers(1, 4))):  # same lane, ahead and faster: never reached
        _car(b, rng.uniform(15, 60), cam_y, (speed + rng.uniform(1.0, 5.0), 0.0, 0.0))
    for _ in range(int(rng.integers(1, 6))):  # oncoming traffic
        y = rng.uniform(1.6, max(1.7, road_half - 3.1))
        _car(b, rng.uniform(20, length), y, (-rng.uniform(5.0, 14.0), 0.0, 0.0))
    return dict(road_half=road_half, sidewalk=sidewalk, speed=speed, cam_y=cam_y,
                outer=(C.SIDEWALK, T.PAVING), lanes=True)


def _highway(b: _Builder, length: float) -> dict:
    rng = b.rng
    road_half, shoulder = rng.uniform(7.0, 11.0), rng.uniform(2.0, 4.0)
    speed = rng.uniform(15.0, 25.0)
    cam_y = -rng.uniform(1.5, 2.5)
    for side in (-1, 1):
        _fence(b, -40, length, side * (road_half + 0.5), 0.8)
        x = rng.uniform(-20, 0)
        while x < length:
            _pole(b, x, side * (road_half + 1.0), side, sign_prob=0.3, sign_size=0.8)
            x += rng.uniform(25, 50)
        x = rng.uniform(-20, 0)
        while x < length:
            _tree(b, x, side * (road_half + shoulder + rng.uniform(3, 20)), rng.uniform(1, 2))
            x += rng.uniform(3, 12)
        x = rng.uniform(-20, 0)
        while x < length:
            d = rng.uniform(30, 60)
            if rng.random() < 0.5:
                _building(b, x, x + rng.uniform(15, 40), d, side, rng.uniform(8, 40),
                          rng.uniform(10, 20))
            x += rng.uniform(40, 90)
    for _ in range(int(rng.integers(1, 5))):
        lane = cam_y - rng.choice([0.0, 3.5]) if road_half > 8 else cam_y
        _car(b, rng.uniform(20, 80), lane, (speed + rng.uniform(2.0, 8.0), 0.0, 0.0))
    for _ in range(int(rng.integers(2, 8))):
        _car(b, rng.uniform(30, length), rng.uniform(2.0, road_half - 1.5),
             (-rng.uniform(15.0, 30.0), 0, 0))
    return dict(road_half=road_half, sidewalk=shoulder, speed=speed, cam_y=cam_y,
                outer=(C.VEGETATION, T.GRASS), lanes=True)


def _park(b: _Builder, length: float) -> dict:
    rng = b.rng
    path_half, verge = rng.uniform(1.5, 3.0), rng.uniform(1.0, 3.0)
    speed = rng.uniform(2.0, 5.0)
    for side in (-1, 1):
        x = rng.uniform(-20, 0)
        while x < length:
            _tree(b, x, side * (path_half + verge + rng.uniform(0.5, 12)), rng.uniform(0.8, 1.6))
            x += rng.uniform(2, 8)
        x = rng.uniform(-20, 0)
        while x < length:
            _pole(b, x, side * (path_half + 0.5), side, sign_prob=0.15)
            x += rng.uniform(20, 40)
        x = rng.uniform(-20, 0)
        while x < length:
            if rng.random() < 0.3:
                _fence(b, x, x + rng.uniform(4, 15), side * (path_half + verge),
                       rng.uniform(0.6, 1.2), C.WALL if rng.random() < 0.5 else C.FENCE)
            x += rng.uniform(15, 30)
        x = rng.uniform(-20, 0)
        while x < length:
            if rng.random() < 0.6:
                _building(b, x, x + rng.uniform(15, 35), rng.uniform(35, 70), side,
                          rng.uniform(8, 25), rng.uniform(10, 20))
            x += rng.uniform(30, 60)
        for _ in range(int(rng.poisson(length / 8))):
            v = 0.0 if rng.random() < 0.3 else rng.choice([-1, 1]) * rng.uniform(0.8, 1.6)
            y = side * rng.uniform(1.4, path_half + verge + 4)
            _person(b, rng.uniform(-5, length), y, (v, 0.0, 0.0))
    return dict(road_half=path_half, sidewalk=verge, speed=speed, cam_y=0.0,
                outer=(C.VEGETATION, T.GRASS), lanes=False)


def _room(b: _Builder, length: float) -> dict:
    rng = b.rng
    half_w, height = rng.uniform(2.5, 5.0), rng.uniform(3.0, 4.5)
    hall = max(length, rng.uniform(30, 80))
    x0 = -8.0
    wall_tex = T.BRICK if rng.random() < 0.5 else T.FACADE
    b.box(((x0 + hall) / 2, 0.0, height / 2), ((hall - x0) / 2, half_w, height / 2), C.WALL,
          wall_tex, T.texture_row(_pick(rng, PLASTER_COLORS), _jitter(rng, (0.2, 0.2, 0.25)),
                                  rng.uniform(0.5, 0.9), b.seed()))
    b.box(((x0 + hall) / 2, 0.0, height - 0.05), ((hall - x0) / 2 - 0.01, half_w - 0.01, 0.05),
          C.BACKGROUND, T.CHECKER, T.texture_row((0.8, 0.8, 0.78), (0.6, 0.6, 0.6),
                                                  rng.uniform(0.5, 1.2), b.seed()))
    x = rng.uniform(0, 4)
    while x < hall - 1:
        for side in (-1, 1):
            if rng.random() < 0.6:
                _pole(b, x, side * (half_w - 0.4), side, sign_prob=0.3)
            if rng.random() < 0.5:
                s = rng.uniform(0.3, min(0.7, (half_w - 1.5) / 2))
                b.on_ground(x + rng.uniform(-2, 2), side * (half_w - 0.5 - s), (s, s, s),
                            C.BACKGROUND, T.CHECKER if rng.random() < 0.5 else T.FLAT,
                            T.texture_row(_jitter(rng, (0.5, 0.35, 0.2)),
                                          _jitter(rng, (0.2, 0.15, 0.1)),
                                          rng.uniform(0.05, 0.2), b.seed()),
                            yaw=rng.uniform(-0.4, 0.4))
        x += rng.uniform(3, 8)
    for _ in range(int(rng.integers(2, 8))):
        v = 0.0 if rng.random() < 0.3 else rng.choice([-1, 1]) * rng.uniform(0.5, 1.4)
        _person(b, rng.uniform(3, hall - 3), rng.choice([-1, 1]) * rng.uniform(1.0, half_w - 0.4),
                (v, 0.0, 0.0))
    if rng.random() < 0.5:
        _fence(b, rng.uniform(5, hall / 2), hall - 2, -(half_w - 1.6), 1.0)
    return dict(road_half=half_w, sidewalk=1.0, speed=rng.uniform(1.0, 2.5), cam_y=0.0,
                outer=(C.BACKGROUND, T.CHECKER), lanes=False, indoor=True)


LAYOUTS = {"street": _street, "highway": _highway, "park": _park, "room": _room}


def generate_scene(kind: str = "street", seed: int = 0, duration: float = 10.0,
                   hfov_deg: float | None = None) -> Scene:
    """A random scene of ``kind`` long enough for ``duration`` seconds of camera motion."""
    if kind not in LAYOUTS:
        raise ValueError(f"unknown scene kind {kind!r}; choose from {', '.join(SCENE_KINDS)}")
    rng = np.random.default_rng([int(seed), zlib.crc32(kind.encode())])
    b = _Builder(rng)
    max_speed = {"street": 12.0, "highway": 25.0, "park": 5.0, "room": 2.5}[kind]
    length = max_speed * duration + 120.0
    layout = LAYOUTS[kind](b, length)
    indoor = layout.get("indoor", False)
    road_half, sidewalk = layout["road_half"], layout["sidewalk"]
    ground_class = np.array([C.ROAD, C.SIDEWALK, layout["outer"][0]], dtype=np.uint8)
    ground_tex = np.array([T.ASPHALT, T.PAVING, layout["outer"][1]], dtype=np.int32)
    ground_params = np.stack([
        T.texture_row(_jitter(rng, (0.22, 0.22, 0.23)), (0.85, 0.85, 0.8), rng.uniform(0.7, 1.4),
                      b.seed(), extra1=float(layout["lanes"]), extra2=road_half),
        T.texture_row(_jitter(rng, (0.5, 0.48, 0.45)), (0.25, 0.25, 0.25), rng.uniform(0.7, 1.3),
                      b.seed()),
        T.texture_row(_jitter(rng, (0.15, 0.35, 0.08)), _jitter(rng, (0.3, 0.4, 0.12)),
                      rng.uniform(0.7, 1.3), b.seed()),
    ])
    if kind == "park":
        ground_tex[0] = T.PAVING
        ground_params[0] = T.texture_row(_jitter(rng, (0.45, 0.4, 0.32)), (0.3, 0.27, 0.22),
                                         rng.uniform(0.5, 1.0), b.seed())
        ground_class[1], ground_tex[1] = C.VEGETATION, T.GRASS
        ground_params[1] = ground_params[2]
    if indoor:
        ground_class[:] = C.BACKGROUND
        ground_tex[:] = T.CHECKER if rng.random() < 0.5 else T.PAVING
        ground_params[:] = T.texture_row(_jitter(rng, (0.6, 0.55, 0.5)),
                                         _jitter(rng, (0.25, 0.22, 0.2)),
                                         rng.uniform(0.3, 0.6), b.seed())
    speed = layout["speed"]
    trajectory = Trajectory(
        start=(0.0, layout["cam_y"], rng.uniform(1.3, 1.7)), velocity=(speed, 0.0, 0.0),
        wobble=_wobble(rng, lateral=0.3 if not indoor else 0.2, yaw=0.04 if not indoor else 0.06))
    return Scene(
        kind=kind, seed=int(seed), **b.pack(),
        ground_edges=np.array([road_half, road_half + sidewalk]), ground_class=ground_class,
        ground_tex=ground_tex, ground_params=ground_params,
        sky=None if indoor else _sky(rng), sun=_sun(rng) if not indoor else
        np.array([0.3, 0.2, 0.93]) / np.linalg.norm([0.3, 0.2, 0.93]),
        ambient=float(rng.uniform(0.3, 0.45)) if not indoor else 0.6,
        diffuse=float(rng.uniform(0.55, 0.7)) if not indoor else 0.4,
        trajectory=trajectory, hfov_deg=hfov_deg or float(rng.uniform(70, 90)),
        extra={"speed_m_s": float(speed), "length_m": float(length)})
