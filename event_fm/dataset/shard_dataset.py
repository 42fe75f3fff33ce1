"""A torch Dataset over shards: samples as raw events plus targets, voxelized per batch.

Keeping raw events in shards keeps bins and normalization a training choice; the collate
function pads events into one tensor so voxelization can run on the GPU for the whole batch.
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path

import numpy as np

from event_fm.dataset.shards import Sample, load_index, read_shard, unpack_sample


def recording_dirs(root: str | Path, split: str) -> list[Path]:
    base = Path(root) / split
    return sorted(p.parent for p in base.glob("*/index.json"))


class ShardDataset:
    """Random access over every sample of a split (a small LRU of open shards)."""

    def __init__(self, root: str | Path, split: str = "train", cache_shards: int = 4):
        self.entries: list[tuple[Path, int]] = []
        for rec in recording_dirs(root, split):
            index = load_index(rec)
            for shard in index["shards"]:
                self.entries.append((rec / shard["file"], int(shard["samples"])))
        if not self.entries:
            raise FileNotFoundError(f"no shards for split {split!r} under {root}")
        self._starts = np.cumsum([0] + [n for _, n in self.entries]).tolist()
        self._cache: dict[Path, dict] = {}
        self._cache_size = cache_shards

    def __len__(self) -> int:
        return self._starts[-1]

    def _shard(self, path: Path) -> dict:
        if path not in self._cache:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[path] = read_shard(path)
        return self._cache[path]

    def sample(self, i: int) -> Sample:
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = bisect_right(self._starts, i) - 1
        path, _ = self.entries[k]
        return unpack_sample(self._shard(path), i - self._starts[k])

    def __getitem__(self, i: int) -> Sample:
        return self.sample(i)
