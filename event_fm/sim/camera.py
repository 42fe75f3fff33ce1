"""Pinhole intrinsics and smooth 6-DoF camera trajectories for the procedural scenes.

Conventions: the world frame is x forward (along the street), y left, z up, ground at z = 0.
The camera frame is the optical frame of OpenCV / ROS (x right, y down, z along the optical
axis). Poses are ``T_world_camera``: they map camera coordinates to world coordinates.

Trajectories are sums of sinusoids on top of constant-velocity motion, so position and
orientation are infinitely differentiable: depth + relative pose reprojection holds at any time
and adaptive sampling can evaluate the pose at arbitrary intermediate instants.

Motion modes (:data:`MOTIONS`, drawn by :func:`motion_trajectory`):

- ``forward``: today's street motion, constant forward velocity plus a small wobble in all six
  degrees of freedom (the default of the street-axis kinds; built in :mod:`event_fm.sim.scene`);
- ``handheld``: 6-DoF hand-held camera, a slow translation in a random direction (0.1-0.6 m/s)
  plus rotation wobble of a few degrees at 0.3-2 Hz on yaw, pitch and roll and a small tremor;
- ``rotation``: pure rotation (translation exactly zero), yaw/pitch/roll sweeps whose peak
  angular speed is 5-30 deg/s;
- ``translation``: pure translation in a random direction (orientation exactly constant).

Where the camera must keep looking at something close (a tabletop) :class:`MotionLimits` makes
the translation a bounded back-and-forth sway instead of a drift and caps the sweeps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

#: Camera optical axes expressed in the world frame for a level camera looking along +x.
R_WORLD_OPTICAL = np.array([[0.0, 0.0, 1.0],
                            [-1.0, 0.0, 0.0],
                            [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole model without distortion; pixel centres at integer coordinates (OpenCV)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float = 80.0) -> Intrinsics:
        f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2)
        return cls(width, height, f, f, (width - 1) / 2, (height - 1) / 2)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def to_dict(self) -> dict:
        return asdict(self)


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


MOTIONS = ("forward", "handheld", "rotation", "translation")

_NEUTRAL = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Trajectory:
    """Constant velocity with sinusoidal wobble in all six degrees of freedom.

    ``wobble`` holds (amplitude, frequency Hz, phase rad) for lateral (y, m), vertical (z, m),
    yaw, pitch and roll (rad), in that order. The defaults of the remaining fields change
    nothing (a ``forward`` trajectory is exactly what it was before they existed):
    ``orientation`` is a constant (yaw, pitch, roll) in rad (positive pitch looks down) and
    ``angular_velocity`` a constant rate of each (rad/s), added to the wobble; each ``sway`` row
    (dx, dy, dz, amplitude m, frequency Hz, phase rad) adds ``(dx, dy, dz) * amplitude *
    sin(2 pi f t + phase)`` to the position (a bounded back-and-forth translation). ``mode`` names
    the motion (:data:`MOTIONS`) it was drawn as.
    """

    start: tuple[float, float, float] = (0.0, -1.75, 1.5)
    velocity: tuple[float, float, float] = (8.0, 0.0, 0.0)
    wobble: tuple[tuple[float, float, float], ...] = field(default=(
        (0.3, 0.25, 0.0), (0.05, 1.1, 0.0), (0.04, 0.3, 0.0), (0.02, 0.7, 0.0), (0.015, 0.5, 0.0)))
    mode: str = "forward"
    orientation: tuple[float, float, float] = _NEUTRAL
    angular_velocity: tuple[float, float, float] = _NEUTRAL
    sway: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MOTIONS:
            raise ValueError(f"unknown motion {self.mode!r}; choose from {', '.join(MOTIONS)}")
        if len(self.wobble) != 5 or any(len(w) != 3 for w in self.wobble):
            raise ValueError("wobble needs 5 rows of (amplitude, frequency, phase)")
        if any(len(s) != 6 for s in self.sway):
            raise ValueError("each sway row is (dx, dy, dz, amplitude, frequency, phase)")

    def _offsets(self, t: float) -> list[float]:
        return [a * math.sin(2 * math.pi * f * t + ph) for a, f, ph in self.wobble]

    def pose(self, t: float) -> np.ndarray:
        """T_world_camera (4x4) at time ``t`` seconds."""
        dy, dz, yaw, pitch, roll = self._offsets(t)
        if self.orientation != _NEUTRAL or self.angular_velocity != _NEUTRAL:
            o, w = self.orientation, self.angular_velocity
            yaw = o[0] + w[0] * t + yaw
            pitch = o[1] + w[1] * t + pitch
            roll = o[2] + w[2] * t + roll
        T = np.eye(4)
        T[:3, :3] = rot_z(yaw) @ rot_y(pitch) @ rot_x(roll) @ R_WORLD_OPTICAL
        T[:3, 3] = (self.start[0] + self.velocity[0] * t,
                    self.start[1] + self.velocity[1] * t + dy,
                    self.start[2] + self.velocity[2] * t + dz)
        for ux, uy, uz, a, f, ph in self.sway:
            s = a * math.sin(2 * math.pi * f * t + ph)
            T[0, 3] += ux * s
            T[1, 3] += uy * s
            T[2, 3] += uz * s
        return T

    def to_dict(self) -> dict:
        d = {"start": list(self.start), "velocity": list(self.velocity),
             "wobble": [list(w) for w in self.wobble]}
        if (self.mode != "forward" or self.orientation != _NEUTRAL
                or self.angular_velocity != _NEUTRAL or self.sway):
            d.update(motion=self.mode, orientation=list(self.orientation),
                     angular_velocity=list(self.angular_velocity),
                     sway=[list(s) for s in self.sway])
        return d


@dataclass(frozen=True)
class MotionLimits:
    """What a scene kind allows the camera to do in :func:`motion_trajectory`.

    ``speed``: translation speed range of handheld motion (m/s); ``translation_speed``: that of
    pure translation; ``max_offset``: largest displacement along world x, y, z over the clip (a
    drift is slowed on an axis where it would go further; walls, tables and lanes stay where
    they are); ``bounded``: translate back and forth (``sway_amplitude`` m) instead of drifting,
    so the view stays on a close target; ``sweep_deg``: largest yaw, pitch, roll angle (deg) of
    the ``rotation`` sweeps; ``vertical``: weight of z in the random direction (people move
    the camera up and down less than sideways).
    """

    speed: tuple[float, float] = (0.1, 0.6)
    translation_speed: tuple[float, float] = (0.1, 0.6)
    max_offset: tuple[float, float, float] = (math.inf, math.inf, math.inf)
    bounded: bool = False
    sway_amplitude: tuple[float, float] = (0.05, 0.2)
    sweep_deg: tuple[float, float, float] = (25.0, 12.0, 10.0)
    vertical: float = 0.3


def _direction(rng: np.random.Generator, vertical: float) -> np.ndarray:
    d = rng.normal(size=3)
    d[2] *= vertical
    n = float(np.linalg.norm(d))
    return d / n if n > 1e-9 else np.array([1.0, 0.0, 0.0])


def _translation(rng: np.random.Generator, speed: float, duration: float,
                 limits: MotionLimits) -> tuple[tuple[float, float, float], tuple]:
    """(velocity, sway rows) of a translation at ``speed`` m/s in a random direction."""
    d = _direction(rng, limits.vertical)
    if limits.bounded:  # back and forth along two random directions, peak speeds v and v / 2
        rows = []
        for u, v in ((d, speed), (_direction(rng, limits.vertical), 0.5 * speed)):
            amp = float(rng.uniform(*limits.sway_amplitude))
            freq = float(np.clip(v / (2 * math.pi * amp), 0.1, 1.5))
            amp = v / (2 * math.pi * freq)
            rows.append((*map(float, u), amp, freq, float(rng.uniform(0, 2 * math.pi))))
        return _NEUTRAL, tuple(rows)
    vel = d * speed
    for i in range(3):
        reach = abs(vel[i]) * max(duration, 1e-9)
        if reach > limits.max_offset[i]:
            vel[i] *= limits.max_offset[i] / reach
    return tuple(float(x) for x in vel), ()


def motion_trajectory(mode: str, rng: np.random.Generator, start, orientation=_NEUTRAL,
                      duration: float = 10.0, limits: MotionLimits = MotionLimits()
                      ) -> Trajectory:
    """A ``handheld``, ``rotation`` or ``translation`` trajectory from ``rng`` around ``start``
    (world position) looking along ``orientation`` (yaw, pitch, roll rad). ``forward`` is
    scene-specific and built by :mod:`event_fm.sim.scene`."""
    if mode not in MOTIONS or mode == "forward":
        raise ValueError(f"motion_trajectory draws handheld, rotation or translation, not {mode!r}")

    def w(amp, f_lo, f_hi):
        return (float(amp), float(rng.uniform(f_lo, f_hi)), float(rng.uniform(0, 2 * math.pi)))

    still = (0.0, 1.0, 0.0)
    start = tuple(float(x) for x in start)
    orientation = tuple(float(x) for x in orientation)
    if mode == "handheld":
        velocity, sway = _translation(rng, float(rng.uniform(*limits.speed)), duration, limits)
        rot = []
        for lo, hi in ((2.0, 6.0), (2.0, 6.0), (1.0, 4.0)):  # yaw, pitch, roll amplitude deg
            amp, freq = math.radians(rng.uniform(lo, hi)), float(rng.uniform(0.3, 2.0))
            amp = min(amp, math.radians(45.0) / (2 * math.pi * freq))  # peak <= 45 deg/s
            rot.append((float(amp), freq, float(rng.uniform(0, 2 * math.pi))))
        tremor = (w(rng.uniform(0.003, 0.015), 0.8, 2.5), w(rng.uniform(0.003, 0.015), 0.8, 2.5))
        return Trajectory(start, velocity, (*tremor, *rot), "handheld", orientation, _NEUTRAL,
                          sway)
    if mode == "rotation":
        rot = []
        for top, (lo, hi) in zip(limits.sweep_deg, ((5.0, 30.0), (5.0, 20.0), (5.0, 15.0)),
                                 strict=True):
            rate = math.radians(rng.uniform(lo, hi))  # peak angular speed of the sweep
            amp = math.radians(rng.uniform(min(3.0, top), top))
            freq = min(rate / (2 * math.pi * amp), 2.0)
            amp = rate / (2 * math.pi * freq)
            rot.append((float(amp), float(freq), float(rng.uniform(0, 2 * math.pi))))
        return Trajectory(start, _NEUTRAL, (still, still, *rot), "rotation", orientation)
    velocity, sway = _translation(rng, float(rng.uniform(*limits.translation_speed)), duration,
                                  limits)
    return Trajectory(start, velocity, (still,) * 5, "translation", orientation, _NEUTRAL, sway)


def relative_pose(T_world_a: np.ndarray, T_world_b: np.ndarray) -> np.ndarray:
    """T_b_a: maps points in camera a's frame into camera b's frame."""
    return np.linalg.inv(T_world_b) @ T_world_a
