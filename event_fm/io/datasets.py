"""Public dataset recordings as one robot-like rosbag2: ECD folders and MVSEC HDF5 pairs.

The bag has the layout ``event-fm eval`` reads (the same as a simulated recording):
``/event_camera/events`` (event_camera_msgs/EventPacket, EVT3, ``packet_us`` packets),
``/camera/image_raw`` (rgb8; grey frames are repeated over three channels),
``/camera/camera_info`` (with every frame), ``/gt/pose`` (geometry_msgs/PoseStamped,
``T_world_camera`` in frame ``world``, at every frame stamp: position interpolated linearly and
orientation by slerp between the two nearest ground-truth samples, none where the frame is
outside the ground truth or the two samples are more than ``MAX_POSE_GAP_NS`` apart),
``/gt/pose_raw`` (every ground-truth sample as recorded), ``/gt/depth`` (32FC1 z-depth in metres,
NaN where unknown, which scoring masks out) and ``/gt/metadata`` (std_msgs/String, JSON, once).

Inputs:

- ECD (Mueggler et al., *The event-camera dataset and simulator*): a folder with events.txt
  (``t x y p``), images.txt (``t images/frame_00000000.png``) + images/, groundtruth.txt
  (``t px py pz qx qy qz qw``, the camera in the world) and calib.txt
  (``fx fy cx cy k1 k2 p1 p2 k3``, radial-tangential = ROS plumb_bob). No depth.
- MVSEC (Zhu et al. 2018): ``<seq>_data.hdf5`` with ``davis/left/events`` (N x 4 float64
  ``x y t p``, t in seconds, p in {-1, 1}), ``davis/left/image_raw`` (M x H x W uint8) and
  ``image_raw_ts``; ``<seq>_gt.hdf5`` (``--gt``, or found beside the data file) with
  ``davis/left/depth_image_rect`` (K x H x W float32 metres, NaN unknown) + ``_ts`` and
  ``davis/left/pose`` (P x 4 x 4 ``T_world_cam``) + ``pose_ts`` (``odometry`` when there is no
  ``pose``). MVSEC keeps intrinsics in a separate Kalibr-style yaml: ``calib`` is that yaml
  (``cam0`` unless ``calib_camera`` says otherwise; its ``projection_matrix`` when present,
  the rectified camera of ``depth_image_rect``, else ``intrinsics``), a text file
  ``fx fy cx cy [k1 k2 p1 p2 k3]`` or the string ``"fx,fy,cx,cy"``.
  MVSEC's depth maps are not taken at the frame times, and eval scores a depth map only
  against an output within 1 ms of it; so by default (``frame_times="auto"``) the frames are
  written at the depth stamps, each one the newest DAVIS frame at or before that stamp
  (``frame_times="images"`` keeps the frames' own stamps).

Clocks (as :mod:`event_fm.sim.bag_output`): event time in the EVT3 stream is *sensor time*
floored to microseconds; every header stamp is ROS time = ``clock_offset_ns`` + sensor time,
so events, frames and ground truth share one clock. Times that already are wall-clock epoch
times (MVSEC's, which are its bags' ROS times) keep their value: ``clock_offset_ns`` is the
start of the recording floored to a whole second and header stamps equal the recorded times
(to the microsecond). Times relative to the start of the recording (ECD's) get
``clock_offset_ns = DEFAULT_START_EPOCH_NS`` (the simulator's). The offset is in the metadata.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from event_fm.io.errors import UnreadableInputError
from event_fm.io.events import EventBatch, make_events

TOPICS = {
    "events": "/event_camera/events",
    "image": "/camera/image_raw",
    "camera_info": "/camera/camera_info",
    "depth": "/gt/depth",
    "pose": "/gt/pose",
    "pose_raw": "/gt/pose_raw",
    "metadata": "/gt/metadata",
}
#: The simulator's epoch (event_fm.sim.bag_output), for recordings whose times start near 0.
DEFAULT_START_EPOCH_NS = 1_700_000_000_000_000_000
#: Times above this (about 1973 in ns since 1970) are taken as wall-clock epoch times.
_EPOCH_THRESHOLD_NS = 100_000_000 * 1_000_000_000
MAX_POSE_GAP_NS = 250_000_000
CAMERA_FRAME, EVENT_FRAME, WORLD_FRAME = "camera", "event_camera", "world"
_CHUNK = 1 << 20
_NO_CALIB = ("pass --calib fx,fy,cx,cy, a calib.txt ('fx fy cx cy k1 k2 p1 p2 k3') or the "
             "dataset's Kalibr-style intrinsics yaml")


@dataclass
class Recording:
    """A dataset sequence opened for conversion; every time is sensor time in ns."""

    name: str
    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    clock_offset_ns: int
    events: Callable[[], Iterator[np.ndarray]]  # non-decreasing t
    frame_stamps: np.ndarray
    frame: Callable[[int], np.ndarray]  # index into frame_stamps -> HxW or HxWx3 uint8
    depth_stamps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    depth: Callable[[int], np.ndarray] | None = None
    pose_stamps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    poses: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))  # p xyz, q xyzw
    metadata: dict = field(default_factory=dict)
    close: Callable[[], None] = lambda: None
    start_ns: int = 0
    end_ns: int = 0


# --- detection --------------------------------------------------------------------------------


def detect_dataset(src: str | os.PathLike) -> str | None:
    """'ecd' for an ECD folder with more than events.txt, 'mvsec' for an MVSEC data HDF5."""
    p = Path(src)
    if p.is_dir():
        if (p / "events.txt").is_file() and any(
                (p / f).is_file() for f in ("images.txt", "groundtruth.txt")):
            return "ecd"
        return None
    if p.is_file():
        with open(p, "rb") as f:
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                return None
        import h5py

        try:
            with h5py.File(p, "r") as h5:
                return "mvsec" if "davis" in h5 else None
        except OSError:
            return None
    return None


# --- shared helpers ---------------------------------------------------------------------------


def parse_calibration(calib: str | os.PathLike, camera: str = "cam0"
                      ) -> tuple[np.ndarray, np.ndarray, str]:
    """(K, D plumb_bob, description) from 'fx,fy,cx,cy', a calib.txt or a Kalibr-style yaml."""
    text = str(calib)
    parts = text.replace(",", " ").split()
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) >= 4 and not Path(text).exists():
        return _k(values[:4]), _dist(values[4:]), "--calib values"
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"calibration not found: {path} ({_NO_CALIB})")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not a yaml file ({str(exc).splitlines()[0]})") from None
        cam = data.get(camera) if isinstance(data, dict) else None
        if not isinstance(cam, dict):
            raise ValueError(f"{path}: no '{camera}' camera in the yaml ({_NO_CALIB})")
        if "projection_matrix" in cam:  # rectified camera: the one depth_image_rect uses
            P = np.asarray(cam["projection_matrix"], dtype=np.float64).reshape(-1)
            if P.size not in (9, 12):
                raise ValueError(f"{path}: {camera}.projection_matrix is not 3x3 or 3x4")
            P = P.reshape(3, -1)
            return P[:, :3].copy(), np.zeros(5), f"{path.name} {camera}.projection_matrix"
        if "intrinsics" in cam:
            vals = [float(v) for v in cam["intrinsics"]]
            model = str(cam.get("distortion_model", "radtan"))
            dist = cam.get("distortion_coeffs", []) if model in ("radtan", "plumb_bob") else []
            return _k(vals[:4]), _dist([float(v) for v in dist]), f"{path.name} {camera}"
        raise ValueError(f"{path}: {camera} has neither projection_matrix nor intrinsics")
    try:
        vals = [float(v) for v in path.read_text().split()]
    except ValueError:
        vals = []
    if len(vals) < 4:
        raise ValueError(f"{path}: expected 'fx fy cx cy [k1 k2 p1 p2 k3]' ({_NO_CALIB})")
    return _k(vals[:4]), _dist(vals[4:]), path.name


def _k(v) -> np.ndarray:
    fx, fy, cx, cy = (float(a) for a in v)
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _dist(v) -> np.ndarray:
    d = np.zeros(5)
    d[: min(5, len(v))] = list(v)[:5]
    return d


def seconds_to_ns(t) -> np.ndarray:
    """float64 seconds (epoch-sized) -> int64 ns rounded to the microsecond.

    A float64 near 1.5e9 s resolves ~0.24 us, so the microsecond is the finest honest unit;
    whole seconds and the fraction are converted separately to keep the product exact."""
    t = np.asarray(t, dtype=np.float64)
    s = np.floor(t)
    us = s.astype(np.int64) * 1_000_000 + np.rint((t - s) * 1e6).astype(np.int64)
    return us * 1000


def _clock(t_min_ns: int) -> int:
    """clock_offset_ns (ROS - sensor time) for a recording whose earliest time is t_min_ns."""
    if t_min_ns >= _EPOCH_THRESHOLD_NS:
        return (t_min_ns // 1_000_000_000) * 1_000_000_000
    return DEFAULT_START_EPOCH_NS


def interpolate_poses(stamps: np.ndarray, poses: np.ndarray, at: np.ndarray,
                      max_gap_ns: int = MAX_POSE_GAP_NS) -> tuple[np.ndarray, np.ndarray]:
    """Poses (p xyz, q xyzw) at ``at``: linear position, slerp orientation; (poses, valid)."""
    from scipy.spatial.transform import Rotation

    at = np.asarray(at, dtype=np.int64)
    out = np.zeros((len(at), 7))
    valid = np.zeros(len(at), dtype=bool)
    if len(stamps) == 0 or len(at) == 0:
        return out, valid
    order = np.argsort(stamps, kind="stable")
    stamps, poses = stamps[order], poses[order]
    hi = np.clip(np.searchsorted(stamps, at, side="left"), 0, len(stamps) - 1)
    exact = stamps[hi] == at
    lo = np.where(exact, hi, np.maximum(hi - 1, 0))
    inside = (at >= stamps[0]) & (at <= stamps[-1])
    gap = stamps[hi] - stamps[lo]
    valid = inside & (exact | ((gap > 0) & (gap <= max_gap_ns)))
    span = np.where(gap > 0, gap, 1).astype(np.float64)
    alpha = np.where(exact, 0.0, (at - stamps[lo]) / span)[:, None]
    out[:, :3] = poses[lo, :3] * (1 - alpha) + poses[hi, :3] * alpha
    r0, r1 = Rotation.from_quat(poses[lo, 3:]), Rotation.from_quat(poses[hi, 3:])
    r = r0 * Rotation.from_rotvec((r0.inv() * r1).as_rotvec() * alpha)
    q = r.as_quat()
    q[exact] = poses[lo[exact], 3:] / np.linalg.norm(poses[lo[exact], 3:], axis=1, keepdims=True)
    q[q[:, 3] < 0] *= -1
    out[:, 3:] = q
    return out, valid


def _quaternions(T: np.ndarray) -> np.ndarray:
    """(N, 4) x y z w, w >= 0, of N 4x4 transforms: common.rotations.quaternion_xyzw, batched."""
    from scipy.spatial.transform import Rotation

    if len(T) == 0:
        return np.zeros((0, 4))
    R = np.asarray(T, dtype=np.float64)[:, :3, :3]
    if not np.all(np.isfinite(R)):
        raise ValueError("pose with a non-finite rotation")
    q = Rotation.from_matrix(R).as_quat()
    q[q[:, 3] < 0] *= -1
    return q


def _ordered(chunks: Iterator[np.ndarray], what: str) -> Iterator[np.ndarray]:
    """Sort inside a chunk (stable); a chunk that starts before the last one ended is an error."""
    last = None
    for ev in chunks:
        if not len(ev):
            continue
        if np.any(np.diff(ev["t"]) < 0):
            ev = ev[np.argsort(ev["t"], kind="stable")]
        if last is not None and ev["t"][0] < last:
            raise ValueError(f"{what}: events are not in time order")
        last = int(ev["t"][-1])
        yield ev


def _to_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        else:
            raise ValueError(f"frame of dtype {image.dtype}, expected 8-bit")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] >= 3:
        return np.ascontiguousarray(image[:, :, :3])
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    raise ValueError(f"frame of shape {image.shape} is neither grey nor RGB")


# --- ECD --------------------------------------------------------------------------------------


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "RGB", "I;16", "I;16B", "I"):
                im = im.convert("RGB")
            a = np.asarray(im)
    except FileNotFoundError:
        raise FileNotFoundError(f"frame not found: {path} (listed in images.txt)") from None
    except OSError as exc:
        raise UnreadableInputError(f"{path}: not a readable image ({exc})") from None
    if a.dtype != np.uint8 and a.dtype != np.uint16:
        a = np.clip(a, 0, 65535).astype(np.uint16)
    return a


def open_ecd(folder: str | os.PathLike, calib: str | None = None, width: int = 0,
             height: int = 0) -> Recording:
    from event_fm.io.files.text import (
        _read_images,
        _read_stamped_rows,
        read_events_txt,
        read_resolution,
    )

    folder = Path(folder)
    if not (folder / "events.txt").is_file():
        raise FileNotFoundError(f"{folder}: no events.txt (not an ECD sequence folder)")
    img_stamps, img_paths = np.zeros(0, np.int64), []
    if (folder / "images.txt").is_file():
        img_stamps, img_paths, bad = _read_images(folder / "images.txt")
        if bad and not len(img_stamps):
            raise UnreadableInputError(f"{folder / 'images.txt'}: no 't path' line "
                                       f"({bad} malformed)")
        missing = [p for p in img_paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"frame not found: {missing[0]} (listed in images.txt; "
                                    f"{len(missing)} missing)")
    gt_stamps, gt_poses = np.zeros(0, np.int64), np.zeros((0, 7))
    if (folder / "groundtruth.txt").is_file():
        gt_stamps, gt_poses, bad = _read_stamped_rows(folder / "groundtruth.txt", 7)
        if bad and not len(gt_stamps):
            raise UnreadableInputError(f"{folder / 'groundtruth.txt'}: no "
                                       f"'t px py pz qx qy qz qw' line ({bad} malformed)")
    if calib is not None:
        K, D, calib_source = parse_calibration(calib)
    elif (folder / "calib.txt").is_file():
        K, D, calib_source = parse_calibration(folder / "calib.txt")
    else:
        raise FileNotFoundError(f"{folder}: no calib.txt; {_NO_CALIB}")

    first = _read_png(img_paths[0]) if img_paths else None
    if not (width and height):
        res = read_resolution(folder)
        if res is None and first is not None:
            res = (first.shape[1], first.shape[0])
        if res is not None:
            width, height = width or res[0], height or res[1]
    stream = read_events_txt(folder / "events.txt", _CHUNK, width or None, height or None)
    head = next(stream, None)
    width, height = (head.width, head.height) if head is not None else (width, height)
    if not (width and height):
        raise ValueError(f"{folder}: no events and no frame to take the resolution from")
    if first is not None and first.shape[:2] != (height, width):
        raise ValueError(f"{img_paths[0]}: frame is {first.shape[1]}x{first.shape[0]}, events "
                         f"are {width}x{height}")

    starts = [int(a[0]) for a in (img_stamps, gt_stamps) if len(a)]
    if head is not None and len(head.events):
        starts.append(int(head.events["t"][0]))
    offset = _clock(min(starts)) if starts else DEFAULT_START_EPOCH_NS
    shift = 0 if offset == DEFAULT_START_EPOCH_NS else offset  # absolute times -> sensor time

    def events() -> Iterator[np.ndarray]:
        for batch in itertools.chain([head] if head is not None else [], stream):
            ev = batch.events
            if shift:
                ev = ev.copy()
                ev["t"] -= shift
            yield ev

    def frame(i: int) -> np.ndarray:
        a = first if i == 0 and first is not None else _read_png(img_paths[i])
        if a.shape[:2] != (height, width):
            raise ValueError(f"{img_paths[i]}: frame is {a.shape[1]}x{a.shape[0]}, expected "
                             f"{width}x{height}")
        return a

    return Recording(
        name="ecd", width=int(width), height=int(height), K=K, D=D, clock_offset_ns=offset,
        events=lambda: _ordered(events(), str(folder / "events.txt")),
        frame_stamps=img_stamps - shift, frame=frame,
        pose_stamps=gt_stamps - shift, poses=gt_poses,
        metadata={"source": str(folder), "format": "ECD", "calibration": calib_source,
                  "frame_times": "images"})


# --- MVSEC ------------------------------------------------------------------------------------


def _h5open(path: Path):
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise UnreadableInputError(f"{path}: not a readable HDF5 file "
                                   f"({str(exc).splitlines()[0][:120]})") from None


def _gt_beside(data_path: Path) -> Path | None:
    name = data_path.name
    for a, b in (("_data.hdf5", "_gt.hdf5"), ("_data.h5", "_gt.h5")):
        if name.endswith(a):
            cand = data_path.with_name(name[: -len(a)] + b)
            return cand if cand.is_file() else None
    return None


def _dataset(h5, key: str, path: Path, ndim: int | None = None):
    import h5py

    obj = h5.get(key)
    if not isinstance(obj, h5py.Dataset):
        return None
    if ndim is not None and obj.ndim != ndim:
        raise ValueError(f"{path}: {key} has shape {obj.shape}, expected {ndim} dimensions")
    return obj


def _stamps(h5, key: str, n: int, path: Path) -> np.ndarray:
    ts = _dataset(h5, key + "_ts", path, 1)
    if ts is None:
        raise ValueError(f"{path}: {key} without {key}_ts")
    if ts.shape[0] != n:
        raise ValueError(f"{path}: {key} has {n} entries but {key}_ts {ts.shape[0]}")
    return seconds_to_ns(ts[()])


def open_mvsec(data_path: str | os.PathLike, gt_path: str | os.PathLike | None = None,
               calib: str | None = None, side: str = "left", calib_camera: str | None = None,
               frame_times: str = "auto") -> Recording:
    data_path = Path(data_path)
    if frame_times not in ("auto", "images", "depth"):
        raise ValueError(f"frame_times must be auto, images or depth, not {frame_times!r}")
    data = _h5open(data_path)
    files = [data]
    try:
        grp = f"davis/{side}"
        ev = _dataset(data, f"{grp}/events", data_path, 2)
        if ev is None or ev.shape[1] != 4:
            raise UnreadableInputError(f"{data_path}: no {grp}/events (N x 4: x y t p) dataset "
                                       "(not an MVSEC data file)")
        if calib is None:
            raise ValueError(f"{data_path}: MVSEC keeps its calibration in a separate yaml "
                             f"(e.g. indoor_flying_calib/camchain-imucam-indoor_flying.yaml); "
                             f"{_NO_CALIB}")
        K, D, calib_source = parse_calibration(
            calib, calib_camera or ("cam0" if side == "left" else "cam1"))
        gt_path = Path(gt_path) if gt_path is not None else _gt_beside(data_path)
        gt = _h5open(gt_path) if gt_path is not None else None
        if gt is not None:
            files.append(gt)

        images = _dataset(data, f"{grp}/image_raw", data_path, 3)
        img_stamps = (_stamps(data, f"{grp}/image_raw", images.shape[0], data_path)
                      if images is not None else np.zeros(0, np.int64))
        depth = depth_stamps = None
        pose_stamps, poses, pose_key = np.zeros(0, np.int64), np.zeros((0, 7)), None
        if gt is not None:
            depth = _dataset(gt, f"{grp}/depth_image_rect", gt_path, 3)
            if depth is not None:
                depth_stamps = _stamps(gt, f"{grp}/depth_image_rect", depth.shape[0], gt_path)
            for key in ("pose", "odometry"):
                T = _dataset(gt, f"{grp}/{key}", gt_path, 3)
                if T is not None:
                    T = T[()]
                    if T.shape[1:] != (4, 4):
                        raise ValueError(f"{gt_path}: {grp}/{key} is not N x 4 x 4")
                    pose_stamps = _stamps(gt, f"{grp}/{key}", T.shape[0], gt_path)
                    poses = np.concatenate([T[:, :3, 3], _quaternions(T)], axis=1)
                    pose_key = key
                    break
            if depth is None and pose_key is None:
                raise ValueError(f"{gt_path}: neither {grp}/depth_image_rect nor {grp}/pose "
                                 "(not an MVSEC ground-truth file)")

        shapes = [d.shape[1:] for d in (images, depth) if d is not None]
        if len(set(shapes)) > 1:
            raise ValueError(f"frames are {shapes[0][1]}x{shapes[0][0]} but depth "
                             f"{shapes[1][1]}x{shapes[1][0]}")
        n_ev = ev.shape[0]
        if shapes:
            height, width = (int(v) for v in shapes[0])
        else:  # events only: the sensor is what the events cover
            height = width = 0
            for i in range(0, n_ev, _CHUNK):
                block = ev[i: i + _CHUNK]
                width = max(width, int(block[:, 0].max()) + 1)
                height = max(height, int(block[:, 1].max()) + 1)

        starts = [int(a[0]) for a in (img_stamps, depth_stamps, pose_stamps)
                  if a is not None and len(a)]
        if n_ev:
            starts.append(int(seconds_to_ns(ev[0, 2])))
        offset = _clock(min(starts)) if starts else DEFAULT_START_EPOCH_NS
        shift = 0 if offset == DEFAULT_START_EPOCH_NS else offset

        def events() -> Iterator[np.ndarray]:
            for i in range(0, n_ev, _CHUNK):
                block = ev[i: i + _CHUNK]
                x, y = block[:, 0], block[:, 1]
                if x.min() < 0 or y.min() < 0 or x.max() >= width or y.max() >= height:
                    raise ValueError(f"{data_path}: event outside the {width}x{height} sensor")
                yield make_events(x.astype(np.uint16), y.astype(np.uint16),
                                  seconds_to_ns(block[:, 2]) - shift,
                                  (block[:, 3] > 0).astype(np.int8))

        use_depth = depth is not None and (frame_times == "depth" or frame_times == "auto")
        if frame_times == "depth" and depth is None:
            raise ValueError("frame_times='depth' needs a ground-truth file with depth")
        if images is None:
            frame_stamps, pick = np.zeros(0, np.int64), np.zeros(0, np.int64)
        elif use_depth:  # newest frame at or before each depth map
            idx = np.searchsorted(img_stamps, depth_stamps, side="right") - 1
            keep = idx >= 0
            frame_stamps, pick = depth_stamps[keep], idx[keep]
        else:
            frame_stamps, pick = img_stamps, np.arange(len(img_stamps))

        meta = {"source": str(data_path), "ground_truth": str(gt_path) if gt_path else None,
                "format": "MVSEC", "calibration": calib_source, "camera": side,
                "frame_times": "depth" if use_depth else "images",
                "pose_dataset": pose_key}
        if use_depth:
            meta["frame_note"] = ("frames are stamped at the depth maps' times; each is the "
                                  "newest DAVIS frame at or before that time")
    except BaseException:
        for f in files:
            f.close()
        raise

    def close() -> None:
        for f in files:
            f.close()

    return Recording(
        name="mvsec", width=width, height=height, K=K, D=D, clock_offset_ns=offset,
        events=lambda: _ordered(events(), f"{data_path}:{grp}/events"),
        frame_stamps=frame_stamps - shift, frame=lambda i: images[int(pick[i])],
        depth_stamps=(depth_stamps - shift if depth is not None
                      else np.zeros(0, np.int64)),
        depth=(lambda i: depth[i]) if depth is not None else None,
        pose_stamps=pose_stamps - shift, poses=poses, metadata=meta, close=close)


def mvsec_event_batches(path: str | os.PathLike, side: str = "left") -> Iterator[EventBatch]:
    """Events of an MVSEC data file alone (ns, the recorded times) for the event-file writers."""
    path = Path(path)
    data = _h5open(path)
    with data:
        ev = _dataset(data, f"davis/{side}/events", path, 2)
        if ev is None or ev.shape[1] != 4:
            raise UnreadableInputError(f"{path}: no davis/{side}/events (N x 4) dataset")
        img = _dataset(data, f"davis/{side}/image_raw", path, 3)
        width = height = 0
        if img is not None:
            height, width = int(img.shape[1]), int(img.shape[2])
        for i in range(0, ev.shape[0], _CHUNK):
            block = ev[i: i + _CHUNK]
            w, h = width or int(block[:, 0].max()) + 1, height or int(block[:, 1].max()) + 1
            yield EventBatch(events=make_events(block[:, 0].astype(np.uint16),
                                                block[:, 1].astype(np.uint16),
                                                seconds_to_ns(block[:, 2]),
                                                (block[:, 3] > 0).astype(np.int8)),
                             width=w, height=h)


# --- writing ----------------------------------------------------------------------------------


def _pose_msg(bag, stamp: int, pose: np.ndarray):
    p = bag.msg("geometry_msgs/msg/Point", x=float(pose[0]), y=float(pose[1]), z=float(pose[2]))
    q = bag.msg("geometry_msgs/msg/Quaternion", x=float(pose[3]), y=float(pose[4]),
                z=float(pose[5]), w=float(pose[6]))
    return bag.msg("geometry_msgs/msg/PoseStamped", header=bag.header(stamp, WORLD_FRAME),
                   pose=bag.msg("geometry_msgs/msg/Pose", position=p, orientation=q))


def write_dataset_bag(rec: Recording, dst: str | os.PathLike, packet_us: int = 1000,
                      storage: str = "mcap", overwrite: bool = False, progress: bool = False,
                      events_topic: str = TOPICS["events"]) -> dict:
    """Write ``rec`` as one time-ordered bag; returns counts. A failure removes the partial bag."""
    from tqdm import tqdm

    from event_fm.io.convert import packetize
    from event_fm.io.rosbag import BagWriter

    if packet_us <= 0:
        raise ValueError("packet duration must be positive")
    packet_ns = int(packet_us) * 1000
    offset = int(rec.clock_offset_ns)
    frame_poses, frame_pose_ok = interpolate_poses(rec.pose_stamps, rec.poses, rec.frame_stamps)
    raw = rec.poses.copy()
    if len(raw):
        raw[:, 3:] /= np.linalg.norm(raw[:, 3:], axis=1, keepdims=True)
        raw[raw[:, 6] < 0, 3:] *= -1
    counter = itertools.count()

    def packets():
        batches = (EventBatch(events=_floor_us(ev)) for ev in rec.events())
        for events, _ in packetize(batches, packet_ns):
            if len(events):
                yield int(events["t"][0]), 0, next(counter), "events", events

    def table(kind: str, stamps: np.ndarray, prio: int):
        for i, s in enumerate(stamps):
            yield int(s), prio, next(counter), kind, i

    stamps_all = [a for a in (rec.frame_stamps, rec.depth_stamps, rec.pose_stamps) if len(a)]
    lo = min((int(a.min()) for a in stamps_all), default=0)
    hi = max((int(a.max()) for a in stamps_all), default=0)
    counts = {"events": 0, "packets": 0, "frames": 0, "depth": 0, "poses": 0, "poses_raw": 0}
    metadata = dict(rec.metadata, clock_offset_ns=offset, topics=TOPICS,
                    clocks="header stamps = clock_offset_ns + sensor time; EVT3 event time = "
                           "sensor time (us); EventPacket stamp = ROS time of its first event",
                    depth="z-depth along the optical axis in metres, NaN where unknown",
                    pose="T_world_camera; /gt/pose interpolated at the frame stamps, "
                         "/gt/pose_raw as recorded",
                    width=rec.width, height=rec.height, K=rec.K.tolist(), D=rec.D.tolist())
    bar = tqdm(total=None, unit="msg", disable=not progress, leave=False)
    try:
        with BagWriter(dst, storage=storage, overwrite=overwrite) as bag:
            first = True
            stream = heapq.merge(packets(), table("frame", rec.frame_stamps, 1),
                                 table("depth", rec.depth_stamps, 2),
                                 table("pose_raw", rec.pose_stamps, 3))
            for stamp, _, _, kind, item in stream:
                ros = offset + stamp
                if first:  # metadata first, at the earliest stamp
                    meta = bag.msg("std_msgs/msg/String", data=json.dumps(
                        metadata, sort_keys=True, default=str))
                    bag.write(TOPICS["metadata"], min(ros, offset + lo), meta,
                              "std_msgs/msg/String")
                    first = False
                if kind == "events":
                    bag.write_event_packet(events_topic, ros, item, rec.width, rec.height,
                                           frame_id=EVENT_FRAME)
                    counts["events"] += len(item)
                    counts["packets"] += 1
                elif kind == "frame":
                    image = _to_rgb(rec.frame(item))
                    bag.write_camera_info(TOPICS["camera_info"], ros, rec.K, rec.width,
                                          rec.height, D=rec.D, frame_id=CAMERA_FRAME)
                    bag.write_image(TOPICS["image"], ros, image, encoding="rgb8",
                                    frame_id=CAMERA_FRAME)
                    counts["frames"] += 1
                    if frame_pose_ok[item]:
                        bag.write(TOPICS["pose"], ros, _pose_msg(bag, ros, frame_poses[item]),
                                  "geometry_msgs/msg/PoseStamped")
                        counts["poses"] += 1
                elif kind == "depth":
                    d = np.asarray(rec.depth(item), dtype=np.float32)
                    if d.shape != (rec.height, rec.width):
                        raise ValueError(f"depth map {item} is {d.shape[1]}x{d.shape[0]}, "
                                         f"expected {rec.width}x{rec.height}")
                    bag.write_image(TOPICS["depth"], ros, d, encoding="32FC1",
                                    frame_id=CAMERA_FRAME)
                    counts["depth"] += 1
                else:
                    bag.write(TOPICS["pose_raw"], ros, _pose_msg(bag, ros, raw[item]),
                              "geometry_msgs/msg/PoseStamped")
                    counts["poses_raw"] += 1
                bar.update(1)
                if hi > lo and bar.n % 2000 == 0:
                    bar.set_postfix_str(f"{100 * (stamp - lo) / (hi - lo):.0f}% of the span")
            if first and counts == dict.fromkeys(counts, 0):
                raise UnreadableInputError(f"{rec.metadata.get('source')}: nothing to convert "
                                           "(no events, frames or ground truth)")
    finally:
        bar.close()
        rec.close()
    return counts


def _floor_us(ev: np.ndarray) -> np.ndarray:
    if len(ev) and np.any(ev["t"] % 1000):
        ev = ev.copy()
        ev["t"] = (ev["t"] // 1000) * 1000  # EVT3 carries microseconds
    return ev


def convert_dataset(src: str | os.PathLike, dst: str | os.PathLike, gt: str | None = None,
                    calib: str | None = None, frame_times: str = "auto", width: int = 0,
                    height: int = 0, packet_us: int = 1000, storage: str = "mcap",
                    overwrite: bool = False, progress: bool = False,
                    out_topic: str = TOPICS["events"]) -> dict:
    """An ECD folder or an MVSEC data file (+ ``gt``) to one bag; returns the counts."""
    kind = detect_dataset(src)
    if Path(dst).exists() and not overwrite:
        raise FileExistsError(f"{dst} exists (use --overwrite)")
    if kind == "ecd":
        if gt is not None:
            raise ValueError("--gt is for MVSEC; an ECD folder has its groundtruth.txt")
        rec = open_ecd(src, calib, width, height)
    elif kind == "mvsec":
        rec = open_mvsec(src, gt, calib, frame_times=frame_times)
    else:
        raise UnreadableInputError(f"{src}: neither an ECD folder (events.txt with images.txt "
                                   "or groundtruth.txt) nor an MVSEC data HDF5 (davis/left/...)")
    counts = write_dataset_bag(rec, dst, packet_us, storage, overwrite, progress, out_topic)
    counts["clock_offset_ns"] = int(rec.clock_offset_ns)
    counts["format"] = rec.metadata["format"]
    return counts


def read_tum_trajectory(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A TUM-format trajectory ('t tx ty tz qx qy qz qw' per line, t in seconds, the pose of the
    camera in the world, the format of ECD's groundtruth.txt) -> (stamps ns, (N, 7) poses)."""
    from event_fm.io.files.text import _read_stamped_rows

    path = Path(path)
    stamps, poses, bad = _read_stamped_rows(path, 7)
    if not len(stamps):
        raise UnreadableInputError(f"{path}: no 't tx ty tz qx qy qz qw' line ({bad} malformed)")
    return stamps, poses
