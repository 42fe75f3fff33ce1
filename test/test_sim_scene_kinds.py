"""Close-range scene kinds (tabletop, corridor) and camera motion modes (issue 16.5): their depth
ranges, the motions' degrees of freedom, the street-axis kinds unchanged, the CLI's --motion."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from event_fm.cli import simulate as sim_cli
from event_fm.cli.main import main as cli_main
from event_fm.io.rosbag import BagReader
from event_fm.sim import classes as C
from event_fm.sim.camera import MOTIONS, Intrinsics, Trajectory, relative_pose
from event_fm.sim.render import SKY_ID, Renderer
from event_fm.sim.scene import (
    ALL_SCENE_KINDS,
    CLOSE_KINDS,
    DEFAULT_MOTION,
    SCENE_KINDS,
    generate_scene,
)

SEEDS = (0, 1, 2, 3)


def _valid_depth(kind: str, seed: int, t: float = 0.5, motion: str | None = None,
                 size=(120, 90)) -> tuple[np.ndarray, object]:
    scene = generate_scene(kind, seed, 2.0, motion=motion)
    out = Renderer(scene, Intrinsics.from_fov(*size, scene.hfov_deg)).render(t)
    return out.depth[np.isfinite(out.depth)], out


@pytest.mark.parametrize("seed", SEEDS)
def test_tabletop_depth_is_close_range(seed):
    depth, out = _valid_depth("tabletop", seed)
    assert depth.size == out.depth.size  # indoors: no sky
    assert 0.3 < np.median(depth) < 3.0
    assert np.mean((depth > 0.25) & (depth < 5.0)) > 0.97  # depths mostly 0.3-5 m
    labels = set(np.unique(out.semantic).tolist())
    assert C.BACKGROUND in labels and labels <= {C.BACKGROUND, C.WALL}
    # the table and its objects fill a good part of the lower image (background class)
    lower = out.semantic[out.semantic.shape[0] // 2:]
    assert np.mean(lower == C.BACKGROUND) > 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_corridor_depth_and_geometry(seed):
    depth, out = _valid_depth("corridor", seed)
    assert depth.size == out.depth.size
    assert np.median(depth) < 8.0 and np.percentile(depth, 5) > 0.2
    assert np.percentile(depth, 99) > 5.0  # it goes on: the far end is far
    scene = generate_scene("corridor", seed, 2.0)
    assert 1.2 <= scene.extra["corridor_width_m"] <= 2.5
    assert 2.5 <= scene.extra["corridor_height_m"] <= 3.0
    labels = set(np.unique(out.semantic).tolist())
    assert C.WALL in labels and labels <= {C.BACKGROUND, C.WALL, C.PERSON}
    assert C.PERSON in scene.box_class


@pytest.mark.parametrize("seed", (0, 1))
def test_street_depth_stays_far(seed):
    depth, out = _valid_depth("street", seed)
    assert np.median(depth) > 5.0
    assert (out.object_id == SKY_ID).any()


def test_tabletop_has_textured_objects_on_a_table():
    for seed in SEEDS:
        scene = generate_scene("tabletop", seed, 2.0)
        top = scene.extra["table_top_m"]
        assert 0.7 <= top <= 0.8
        bottoms = scene.box_geo[:, 2] - scene.box_geo[:, 5]
        x0, x1, y0, y1 = scene.extra["table_extent_m"]
        x, y = scene.box_geo[:, 0], scene.box_geo[:, 1]
        on_table = (bottoms >= top - 1e-9) & (x > x0) & (x < x1) & (y > y0) & (y < y1)
        assert on_table.sum() == scene.extra["table_objects"] >= 5
        assert 0.7 <= x1 - x0 <= 1.4 and 0.35 <= scene.trajectory.start[2] - top <= 0.7
        sizes = 2 * scene.box_geo[on_table, 3:6]
        assert sizes.min() >= 0.005 and sizes.max() <= 0.31
        assert len(set(scene.box_tex[on_table].tolist())) >= 3  # varied textures
        distance = np.linalg.norm(scene.box_geo[on_table, :3] - scene.trajectory.start, axis=1)
        assert distance.min() > 0.25 and distance.max() < 2.0


def _dof(scene, times=np.linspace(0.0, 1.9, 12)) -> tuple[np.ndarray, np.ndarray]:
    """Per consecutive pair of poses: translation (m) and rotation angle (rad)."""
    poses = [scene.trajectory.pose(float(t)) for t in times]
    trans, rot = [], []
    for a, b in zip(poses, poses[1:], strict=False):
        T = relative_pose(a, b)
        trans.append(np.linalg.norm(T[:3, 3]))
        rot.append(math.acos(np.clip((np.trace(T[:3, :3]) - 1) / 2, -1.0, 1.0)))
    return np.array(trans), np.array(rot)


@pytest.mark.parametrize("kind", ALL_SCENE_KINDS)
def test_rotation_motion_only_rotates(kind):
    scene = generate_scene(kind, 4, 2.0, motion="rotation")
    trans, rot = _dof(scene)
    assert scene.trajectory.mode == "rotation"
    assert np.all(trans < 1e-12)  # rounding of the 4x4 inverse only
    positions = [scene.trajectory.pose(t)[:3, 3] for t in (0.0, 0.37, 1.9, 5.0)]
    assert all(np.array_equal(p, positions[0]) for p in positions)  # exactly still
    assert np.all(rot > math.radians(0.2)) and rot.max() > math.radians(1.0)
    rates = np.degrees(rot) / (1.9 / 11)
    assert rates.max() < 31.0 * math.sqrt(3)  # sweeps of 5-30 deg/s per axis


@pytest.mark.parametrize("kind", ALL_SCENE_KINDS)
def test_translation_motion_only_translates(kind):
    scene = generate_scene(kind, 4, 2.0, motion="translation")
    trans, rot = _dof(scene)
    assert scene.trajectory.mode == "translation"
    assert np.all(rot < 1e-7)
    assert np.all(trans > 1e-3)


@pytest.mark.parametrize("kind", ALL_SCENE_KINDS)
def test_handheld_motion_has_both(kind):
    scene = generate_scene(kind, 4, 2.0, motion="handheld")
    trans, rot = _dof(scene)
    assert np.all(trans > 1e-4) and np.all(rot > 1e-4)
    speed = trans.sum() / 1.9
    assert 0.02 < speed < 1.0  # slow: 0.1-0.6 m/s drift (slower where walls or tables are near)


def test_default_motions_and_overrides():
    for kind in SCENE_KINDS:
        assert DEFAULT_MOTION[kind] == "forward"
        assert generate_scene(kind, 1, 1.0).trajectory.mode == "forward"
    for kind in CLOSE_KINDS:
        assert DEFAULT_MOTION[kind] == "handheld"
        assert generate_scene(kind, 1, 1.0).trajectory.mode == "handheld"
    for motion in MOTIONS:
        scene = generate_scene("tabletop", 3, 2.0, motion=motion)
        assert scene.trajectory.mode == motion and scene.summary()["motion"] == motion
    with pytest.raises(ValueError, match="unknown motion"):
        generate_scene("street", 0, motion="spin")


def test_layout_does_not_depend_on_the_motion():
    for kind in ("tabletop", "corridor", "street"):
        a = generate_scene(kind, 6, 2.0)
        for motion in MOTIONS:
            b = generate_scene(kind, 6, 2.0, motion=motion)
            np.testing.assert_array_equal(a.box_geo, b.box_geo)
            np.testing.assert_array_equal(a.box_params, b.box_params)
            assert a.hfov_deg == b.hfov_deg
    assert generate_scene("corridor", 6, 2.0).trajectory != \
        generate_scene("corridor", 7, 2.0).trajectory


def test_tabletop_camera_keeps_looking_at_the_table():
    for motion in MOTIONS:
        for seed in (0, 5):
            scene = generate_scene("tabletop", seed, 3.0, motion=motion)
            start = np.array(scene.trajectory.start)
            renderer = Renderer(scene, Intrinsics.from_fov(64, 48, scene.hfov_deg))
            for t in (0.0, 1.0, 2.9):
                out = renderer.render(t)
                assert np.linalg.norm(out.pose[:3, 3] - start) < 0.35  # small motion
                assert np.median(out.depth) < 3.0


# Recorded before motion modes existed: generate_scene("street", 5, 3.0).trajectory
STREET_5 = {
    "start": [0.0, -1.6658807004004648, 1.6002176043026328],
    "velocity": [9.597327404336005, 0.0, 0.0],
    "wobble": [[0.18734339997757793, 0.265447940488276, 1.91077632494036],
               [0.03129383705311949, 1.460706319075519, 2.8559392846210434],
               [0.03030877309174822, 0.3076844708458533, 3.2770712795661527],
               [0.011302912097914541, 0.9966274339391336, 4.25275632260199],
               [0.009843550189690714, 0.5758475696734018, 3.1635989796125723]]}
STREET_5_POSE_1_25 = [
    [-0.016798849521081564, 0.005443235798206729, 0.999844072762755, 11.996659255420006],
    [-0.9998117862354549, 0.009614969560391613, -0.016850651768459003, -1.8071224242807906],
    [-0.009705192395681055, -0.9999389599092525, 0.005280690879511043, 1.6309415692539388]]
STREET_5_POSE_2_9 = [
    [0.015656111987372143, 0.004486211705514973, 0.9998673712357915, 27.832249472574414],
    [-0.9998393514577786, 0.008798047115665788, 0.015616198110905631, -1.5819753240800896],
    [-0.008726822670788602, -0.9999512329466291, 0.004623234213057426, 1.5710791704716016]]


def test_default_street_trajectory_is_unchanged():
    for motion in (None, "forward"):
        scene = generate_scene("street", 5, 3.0, motion=motion)
        assert scene.trajectory.to_dict() == STREET_5  # exact floats, no new keys
        assert scene.trajectory.pose(1.25)[:3].tolist() == STREET_5_POSE_1_25
        assert scene.trajectory.pose(2.9)[:3].tolist() == STREET_5_POSE_2_9
        assert len(scene.box_geo) == 145 and scene.hfov_deg == 84.10161303053133
        assert "motion" not in scene.summary()
    # the default Trajectory() too
    assert Trajectory().pose(0.7)[:3, 3].tolist() == [5.6, -1.4826980427434897, 1.450394264934276]


def test_cli_lists_agree_with_the_simulator():
    assert sim_cli.SCENES == ALL_SCENE_KINDS
    assert sim_cli.MOTIONS == MOTIONS


def test_cli_rejects_a_bad_motion_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["simulate", "--out", str(tmp_path / "bag"), "--motion", "spin"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--motion" in err and "invalid choice: 'spin'" in err and "handheld" in err
    with pytest.raises(SystemExit):
        cli_main(["simulate", "--out", str(tmp_path / "b2"), "--from-video", str(tmp_path),
                  "--motion", "rotation"])
    assert "need a procedural scene" in capsys.readouterr().err
    assert not (tmp_path / "bag").exists()


@pytest.mark.parametrize("kind, motion", [("tabletop", "rotation"), ("corridor", None)])
def test_cli_simulates_the_new_kinds_with_a_motion(kind, motion, tmp_path):
    out = tmp_path / "bag"
    args = ["simulate", "--out", str(out), "--scene", kind, "--duration", "0.2",
            "--resolution", "48x36", "--seed", "3", "--quiet"]
    assert cli_main(args + (["--motion", motion] if motion else [])) == 0
    positions = []
    with BagReader(out) as bag:
        for topic in ("/camera/image_raw", "/gt/depth", "/gt/semantic", "/gt/pose"):
            assert bag.topics[topic].count == 4, topic
        assert bag.topics["/event_camera/events"].count > 0
        for m in bag.messages(["/gt/pose", "/gt/metadata"]):
            msg = bag.deserialize(m)
            if m.topic == "/gt/metadata":
                meta = json.loads(msg.data)
            else:
                p = msg.pose.position
                positions.append((p.x, p.y, p.z))
    assert meta["scene"]["kind"] == kind
    assert meta["scene"]["motion"] == (motion or "handheld")
    assert meta["scene"]["trajectory"]["motion"] == (motion or "handheld")
    positions = np.array(positions)
    if motion == "rotation":
        assert np.all(positions == positions[0])
    else:
        assert np.ptp(positions, axis=0).max() > 1e-3


@pytest.mark.parametrize("kind, motion", [("tabletop", "handheld"), ("corridor", "handheld"),
                                          ("tabletop", "rotation"), ("street", "translation")])
def test_depth_and_pose_reproject_under_every_motion(kind, motion):
    """Frame t0 warped by its depth and the relative pose lands on frame t1 (static pixels)."""
    import cv2

    from event_fm.sim.render import luminance

    scene = generate_scene(kind, 2, 2.0, motion=motion)
    K = Intrinsics.from_fov(160, 120, scene.hfov_deg)
    renderer = Renderer(scene, K)
    a, b = renderer.render(0.5), renderer.render(0.7)
    v, u = np.mgrid[: K.height, : K.width].astype(np.float64)
    finite = np.isfinite(a.depth)
    z = np.where(finite, a.depth, 1.0)
    points = np.stack([(u - K.cx) / K.fx * z, (v - K.cy) / K.fy * z, z], -1)
    T_ba = relative_pose(a.pose, b.pose)
    pb = points @ T_ba[:3, :3].T + T_ba[:3, 3]
    ub = (K.fx * pb[..., 0] / pb[..., 2] + K.cx).astype(np.float32)
    vb = (K.fy * pb[..., 1] / pb[..., 2] + K.cy).astype(np.float32)
    warped = cv2.remap(luminance(b.rgb), ub, vb, cv2.INTER_LINEAR, borderValue=np.nan)
    z_seen = cv2.remap(b.depth, ub, vb, cv2.INTER_NEAREST, borderValue=np.nan)
    static = (a.object_id >= 0) & ~scene.moving[np.maximum(a.object_id, 0)] | (a.object_id == -1)
    inside = (ub >= 0) & (ub <= K.width - 1) & (vb >= 0) & (vb <= K.height - 1)
    mask = static & finite & inside & np.isfinite(warped) & \
        (np.abs(z_seen - pb[..., 2]) < 0.02 * pb[..., 2])
    err = np.abs(warped - luminance(a.rgb))[mask]
    raw = np.abs(luminance(b.rgb) - luminance(a.rgb))[mask]
    assert mask.mean() > 0.4
    assert np.median(err) < 0.005 and err.mean() < 0.4 * raw.mean()


@pytest.mark.parametrize("motion", MOTIONS)
def test_camera_never_enters_an_object(motion):
    """Over 3 s no motion takes the camera into (or within 5 cm of) a box, nor near the floor;
    the walls of a room, a tabletop's room and a corridor are the one box it is inside."""
    for kind in ALL_SCENE_KINDS:
        for seed in range(4):
            scene = generate_scene(kind, seed, 3.0, motion=motion)
            geo = scene.box_geo
            c, s = np.cos(geo[:, 6]), np.sin(geo[:, 6])
            for t in np.arange(0.0, 3.01, 0.1):
                o = scene.trajectory.pose(float(t))[:3, 3]
                d = o - (geo[:, :3] + scene.box_vel * t)
                local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1],
                                  d[:, 2]], 1)
                inside = np.all(np.abs(local) < geo[:, 3:6] + 0.05, axis=1)
                if kind in ("room", *CLOSE_KINDS):
                    assert inside[0]  # the shell
                    inside[0] = False
                assert not inside.any(), (kind, seed, t, np.flatnonzero(inside))
                assert o[2] > 0.5
