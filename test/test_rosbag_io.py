"""rosbag2 reading (every real driver bag and its quirks), writing, info and convert."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from event_fm.cli.main import main as cli_main
from event_fm.io import make_events
from event_fm.io.convert import convert, packetize
from event_fm.io.events import EventBatch, concatenate
from event_fm.io.readers import read_all_events, read_events
from event_fm.io.rosbag import BagReader, BagWriter, image_to_array

REAL = {
    # folder: (width, height, encoding)
    "evt3_metavision_640x480": (640, 480, "evt3"),
    "evt3_trigger_1280x720": (1280, 720, "evt3"),
    "libcaer_cmp_davis346": (346, 260, "libcaer_cmp"),
    "libcaer_rollover_640x480": (640, 480, "libcaer"),
    "mono_cd": (640, 480, "mono"),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_every_real_bag_reads_in_bounds_and_in_order(real_bags, name):
    width, height, _ = REAL[name]
    batches = list(read_events(real_bags / name))
    events = concatenate(batches)
    assert len(events) > 0
    assert all(b.width == width and b.height == height for b in batches)
    assert events["x"].max() < width and events["y"].max() < height
    assert set(np.unique(events["p"]).tolist()) <= {0, 1}
    assert np.all(np.diff(events["t"]) >= 0), "timestamps must be monotonic within the stream"
    seqs = [b.seq for b in batches]
    assert seqs == sorted(seqs)
    assert sum(b.dropped.get("malformed_message", 0) for b in batches) == 0


def test_quirky_bags_read_through_their_quirks(real_bags):
    # empty storage_identifier + MCAP with IDL schemas
    meta = (real_bags / "libcaer_cmp_davis346" / "metadata.yaml").read_text()
    assert 'storage_identifier: ""' in meta
    with BagReader(real_bags / "libcaer_cmp_davis346") as bag:
        assert bag.topics["/event_camera/events"].count == 100
        assert bag.topics["/event_camera/events"].qos[0].depth == 1000
    # older type name
    with BagReader(real_bags / "mono_cd") as bag:
        assert bag.topics["/event_camera/events"].msgtype == "event_array_msgs/msg/EventArray"


def test_single_storage_file_reads_like_its_directory(real_bags, tmp_path):
    db3 = next((real_bags / "evt3_trigger_1280x720").glob("*.db3"))
    a = read_all_events(real_bags / "evt3_trigger_1280x720")
    b = read_all_events(db3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(REAL))
def test_info_json_matches_read_events(real_bags, name, capsys):
    assert cli_main(["info", str(real_bags / name), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (stream,) = report["event_topics"]
    batches = list(read_events(real_bags / name))
    events = concatenate(batches)
    width, height, encoding = REAL[name]
    assert stream["encoding"] == encoding
    assert (stream["width"], stream["height"]) == (width, height)
    assert stream["messages"] == len(batches)
    assert stream["events"] == len(events)
    assert stream["on"] == int(np.count_nonzero(events["p"]))
    assert stream["triggers"] == sum(len(b.triggers) for b in batches)
    assert stream["t_first_ns"] == int(events["t"].min())
    assert stream["t_last_ns"] == int(events["t"].max())
    assert stream["time_backwards"] == 0 and stream["out_of_bounds"] == 0
    assert stream["peak_rate_ev_s"] >= stream["mean_rate_ev_s"] > 0


def test_info_text_output(real_bags, capsys):
    assert cli_main(["info", str(real_bags / "evt3_trigger_1280x720")]) == 0
    out = capsys.readouterr().out
    assert "evt3" in out and "1280x720" in out and "triggers      2" in out


def test_info_reports_missing_path_clearly(tmp_path, capsys):
    assert cli_main(["info", str(tmp_path / "nope")]) == 1
    assert "nope" in capsys.readouterr().err


def _random_stream(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 50_000, n)) * 1000 + 5_000_000  # us resolution, in ns
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n), t,
                       rng.integers(0, 2, n))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_writer_round_trip_events_images_camera_info_and_poses(tmp_path, storage):
    width, height = 64, 48
    events = _random_stream(20_000, width, height)
    bag_path = tmp_path / "rec"
    images = [np.random.default_rng(i).integers(0, 255, (height, width, 3), dtype=np.uint8)
              for i in range(3)]
    depth = np.linspace(1, 80, width * height, dtype=np.float32).reshape(height, width)
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    with BagWriter(bag_path, storage=storage) as bag:
        for packet, triggers in packetize([EventBatch(events=events)], 1_000_000):
            bag.write_event_packet("/event_camera/events", int(packet["t"][0]), packet,
                                   width, height, triggers=triggers)
        for i, img in enumerate(images):
            bag.write_image("/camera/image_raw", 10_000_000 + i * 20_000_000, img)
            bag.write_camera_info("/camera/camera_info", 10_000_000 + i * 20_000_000, K,
                                  width, height)
        bag.write_image("/gt/depth", 10_000_000, depth)
        pose = bag.msg("geometry_msgs/msg/PoseStamped", header=bag.header(10_000_000, "world"),
                       pose=bag.msg("geometry_msgs/msg/Pose",
                                    position=bag.msg("geometry_msgs/msg/Point", x=1.0, y=2.0,
                                                     z=3.0),
                                    orientation=bag.msg("geometry_msgs/msg/Quaternion", x=0.0,
                                                        y=0.0, z=0.0, w=1.0)))
        bag.write("/gt/pose", 10_000_000, pose)
    assert not (tmp_path / "rec.partial").exists()
    np.testing.assert_array_equal(read_all_events(bag_path), events)
    with BagReader(bag_path) as bag:
        assert bag.topics["/event_camera/events"].qos[0].reliability.name == "BEST_EFFORT"
        got = {"/camera/image_raw": [], "/gt/depth": [], "/camera/camera_info": [],
               "/gt/pose": []}
        for message in bag.messages():
            if message.topic in got:
                got[message.topic].append(bag.deserialize(message))
    for img, msg in zip(images, got["/camera/image_raw"], strict=True):
        np.testing.assert_array_equal(image_to_array(msg), img)
    np.testing.assert_array_equal(image_to_array(got["/gt/depth"][0]), depth)
    assert got["/gt/depth"][0].encoding == "32FC1"
    np.testing.assert_array_equal(got["/camera/camera_info"][0].k.reshape(3, 3), K)
    assert got["/gt/pose"][0].pose.position.z == 3.0


def test_interrupted_writer_leaves_no_bag(tmp_path):
    with pytest.raises(RuntimeError), BagWriter(tmp_path / "rec") as bag:
        bag.write_image("/camera/image_raw", 1, np.zeros((4, 4), np.uint8))
        raise RuntimeError("killed")
    assert not (tmp_path / "rec").exists()
    assert not (tmp_path / "rec.partial").exists()


def test_unknown_encoding_and_garbage_payloads_are_counted_not_fatal(tmp_path):
    events = _random_stream(1000, 32, 32)
    rng = np.random.default_rng(3)
    with BagWriter(tmp_path / "bad") as bag:
        bag.write_encoded_packet("/ev", 1, rng.integers(0, 256, 999, dtype=np.uint8),
                                 "no_such_encoding", 32, 32)
        bag.write_encoded_packet("/ev", 2, rng.integers(0, 256, 4097, dtype=np.uint8),
                                 "evt3", 32, 32)
        bag.write_event_packet("/ev", 3, events, 32, 32)
    batches = list(read_events(tmp_path / "bad"))
    assert len(batches) == 3
    assert batches[0].dropped == {"unknown_encoding": 1}
    assert all(b.events["x"].max(initial=0) < 32 for b in batches)
    # the garbage packet may yield some "events" (random bytes can be valid words), but the
    # last packet's events all come through
    tail = batches[2].events
    assert len(tail) >= len(events) - 1


def test_legacy_per_event_arrays_in_a_bag(tmp_path):
    with BagWriter(tmp_path / "dvs") as bag:
        ev_type = "dvs_msgs/msg/Event"
        items = [bag.msg(ev_type, x=i, y=2 * i,
                         ts=bag.msg("builtin_interfaces/msg/Time", sec=5, nanosec=1000 * i),
                         polarity=bool(i % 2)) for i in range(10)]
        msg = bag.msg("dvs_msgs/msg/EventArray", header=bag.header(7, "cam"), height=30,
                      width=20, events=items)
        bag.write("/dvs/events", 7, msg)
    (batch,) = list(read_events(tmp_path / "dvs"))
    assert batch.events["x"].tolist() == list(range(10))
    assert batch.events["t"].tolist() == [5_000_000_000 + 1000 * i for i in range(10)]
    assert batch.events["p"].tolist() == [i % 2 for i in range(10)]
    assert batch.stamp_ns == 7 and batch.width == 20


@pytest.mark.parametrize("suffix", [".raw", ".h5", ".txt"])
def test_convert_bag_to_file_and_back_is_exact(real_bags, tmp_path, suffix, capsys):
    src = real_bags / "evt3_trigger_1280x720"
    original = read_all_events(src)
    mid = tmp_path / f"events{suffix}"
    assert cli_main(["convert", str(src), str(mid)]) == 0
    back = tmp_path / "back"
    assert cli_main(["convert", str(mid), str(back), "--width", "1280", "--height", "720"]) == 0
    np.testing.assert_array_equal(read_all_events(back), original)
    assert f"wrote {len(original)} events" in capsys.readouterr().out


def test_convert_refuses_to_overwrite(tmp_path, real_bags):
    out = tmp_path / "x"
    out.mkdir()
    with pytest.raises(FileExistsError):
        convert(real_bags / "mono_cd", out)


def test_reader_survives_a_copied_bag_without_metadata(real_bags, tmp_path):
    dst = tmp_path / "nometa"
    shutil.copytree(real_bags / "evt3_trigger_1280x720", dst)
    (dst / "metadata.yaml").unlink()
    assert len(read_all_events(dst)) == len(read_all_events(real_bags / "evt3_trigger_1280x720"))
