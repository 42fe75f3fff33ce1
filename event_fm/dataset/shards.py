"""Preprocessed training shards: synchronized samples so epochs never re-decode bags.

A shard is one ``.npz`` file holding up to a few hundred samples. Each sample is the raw events
of the window ending at a camera frame (so voxelization stays configurable and can run on the
GPU per batch), the frame, and whatever ground truth the recording has (depth, semantic labels,
pose, intrinsics). A dataset directory has ``index.json`` listing complete shards.

Crash safety, for the recorder node and the dataset builder alike: a shard is written to a
temporary name, fsynced and renamed, so it becomes visible only when complete; the index is
rewritten the same way. A kill loses at most the open shard, and a restart continues with new
shard numbers.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from event_fm.io.events import EVENT_DTYPE

INDEX = "index.json"
FORMAT_VERSION = 1
#: Optional per-sample arrays (all samples of a shard have the same set).
OPTIONAL_FIELDS = ("image", "image_clean", "depth", "semantic", "pose", "K")


@dataclass
class Sample:
    events: np.ndarray  # EVENT_DTYPE, sensor time
    t_start: int  # window start, sensor time (ns)
    t_end: int  # window end, sensor time (ns) = frame time
    stamp_ns: int  # ROS time of the frame
    width: int
    height: int
    image: np.ndarray | None = None  # HxWx3 uint8 (the frame as delivered, maybe degraded)
    image_clean: np.ndarray | None = None  # HxWx3 uint8 clean frame when the bag has one
    depth: np.ndarray | None = None  # HxW float32 metres, NaN/inf invalid
    semantic: np.ndarray | None = None  # HxW uint8 class ids, 255 ignore
    pose: np.ndarray | None = None  # 4x4 T_world_camera
    K: np.ndarray | None = None  # 3x3 intrinsics
    source: str = ""  # recording the sample came from
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def _fsync_write(path: Path, write) -> None:
    """Write via a temp file in the same directory, fsync, then atomically rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pack_samples(samples: list[Sample]) -> dict[str, np.ndarray]:
    """Samples -> flat arrays (events concatenated with offsets)."""
    counts = np.array([len(s.events) for s in samples], dtype=np.int64)
    arrays: dict[str, np.ndarray] = {
        "events": (np.concatenate([s.events for s in samples]) if samples
                   else np.zeros(0, EVENT_DTYPE)),
        "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "t_start": np.array([s.t_start for s in samples], dtype=np.int64),
        "t_end": np.array([s.t_end for s in samples], dtype=np.int64),
        "stamp_ns": np.array([s.stamp_ns for s in samples], dtype=np.int64),
        "size": np.array([(s.height, s.width) for s in samples], dtype=np.int32).reshape(-1, 2),
        "source": np.array([s.source for s in samples]),
    }
    for name in OPTIONAL_FIELDS:
        values = [getattr(s, name) for s in samples]
        if samples and all(v is not None for v in values):
            arrays[name] = np.stack(values)
    for name in samples[0].extras if samples else []:
        arrays[f"extra_{name}"] = np.stack([s.extras[name] for s in samples])
    return arrays


def unpack_sample(arrays, i: int) -> Sample:
    lo, hi = int(arrays["offsets"][i]), int(arrays["offsets"][i + 1])
    h, w = (int(v) for v in arrays["size"][i])
    sample = Sample(events=arrays["events"][lo:hi], t_start=int(arrays["t_start"][i]),
                    t_end=int(arrays["t_end"][i]), stamp_ns=int(arrays["stamp_ns"][i]),
                    width=w, height=h, source=str(arrays["source"][i]))
    for name in OPTIONAL_FIELDS:
        if name in arrays:
            setattr(sample, name, arrays[name][i])
    for key in arrays:
        if key.startswith("extra_"):
            sample.extras[key[6:]] = arrays[key][i]
    return sample


def write_shard(path: Path, samples: list[Sample]) -> None:
    arrays = pack_samples(samples)
    _fsync_write(Path(path), lambda f: np.savez(f, **arrays))


def read_shard(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


class ShardWriter:
    """Appends samples to numbered shards in a dataset directory, resumably."""

    def __init__(self, root: str | Path, samples_per_shard: int = 64, prefix: str = "shard",
                 meta: dict | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.samples_per_shard = int(samples_per_shard)
        self.prefix = prefix
        self.index = load_index(self.root)
        self.index.setdefault("meta", {}).update(meta or {})
        self._open: list[Sample] = []
        self._next = self._next_number()
        for stale in self.root.glob(".*.tmp"):  # leftovers of a killed writer
            stale.unlink(missing_ok=True)

    def _next_number(self) -> int:
        numbers = [int(p.stem.rsplit("_", 1)[-1]) for p in self.root.glob(f"{self.prefix}_*.npz")
                   if p.stem.rsplit("_", 1)[-1].isdigit()]
        return max(numbers, default=-1) + 1

    def discard_unfinished_sources(self) -> int:
        """Drop shards of recordings whose conversion never finished (a killed build), so the
        resumed build redoes exactly those recordings. Returns the number of shards dropped."""
        done = set(self.index.get("done_sources", {}))
        keep, dropped = [], 0
        for shard in self.index["shards"]:
            if set(shard["sources"]) <= done:
                keep.append(shard)
            else:
                (self.root / shard["file"]).unlink(missing_ok=True)
                dropped += 1
        self.index["shards"] = keep
        save_index(self.root, self.index)
        return dropped

    def add(self, sample: Sample) -> None:
        self._open.append(sample)
        if len(self._open) >= self.samples_per_shard:
            self.flush()

    def flush(self) -> Path | None:
        if not self._open:
            return None
        name = f"{self.prefix}_{self._next:06d}.npz"
        path = self.root / name
        write_shard(path, self._open)
        sources = sorted({s.source for s in self._open})
        self.index["shards"].append({"file": name, "samples": len(self._open),
                                     "sources": sources})
        self._open = []
        self._next += 1
        save_index(self.root, self.index)
        return path

    def mark_source_done(self, source: str, stats: dict | None = None) -> None:
        """Record that a recording is fully converted, so a resumed build skips it."""
        self.flush()
        self.index.setdefault("done_sources", {})[source] = stats or {}
        save_index(self.root, self.index)

    def close(self) -> None:
        self.flush()


def load_index(root: str | Path) -> dict:
    path = Path(root) / INDEX
    if path.exists():
        return json.loads(path.read_text())
    return {"version": FORMAT_VERSION, "shards": [], "done_sources": {}}


def save_index(root: str | Path, index: dict) -> None:
    text = json.dumps(index, indent=1, sort_keys=True).encode()
    _fsync_write(Path(root) / INDEX, lambda f: f.write(text))


def shard_paths(root: str | Path) -> list[Path]:
    root = Path(root)
    return [root / s["file"] for s in load_index(root)["shards"]]
