"""Rotation matrices -> quaternions, one convention for every output (poses, /tf, bags)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def quaternion_xyzw(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a 3x3 rotation matrix, with w >= 0.

    q and -q are the same rotation; fixing the sign keeps consecutive poses and recorded ground
    truth comparable element by element. scipy projects slightly non-orthogonal input (float
    drift in chained transforms) onto the nearest rotation."""
    q = Rotation.from_matrix(np.asarray(R, dtype=np.float64)[:3, :3]).as_quat()
    return -q if q[3] < 0 else q
