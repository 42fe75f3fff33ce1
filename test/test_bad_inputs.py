"""Every bad input ends as one clear stderr line and a non-zero exit, never a traceback; what a
killed recording leaves (a truncated MCAP or sqlite3 bag) is read up to the damage."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from event_fm.io.errors import UnreadableInputError
from event_fm.io.rosbag import BagReader, BagWriter

REAL = Path(__file__).resolve().parent / "data" / "real_bags"
MCAP_BAG = REAL / "libcaer_cmp_davis346" / "test_events_2_0.mcap"
DB3_BAG = REAL / "evt3_trigger_1280x720" / "test_data_evt3_trigger_0.db3"
#: A private DDS domain so the eval/replay/run cases never meet another test's nodes.
DOMAIN = str(100 + os.getpid() % 100)


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROS_DOMAIN_ID=DOMAIN)
    env.pop("EVENT_FM_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "event_fm.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def messages(path: Path) -> list[tuple[str, int, bytes]]:
    with BagReader(path) as reader:
        return [(m.topic, m.log_time_ns, bytes(m.raw)) for m in reader.messages()]


# -- garbage and empty files ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["empty.mcap", "empty.db3", "noise.mcap", "noise.db3",
                                  "noise.aedat4", "noise.h5", "noise.raw", "noise.txt"])
def test_info_refuses_empty_and_random_files(tmp_path, name):
    path = tmp_path / name
    data = b"" if name.startswith("empty") else np.random.default_rng(7).bytes(40_000)
    path.write_bytes(data)
    result = cli("info", path)
    line = one_line_error(result, "event-fm info:", name)
    assert result.returncode == 2  # a bad input, not a failure of the tool
    assert ("empty" in line) if name.startswith("empty") else ("not a" in line)
    if name.endswith((".mcap", ".db3")):
        with pytest.raises(UnreadableInputError):
            BagReader(path).open()


def test_raw_needs_a_plausible_header(tmp_path):
    body = np.random.default_rng(1).bytes(2000)
    no_geometry_word = tmp_path / "date_only.raw"
    no_geometry_word.write_bytes(b"% date 2024-01-01\n% end\n" + body)
    one_line_error(cli("info", no_geometry_word), "neither the encoding")
    huge = tmp_path / "huge.raw"
    huge.write_bytes(b"% format EVT3;height=0;width=99999\n% end\n" + body)
    one_line_error(cli("info", huge), "implausible .raw geometry")
    # an EVK4-style header without '% end' is still a recording
    from event_fm.io.events import make_events
    from event_fm.io.files.raw import write_raw

    evk4 = tmp_path / "evk4.raw"
    n = 50
    write_raw(evk4, [make_events(np.arange(n) % 1280, np.arange(n) % 720,
                                 np.arange(n) * 1000 + 1_000_000, np.arange(n) % 2)], 1280, 720)
    evk4.write_bytes(evk4.read_bytes().replace(b"% end\n", b""))
    result = cli("info", evk4)
    assert result.returncode == 0 and "1280x720" in result.stdout, result.stderr


# -- truncated recordings ------------------------------------------------------------------------
def _mcap_records(data: bytes) -> list[tuple[int, int, int]]:
    """(opcode, start, end) of each top-level record."""
    out, pos = [], 8
    while pos + 9 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos + 1)
        out.append((data[pos], pos, pos + 9 + length))
        pos += 9 + length
    return out


def test_mcap_cut_mid_chunk_reads_the_complete_messages(tmp_path):
    full = messages(MCAP_BAG)
    data = MCAP_BAG.read_bytes()
    chunks = [r for r in _mcap_records(data) if r[0] == 0x06]
    assert len(chunks) >= 2
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: (chunks[1][1] + chunks[1][2]) // 2])  # in the middle of chunk 2
    got = messages(cut)
    assert 0 < len(got) < len(full) and got == full[: len(got)]
    result = cli("info", cut, "--json")
    assert result.returncode == 0, result.stderr
    assert "truncated: read" in result.stderr and "unreadable" in result.stderr
    assert "Traceback" not in result.stderr


def test_mcap_cut_after_whole_records(tmp_path):
    full = messages(MCAP_BAG)
    data = MCAP_BAG.read_bytes()
    first_chunk = next(r for r in _mcap_records(data) if r[0] == 0x06)
    cut = tmp_path / "records.mcap"
    cut.write_bytes(data[: first_chunk[2]])  # exactly the records before the summary
    got = messages(cut)
    assert 0 < len(got) < len(full) and got == full[: len(got)]


def _lz4_copy(data: bytes) -> bytes:
    """The same MCAP with every chunk lz4-compressed (what rosbag2 writes with compression)."""
    import lz4.frame

    out = bytearray(data[:8])
    for op, start, end in _mcap_records(data):
        if op != 0x06:
            out += data[start:end]
            continue
        body = data[start + 9:end]
        head = body[:28]
        (clen,) = struct.unpack_from("<I", body, 28)
        records = body[28 + 4 + clen + 8:]
        packed = lz4.frame.compress(records)
        new = head + struct.pack("<I", 3) + b"lz4" + struct.pack("<Q", len(packed)) + packed
        out += bytes([0x06]) + struct.pack("<Q", len(new)) + new
    return bytes(out)


def test_lz4_mcap_cut_reads_the_complete_chunks(tmp_path):
    full = messages(MCAP_BAG)
    data = _lz4_copy(MCAP_BAG.read_bytes())
    chunks = [r for r in _mcap_records(data) if r[0] == 0x06]
    cut = tmp_path / "lz4.mcap"
    cut.write_bytes(data[: chunks[1][2] + 100])
    got = messages(cut)
    assert 0 < len(got) < len(full) and got == full[: len(got)]


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_sqlite_cut_reads_up_to_the_damage(tmp_path, fraction):
    full = messages(DB3_BAG)
    data = DB3_BAG.read_bytes()
    cut = tmp_path / "cut.db3"
    cut.write_bytes(data[: int(len(data) * fraction)])
    got = messages(cut)
    assert 0 < len(got) < len(full) and got == full[: len(got)]
    assert cut.read_bytes() == data[: int(len(data) * fraction)]  # the user's file untouched


@pytest.mark.parametrize("source, metadata", [(DB3_BAG, True), (MCAP_BAG, False)])
def test_truncated_file_inside_a_bag_directory(tmp_path, source, metadata):
    """A killed rosbag2 leaves its storage file cut and often no metadata.yaml at all."""
    bag = tmp_path / "bag"
    shutil.copytree(source.parent, bag)
    if not metadata:
        (bag / "metadata.yaml").unlink()
    storage = bag / source.name
    storage.write_bytes(storage.read_bytes()[: 600_000])
    full = messages(source)
    got = messages(bag)
    assert 0 < len(got) < len(full) and got == full[: len(got)]
    result = cli("info", bag)
    assert result.returncode == 0 and "truncated: read" in result.stderr, result.stderr


# -- eval, replay, run: refused before anything starts --------------------------------------------
def _bag(path: Path, payload_bytes: int | None) -> Path:
    """A bag with empty event packets (payload_bytes 0) or none at all (None: only an image)."""
    with BagWriter(path) as writer:
        for i in range(3):
            stamp = 1_000_000_000 + i * 10_000_000
            if payload_bytes is None:
                writer.write_image("/camera/image_raw", stamp, np.zeros((4, 4), np.uint8))
            else:
                writer.write_encoded_packet("/event_camera/events", stamp,
                                            np.zeros(payload_bytes, np.uint8), "evt3", 64, 48)
    return path


@pytest.mark.parametrize("flags, needle", [
    (["--window-ms", "-5"], "--window-ms must be positive"),
    (["--rate", "0"], "--rate must be positive"),
])
def test_eval_rejects_bad_numbers(flags, needle):
    one_line_error(cli("eval", REAL / "mono_cd", *flags), needle)


def test_eval_rejects_an_unwritable_out(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    one_line_error(cli("eval", REAL / "mono_cd", "--out", blocker / "report"),
                   "cannot write the report")


def test_eval_rejects_bags_without_events(tmp_path):
    out = tmp_path / "out"
    one_line_error(cli("eval", _bag(tmp_path / "empty_packets", 0), "--out", out),
                   "holds any events")
    one_line_error(cli("eval", _bag(tmp_path / "images_only", None), "--out", out),
                   "no event topic")


def test_replay_rejects_a_topic_the_bag_lacks():
    line = one_line_error(cli("replay", REAL / "mono_cd", "--topics", "/nope"), "/nope")
    assert "/event_camera/events" in line  # the bag's topics are listed


@pytest.mark.parametrize("text, needle", [
    ("event_fm_perception:\n  ros__parameters:\n    window_ms: [1, 2\n", "not valid YAML"),
    ("event_fm_perception:\n  ros__parameters:\n    window_ms: -5.0\n",
     "window_ms: -5.0 < minimum 0.1 (valid range 0.1 .. 10000)"),
    ("event_fm_perception:\n  ros__parameters:\n    event_qos: fast\n", "event_qos"),
    ("event_fm_perception:\n  ros__parameters:\n    output_rate_hz: often\n", "not a number"),
    ("- just\n- a list\n", "not a ROS 2 parameter file"),
    ("event_fm_perception:\n  ros__parameters:\n    tile_size: [448]\n",
     "tile_size: expected 2 values, got [448]"),
    ("event_fm_perception:\n  ros__parameters:\n    tile_size: [448, -1]\n",
     "tile_size: -1 < minimum 0"),
])
def test_run_rejects_bad_params(tmp_path, text, needle):
    pytest.importorskip("rclpy")
    params = tmp_path / "params.yaml"
    params.write_text(text)
    one_line_error(cli("run", "--params", params, "--device", "cpu"), needle)


# -- the top-level handler -----------------------------------------------------------------------
def test_unexpected_errors_are_one_line_with_a_hint(monkeypatch, capsys):
    import event_fm.cli.info as info
    from event_fm.cli.main import main

    def boom(args):
        raise RuntimeError("something\nbroke")

    monkeypatch.delenv("EVENT_FM_DEBUG", raising=False)
    monkeypatch.setattr(info, "run", boom)
    assert main(["info", "x"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["event-fm info: RuntimeError: something broke "
                   "(set EVENT_FM_DEBUG=1 for the traceback)"]

    def bad_input(args):
        raise UnreadableInputError("x: not an MCAP file")

    monkeypatch.setattr(info, "run", bad_input)
    assert main(["info", "x"]) == 2
    assert capsys.readouterr().err.strip() == "event-fm info: x: not an MCAP file"

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "run", interrupted)
    assert main(["info", "x"]) == 130
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("EVENT_FM_DEBUG", "1")
    monkeypatch.setattr(info, "run", boom)
    with pytest.raises(RuntimeError):
        main(["info", "x"])


def test_info_says_which_skips_are_by_design():
    from event_fm.cli.info import skipped_lines

    lines = skipped_lines({"dropped": {"ignored": 53224, "before_time_sync": 3}})
    assert any("skipped by design" in line for line in lines)
    assert any("normal at the start" in line for line in lines)
    assert lines[-1].split() == ["malformed", "none"]
    bad = skipped_lines({"dropped": {"unknown_type": 2, "truncated": 1}})
    assert bad == ["  malformed     truncated 1, unknown_type 2"]
