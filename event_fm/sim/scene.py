"""Scene description and procedural generation from a seed.

A scene is a ground plane split into three bands by distance from the street axis (road,
sidewalk, outer), oriented boxes (buildings, walls, fences, poles, signs, trees, cars, persons;
each with a class, a texture and an optional constant velocity), a sky at infinity and a
directional light, plus the camera trajectory through it. Everything is drawn from one
``numpy.random.Generator`` seeded by ``(seed, kind)``, so a seed reproduces a scene exactly and
different seeds give different layouts, textures, object counts and speeds.

Kinds: ``street`` (urban canyon, parked and moving cars, pedestrians), ``highway`` (wide road,
guard rails, fast traffic, trees and distant buildings), ``park`` (path through trees and lawns,
walkers), ``room`` (an indoor hall: walls, pillars, crates, people; no sky) -- the street-axis
kinds of :data:`SCENE_KINDS`, depths 2-80 m -- and the close-range kinds of :data:`CLOSE_KINDS`:
``tabletop`` (a table 0.7-0.8 m high in a room 3-5 m across, 5-20 textured objects 3-30 cm on
it at 0.3-2 m from a camera at the table's edge looking down at it, shelves, pictures and doors
on the walls; depths mostly 0.3-5 m) and ``corridor`` (1.2-2.5 m wide, 2.5-3 m high, doors with
frames, posters, pillars, benches, ceiling lights and a few people; long enough for the clip).

The camera motion (:data:`event_fm.sim.camera.MOTIONS`) defaults per kind
(:data:`DEFAULT_MOTION`: ``forward`` for the street-axis kinds, ``handheld`` for tabletop and
corridor) and ``generate_scene(..., motion=...)`` overrides it. A motion is drawn from its own
generator, seeded by ``(seed, kind, motion)``: the layout of a seed does not depend on the
motion, and the street-axis kinds with their default motion are exactly what they were before
motions existed (layout, appearance, trajectory).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from event_fm.sim import classes as C
from event_fm.sim import textures as T
from event_fm.sim.camera import MOTIONS, MotionLimits, Trajectory, motion_trajectory

#: The street-axis kinds (a camera moving along a street-like axis; 2-80 m).
SCENE_KINDS = ("street", "highway", "park", "room")
#: Close-range kinds (0.3-8 m), hand-held by default.
CLOSE_KINDS = ("tabletop", "corridor")
ALL_SCENE_KINDS = SCENE_KINDS + CLOSE_KINDS
DEFAULT_MOTION = {"street": "forward", "highway": "forward", "park": "forward",
                  "room": "forward", "tabletop": "handheld", "corridor": "handheld"}
#: Largest forward speed (m/s) of the close-range kinds, for the length of a corridor.
CLOSE_SPEED = {"tabletop": 0.1, "corridor": 1.8}


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


# -- close-range kinds: tabletop and corridor -------------------------------------------------
def _vivid(rng) -> tuple[float, float, float]:
    """A random albedo: any hue, from dark to bright, sometimes grey."""
    if rng.random() < 0.2:
        return tuple([float(rng.uniform(0.05, 0.9))] * 3)
    return tuple(np.clip(rng.uniform(0.02, 0.9, 3), 0.01, 0.95).tolist())


#: textures for small objects: (texture id, scale range relative to the object's size)
_OBJECT_TEXTURES = ((T.CHECKER, (0.08, 0.3)), (T.SIGN, (0.3, 1.2)), (T.CLOTH, (0.4, 1.5)),
                    (T.METAL, (0.2, 0.8)), (T.BRICK, (0.3, 1.0)), (T.FLAT, (0.05, 0.3)),
                    (T.FENCE, (0.3, 1.5)), (T.FACADE, (0.05, 0.15)), (T.PAVING, (0.2, 0.8)),
                    (T.BARK, (0.2, 1.0)), (T.FOLIAGE, (0.05, 0.3)))


def _object_look(b: _Builder, size: float, height: float) -> tuple[int, np.ndarray]:
    """Texture id and parameters of a small object of ``size`` (its largest side, m)."""
    rng = b.rng
    tex, (lo, hi) = _OBJECT_TEXTURES[int(rng.integers(len(_OBJECT_TEXTURES)))]
    c1, c2 = _vivid(rng), _vivid(rng)
    extra1 = float(rng.uniform(0.2, 0.8) * 2 * height) if tex == T.CLOTH else 0.0
    return tex, T.texture_row(c1, c2, float(size * rng.uniform(lo, hi)), b.seed(), extra1=extra1)


def _flat_look(b: _Builder, colors, scale=(0.5, 1.5)) -> tuple[int, np.ndarray]:
    rng = b.rng
    return T.FLAT, T.texture_row(_pick(rng, colors), scale=rng.uniform(*scale), seed=b.seed())


WOOD_COLORS = ((0.45, 0.3, 0.17), (0.6, 0.45, 0.3), (0.3, 0.2, 0.12), (0.7, 0.6, 0.45))
FURNITURE_COLORS = WOOD_COLORS + ((0.85, 0.85, 0.82), (0.15, 0.15, 0.15), (0.5, 0.5, 0.55))


def _wood(b: _Builder, colors=WOOD_COLORS) -> tuple[int, np.ndarray]:
    rng = b.rng
    return T.BARK, T.texture_row(_pick(rng, colors), scale=rng.uniform(0.2, 0.6), seed=b.seed())


def _wall_look(b: _Builder) -> tuple[int, np.ndarray]:
    rng = b.rng
    r = rng.random()
    if r < 0.3:
        return T.BRICK, T.texture_row(_pick(rng, BRICK_COLORS + PLASTER_COLORS), (0.6, 0.6, 0.58),
                                      rng.uniform(0.8, 1.3), b.seed())
    if r < 0.55:  # tiles
        return T.PAVING, T.texture_row(_pick(rng, PLASTER_COLORS), _jitter(rng, (0.3, 0.3, 0.3)),
                                       rng.uniform(0.3, 0.8), b.seed())
    return T.FLAT, T.texture_row(_pick(rng, PLASTER_COLORS), scale=rng.uniform(0.05, 0.4),
                                 seed=b.seed())


def _poster(b: _Builder, x: float, y_wall: float, side: int, z: float, w: float, h: float,
            along_y: bool = False) -> None:
    """A thin picture on a wall at |y| = y_wall (or, ``along_y``, on a wall at x = x)."""
    rng = b.rng
    tex = (T.CHECKER, T.SIGN, T.FACADE, T.FOLIAGE, T.CLOTH, T.FENCE)[int(rng.integers(6))]
    params = T.texture_row(_vivid(rng), _vivid(rng), float(rng.uniform(0.05, 0.3) * max(w, h)),
                           b.seed(), extra1=float(rng.uniform(0.2, 0.8) * h))
    if along_y:
        b.box((x - side * 0.01, y_wall, z), (0.01, w / 2, h / 2), C.WALL, tex, params)
    else:
        b.box((x, side * (y_wall - 0.01), z), (w / 2, 0.01, h / 2), C.WALL, tex, params)


def _shelf(b: _Builder, x_wall: float, y: float, width: float, height: float, depth: float
           ) -> None:
    """An open shelf unit standing against the wall at x = ``x_wall``, with books on it."""
    rng = b.rng
    tex, params = _flat_look(b, FURNITURE_COLORS, (0.1, 0.4))
    xc, t = x_wall - depth / 2, 0.015
    for s in (-1, 1):  # side panels
        b.on_ground(xc, y + s * (width / 2 - t), (depth / 2, t, height / 2), C.BACKGROUND, tex,
                    params)
    boards = int(rng.integers(3, 6))
    pitch = height / boards
    for k in range(boards + 1):
        z0 = min(k * pitch, height - 2 * t)
        b.on_ground(xc, y, (depth / 2, width / 2 - 2 * t, t), C.BACKGROUND, tex, params, z0=z0)
        if k == boards or rng.random() < 0.2:
            continue
        yy = y - width / 2 + 2 * t + rng.uniform(0.0, 0.1)
        while True:  # books, boxes and gaps along the board
            w = rng.uniform(0.015, 0.06) if rng.random() < 0.8 else rng.uniform(0.1, 0.25)
            if yy + w > y + width / 2 - 2 * t:
                break
            if rng.random() < 0.85:
                h = rng.uniform(0.4, 0.9) * (pitch - 2 * t)
                d = rng.uniform(0.6, 0.95) * depth
                look = _object_look(b, max(h, w), h)
                b.on_ground(x_wall - d / 2 - 0.005, yy + w / 2, (d / 2, w / 2, h / 2),
                            C.BACKGROUND, *look, z0=z0 + 2 * t)
            yy += w + (rng.uniform(0.0, 0.01) if rng.random() < 0.8 else rng.uniform(0.05, 0.3))


def _door(b: _Builder, x: float, side: int, y_wall: float, height: float = 2.1) -> float:
    """A door with its frame on the wall at |y| = y_wall; returns its width."""
    rng = b.rng
    w, h = rng.uniform(0.8, 1.0), min(rng.uniform(2.0, 2.2), height - 0.15)
    frame = T.texture_row(_jitter(rng, (0.3, 0.3, 0.32)), _jitter(rng, (0.15, 0.15, 0.15)),
                          rng.uniform(0.5, 1.5), b.seed())
    look = _wood(b) if rng.random() < 0.5 else _flat_look(b, FURNITURE_COLORS + CLOTH_COLORS)
    f = rng.uniform(0.04, 0.08)
    b.on_ground(x, side * (y_wall - 0.02), (w / 2 + f, 0.02, (h + f) / 2), C.WALL, T.METAL, frame)
    b.on_ground(x, side * (y_wall - 0.03), (w / 2, 0.03, h / 2), C.WALL, *look)
    if rng.random() < 0.6:  # handle
        b.on_ground(x + side * (w / 2 - 0.1), side * (y_wall - 0.07), (0.06, 0.02, 0.015), C.WALL,
                    T.METAL, frame, z0=rng.uniform(0.95, 1.1))
    return w


def _shell(b: _Builder, x0: float, x1: float, y0: float, y1: float, height: float) -> None:
    """Walls (a box the camera is inside: its far faces are seen) and a ceiling."""
    rng = b.rng
    b.box(((x0 + x1) / 2, (y0 + y1) / 2, height / 2), ((x1 - x0) / 2, (y1 - y0) / 2, height / 2),
          C.WALL, *_wall_look(b))
    b.box(((x0 + x1) / 2, (y0 + y1) / 2, height - 0.05),
          ((x1 - x0) / 2 - 0.01, (y1 - y0) / 2 - 0.01, 0.05), C.BACKGROUND, T.CHECKER,
          T.texture_row(_jitter(rng, (0.8, 0.8, 0.78), 0.08), _jitter(rng, (0.6, 0.6, 0.6), 0.1),
                        rng.uniform(0.3, 0.7), b.seed()))


def _overlaps(placed, x, y, r) -> bool:
    return any((x - px) ** 2 + (y - py) ** 2 < (r + pr) ** 2 for px, py, pr in placed)


def _tabletop(b: _Builder, length: float) -> dict:
    rng = b.rng
    top = rng.uniform(0.7, 0.8)
    table_x, table_y = rng.uniform(0.7, 1.4), rng.uniform(1.0, 2.2)  # depth and width
    near = rng.uniform(0.05, 0.3)  # camera to the table's near edge
    cam_y, cam_z = rng.uniform(-0.25, 0.25), top + rng.uniform(0.35, 0.7)
    x_far = near + table_x + rng.uniform(0.35, 1.0)  # back wall
    room_x = max(rng.uniform(3.0, 5.0), x_far + 0.8)
    room_y = max(rng.uniform(3.0, 5.0), table_y + 1.0)
    y_mid = rng.uniform(-1, 1) * (room_y - table_y - 0.8) / 2
    height = rng.uniform(2.4, 3.0)
    x0, y0, y1 = x_far - room_x, y_mid - room_y / 2, y_mid + room_y / 2
    _shell(b, x0, x_far, y0, y1, height)
    # the table: top and legs
    thick = rng.uniform(0.02, 0.05)
    tx = near + table_x / 2
    r = rng.random()
    if r < 0.5:
        look = _wood(b)
    elif r < 0.75:  # table cloth
        look = (T.CHECKER, T.texture_row(_vivid(rng), _vivid(rng), rng.uniform(0.02, 0.1),
                                         b.seed()))
    else:
        look = _flat_look(b, FURNITURE_COLORS, (0.05, 0.3))
    b.on_ground(tx, 0.0, (table_x / 2, table_y / 2, thick / 2), C.BACKGROUND, *look,
                z0=top - thick)
    leg = rng.uniform(0.02, 0.04)
    leg_look = _flat_look(b, FURNITURE_COLORS, (0.1, 0.3))
    for sx in (-1, 1):
        for sy in (-1, 1):
            b.on_ground(tx + sx * (table_x / 2 - leg - 0.03), sy * (table_y / 2 - leg - 0.03),
                        (leg, leg, (top - thick) / 2), C.BACKGROUND, *leg_look)
    # objects on the table, 0.3-2 m from the camera
    placed: list[tuple[float, float, float]] = []
    stacks: list[tuple[float, float, float, float]] = []  # x, y, half footprint, top height
    n_objects, n_placed = int(rng.integers(5, 21)), 0
    for _ in range(n_objects):
        kind = rng.random()
        if kind < 0.2:  # flat: a book, a sheet, a board
            half = (rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.15), rng.uniform(0.003, 0.02))
        elif kind < 0.45:  # tall and thin: a bottle, a can, a mug
            s = rng.uniform(0.015, 0.045)
            half = (s, s * rng.uniform(0.8, 1.2), rng.uniform(0.05, 0.15))
        else:
            half = tuple(rng.uniform(0.015, 0.15, 3))
            half = (half[0], half[1], min(half[2], 0.12))
        radius = math.hypot(half[0], half[1])
        if stacks and rng.random() < 0.2:  # on top of an earlier object, if it fits
            sx, sy, sr, sz = stacks[int(rng.integers(len(stacks)))]
            if radius < sr and sz + 2 * half[2] < 0.35:
                look = _object_look(b, 2 * max(half), half[2])
                b.on_ground(sx, sy, half, C.BACKGROUND, *look, z0=top + sz,
                            yaw=rng.uniform(-math.pi, math.pi))
                n_placed += 1
                continue
        for _attempt in range(60):
            x_lo = near + 0.15 + radius + (0.3 if half[2] > 0.075 else 0.0)
            x_hi = near + table_x - 0.03 - radius
            y_lim = table_y / 2 - 0.03 - radius
            if x_hi <= x_lo or y_lim <= 0:
                break
            x, y = rng.uniform(x_lo, x_hi), rng.uniform(-y_lim, y_lim)
            if math.hypot(x, y - cam_y) > 1.85 or _overlaps(placed, x, y, radius):
                continue
            look = _object_look(b, 2 * max(half), half[2])
            b.on_ground(x, y, half, C.BACKGROUND, *look, z0=top,
                        yaw=rng.uniform(-math.pi, math.pi))
            placed.append((x, y, radius))
            n_placed += 1
            stacks.append((x, y, min(half[0], half[1]), 2 * half[2]))
            break
    # shelves against the back wall, pictures and a door on the walls
    y = y0 + rng.uniform(0.05, 0.5)
    while y < y1 - 0.6:
        w = rng.uniform(0.6, 1.2)
        if y + w > y1 - 0.05:
            break
        if rng.random() < 0.7:
            _shelf(b, x_far, y + w / 2, w, rng.uniform(1.2, 2.2), rng.uniform(0.25, 0.35))
        elif rng.random() < 0.5:
            _poster(b, x_far, y + w / 2, 1, rng.uniform(1.2, 1.8), rng.uniform(0.3, 0.8) * w,
                    rng.uniform(0.3, 0.9), along_y=True)
        y += w + rng.uniform(0.0, 0.6)
    for side, y_wall in ((-1, -y0), (1, y1)):
        x = x0 + rng.uniform(0.2, 1.0)
        while x < x_far - 0.5:
            w = rng.uniform(0.3, 1.0)
            if rng.random() < 0.5:
                _poster(b, x + w / 2, y_wall, side, rng.uniform(1.2, 1.9), w, rng.uniform(0.3, 0.9))
            elif rng.random() < 0.3 and x + 1.1 < x_far:
                w = _door(b, x + 0.55, side, y_wall, height)
            x += w + rng.uniform(0.2, 1.0)
    # the camera at the table's edge, looking at a point on it
    aim_x = rng.uniform(near + 0.3, near + min(0.9, table_x - 0.1))
    aim_y = rng.uniform(-0.25, 0.25) * table_y
    yaw = math.atan2(aim_y - cam_y, aim_x)
    pitch = math.atan2(cam_z - top, math.hypot(aim_x, aim_y - cam_y))
    return dict(ground=_indoor_floor(b, wood=True), cam=(0.0, cam_y, cam_z),
                orientation=(yaw, pitch, float(rng.normal(0.0, 0.03))),
                limits=MotionLimits(bounded=True, sway_amplitude=(0.04, 0.12),
                                    sweep_deg=(10.0, 8.0, 5.0), vertical=0.5),
                forward_speed=rng.uniform(0.03, 0.08), max_forward=0.25, half_width=room_y / 2,
                extra=dict(table_top_m=float(top), table_near_m=float(near),
                           table_extent_m=[float(near), float(near + table_x),
                                           float(-table_y / 2), float(table_y / 2)],
                           table_objects=n_placed))


def _corridor(b: _Builder, length: float) -> dict:
    rng = b.rng
    half_w, height = rng.uniform(0.6, 1.25), rng.uniform(2.5, 3.0)
    x0 = -(8.0 + length * 0.1)
    hall = length + rng.uniform(5.0, 30.0)
    _shell(b, x0, hall, -half_w, half_w, height)
    skirting = T.texture_row(_pick(rng, FURNITURE_COLORS), scale=0.3, seed=b.seed())
    for side in (-1, 1):
        b.on_ground((x0 + hall) / 2, side * (half_w - 0.01), ((hall - x0) / 2, 0.012, 0.05),
                    C.WALL, T.FLAT, skirting)
    max_pillar = min(0.3, half_w - 0.45)
    for side in (-1, 1):
        x = x0 + rng.uniform(0.0, 3.0)
        while x < hall - 1.5:
            r = rng.random()
            if r < 0.35:
                w = _door(b, x + 0.55, side, half_w, height)
            elif r < 0.6:
                w = rng.uniform(0.3, 1.0)
                _poster(b, x + w / 2, half_w, side, rng.uniform(1.2, 1.9), w, rng.uniform(0.3, 1.0))
            elif r < 0.75 and max_pillar > 0.08:
                w = 2 * rng.uniform(0.15, 0.3)
                p = rng.uniform(0.08, max_pillar)
                b.on_ground(x + w / 2, side * (half_w - p / 2), (w / 2, p / 2, height / 2), C.WALL,
                            *_wall_look(b))
            elif r < 0.85 and half_w > 0.9:  # a bench, a bin, a cabinet
                w, d, h = rng.uniform(0.3, 1.5), rng.uniform(0.25, 0.4), rng.uniform(0.4, 1.0)
                look = _object_look(b, 1.0, h) if rng.random() < 0.5 else \
                    _flat_look(b, FURNITURE_COLORS, (0.1, 0.4))
                b.on_ground(x + w / 2, side * (half_w - d / 2 - 0.02), (w / 2, d / 2, h / 2),
                            C.BACKGROUND, *look)
            else:
                w = rng.uniform(0.2, 1.0)
            x += w + rng.uniform(0.5, 4.0)
    light = T.texture_row(_jitter(rng, (0.93, 0.93, 0.9), 0.03), scale=0.2, seed=b.seed())
    x = x0 + rng.uniform(0.5, 2.0)
    step = rng.uniform(2.0, 4.0)
    while x < hall - 0.5:
        b.box((x, 0.0, height - 0.11), (rng.uniform(0.15, 0.3), min(0.3, half_w - 0.2), 0.01),
              C.BACKGROUND, T.FLAT, light)
        x += step
    for _ in range(int(rng.integers(1, 6))):
        v = 0.0 if rng.random() < 0.3 else rng.choice([-1, 1]) * rng.uniform(0.5, 1.4)
        _person(b, rng.uniform(3.0, min(hall - 3.0, 40.0)),
                rng.choice([-1, 1]) * (half_w - 0.3), (v, 0.0, 0.0))
    cam_y = rng.uniform(-0.2, 0.2) * max(0.0, half_w - 0.6)
    lateral = max(0.0, half_w - 0.55 - abs(cam_y))
    return dict(ground=_indoor_floor(b, wood=False), cam=(0.0, cam_y, rng.uniform(1.3, 1.7)),
                orientation=(rng.uniform(-0.12, 0.12), rng.uniform(-0.05, 0.1), 0.0),
                limits=MotionLimits(translation_speed=(0.2, 1.0),
                                    max_offset=(-x0 - 2.0, lateral, 0.3)),
                forward_speed=rng.uniform(1.0, 1.8), max_forward=math.inf, half_width=half_w,
                extra=dict(corridor_width_m=float(2 * half_w), corridor_height_m=float(height),
                           corridor_length_m=float(hall - x0)))


def _indoor_floor(b: _Builder, wood: bool) -> tuple[int, np.ndarray]:
    rng = b.rng
    r = rng.random()
    if wood and r < 0.35:
        return T.BARK, T.texture_row(_pick(rng, WOOD_COLORS), scale=rng.uniform(0.3, 0.8),
                                     seed=b.seed())
    if r < 0.7:
        return T.PAVING, T.texture_row(_jitter(rng, (0.6, 0.55, 0.5)),
                                       _jitter(rng, (0.25, 0.22, 0.2)), rng.uniform(0.5, 1.2),
                                       b.seed())
    if r < 0.85:
        return T.CHECKER, T.texture_row(_vivid(rng), _vivid(rng), rng.uniform(0.2, 0.4),
                                        b.seed())
    return T.FLAT, T.texture_row(_vivid(rng), scale=rng.uniform(0.02, 0.1), seed=b.seed())


CLOSE_LAYOUTS = {"tabletop": _tabletop, "corridor": _corridor}


def _close_scene(kind: str, seed: int, duration: float, hfov_deg: float | None,
                 motion: str) -> Scene:
    """A tabletop or corridor scene: its layout from the kind's stream, its camera motion from
    the motion's stream (so the same seed shows the same place whatever the motion)."""
    rng = np.random.default_rng([int(seed), zlib.crc32(kind.encode())])
    b = _Builder(rng)
    length = CLOSE_SPEED[kind] * duration + 20.0
    layout = CLOSE_LAYOUTS[kind](b, length)
    tex, params = layout["ground"]
    half = layout["half_width"]
    el, az = math.radians(rng.uniform(45, 85)), rng.uniform(-math.pi, math.pi)
    sun = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    ambient, diffuse = float(rng.uniform(0.45, 0.65)), float(rng.uniform(0.3, 0.5))
    hfov = hfov_deg or float(rng.uniform(65, 90))
    mrng = _motion_rng(seed, kind, motion)
    start, orientation = layout["cam"], layout["orientation"]
    if motion == "forward":
        speed = layout["forward_speed"]
        speed = min(speed, layout["max_forward"] / max(duration, 1e-9))
        yaw = orientation[0] if kind == "tabletop" else 0.0
        velocity = (speed * math.cos(yaw), speed * math.sin(yaw), 0.0)
        lateral = 0.01 if kind == "tabletop" else min(0.15, max(0.01, half - 0.6))
        trajectory = Trajectory(tuple(map(float, start)), velocity,
                                _wobble(mrng, lateral=lateral, yaw=0.03), "forward",
                                tuple(map(float, orientation)))
    else:
        trajectory = motion_trajectory(motion, mrng, start, orientation, duration,
                                       layout["limits"])
    return Scene(
        kind=kind, seed=int(seed), **b.pack(),
        ground_edges=np.array([half, half + 1.0]),
        ground_class=np.full(3, C.BACKGROUND, dtype=np.uint8),
        ground_tex=np.full(3, tex, dtype=np.int32), ground_params=np.stack([params] * 3),
        sky=None, sun=sun, ambient=ambient, diffuse=diffuse, trajectory=trajectory,
        hfov_deg=hfov, extra={"speed_m_s": _nominal_speed(trajectory), "length_m": float(length),
                              "motion": motion, **layout["extra"]})


def _motion_rng(seed: int, kind: str, motion: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(kind.encode()),
                                  zlib.crc32(f"motion:{motion}".encode())])


def _nominal_speed(trajectory: Trajectory) -> float:
    """Drift speed, or the peak speed of the sway where the translation goes back and forth."""
    drift = float(np.linalg.norm(trajectory.velocity))
    return drift + sum(2 * math.pi * abs(s[3] * s[4]) for s in trajectory.sway)


def _street_limits(kind: str, layout: dict) -> MotionLimits:
    """How far the non-forward motions may take the camera in a street-axis kind."""
    if kind == "room":
        lateral, along, speed = max(0.3, layout["road_half"] - 1.2), 6.0, (0.3, 1.5)
    elif kind == "park":
        lateral, along, speed = max(0.3, layout["road_half"] - 0.5), 20.0, (0.5, 2.0)
    else:  # stay in the lane: parked and oncoming cars are a metre or two away
        lateral, along, speed = 1.0, 20.0, (0.5, 3.0)
    return MotionLimits(translation_speed=speed, max_offset=(along, lateral, 0.4))


def generate_scene(kind: str = "street", seed: int = 0, duration: float = 10.0,
                   hfov_deg: float | None = None, *, motion: str | None = None) -> Scene:
    """A random scene of ``kind`` long enough for ``duration`` seconds of camera motion.

    ``motion`` (one of :data:`event_fm.sim.camera.MOTIONS`; default :data:`DEFAULT_MOTION` of
    the kind) chooses how the camera moves; the layout of a seed is the same for every motion.
    """
    if kind not in ALL_SCENE_KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose from {', '.join(ALL_SCENE_KINDS)}")
    if motion is not None and motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose from {', '.join(MOTIONS)}")
    motion = motion or DEFAULT_MOTION[kind]
    if kind in CLOSE_KINDS:
        return _close_scene(kind, seed, duration, hfov_deg, motion)
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
    extra = {"speed_m_s": float(speed), "length_m": float(length)}
    if motion != DEFAULT_MOTION[kind]:  # drawn apart: the scene itself stays the same
        trajectory = motion_trajectory(motion, _motion_rng(seed, kind, motion),
                                       trajectory.start, duration=duration,
                                       limits=_street_limits(kind, layout))
        extra.update(speed_m_s=_nominal_speed(trajectory), motion=motion)
    return Scene(
        kind=kind, seed=int(seed), **b.pack(),
        ground_edges=np.array([road_half, road_half + sidewalk]), ground_class=ground_class,
        ground_tex=ground_tex, ground_params=ground_params,
        sky=None if indoor else _sky(rng), sun=_sun(rng) if not indoor else
        np.array([0.3, 0.2, 0.93]) / np.linalg.norm([0.3, 0.2, 0.93]),
        ambient=float(rng.uniform(0.3, 0.45)) if not indoor else 0.6,
        diffuse=float(rng.uniform(0.55, 0.7)) if not indoor else 0.4,
        trajectory=trajectory, hfov_deg=hfov_deg or float(rng.uniform(70, 90)),
        extra=extra)
