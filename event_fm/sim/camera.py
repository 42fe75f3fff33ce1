"""Pinhole intrinsics and smooth 6-DoF camera trajectories for the procedural scenes.

Conventions: the world frame is x forward (along the street), y left, z up, ground at z = 0.
The camera frame is the optical frame of OpenCV / ROS (x right, y down, z along the optical
axis). Poses are ``T_world_camera``: they map camera coordinates to world coordinates.

Trajectories are sums of sinusoids on top of constant-velocity forward motion, so position and
orientation are infinitely differentiable: depth + relative pose reprojection holds at any time
and adaptive sampling can evaluate the pose at arbitrary intermediate instants.
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


@dataclass(frozen=True)
class Trajectory:
    """Forward motion at constant velocity with sinusoidal wobble in all six degrees of freedom.

    ``wobble`` holds (amplitude, frequency Hz, phase rad) for lateral (y, m), vertical (z, m),
    yaw, pitch and roll (rad), in that order.
    """

    start: tuple[float, float, float] = (0.0, -1.75, 1.5)
    velocity: tuple[float, float, float] = (8.0, 0.0, 0.0)
    wobble: tuple[tuple[float, float, float], ...] = field(default=(
        (0.3, 0.25, 0.0), (0.05, 1.1, 0.0), (0.04, 0.3, 0.0), (0.02, 0.7, 0.0), (0.015, 0.5, 0.0)))

    def _offsets(self, t: float) -> list[float]:
        return [a * math.sin(2 * math.pi * f * t + ph) for a, f, ph in self.wobble]

    def pose(self, t: float) -> np.ndarray:
        """T_world_camera (4x4) at time ``t`` seconds."""
        dy, dz, yaw, pitch, roll = self._offsets(t)
        T = np.eye(4)
        T[:3, :3] = rot_z(yaw) @ rot_y(pitch) @ rot_x(roll) @ R_WORLD_OPTICAL
        T[:3, 3] = (self.start[0] + self.velocity[0] * t,
                    self.start[1] + self.velocity[1] * t + dy,
                    self.start[2] + self.velocity[2] * t + dz)
        return T

    def to_dict(self) -> dict:
        return {"start": list(self.start), "velocity": list(self.velocity),
                "wobble": [list(w) for w in self.wobble]}


def relative_pose(T_world_a: np.ndarray, T_world_b: np.ndarray) -> np.ndarray:
    """T_b_a: maps points in camera a's frame into camera b's frame."""
    return np.linalg.inv(T_world_b) @ T_world_a
