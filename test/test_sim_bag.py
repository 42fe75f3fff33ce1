"""``event-fm simulate``: the bag it writes, its clocks, parameter errors and interrupts."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from event_fm.cli.main import main as cli_main
from event_fm.io.readers import read_events
from event_fm.io.rosbag import BagReader, image_to_array
from event_fm.sim import bag_output

EPOCH_S = 1_700_000_000
EPOCH = EPOCH_S * 1_000_000_000
ARGS = ["--resolution", "64x48", "--seed", "1", "--quiet"]


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "street_bag"
    rc = cli_main(["simulate", "--out", str(out), "--duration", "0.3", "--degrade", "blur",
                   "--flow", "--start-epoch", str(EPOCH_S), *ARGS])
    assert rc == 0
    return out


def test_bag_has_every_topic_with_its_encoding_and_frame_count(sim_bag):
    counts = {"/camera/image_raw": "rgb8", "/camera/image_clean": "rgb8", "/gt/depth": "32FC1",
              "/gt/semantic": "mono8"}
    with BagReader(sim_bag) as bag:
        assert bag.topics["/event_camera/events"].msgtype == "event_camera_msgs/msg/EventPacket"
        assert bag.topics["/event_camera/events"].qos[0].reliability.name == "BEST_EFFORT"
        for topic in [*counts, "/camera/camera_info", "/gt/pose", "/gt/flow"]:
            assert bag.topics[topic].count == 6, topic  # 0.3 s * 20 fps
        stamps: dict[str, list[int]] = {}
        for m in bag.messages([*counts, "/gt/pose", "/gt/metadata"]):
            msg = bag.deserialize(m)
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec \
                if hasattr(msg, "header") else m.log_time_ns
            stamps.setdefault(m.topic, []).append(stamp)
            assert m.log_time_ns == stamp
            if m.topic in counts:
                assert msg.encoding == counts[m.topic]
                image = image_to_array(msg)
                assert image.shape[:2] == (48, 64)
                if m.topic == "/gt/semantic":
                    assert image.max() <= 10
                if m.topic == "/gt/depth":
                    assert np.isinf(image).any() and np.nanmin(image) > 0
            if m.topic == "/gt/pose":
                assert msg.header.frame_id == "world"
        flow = bag.deserialize(next(bag.messages(["/gt/flow"])))
        assert flow.encoding == "32FC2" and flow.step == 64 * 8
        frame_times = [EPOCH + k * 50_000_000 for k in range(6)]
        for topic in [*counts, "/gt/pose"]:
            assert stamps[topic] == frame_times
        meta = json.loads(bag.deserialize(next(bag.messages(["/gt/metadata"]))).data)
    side = json.loads((sim_bag / "sim.json").read_text())
    for m in (meta, side):
        assert m["clock_offset_ns"] == EPOCH
        assert m["class_names"][5] == "road" and len(m["class_names"]) == 11
        assert m["config"]["seed"] == 1 and m["intrinsics"]["width"] == 64
    assert side["counts"]["frames"] == 6


def test_event_stream_is_monotonic_and_stamped_with_ros_time_of_its_first_event(sim_bag):
    batches = list(read_events(sim_bag))
    events = np.concatenate([b.events for b in batches])
    assert len(events) > 100
    assert np.all(np.diff(events["t"]) >= 0)
    assert events["t"].min() > 0 and events["t"].max() <= 250_000_000  # sensor time = sim time
    assert events["x"].max() < 64 and events["y"].max() < 48
    for b in batches:
        assert b.width == 64 and b.height == 48
        assert b.stamp_ns - EPOCH == b.t_first  # stamp = ROS time of the first event
        assert b.t_last // 1_000_000 == b.t_first // 1_000_000  # ~1 ms packets
    assert [b.seq for b in batches] == list(range(len(batches)))


def test_info_reports_the_simulated_bag(sim_bag, capsys):
    assert cli_main(["info", str(sim_bag), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (events,) = report["event_topics"]
    assert events["encoding"] == "evt3" and events["width"] == 64
    assert events["events"] == sum(len(b) for b in read_events(sim_bag))
    assert events["time_backwards"] == 0
    images = {s["topic"]: s for s in report["image_topics"]}
    assert images["/camera/image_raw"]["messages"] == 6
    assert abs(images["/gt/depth"]["rate_hz"] - 20.0) < 0.5


@pytest.mark.parametrize("bad", [
    ["--threshold", "-0.2"], ["--threshold", "0"], ["--duration", "0"], ["--duration", "-1"],
    ["--resolution", "64by48"], ["--resolution", "5000x5000"], ["--fps", "abc"],
    ["--resolution", "4096x4096", "--duration", "3000"], ["--noise-rate", "-1"],
    ["--photo-textures", "1.5"], ["--photo-textures", "-0.1"],
])
def test_bad_parameters_exit_2_with_one_line(bad, tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:
        cli_main(["simulate", "--out", str(out), *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err
    assert not out.exists()


def test_interrupt_while_writing_leaves_no_bag(tmp_path, monkeypatch, capsys):
    original = bag_output.SimBagWriter.write_frame

    def interrupt_on_third(self, frame):
        if frame.index == 2:
            raise KeyboardInterrupt
        original(self, frame)

    monkeypatch.setattr(bag_output.SimBagWriter, "write_frame", interrupt_on_third)
    out = tmp_path / "bag"
    assert cli_main(["simulate", "--out", str(out), "--duration", "0.2", *ARGS]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither the bag nor its .partial


def test_from_video_folder_writes_events_and_images_only(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(6):
        img = np.full((40, 56, 3), 30, dtype=np.uint8)
        img[:, 4 + 6 * k: 12 + 6 * k] = 230
        cv2.imwrite(str(frames / f"f{k:03d}.png"), img[..., ::-1])
    out = tmp_path / "video_bag"
    rc = cli_main(["simulate", "--from-video", str(frames), "--out", str(out), "--fps", "30",
                   "--noise-rate", "0", "--leak-rate", "0", "--quiet"])
    assert rc == 0
    with BagReader(out) as bag:
        assert bag.topics["/camera/image_raw"].count == 6
        assert not any(t.startswith("/gt/") and t != "/gt/metadata" for t in bag.topics)
    events = np.concatenate([b.events for b in read_events(out)])
    assert len(events) > 0 and events["t"].max() <= 5 * 1_000_000_000 // 30 + 1000
    with pytest.raises(SystemExit):
        cli_main(["simulate", "--from-video", str(frames), "--out", str(tmp_path / "x"),
                  "--scene", "room"])
    with pytest.raises(SystemExit):
        cli_main(["simulate", "--from-video", str(frames), "--out", str(tmp_path / "x"),
                  "--photo-textures", "0.3"])


def test_photo_textures_are_recorded_in_the_bag_metadata(tmp_path):
    out = tmp_path / "photo_bag"
    assert cli_main(["simulate", "--out", str(out), "--duration", "0.2", "--photo-textures",
                     "0.5", *ARGS]) == 0
    meta = json.loads((out / "sim.json").read_text())
    assert meta["config"]["photo_textures"] == 0.5
    assert meta["scene"]["photo_textures"] == 0.5
