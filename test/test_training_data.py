"""Training data: synchronized samples from bags, crash-safe shards, resumable builds."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.synthetic_bag import EPOCH, H, W, make_bag

from event_fm.dataset.shard_dataset import ShardDataset
from event_fm.dataset.shards import ShardWriter, load_index, read_shard
from event_fm.dataset.sync import RecordingSynchronizer, SyncConfig
from training.data.build import assign_splits, build_dataset


def test_samples_are_the_windows_ending_at_each_frame(tmp_path):
    events, frames = make_bag(tmp_path / "rec")
    sync = RecordingSynchronizer(tmp_path / "rec", SyncConfig(window_ms=50.0,
                                                              require=["image", "depth"]))
    samples = list(sync)
    assert [s.stamp_ns - EPOCH for s in samples] == frames[:len(samples)]
    assert len(samples) >= len(frames) - 1  # the last frame may have no events after it
    for s in samples:
        expected = events[(events["t"] >= s.t_end - 50_000_000) & (events["t"] < s.t_end)]
        np.testing.assert_array_equal(s.events, expected)
        assert s.t_end == s.stamp_ns - EPOCH  # clock offset recovered exactly
        assert (s.width, s.height) == (W, H)
        assert s.depth[0, 0] == pytest.approx((s.stamp_ns - EPOCH) / 1e9)
        assert s.K[0, 0] == 30.0 and s.image.shape == (H, W, 3)


def test_fixed_count_windows(tmp_path):
    events, _ = make_bag(tmp_path / "rec", seconds=0.5)
    samples = list(RecordingSynchronizer(tmp_path / "rec", SyncConfig(window_events=1000)))
    for s in samples:
        before = events[events["t"] < s.t_end]
        np.testing.assert_array_equal(s.events, before[-1000:])


def test_missing_required_topic_skips_the_recording_with_a_reason(tmp_path):
    make_bag(tmp_path / "rec", seconds=0.3, with_depth=False)
    sync = RecordingSynchronizer(tmp_path / "rec", SyncConfig(require=["image", "depth"]))
    assert list(sync) == []
    assert sync.skipped == {"missing_topic:/gt/depth": 1}


def test_shards_are_atomic_and_resume_with_new_numbers(tmp_path):
    events, _ = make_bag(tmp_path / "rec", seconds=0.5)
    samples = list(RecordingSynchronizer(tmp_path / "rec"))
    writer = ShardWriter(tmp_path / "ds", samples_per_shard=3)
    for s in samples[:7]:
        writer.add(s)
    # "killed" here: 2 complete shards, the 7th sample in the open shard is lost
    assert len(load_index(tmp_path / "ds")["shards"]) == 2
    assert not list((tmp_path / "ds").glob(".*.tmp"))
    writer2 = ShardWriter(tmp_path / "ds", samples_per_shard=3)
    writer2.add(samples[7])
    writer2.close()
    files = [s["file"] for s in load_index(tmp_path / "ds")["shards"]]
    assert files == ["shard_000000.npz", "shard_000001.npz", "shard_000002.npz"]
    data = read_shard(tmp_path / "ds" / files[1])
    np.testing.assert_array_equal(data["events"][data["offsets"][0]:data["offsets"][1]],
                                  samples[3].events)


def test_build_splits_by_recording_and_resumes(tmp_path):
    for i in range(3):
        make_bag(tmp_path / f"rec{i}", seconds=0.4, seed=i)
    config = {"recordings": [str(tmp_path / "rec*")], "val_fraction": 0.34, "seed": 1,
              "sync": {"window_ms": 20.0}, "samples_per_shard": 4}
    splits = assign_splits(config)
    assert len(splits["val"]) == 1 and len(splits["train"]) == 2
    assert not set(splits["val"]) & set(splits["train"])
    results = build_dataset(config, tmp_path / "out", workers=2, progress=False)
    assert all(r.error is None and r.samples > 0 and not r.reused for r in results)
    train = ShardDataset(tmp_path / "out", "train")
    val = ShardDataset(tmp_path / "out", "val")
    assert len(train) == sum(r.samples for r in results if r.split == "train")
    assert {train[i].source for i in range(len(train))} == {p.name for p in splits["train"]}
    assert {val[i].source for i in range(len(val))} == {p.name for p in splits["val"]}
    again = build_dataset(config, tmp_path / "out", progress=False)
    assert all(r.reused for r in again)


def test_interrupted_recording_is_redone_not_duplicated(tmp_path):
    make_bag(tmp_path / "rec0", seconds=0.4)
    config = {"splits": {"train": [str(tmp_path / "rec0")]}, "samples_per_shard": 2}
    (full,) = build_dataset(config, tmp_path / "out", progress=False)
    # simulate a kill: the recording is not marked done but has some shards
    target = tmp_path / "out" / "train" / "rec0"
    index = load_index(target)
    index["done_sources"] = {}
    index["shards"] = index["shards"][:2]
    from event_fm.dataset.shards import save_index

    save_index(target, index)
    (redo,) = build_dataset(config, tmp_path / "out", progress=False)
    assert not redo.reused and redo.samples == full.samples
    assert len(ShardDataset(tmp_path / "out", "train")) == full.samples
