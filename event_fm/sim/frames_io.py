"""Reading user footage as (t_ns, frame) pairs: a folder of images or a video file.

Both are decoded with OpenCV. A folder is read in natural name order (``img2`` before
``img10``). Its timestamps come from a ``timestamps.txt`` in the folder (one time in seconds per
line or ``name time`` pairs, as ESIM and v2e write them) or, failing that, from ``fps``. A
video's times are ``k / fps`` with ``fps`` given or taken from the container.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}


def _natural_key(path: Path) -> list:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                  key=_natural_key)


def _folder_times(folder: Path, n: int, fps: float | None) -> list[int]:
    stamps = folder / "timestamps.txt"
    if stamps.exists():
        values = []
        for line in stamps.read_text().splitlines():
            fields = line.split("#")[0].split()
            if fields:
                values.append(float(fields[-1]))
        if len(values) < n:
            raise ValueError(f"{stamps}: {len(values)} timestamps for {n} images")
        t0 = values[0]
        return [int(round((v - t0) * 1e9)) for v in values[:n]]
    if not fps:
        raise ValueError(f"{folder}: no timestamps.txt; give the frame rate (--fps)")
    return [int(round(k * 1e9 / fps)) for k in range(n)]


def _resize(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (frame.shape[1], frame.shape[0]) == size:
        return frame
    import cv2

    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def read_frames(path: str | Path, fps: float | None = None, size: tuple[int, int] | None = None,
                max_duration: float | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(t_ns from 0, RGB uint8 HxWx3) for each frame of a folder or video, optionally resized
    to ``size`` = (width, height) and cut after ``max_duration`` seconds."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such folder or video: {path}")
    limit = None if max_duration is None else int(max_duration * 1e9)
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise ValueError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        import cv2

        for t, f in zip(_folder_times(path, len(files), fps), files, strict=False):
            if limit is not None and t > limit:
                return
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"{f}: not a readable image")
            yield t, _resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)
        return
    yield from _read_video(path, fps, size, limit)


def _read_video(path: Path, fps: float | None, size, limit) -> Iterator[tuple[int, np.ndarray]]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: not a readable video")
    try:
        rate = fps or cap.get(cv2.CAP_PROP_FPS)
        if not rate or rate <= 0:
            raise ValueError(f"{path}: unknown frame rate; give --fps")
        k = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            t = int(round(k * 1e9 / rate))
            if limit is not None and t > limit:
                return
            yield t, _resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)
            k += 1
    finally:
        cap.release()


def frame_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the first frame."""
    for _, frame in read_frames(path, fps=1.0):
        return frame.shape[1], frame.shape[0]
    raise ValueError(f"{path}: no frames")
