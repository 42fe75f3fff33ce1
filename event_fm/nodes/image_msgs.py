"""sensor_msgs/Image without cv_bridge: building outputs and validating inputs."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image

from event_fm.common.stamps import set_stamp

#: encoding -> (bytes per pixel); the encodings the nodes accept or publish.
BYTES_PER_PIXEL = {"mono8": 1, "8UC1": 1, "mono16": 2, "16UC1": 2, "rgb8": 3, "bgr8": 3,
                   "rgba8": 4, "bgra8": 4, "rgb16": 6, "bgr16": 6, "32FC1": 4,
                   "32FC3": 12}


def check_image(msg: Image) -> str | None:
    """Why an image is unusable (sizes, step and data disagree: image_pipeline #1153), or None."""
    bpp = BYTES_PER_PIXEL.get(msg.encoding)
    if bpp is None:
        return f"unsupported encoding {msg.encoding!r}"
    if msg.width == 0 or msg.height == 0:
        return f"empty image {msg.width}x{msg.height}"
    if msg.step < msg.width * bpp:
        return f"step {msg.step} < width {msg.width} x {bpp} bytes ({msg.encoding})"
    if len(msg.data) != msg.step * msg.height:
        return (f"{len(msg.data)} data bytes != step {msg.step} x height {msg.height} "
                f"({msg.width}x{msg.height} {msg.encoding})")
    return None


def array_to_image(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Image:
    array = np.ascontiguousarray(array)
    msg = Image()
    set_stamp(msg.header.stamp, stamp_ns)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(array.strides[0])
    msg.data = array.tobytes()
    return msg


def read_image_file(path: str) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (a keyframe given as a parameter); a clear error
    when it is missing or unreadable."""
    import cv2

    if not path:
        raise ValueError("keyframe_image is empty")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read the image {path!r}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
