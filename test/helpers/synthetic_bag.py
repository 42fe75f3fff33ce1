"""A small synthetic recording (events + frames + camera info + depth) for data tests."""

from __future__ import annotations

import numpy as np

from event_fm.io import make_events
from event_fm.io.convert import packetize
from event_fm.io.events import EventBatch
from event_fm.io.rosbag import BagWriter

EPOCH = 1_700_000_000 * 10**9
W, H = 40, 30


def make_bag(path, seconds=1.0, fps=20, with_depth=True, seed=0):
    rng = np.random.default_rng(seed)
    n = int(200_000 * seconds)
    t = np.sort(rng.integers(0, int(seconds * 1e6), n)) * 1000
    events = make_events(rng.integers(0, W, n), rng.integers(0, H, n), t, rng.integers(0, 2, n))
    frames = [int(k * 1e9 / fps) for k in range(1, int(seconds * fps))]
    K = np.array([[30.0, 0, 20], [0, 30.0, 15], [0, 0, 1]])
    with BagWriter(path) as bag:
        packets = iter(packetize([EventBatch(events=events)], 1_000_000))
        pending = next(packets, None)
        for ft in frames + [None]:
            while pending is not None and (ft is None or pending[0]["t"][0] < ft + 5_000_000):
                ev, tr = pending
                bag.write_event_packet("/event_camera/events", EPOCH + int(ev["t"][0]), ev,
                                       W, H, triggers=tr)
                pending = next(packets, None)
            if ft is None:
                break
            stamp = EPOCH + ft
            bag.write_image("/camera/image_raw", stamp,
                            np.full((H, W, 3), ft // 10**7 % 256, np.uint8))
            bag.write_camera_info("/camera/camera_info", stamp, K, W, H)
            if with_depth:
                bag.write_image("/gt/depth", stamp, np.full((H, W), ft / 1e9, np.float32))
    return events, frames
