"""Build a shard dataset from recordings: ``event-fm train distill data --config ...``.

Layout: ``<out>/<split>/<recording>/{index.json, shard_*.npz}``. Splits are by recording, never
by frame, so evaluation scenes are unseen. Recordings convert in parallel processes; a recording
whose index says it is done is skipped on a rerun, and one interrupted half-way is redone from
scratch (its partial shards are dropped), so a killed build resumes without redoing finished work.
"""

from __future__ import annotations

import glob
import logging
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from event_fm.dataset.shards import ShardWriter, load_index
from event_fm.dataset.sync import RecordingSynchronizer, SyncConfig

log = logging.getLogger(__name__)


@dataclass
class RecordingResult:
    recording: str
    split: str
    samples: int
    skipped: dict[str, int]
    reused: bool = False
    error: str | None = None


def expand_recordings(patterns: list[str]) -> list[Path]:
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(pattern))) or [pattern]
        paths += [Path(m) for m in matches]
    return paths


def assign_splits(config: dict) -> dict[str, list[Path]]:
    """Explicit ``splits: {train: [...], val: [...]}`` or ``recordings`` + ``val_fraction``."""
    if "splits" in config:
        return {name: expand_recordings(list(p)) for name, p in config["splits"].items()}
    recordings = expand_recordings(list(config.get("recordings", [])))
    rng = random.Random(config.get("seed", 0))
    shuffled = recordings[:]
    rng.shuffle(shuffled)
    n_val = round(len(shuffled) * float(config.get("val_fraction", 0.2)))
    if len(shuffled) > 1:
        n_val = max(1, n_val)
    return {"train": sorted(shuffled[n_val:]), "val": sorted(shuffled[:n_val])}


def convert_recording(bag: str, out_dir: str, split: str, sync: dict,
                      samples_per_shard: int) -> RecordingResult:
    name = Path(bag).name
    target = Path(out_dir) / split / name
    if name in load_index(target).get("done_sources", {}):
        info = load_index(target)["done_sources"][name]
        return RecordingResult(name, split, info.get("samples", 0), info.get("skipped", {}),
                               reused=True)
    writer = ShardWriter(target, samples_per_shard, meta={"recording": str(bag),
                                                           "sync": sync})
    writer.discard_unfinished_sources()
    synchronizer = RecordingSynchronizer(bag, SyncConfig.from_dict(sync))
    try:
        for sample in synchronizer:
            writer.add(sample)
    except Exception as exc:  # noqa: BLE001 - a corrupt recording must not stop the build
        log.error("%s: conversion failed: %s", bag, exc)
        return RecordingResult(name, split, synchronizer.emitted, dict(synchronizer.skipped),
                               error=str(exc))
    skipped = dict(synchronizer.skipped)
    writer.mark_source_done(name, {"samples": synchronizer.emitted, "skipped": skipped})
    return RecordingResult(name, split, synchronizer.emitted, skipped)


def build_dataset(config: dict, out_dir: str | Path, workers: int = 1,
                  progress: bool = True) -> list[RecordingResult]:
    splits = assign_splits(config)
    sync = dict(config.get("sync", {}))
    SyncConfig.from_dict(sync)  # validate before starting workers
    per_shard = int(config.get("samples_per_shard", 64))
    jobs = [(str(bag), str(out_dir), split, sync, per_shard)
            for split, bags in splits.items() for bag in bags]
    missing = [j[0] for j in jobs if not Path(j[0]).exists()]
    if missing:
        raise FileNotFoundError(f"recordings not found: {missing}")
    results: list[RecordingResult] = []
    bar = tqdm(total=len(jobs), unit="recording", disable=not progress)
    if workers <= 1:
        for job in jobs:
            results.append(convert_recording(*job))
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(convert_recording, *zip(*jobs, strict=True)):
                results.append(result)
                bar.update(1)
    bar.close()
    return results
