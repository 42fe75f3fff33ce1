"""Procedural scenes: ground truth consistency, semantics, degradations and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from event_fm.common.rotations import quaternion_xyzw
from event_fm.sim import classes as C
from event_fm.sim.camera import Intrinsics
from event_fm.sim.degrade import DegradeParams, degrade, exposure_times
from event_fm.sim.pipeline import SceneSimulator, SimConfig
from event_fm.sim.render import SKY_ID, Renderer, luminance
from event_fm.sim.scene import SCENE_KINDS, generate_scene


@pytest.fixture(scope="module")
def street():
    scene = generate_scene("street", seed=0, duration=2.0)
    return scene, Renderer(scene, Intrinsics.from_fov(160, 120, scene.hfov_deg))


def _warp_error(renderer, t0: float, t1: float, depth_scale: float = 1.0):
    """Photometric error of frame t0 against frame t1 warped into it with depth_t0 and the
    relative pose, on static, non-sky, non-occluded pixels; and the error without warping."""
    import cv2

    K, scene = renderer.intrinsics, renderer.scene
    a, b = renderer.render(t0), renderer.render(t1)
    v, u = np.mgrid[: K.height, : K.width].astype(np.float64)
    finite = np.isfinite(a.depth)
    z = np.where(finite, a.depth, 1.0) * depth_scale
    points = np.stack([(u - K.cx) / K.fx * z, (v - K.cy) / K.fy * z, z], -1)
    T_ba = np.linalg.inv(b.pose) @ a.pose
    pb = points @ T_ba[:3, :3].T + T_ba[:3, 3]
    ub = (K.fx * pb[..., 0] / pb[..., 2] + K.cx).astype(np.float32)
    vb = (K.fy * pb[..., 1] / pb[..., 2] + K.cy).astype(np.float32)
    la, lb = luminance(a.rgb), luminance(b.rgb)
    warped = cv2.remap(lb, ub, vb, cv2.INTER_LINEAR, borderValue=np.nan)
    z_seen = cv2.remap(b.depth, ub, vb, cv2.INTER_NEAREST, borderValue=np.nan)
    static = (a.object_id == -1) | ((a.object_id >= 0) & ~scene.moving[a.object_id])
    inside = (ub >= 0) & (ub <= K.width - 1) & (vb >= 0) & (vb <= K.height - 1)
    visible = np.abs(z_seen - pb[..., 2]) < 0.02 * pb[..., 2]
    mask = static & finite & inside & visible
    return np.abs(warped - la)[mask], np.abs(lb - la)[mask], mask


def test_depth_pose_and_intrinsics_reproject_one_frame_into_the_next(street):
    _, renderer = street
    err, raw, mask = _warp_error(renderer, 0.5, 0.6)
    assert mask.mean() > 0.4  # most of the image is static, visible in both frames
    assert np.median(err) < 0.003 and err.mean() < 0.01
    assert err.mean() < 0.25 * raw.mean()
    wrong, _, _ = _warp_error(renderer, 0.5, 0.6, depth_scale=1.3)
    assert wrong.mean() > 2 * err.mean()  # the check is sensitive to wrong depth


def test_semantics_depth_and_sky_agree(street):
    scene, renderer = street
    K = renderer.intrinsics
    out = renderer.render(0.3)
    assert out.semantic.max() < C.NUM_CLASSES
    sky = out.object_id == SKY_ID
    assert sky.any() and np.all(np.isinf(out.depth[sky])) and np.all(out.semantic[sky] == 0)
    assert np.all(np.isfinite(out.depth[~sky])) and out.depth[~sky].min() > 0
    present = set(np.unique(out.semantic).tolist())
    assert {C.ROAD, C.BUILDING, C.BACKGROUND} <= present and len(present) >= 6
    # road lies below the horizon: its viewing rays point down
    v, u = np.nonzero(out.semantic == C.ROAD)
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u, float)], -1)
    assert np.all((rays @ out.pose[:3, :3].T)[:, 2] < 0)
    assert np.median(v) > np.median(np.nonzero(sky)[0])
    finite = out.depth[~sky]
    assert finite.min() < 5 and np.percentile(finite, 99) > 40  # spans near and far


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_every_scene_kind_renders_its_classes(kind):
    scene = generate_scene(kind, seed=2, duration=1.0)
    out = Renderer(scene, Intrinsics.from_fov(96, 72, scene.hfov_deg)).render(0.2)
    labels = set(np.unique(out.semantic).tolist())
    assert labels <= set(range(C.NUM_CLASSES))
    want = {"street": {C.ROAD, C.BUILDING}, "highway": {C.ROAD, C.VEGETATION},
            "park": {C.ROAD, C.VEGETATION}, "room": {C.WALL, C.BACKGROUND}}[kind]
    assert want <= labels
    assert (kind == "room") == (scene.sky is None) == (SKY_ID not in out.object_id)
    assert 0.05 < luminance(out.rgb).mean() < 0.9


def test_seed_reproduces_a_scene_and_different_seeds_differ():
    a, b = generate_scene("street", 5), generate_scene("street", 5)
    np.testing.assert_array_equal(a.box_geo, b.box_geo)
    np.testing.assert_array_equal(a.box_params, b.box_params)
    c = generate_scene("street", 6)
    assert a.box_geo.shape != c.box_geo.shape or not np.allclose(a.box_geo, c.box_geo)
    assert a.trajectory != c.trajectory
    with pytest.raises(ValueError, match="unknown scene"):
        generate_scene("moon", 0)


def _run(seed: int, **kw):
    config = SimConfig(seed=seed, width=64, height=48, duration=0.2, **kw)
    return list(SceneSimulator(config).frames())


def test_simulation_is_deterministic_per_seed():
    a, b, c = _run(3), _run(3), _run(4)
    assert len(a) == 4 and a[0].events.size == 0
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa.events, fb.events)
        np.testing.assert_array_equal(fa.image, fb.image)
        np.testing.assert_array_equal(fa.depth, fb.depth)
    ev_a = np.concatenate([f.events for f in a])
    ev_c = np.concatenate([f.events for f in c])
    assert len(ev_a) > 100
    assert len(ev_a) != len(ev_c) or not np.array_equal(ev_a, ev_c)
    assert not np.array_equal(a[2].image, c[2].image)


def test_frames_carry_time_ordered_events_and_adaptive_samples():
    frames = _run(1)
    for prev, cur in zip(frames, frames[1:], strict=False):
        ev = cur.events
        assert cur.t_ns - prev.t_ns == 50_000_000
        assert np.all(np.diff(ev["t"]) >= 0)
        assert ev["t"].min() > prev.t_ns and ev["t"].max() <= cur.t_ns
        assert cur.samples >= 2  # the renderer was asked for intermediate samples
        np.testing.assert_allclose(np.linalg.norm(quaternion_xyzw(cur.pose[:3, :3])), 1.0)


def test_degraded_frames_differ_in_the_expected_way(street):
    _, renderer = street
    clean = renderer.render(0.4).rgb
    rng = np.random.default_rng(0)
    dark = degrade(clean, DegradeParams("lowlight"), rng)
    assert 0.01 < np.abs(dark - clean).mean() < 0.2
    assert len(np.unique(dark)) < len(np.unique(clean)) / 4  # quantised after gain
    over = degrade(clean, DegradeParams("overexposure", gain=4.0), rng)
    assert (over >= 1.0).mean() > 10 * max((clean >= 1.0).mean(), 1e-3)
    params = DegradeParams("blur", exposure_s=0.04, blur_subframes=5)
    times = exposure_times(0.4, params)
    assert times[-1] == 0.4 and np.isclose(times[0], 0.36)
    subs = [renderer.render(float(t)).rgb for t in times]
    blurred = degrade(clean, params, rng, subs)
    np.testing.assert_allclose(blurred, np.mean(subs, axis=0), atol=1e-6)
    assert np.abs(blurred - clean).mean() > 0.005


def test_flow_ground_truth_warps_static_and_moving_parts():
    import cv2

    from event_fm.sim.flow import optical_flow

    scene = generate_scene("street", seed=0, duration=2.0)
    renderer = Renderer(scene, Intrinsics.from_fov(160, 120, scene.hfov_deg))
    a, b = renderer.render(0.5), renderer.render(0.55)
    flow = optical_flow(a, renderer, 0.55)
    v, u = np.mgrid[:120, :160].astype(np.float32)
    ub, vb = u + flow[..., 0], v + flow[..., 1]
    warped = cv2.remap(luminance(b.rgb), ub, vb, cv2.INTER_LINEAR, borderValue=np.nan)
    same = cv2.remap(b.object_id.astype(np.float32), ub, vb, cv2.INTER_NEAREST,
                     borderValue=np.nan) == a.object_id  # still the same surface: not occluded
    err = np.abs(warped - luminance(a.rgb))
    moving = (a.object_id >= 0) & scene.moving[np.maximum(a.object_id, 0)] & same
    static = (a.object_id >= -1) & ~moving & same
    assert np.nanmedian(err[static]) < 0.003
    sky = a.object_id == SKY_ID
    assert np.all(np.isfinite(flow[sky])) and np.abs(flow[sky]).max() < np.abs(flow).max()
    assert moving.sum() > 20  # moving cars in view: their own velocity is in the flow
    assert np.nanmedian(err[moving]) < 0.01


def test_adaptive_sampling_holds_the_log_step_near_half_a_threshold():
    from event_fm.sim.esim import EsimParams

    samples = []
    for c in (0.15, 0.5):
        sim = SceneSimulator(SimConfig(seed=1, width=96, height=72, duration=0.2,
                                       esim=EsimParams(c, c)))
        list(sim.frames())
        assert np.median(sim.changes) < 0.6 * c  # target: 0.5 * threshold (99th percentile)
        samples.append(sim.samples)
    assert samples[0] > 1.5 * samples[1]  # a finer threshold needs finer sampling
