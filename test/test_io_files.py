"""Vendor event files: exact write -> read round trips, header styles and bad input."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from event_fm.io.events import EventBatch, concatenate, make_events
from event_fm.io.files import read_event_file, sniff_format, write_event_file
from event_fm.io.files.raw import parse_raw_header, read_raw, read_raw_header, write_raw
from event_fm.io.files.text import (
    _parse_block,
    format_events,
    parse_stamp_ns,
    read_events_txt,
    read_text_folder,
)


def _events(n: int, width: int, height: int, t0: int, span_ns: int, us: bool, seed=0):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(t0, t0 + span_ns, n))
    if us:
        t = t // 1000 * 1000
    return make_events(
        rng.integers(0, width, n), rng.integers(0, height, n), t, rng.integers(0, 2, n)
    )


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert len(a) == len(b)
    for f in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)


def _read_all(path, **kw) -> tuple[np.ndarray, list[EventBatch]]:
    batches = list(read_event_file(path, **kw))
    return concatenate(batches), batches


# --- Prophesee .raw -------------------------------------------------------------------------


def test_raw_evt3_round_trip(tmp_path):
    ev = _events(20_000, 1280, 720, 5_000_000, 40_000_000_000, us=True)  # crosses 2^24 us
    trig = np.zeros(3, dtype=[("t", "<i8"), ("edge", "i1"), ("id", "i1")])
    trig["t"], trig["edge"], trig["id"] = ev["t"][[7100, 7200, 9000]], [1, 0, 1], [0, 0, 3]
    ev["x"][7000:7020], ev["y"][7000:7020], ev["t"][7000:7020] = np.arange(20), 7, ev["t"][7000]
    parts = [
        EventBatch(events=ev[:7000]),
        EventBatch(events=ev[7000:12345], triggers=trig),
        EventBatch(events=ev[12345:]),
    ]
    path = tmp_path / "rec.raw"
    assert write_event_file(path, parts, 1280, 720) == len(ev)
    hdr = read_raw_header(path)
    assert (hdr.encoding, hdr.width, hdr.height) == ("evt3", 1280, 720)
    assert hdr.fields["camera_integrator_name"] == "Prophesee"
    assert sniff_format(path) == "raw"
    got, batches = _read_all(path, chunk_events=3000)
    _same(got, ev)
    assert [len(b) for b in batches] == [3000] * 6 + [2000]
    assert all((b.width, b.height) == (1280, 720) for b in batches)
    assert [b.seq for b in batches] == list(range(7))
    assert all(not b.dropped for b in batches)
    got_trig = np.concatenate([b.triggers for b in batches])
    for b in batches:  # each trigger travels with the batch whose time span covers it
        assert np.all((b.triggers["t"] >= b.t_first) & (b.triggers["t"] <= b.t_last))
    np.testing.assert_array_equal(got_trig, trig.astype(got_trig.dtype))
    plain = tmp_path / "plain.raw"
    write_raw(plain, parts, 1280, 720, use_vectors=False)
    assert path.stat().st_size < plain.stat().st_size  # the dense row went into vectors
    _same(concatenate(list(read_event_file(plain))), ev)
    # tiny read chunks split vector/time words across reads: the decoder state carries over
    _same(concatenate(list(read_raw(path, chunk_events=10**9, chunk_bytes=66))), ev)


def _evt2_body(ev: np.ndarray, triggers=()) -> bytes:
    """Minimal EVT 2.0 encoder: TIME_HIGH on every change of t >> 6, one CD word per event."""
    items = [(int(e["t"]) // 1000, 0, e) for e in ev]
    items += [(t_us, 1, tr) for t_us, tr in triggers]
    items.sort(key=lambda it: (it[0], it[1]))
    words, high = [], None
    for t_us, kind, item in items:
        if t_us >> 6 != high:
            high = t_us >> 6
            words.append((0x8 << 28) | (high & 0xFFFFFFF))
        low = (t_us & 0x3F) << 22
        if kind == 0:
            words.append((int(item["p"]) << 28) | low | (int(item["x"]) << 11) | int(item["y"]))
        else:
            edge, tid = item
            words.append((0xA << 28) | low | (tid << 8) | edge)
    return np.array(words, dtype="<u4").tobytes()


OLD_HEADER = b"% Date 2019-03-05 10:11:12\n% evt 2.0\n% geometry 640x480\n% end\n"
NEW_HEADER = (
    b"% camera_integrator_name Prophesee\n% date 2023-03-29 16:37:46\n% evt 2.0\n"
    b"% format EVT2;height=480;width=640\n% generation 4.2\n% geometry 640x480\n"
    b"% serial_number 00ca0009\n% end\n"
)


@pytest.mark.parametrize("header", [OLD_HEADER, NEW_HEADER], ids=["old", "new"])
def test_raw_evt2_body_built_by_hand(tmp_path, header):
    ev = _events(3000, 640, 480, 1_000_000_000, 2_000_000_000, us=True, seed=3)
    trig_t = int(ev["t"][100]) // 1000
    body = _evt2_body(ev, [(trig_t, (1, 2)), (trig_t + 7, (0, 2))])
    path = tmp_path / "evt2.raw"
    path.write_bytes(header + body)
    hdr = read_raw_header(path)
    assert (hdr.encoding, hdr.width, hdr.height, hdr.body_offset) == ("evt2", 640, 480, len(header))
    got, batches = _read_all(path, chunk_events=1000)
    _same(got, ev)
    trig = np.concatenate([b.triggers for b in batches])
    np.testing.assert_array_equal(trig["t"], [trig_t * 1000, (trig_t + 7) * 1000])
    np.testing.assert_array_equal(trig["edge"], [1, 0])
    np.testing.assert_array_equal(trig["id"], [2, 2])


def test_raw_header_styles(tmp_path):
    def parse(text: bytes):
        p = tmp_path / "h.raw"
        p.write_bytes(text)
        with open(p, "rb") as f:
            return parse_raw_header(f)

    old = parse(b"% evt 3.0\n% geometry 1280x720\n% end\n\x01\x02")
    assert (old.encoding, old.width, old.height, old.body_offset) == ("evt3", 1280, 720, 36)
    new = parse(b"% date 2024-01-01 00:00:00\n% format EVT3;height=720;width=1280\n% end\n")
    assert (new.encoding, new.width, new.height) == ("evt3", 1280, 720)
    # the '% format' line wins over a stale '% evt' line, whatever the order
    mixed = parse(b"% format EVT2;height=480;width=640\n% evt 3.0\n% geometry 1x1\n% end\n")
    assert (mixed.encoding, mixed.width, mixed.height) == ("evt2", 640, 480)
    # no '% end': the header stops at the first line without '%'
    no_end = parse(b"% evt 3.0\n% geometry 320x240\n\x00\x80")
    assert (no_end.width, no_end.height, no_end.body_offset) == (320, 240, 29)
    body_starts_with_percent = parse(b"% evt 3.0\n% geometry 320x240\n\x25\x80\x00\x60")
    assert body_starts_with_percent.body_offset == 29
    no_geom = parse(b"% evt 3.0\n% end\n")
    assert (no_geom.encoding, no_geom.width, no_geom.height) == ("evt3", 0, 0)
    assert parse(b"% format EVT21;height=720;width=1280\n% end\n").encoding == "evt21"
    with pytest.raises(ValueError, match="evt21"):
        read_raw(tmp_path / "h.raw")


def test_raw_truncated_and_header_only(tmp_path):
    ev = _events(500, 640, 480, 1_000_000, 100_000_000, us=True)
    path = tmp_path / "full.raw"
    write_event_file(path, [ev], 640, 480)
    data = path.read_bytes()
    cut = tmp_path / "cut.raw"
    cut.write_bytes(data[:-1])  # half of the last 16-bit word
    got, batches = _read_all(cut)
    assert batches[-1].dropped.get("truncated") == 1
    _same(got, ev[: len(got)])
    assert len(got) >= len(ev) - 12  # at most one vector word's events are lost
    header_only = tmp_path / "empty.raw"
    header_only.write_bytes(data[: read_raw_header(path).body_offset])
    assert list(read_event_file(header_only)) == []
    assert read_raw_header(header_only).width == 640


# --- AEDAT4 ---------------------------------------------------------------------------------

# A DV recording, built byte by byte: magic, size-prefixed IOHeader flatbuffer (compression,
# XML stream description), then per packet: stream id, byte size, size-prefixed EventPacket.
_AEDAT_EVENT = np.dtype(
    {
        "names": ["t", "x", "y", "on"],
        "formats": ["<i8", "<i2", "<i2", "u1"],
        "offsets": [0, 8, 10, 12],
        "itemsize": 16,
    }
)
_DV_XML = (
    '<dv version="2.0"><node name="outInfo" path="/mainloop/output_file/outInfo/">'
    '<node name="0" path="/mainloop/output_file/outInfo/0/">'
    '<attr key="compression" type="string">{comp}</attr>'
    '<attr key="typeIdentifier" type="string">EVTS</attr>'
    '<node name="info" path="/mainloop/output_file/outInfo/0/info/">'
    '<attr key="sizeX" type="int">{w}</attr><attr key="sizeY" type="int">{h}</attr>'
    "</node></node></node></dv>"
)


def _fb_ioheader(description: str, compression: int) -> bytes:
    text = description.encode() + b"\0"
    # root offset, identifier, vtable (size, table size, compression@8, absent, description@4)
    out = struct.pack("<I", 20) + b"IOHE" + struct.pack("<5H", 10, 12, 8, 0, 4) + b"\0\0"
    out += struct.pack("<iIi", 20 - 8, 32 - 24, compression)  # table at 20, string at 32
    out += struct.pack("<I", len(text) - 1) + text
    return out + b"\0" * (-len(out) % 4)


def _fb_event_packet(ev: np.ndarray) -> bytes:
    arr = np.zeros(len(ev), _AEDAT_EVENT)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"] // 1000, ev["x"], ev["y"], ev["p"]
    # [size][root=16]["EVTS"][vtable 6,8,4 + pad][table: soffset 8, vector uoffset 4][len][structs]
    body = struct.pack("<I", 16) + b"EVTS" + struct.pack("<3H", 6, 8, 4) + b"\0\0"
    body += struct.pack("<iII", 8, 4, len(arr)) + arr.tobytes()
    return struct.pack("<I", len(body)) + body


def _write_aedat4(path: Path, packets: list[np.ndarray], w: int, h: int, compress=None):
    comp_id, comp_name = (0, "NONE") if compress is None else (1, "LZ4")
    hdr = _fb_ioheader(_DV_XML.format(comp=comp_name, w=w, h=h), comp_id)
    with open(path, "wb") as f:
        f.write(b"#!AER-DAT4.0\r\n" + struct.pack("<I", len(hdr)) + hdr)
        for ev in packets:
            pkt = _fb_event_packet(ev)
            if compress is not None:
                pkt = compress(pkt)
            f.write(struct.pack("<II", 0, len(pkt)) + pkt)


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_aedat4_real_file(tmp_path, codec):
    pytest.importorskip("aedat")
    compress = None
    if codec == "lz4":
        compress = pytest.importorskip("lz4.frame").compress
    ev = _events(5000, 346, 260, 1_600_000_000_000_000_000, 3_000_000_000, us=True)
    path = tmp_path / "rec.aedat4"
    _write_aedat4(path, [ev[:1000], ev[1000:1001], ev[1001:]], 346, 260, compress)
    assert sniff_format(path) == "aedat4"
    got, batches = _read_all(path, chunk_events=2048)
    _same(got, ev)
    assert [len(b) for b in batches] == [2048, 2048, 904]
    assert all((b.width, b.height) == (346, 260) for b in batches)
    with pytest.raises(NotImplementedError):
        write_event_file(tmp_path / "out.aedat4", [ev], 346, 260)


def test_aedat4_trigger_conversion():
    from event_fm.io.files.aedat4 import aedat_triggers_to_array

    raw = np.array([(10, 1), (20, 2), (30, 6), (40, 4)], dtype=[("t", "<u8"), ("source", "u1")])
    trig, other = aedat_triggers_to_array(raw)
    assert other == 1
    np.testing.assert_array_equal(trig["t"], [10_000, 20_000, 40_000])
    np.testing.assert_array_equal(trig["edge"], [1, 0, 1])
    np.testing.assert_array_equal(trig["id"], [0, 0, 1])


def test_aedat4_missing_package_message(monkeypatch):
    import builtins

    from event_fm.io.files import aedat4

    real_import = builtins.__import__

    def fake_import(name, *a, **kw):
        if name == "aedat":
            raise ImportError("no aedat")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="pip install aedat"):
        aedat4._aedat()


# --- ECD text -------------------------------------------------------------------------------


def test_text_round_trip_exact_ns(tmp_path):
    ev = _events(50_000, 240, 180, 1_468_939_993_067_416_019, 60_000_000_000, us=False)
    folder = tmp_path / "ecd"
    assert write_event_file(folder, [ev[:100], EventBatch(events=ev[100:])], 240, 180) == len(ev)
    assert (folder / "resolution.txt").read_text().split() == ["240", "180"]
    first = (folder / "events.txt").read_text().split("\n", 1)[0].split()[0]
    assert len(first.split(".")[1]) == 9
    got, batches = _read_all(folder, chunk_events=20_000)
    _same(got, ev)
    assert [len(b) for b in batches] == [20_000, 20_000, 10_000]
    assert all((b.width, b.height) == (240, 180) for b in batches)
    _same(concatenate(list(read_events_txt(folder / "events.txt", block_bytes=100))), ev)


def test_text_stamp_parsing_and_geometry(tmp_path):
    assert parse_stamp_ns("1468939993.067416019") == 1468939993067416019
    assert parse_stamp_ns("0.5") == 500_000_000
    assert parse_stamp_ns("12") == 12_000_000_000
    assert parse_stamp_ns("-0.000000001") == -1
    (tmp_path / "events.txt").write_bytes(
        b"0.5 3 4 1\r\n1 10 2 0\r\n\r\n  1.000001 7 20 -1\n2.1234567891 0 0 1"
    )
    got, batches = _read_all(tmp_path / "events.txt")
    np.testing.assert_array_equal(
        got["t"], [500_000_000, 1_000_000_000, 1_000_001_000, 2_123_456_789]
    )
    np.testing.assert_array_equal(got["p"], [1, 0, 0, 1])
    assert (batches[0].width, batches[0].height) == (11, 21)  # max + 1 without resolution
    assert next(read_events_txt(tmp_path, width=240, height=180)).width == 240
    (tmp_path / "resolution.txt").write_text("346 260\n")
    assert next(read_events_txt(tmp_path)).height == 260


def test_text_malformed_and_empty(tmp_path):
    lines = [
        "0.1 1 2 1",
        "garbage",
        "0.2 1 2",
        "0.3 1 2 1 9",
        "0.4 1 x 1",
        "0.5 1 2 7",
        "0.6 -1 2 1",
        "# comment",
        "0.7 3 4 0",
        "0.8 70000 2 1",
    ]
    (tmp_path / "events.txt").write_text("\n".join(lines) + "\n")
    got, batches = _read_all(tmp_path)
    np.testing.assert_array_equal(got["t"], [100_000_000, 700_000_000])
    assert sum(b.dropped.get("malformed_lines", 0) for b in batches) == 8
    rec = read_text_folder(tmp_path)
    assert len(rec.events) == 2 and rec.dropped == {"events.txt": 8}

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "events.txt").write_text("")
    assert list(read_event_file(empty)) == []
    assert len(read_text_folder(empty).events) == 0


def test_text_folder_side_files(tmp_path):
    ev = _events(100, 240, 180, 1_468_939_993_000_000_000, 1_000_000_000, us=False)
    write_event_file(tmp_path, [ev], 240, 180)
    (tmp_path / "images.txt").write_text(
        "1468939993.067416019 images/frame_00000000.png\n1468939993.117416019 images/f 1.png\n"
        "oops\n"
    )
    (tmp_path / "groundtruth.txt").write_text(
        "1468939993.000000000 1.0 2.0 3.0 0.0 0.0 0.0 1.0\n1468939993.5 1 2 3 0 0 0\n"
    )
    (tmp_path / "imu.txt").write_text("1468939993.001 0.1 0.2 9.8 0.01 0.02 0.03\n")
    (tmp_path / "calib.txt").write_text("199.09 198.95 132.19 110.71 -0.368 0.150 0 0 0\n")
    rec = read_text_folder(tmp_path)
    _same(rec.events, ev)
    assert (rec.width, rec.height) == (240, 180)
    np.testing.assert_array_equal(rec.image_stamps, [1468939993067416019, 1468939993117416019])
    assert rec.image_paths[1] == tmp_path / "images/f 1.png"
    np.testing.assert_array_equal(rec.gt_stamps, [1468939993000000000])
    np.testing.assert_allclose(rec.gt_poses, [[1, 2, 3, 0, 0, 0, 1]])
    assert rec.imu_stamps[0] == 1468939993001000000 and rec.imu.shape == (1, 6)
    assert rec.calibration.K[0, 2] == pytest.approx(132.19)
    np.testing.assert_allclose(rec.calibration.dist, [-0.368, 0.150, 0, 0, 0])
    assert rec.dropped == {"images.txt": 1, "groundtruth.txt": 1}


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-(10**18), 9 * 10**18),
            st.integers(0, 65535),
            st.integers(0, 65535),
            st.integers(0, 1),
        ),
        max_size=30,
    )
)
def test_text_format_parse_property(rows):
    ev = (
        make_events(*(np.array(c, dtype=np.int64) for c in zip(*rows, strict=True)))
        if rows
        else (make_events([], [], [], []))
    )
    got, bad = _parse_block(format_events(ev))
    assert bad == 0
    _same(got, ev)


# --- DSEC HDF5 ------------------------------------------------------------------------------


def test_hdf5_round_trip(tmp_path):
    h5py = pytest.importorskip("h5py")
    ev = _events(30_000, 640, 480, 1_700_000_000_123_456_000, 5_000_000_000, us=True)
    path = tmp_path / "events.h5"
    assert write_event_file(path, [ev[:10_000], ev[10_000:]], 640, 480) == len(ev)
    assert sniff_format(path) == "hdf5"
    got, batches = _read_all(path, chunk_events=7000)
    _same(got, ev)
    assert all((b.width, b.height) == (640, 480) for b in batches)
    with h5py.File(path) as f:
        t_us = f["events/t"][:] + f["t_offset"][()]
        assert f["t_offset"][()] == ev["t"][0] // 1000
        ms_to_idx = f["ms_to_idx"][:]
    t_rel = t_us - t_us[0]
    assert len(ms_to_idx) == t_rel[-1] // 1000 + 1
    for ms in (0, 1, 777, len(ms_to_idx) - 1):
        i = int(ms_to_idx[ms])
        assert t_rel[i] >= ms * 1000 and (i == 0 or t_rel[i - 1] < ms * 1000)


def test_hdf5_dsec_layout_without_attrs(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "events_left.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("events/x", data=np.array([1, 5, 2], np.uint16))
        f.create_dataset("events/y", data=np.array([0, 3, 9], np.uint16))
        f.create_dataset("events/t", data=np.array([0, 10, 2000], np.uint32))
        f.create_dataset("events/p", data=np.array([1, 0, 1], np.uint8))
        f.create_dataset("t_offset", data=np.int64(1_000_000))
        f.create_dataset("ms_to_idx", data=np.array([0, 2, 2], np.uint64))
    (batch,) = list(read_event_file(path))
    np.testing.assert_array_equal(batch.events["t"], [1_000_000_000, 1_000_010_000, 1_002_000_000])
    assert (batch.width, batch.height) == (6, 10)
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("events/x", data=np.zeros(1, np.uint16))
    with pytest.raises(ValueError, match="events/y"):
        read_event_file(bad)


# --- dispatch and missing files -------------------------------------------------------------


def test_sniff_and_missing_files(tmp_path):
    missing = tmp_path / "nope.raw"
    for fn in (read_event_file, sniff_format, read_raw, read_events_txt, read_text_folder):
        with pytest.raises(FileNotFoundError, match="nope.raw"):
            fn(missing)
    from event_fm.io.files.hdf5 import read_hdf5

    with pytest.raises(FileNotFoundError, match="nope.raw"):
        read_hdf5(missing)
    folder = tmp_path / "ecd"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="events.txt"):
        read_events_txt(folder)
    assert sniff_format(folder) == "text"
    renamed = tmp_path / "data.bin"
    renamed.write_bytes(b"#!AER-DAT4.0\r\n")
    assert sniff_format(renamed) == "aedat4"
    digits = tmp_path / "events.csv"
    digits.write_text("0.1 1 2 1\n")
    assert sniff_format(digits) == "text"
    odd = tmp_path / "x.bin"
    odd.write_bytes(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="x.bin"):
        sniff_format(odd)
