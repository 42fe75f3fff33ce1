"""Recordings -> cached voxel-frame tensors -> normalized training/evaluation sequences.

``build_frames`` turns each recording into one (N, 3, 128, 128) float16 tensor of consecutive
20 ms frames (un-normalized, see :mod:`event_fm.models.forecast.frames`), cached under the data
root as ``<split>/<name>.pt``; :class:`SequenceDataset` cuts windows of ``frames`` frames from
them and normalizes each by its prompt (past) frames' max |value|.
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from event_fm.io import read_events
from event_fm.io.events import concatenate
from event_fm.models.forecast.frames import FRAME_NS, frames_from_events, normalize_by_prompt

log = logging.getLogger(__name__)


@dataclass
class RecordingFrames:
    name: str
    frames: torch.Tensor  # (N, bins, size, size) float16, un-normalized
    width: int
    height: int


def recording_frames(path: str | Path, bins: int = 3, size: int = 128,
                     max_seconds: float | None = None,
                     topic: str | None = None) -> RecordingFrames:
    """All complete 20 ms frames of one recording's first event stream."""
    batches = [b for b in read_events(path, topic) if len(b)]
    if not batches:
        raise ValueError(f"{path}: no events")
    first_topic = batches[0].topic
    batches = [b for b in batches if b.topic == first_topic]
    width = max(b.width for b in batches)
    height = max(b.height for b in batches)
    events = concatenate(batches)
    if not (width and height):
        width, height = int(events["x"].max()) + 1, int(events["y"].max()) + 1
    t0, t1 = int(events["t"].min()), int(events["t"].max())
    span = t1 - t0
    if max_seconds is not None:
        span = min(span, int(max_seconds * 1e9))
    n = span // FRAME_NS
    if n < 1:
        raise ValueError(f"{path}: {span / 1e6:.1f} ms of events, shorter than one frame")
    frames = frames_from_events(events, t0, int(n), width, height, bins, size)
    return RecordingFrames(Path(path).name, frames.half(), width, height)


def expand_sources(patterns: list[str]) -> list[Path]:
    paths: list[Path] = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if not found:
            raise FileNotFoundError(f"no recordings match {pattern!r} (simulated ones are made by "
                                    "scripts/simulate_reproduction_data.sh)")
        paths.extend(Path(p) for p in found)
    return paths


def frame_slice(count: int, fractions: list[float] | None) -> slice:
    """The frames [start, end) of ``count`` for ``fractions`` [start, end] in [0, 1]: one
    recording can give its first part to training and the rest to evaluation."""
    if fractions is None:
        return slice(0, count)
    start, end = (float(f) for f in fractions)
    if not 0.0 <= start < end <= 1.0:
        raise ValueError(f"frame range must be 0 <= start < end <= 1, got {fractions}")
    return slice(int(round(start * count)), int(round(end * count)))


def _cached_fractions(path: Path) -> list[float] | None:
    """The frame range a cache file was cut with (memory-mapped: the frames are not read)."""
    return torch.load(path, weights_only=True, mmap=True).get("fractions")


def build_frames(splits: dict[str, list[str]], root: str | Path, bins: int = 3,
                 size: int = 128, overwrite: bool = False,
                 frame_ranges: dict[str, list[float]] | None = None) -> dict[str, list[Path]]:
    """Cache every recording of every split as ``root/split/name.pt`` (the fraction of its
    frames that ``frame_ranges[split]`` names, all by default); returns the files."""
    root = Path(root)
    frame_ranges = frame_ranges or {}
    unknown = sorted(set(frame_ranges) - set(splits))
    if unknown:
        raise ValueError(f"frame_ranges names splits that do not exist: {unknown}")
    written: dict[str, list[Path]] = {}
    jobs = [(split, p) for split, patterns in splits.items() for p in expand_sources(patterns)]
    for split, path in tqdm(jobs, desc="forecast data", unit="rec"):
        out = root / split / f"{path.name}.pt"
        written.setdefault(split, []).append(out)
        fractions = frame_ranges.get(split)
        if out.exists() and not overwrite and _cached_fractions(out) == fractions:
            continue
        rec = recording_frames(path, bins, size)
        part = frame_slice(len(rec.frames), fractions)
        rec.frames = rec.frames[part]
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"name": rec.name, "frames": rec.frames, "width": rec.width,
                    "height": rec.height, "source": str(path),
                    "frame_range": [part.start, part.stop], "fractions": fractions}, out)
        log.info("%s: %d frames from %s (%dx%d)", out, len(rec.frames), path, rec.width,
                 rec.height)
    return written


#: the ``data`` section of the forecast config
DATA_KEYS = ("root", "bins", "size", "splits", "frame_ranges", "train_splits", "train_stride",
             "eval_stride")


def training_recordings(data: dict) -> list[RecordingFrames]:
    """The cached recordings of every training split (``train_splits``, default ``train``)."""
    return [rec for split in data.get("train_splits", ["train"])
            for rec in load_split(data["root"], split)]


def load_split(root: str | Path, split: str) -> list[RecordingFrames]:
    files = sorted((Path(root) / split).glob("*.pt"))
    if not files:
        raise FileNotFoundError(f"no cached frames in {Path(root) / split}: run "
                                "`event-fm train forecast data` first")
    out = []
    for f in files:
        d = torch.load(f, weights_only=True)  # a cache file must never run code
        out.append(RecordingFrames(d["name"], d["frames"], d["width"], d["height"]))
    return out


class SequenceDataset(torch.utils.data.Dataset):
    """Windows of ``frames`` consecutive frames (every ``stride``), normalized by the max |value|
    of their first ``past`` frames. Items: (frames, bins, H, W) float32."""

    def __init__(self, recordings: list[RecordingFrames], frames: int, past: int,
                 stride: int = 1, flip: bool = False, min_prompt_events: float = 0.0):
        self.recordings, self.frames, self.past, self.flip = recordings, frames, past, flip
        self.index: list[tuple[int, int]] = []
        for r, rec in enumerate(recordings):
            for start in range(0, len(rec.frames) - frames + 1, stride):
                prompt = rec.frames[start:start + past].float()
                if prompt.abs().sum() > min_prompt_events:
                    self.index.append((r, start))

    def __len__(self) -> int:
        return len(self.index)

    def names(self) -> list[str]:
        return [f"{self.recordings[r].name}@{s}" for r, s in self.index]

    def __getitem__(self, i: int) -> torch.Tensor:
        r, start = self.index[i]
        seq = self.recordings[r].frames[start:start + self.frames].float()
        seq, _ = normalize_by_prompt(seq, self.past)
        if self.flip:
            if np.random.rand() < 0.5:
                seq = seq.flip(-1)
            if np.random.rand() < 0.5:
                seq = seq.flip(-2)
        return seq


def data_std(dataset: SequenceDataset, samples: int = 64, seed: int = 0) -> float:
    """Standard deviation of normalized voxels over a sample of windows (for ``data_scale``)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(dataset), size=min(samples, len(dataset)), replace=False)
    values = torch.stack([dataset[int(i)] for i in idx])
    return float(values.std())
