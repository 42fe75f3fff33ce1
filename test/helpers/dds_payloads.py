"""Deterministic message payloads shared by a publisher subprocess and the receiving test."""

from __future__ import annotations

import hashlib

import numpy as np

EVENT_TOPIC = "/event_camera/events"
IMAGE_TOPIC = "/camera/image_raw"
NUM_PACKETS = 60
NUM_IMAGES = 12
IMAGE_SHAPE = (512, 683, 3)  # ~1 MB rgb8 frames


def packet_payload(i: int) -> bytes:
    rng = np.random.default_rng(1000 + i)
    return rng.integers(0, 256, size=int(rng.integers(1, 200_000)), dtype=np.uint8).tobytes()


def image_payload(i: int) -> bytes:
    rng = np.random.default_rng(5000 + i)
    return rng.integers(0, 256, size=int(np.prod(IMAGE_SHAPE)), dtype=np.uint8).tobytes()


def digest(data) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def stamp_of(i: int) -> tuple[int, int]:
    return 1_700_000_000 + i, (i * 7_919_111) % 1_000_000_000
