"""Public dataset sequences as complete recordings: an ECD folder and an MVSEC HDF5 pair, written
here byte for byte in their published layouts, convert to one bag with events, frames,
camera_info, /gt/pose and /gt/depth that eval's ground-truth reader takes as it is."""

from __future__ import annotations

import json

import h5py
import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from event_fm.cli.main import main as cli_main
from event_fm.common.stamps import stamp_to_ns
from event_fm.evaluation.scoring import GroundTruth
from event_fm.io.convert import convert
from event_fm.io.datasets import DEFAULT_START_EPOCH_NS, convert_dataset, interpolate_poses
from event_fm.io.readers import read_all_events
from event_fm.io.rosbag import BagReader, image_to_array

ECD_W, ECD_H = 240, 180  # DAVIS240C
MV_W, MV_H = 346, 260  # DAVIS346 (MVSEC)
ECD_CALIB = "199.092366542 198.82882047 132.192071378 110.712660011 -0.368436311798 " \
            "0.150947243557 -0.000296130534385 -0.000759431726241 0.0\n"


def _messages(bag_path, topic):
    with BagReader(bag_path) as bag:
        return [(m.log_time_ns, bag.deserialize(m)) for m in bag.messages([topic])]


def _pose(msg):
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w])


# --- ECD --------------------------------------------------------------------------------------


def _ecd_events(n=300):
    rng = np.random.default_rng(3)
    t_us = np.sort(rng.integers(0, 100_000, n))  # 0.1 s, microsecond stamps as ECD has
    x, y = rng.integers(0, ECD_W, n), rng.integers(0, ECD_H, n)
    p = rng.integers(0, 2, n)
    return t_us, x, y, p


def _write_ecd(folder):
    folder.mkdir()
    t_us, x, y, p = _ecd_events()
    # ECD: "0.003811000 96 133 0" -- seconds with 9 decimals, x, y, polarity 0/1
    (folder / "events.txt").write_text("".join(
        f"{t / 1e6:.9f} {a} {b} {c}\n" for t, a, b, c in zip(t_us, x, y, p, strict=True)))
    (folder / "images").mkdir()
    frame_us = [10_000, 45_000, 80_000]
    lines = []
    for i, t in enumerate(frame_us):
        img = np.full((ECD_H, ECD_W), 40 * (i + 1), np.uint8)
        img[i, i] = 255
        name = f"images/frame_{i:08d}.png"
        Image.fromarray(img, mode="L").save(folder / name)
        lines.append(f"{t / 1e6:.9f} {name}\n")
    (folder / "images.txt").write_text("".join(lines))
    # 200 Hz mocap from 0 to 0.095 s: the camera moves along x at 1 m/s, yawing 1 rad/s
    gt_us = np.arange(0, 100_000, 5_000)
    rows = []
    for t in gt_us:
        s = t / 1e6
        q = Rotation.from_euler("z", s).as_quat()
        rows.append(f"{s:.9f} {s:.9f} 2.0 1.5 {q[0]:.9f} {q[1]:.9f} {q[2]:.9f} {q[3]:.9f}\n")
    (folder / "groundtruth.txt").write_text("".join(rows))
    (folder / "calib.txt").write_text(ECD_CALIB)
    return t_us, x, y, p, frame_us


def test_ecd_folder_converts_to_a_complete_bag(tmp_path):
    t_us, x, y, p, frame_us = _write_ecd(tmp_path / "shapes_6dof")
    out = tmp_path / "ecd_bag"
    counts = convert_dataset(tmp_path / "shapes_6dof", out)
    assert counts["events"] == len(t_us) and counts["frames"] == 3
    assert counts["poses"] == 3 and counts["poses_raw"] == 20 and counts["depth"] == 0

    ev = read_all_events(out)
    assert len(ev) == len(t_us)
    order = np.lexsort((ev["x"], ev["y"], ev["t"]))
    ref = np.lexsort((x, y, t_us))
    np.testing.assert_array_equal(ev["t"][order], t_us[ref] * 1000)  # sensor time, to the us
    np.testing.assert_array_equal(ev["x"][order], x[ref])
    np.testing.assert_array_equal(ev["y"][order], y[ref])
    np.testing.assert_array_equal(ev["p"][order], p[ref])
    with BagReader(out) as bag:
        packets = [bag.deserialize(m) for m in bag.messages(["/event_camera/events"])]
    assert packets[0].encoding == "evt3" and (packets[0].width, packets[0].height) == (240, 180)
    first_stamp = stamp_to_ns(packets[0].header.stamp)
    assert first_stamp == DEFAULT_START_EPOCH_NS + int(t_us.min()) * 1000  # ROS = offset + sensor

    images = _messages(out, "/camera/image_raw")
    assert [stamp_to_ns(m.header.stamp) for _, m in images] == \
        [DEFAULT_START_EPOCH_NS + t * 1000 for t in frame_us]
    for i, (log_time, m) in enumerate(images):
        a = image_to_array(m)
        assert m.encoding == "rgb8" and a.shape == (180, 240, 3)
        assert log_time == stamp_to_ns(m.header.stamp)
        assert a[i, i, 0] == 255 and a[50, 50, 2] == 40 * (i + 1)
    infos = _messages(out, "/camera/camera_info")
    assert len(infos) == 3
    K = np.asarray(infos[0][1].k).reshape(3, 3)
    np.testing.assert_allclose(K, [[199.092366542, 0, 132.192071378],
                                   [0, 198.82882047, 110.712660011], [0, 0, 1]])
    np.testing.assert_allclose(infos[0][1].d, [-0.368436311798, 0.150947243557,
                                               -0.000296130534385, -0.000759431726241, 0.0])
    assert (infos[0][1].width, infos[0][1].height) == (240, 180)

    # /gt/pose at the frames: 10 ms and 80 ms are mocap samples, 45 ms lies between two
    poses = {stamp_to_ns(m.header.stamp): _pose(m) for _, m in _messages(out, "/gt/pose")}
    for t in frame_us:
        s = t / 1e6
        got = poses[DEFAULT_START_EPOCH_NS + t * 1000]
        np.testing.assert_allclose(got[:3], [s, 2.0, 1.5], atol=1e-9)
        np.testing.assert_allclose(got[3:], Rotation.from_euler("z", s).as_quat(), atol=1e-8)
    raw = _messages(out, "/gt/pose_raw")
    assert stamp_to_ns(raw[3][1].header.stamp) == DEFAULT_START_EPOCH_NS + 15_000_000
    np.testing.assert_allclose(_pose(raw[3][1])[:3], [0.015, 2.0, 1.5])
    assert raw[0][1].header.frame_id == "world"

    meta = json.loads(_messages(out, "/gt/metadata")[0][1].data)
    assert meta["clock_offset_ns"] == DEFAULT_START_EPOCH_NS and meta["format"] == "ECD"

    gt = GroundTruth.from_bag(out)
    assert sorted(gt.pose) == [DEFAULT_START_EPOCH_NS + t * 1000 for t in frame_us]
    T = gt.pose[DEFAULT_START_EPOCH_NS + 45_000_000]
    np.testing.assert_allclose(T[:3, 3], [0.045, 2.0, 1.5], atol=1e-9)
    np.testing.assert_allclose(T[:3, :3], Rotation.from_euler("z", 0.045).as_matrix(), atol=1e-8)
    assert not gt.depth

    # log times never go backwards: the bag replays as recorded
    with BagReader(out) as bag:
        times = [m.log_time_ns for m in bag.messages()]
    assert times == sorted(times)


def test_ecd_through_the_cli_and_its_errors(tmp_path, capsys):
    _write_ecd(tmp_path / "seq")
    out = tmp_path / "bag"
    assert cli_main(["convert", str(tmp_path / "seq"), str(out)]) == 0
    assert "ECD" in capsys.readouterr().out
    assert convert(tmp_path / "seq", tmp_path / "again", overwrite=True) == 300

    (tmp_path / "seq" / "calib.txt").unlink()
    assert cli_main(["convert", str(tmp_path / "seq"), str(tmp_path / "b2")]) == 1
    err = capsys.readouterr().err.strip()
    assert "calib" in err and "\n" not in err and "Traceback" not in err
    assert cli_main(["convert", str(tmp_path / "seq"), str(tmp_path / "b2"),
                     "--calib", "200,200,120,90"]) == 0
    (tmp_path / "seq" / "images" / "frame_00000001.png").unlink()
    assert cli_main(["convert", str(tmp_path / "seq"), str(tmp_path / "b3"),
                     "--calib", "200,200,120,90"]) == 1
    assert "frame_00000001.png" in capsys.readouterr().err
    assert not (tmp_path / "b3").exists()


# --- MVSEC ------------------------------------------------------------------------------------

MV_T0 = 1506117990.0  # MVSEC times are ROS epoch seconds (float64)
KALIBR_YAML = """\
cam0:
  T_cam_imu:
  - [0.9998771896957381, -0.015128404695721132, -0.004091075349566317, -0.002760732198752687]
  - [0.015081690576531692, 0.9998233340761795, -0.011217987615716542, -0.001652095229536009]
  - [0.004260062852482415, 0.011154909598696812, 0.9999287067376942, -0.017829494499329843]
  - [0.0, 0.0, 0.0, 1.0]
  cam_overlaps: [1]
  camera_model: pinhole
  distortion_coeffs: [-0.048031442223833355, 0.011330957517194437, -0.055378166304281135,
    0.021500973881459395]
  distortion_model: equidistant
  intrinsics: [226.38018519795807, 226.15002947047415, 173.6470807871759, 133.73271487507847]
  resolution: [346, 260]
  rectification_matrix:
  - [0.999877311526236, 0.015019439766575743, -0.004447282784398257]
  - [-0.014996983873604017, 0.9998748347535599, 0.005040367172759556]
  - [0.004522429630305261, -0.004973052949604937, 0.9999774079320989]
  projection_matrix:
  - [199.6530123165822, 0.0, 177.43276376280926, 0.0]
  - [0.0, 199.6530123165822, 126.81215684365904, 0.0]
  - [0.0, 0.0, 1.0, 0.0]
  rostopic: /davis/left/image_raw
"""


def _write_mvsec(folder, n_events=400):
    """<seq>_data.hdf5 and <seq>_gt.hdf5 as MVSEC's hdf5 export writes them."""
    folder.mkdir()
    rng = np.random.default_rng(5)
    t_us = np.sort(rng.integers(0, 150_000, n_events))
    t = MV_T0 + t_us / 1e6
    ev = np.stack([rng.integers(0, MV_W, n_events), rng.integers(0, MV_H, n_events), t,
                   rng.choice([-1.0, 1.0], n_events)], axis=1).astype(np.float64)
    img_ts = MV_T0 + np.array([0.020, 0.052, 0.084])
    imgs = np.zeros((3, MV_H, MV_W), np.uint8)
    for i in range(3):
        imgs[i] = 30 + 50 * i
    with h5py.File(folder / "indoor_flying1_data.hdf5", "w") as f:
        left = f.create_group("davis").create_group("left")
        left.create_dataset("events", data=ev)
        left.create_dataset("image_raw", data=imgs, compression="lzf",
                            chunks=(1, MV_H, MV_W))
        left.create_dataset("image_raw_ts", data=img_ts)
        left.create_dataset("image_raw_event_inds", data=np.searchsorted(t, img_ts) - 1)
        left.create_dataset("imu", data=np.zeros((5, 6)))
        left.create_dataset("imu_ts", data=MV_T0 + np.arange(5) * 0.001)
    depth_ts = MV_T0 + np.array([0.030, 0.080, 0.130])
    depth = np.full((3, MV_H, MV_W), np.nan, np.float32)
    for i in range(3):
        depth[i, 100:, :] = 1.5 + i  # lidar only hits the lower part
    pose_ts = depth_ts.copy()
    T = np.tile(np.eye(4), (3, 1, 1))
    for i in range(3):
        T[i, :3, :3] = Rotation.from_euler("xyz", [0.1 * i, -0.05 * i, 0.2 * i]).as_matrix()
        T[i, :3, 3] = [1.0 + i, -2.0 * i, 0.5]
    with h5py.File(folder / "indoor_flying1_gt.hdf5", "w") as f:
        left = f.create_group("davis").create_group("left")
        for name in ("depth_image_rect", "depth_image_raw"):
            left.create_dataset(name, data=depth, compression="lzf", chunks=(1, MV_H, MV_W))
            left.create_dataset(name + "_ts", data=depth_ts)
        left.create_dataset("pose", data=T)
        left.create_dataset("pose_ts", data=pose_ts)
        left.create_dataset("odometry", data=T)
        left.create_dataset("odometry_ts", data=pose_ts)
    (folder / "camchain-imucam-indoor_flying.yaml").write_text(KALIBR_YAML)
    return t, ev, img_ts, depth_ts, depth, T


def test_mvsec_pair_converts_to_a_complete_bag(tmp_path, capsys):
    folder = tmp_path / "indoor_flying"
    t, ev, img_ts, depth_ts, depth, T = _write_mvsec(folder)
    out = tmp_path / "mvsec_bag"
    assert cli_main(["convert", str(folder / "indoor_flying1_data.hdf5"), str(out),
                     "--gt", str(folder / "indoor_flying1_gt.hdf5"),
                     "--calib", str(folder / "camchain-imucam-indoor_flying.yaml")]) == 0
    assert "400 events, 3 frames, 3 depth maps" in capsys.readouterr().out
    offset = int(MV_T0) * 1_000_000_000
    t_ns = np.round((t - MV_T0) * 1e6).astype(np.int64) * 1000 + offset  # recorded ROS time

    got = read_all_events(out)
    assert len(got) == 400
    order = np.lexsort((got["x"], got["y"], got["t"]))
    ref = np.lexsort((ev[:, 0], ev[:, 1], t_ns))
    np.testing.assert_array_equal(got["t"][order] + offset, t_ns[ref])  # to the microsecond
    np.testing.assert_array_equal(got["x"][order], ev[ref, 0])
    np.testing.assert_array_equal(got["p"][order], (ev[ref, 3] > 0).astype(int))
    with BagReader(out) as bag:
        first = bag.deserialize(next(bag.messages(["/event_camera/events"])))
    assert stamp_to_ns(first.header.stamp) == t_ns.min()  # header stamps = the recorded time
    assert (first.width, first.height) == (MV_W, MV_H)

    # frames stamped at the depth maps (scored within 1 ms), each the newest frame before it
    depth_ns = [offset + d for d in (30_000_000, 80_000_000, 130_000_000)]
    images = _messages(out, "/camera/image_raw")
    assert [stamp_to_ns(m.header.stamp) for _, m in images] == depth_ns
    assert [int(image_to_array(m)[0, 0, 1]) for _, m in images] == [30, 80, 130]
    info = _messages(out, "/camera/camera_info")[0][1]
    np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3),
                               [[199.6530123165822, 0, 177.43276376280926],
                                [0, 199.6530123165822, 126.81215684365904], [0, 0, 1]])
    assert (info.width, info.height) == (MV_W, MV_H)

    gt = GroundTruth.from_bag(out)
    assert sorted(gt.depth) == depth_ns and sorted(gt.pose) == depth_ns
    for i, s in enumerate(depth_ns):
        d = gt.depth[s]
        assert d.dtype == np.float32 and d.shape == (MV_H, MV_W)
        assert np.isnan(d[:100]).all() and (d[100:] == np.float32(1.5 + i)).all()
        np.testing.assert_allclose(gt.pose[s], T[i], atol=1e-9)
    raw = _messages(out, "/gt/pose_raw")
    assert len(raw) == 3
    np.testing.assert_allclose(_pose(raw[1][1])[:3], T[1, :3, 3])

    # --frame-times images keeps the frames' own stamps; poses interpolated there
    out2 = tmp_path / "mvsec_native"
    counts = convert_dataset(folder / "indoor_flying1_data.hdf5", out2,
                             calib="226.38,226.15,173.65,133.73", frame_times="images")
    assert counts["frames"] == 3 and counts["depth"] == 3  # gt found beside the data file
    img_ns = [offset + round((s - MV_T0) * 1e6) * 1000 for s in img_ts]
    assert [stamp_to_ns(m.header.stamp) for _, m in _messages(out2, "/camera/image_raw")] \
        == img_ns
    poses = GroundTruth.from_bag(out2).pose
    assert sorted(poses) == img_ns[1:]  # the frame at 20 ms lies before the first pose
    np.testing.assert_allclose(poses[img_ns[1]][:3, 3], [1.0 + 0.44, -2.0 * 0.44, 0.5])


def test_mvsec_errors_are_one_line(tmp_path, capsys):
    folder = tmp_path / "seq"
    _write_mvsec(folder)
    data = str(folder / "indoor_flying1_data.hdf5")
    assert cli_main(["convert", data, str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.strip()
    assert "--calib" in err and "yaml" in err and "\n" not in err and "Traceback" not in err
    garbage = tmp_path / "garbage_gt.hdf5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    assert cli_main(["convert", data, str(tmp_path / "b"), "--gt", str(garbage),
                     "--calib", "1,1,1,1"]) == 2
    assert "not a readable HDF5" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    # events alone to an event file
    assert convert(data, tmp_path / "events.h5") == 400


def test_pose_interpolation_limits():
    stamps = np.array([0, 100, 1_000_000_000])
    poses = np.array([[0, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0, 1.0]])
    got, ok = interpolate_poses(stamps, poses, np.array([-1, 50, 100, 500_000_000, 2 ** 40]))
    assert ok.tolist() == [False, True, True, False, False]  # outside / across a 1 s gap
    np.testing.assert_allclose(got[1, :3], [0.5, 0, 0])
