"""Motion forecaster (E-Motion style): frame format, guided sampling rule, reward normalization,
clipped policy-gradient + KL loss (exact values), the live history, and a CPU smoke run that
trains a tiny forecaster for a few steps, samples it (guided and not) and aligns it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from event_fm.io.events import EVENT_DTYPE
from event_fm.models.forecast import (
    FRAME_NS,
    ForecastConfig,
    VideoDenoiser,
    frames_from_events,
    guided_replace,
    load_forecaster,
    make_scheduler,
    normalize_by_prompt,
    rebin,
    sample_forecast,
)
from event_fm.models.forecast.denoiser import make_condition
from event_fm.pipeline.forecast import EventHistory, ForecastSettings, LiveForecaster
from training.forecast.metrics import frechet_distance, miou, ssim
from training.forecast.reward import clipped_pg_kl_loss, normalize_rewards

REPO = Path(__file__).resolve().parents[1]
TINY = dict(frames=6, past=3, bins=3, size=16, patch=2, widths=[8, 16], emb_dim=16, heads=2,
            prompt_lengths=[1, 2])


def moving_bar_events(width: int, height: int, duration_ns: int, seed: int = 0) -> np.ndarray:
    """A vertical bar sweeping right (ON at its leading edge, OFF at its trailing edge)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration_ns, 20_000))
    x_lead = (5 + (width - 10) * t / duration_ns).astype(int)
    on = rng.random(len(t)) < 0.5
    x = np.where(on, x_lead, np.maximum(x_lead - 4, 0))
    ev = np.zeros(len(t), EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"] = x, rng.integers(0, height, len(t)), t
    ev["p"] = np.where(on, 1, 0)
    return ev


# -- frame format ------------------------------------------------------------------------------
def test_rebin_moves_bins_onto_the_window_with_linear_weights():
    frames = torch.arange(1.0, 7.0).reshape(2, 3, 1, 1)  # 2 frames x 3 bins
    # frame bins sit at 0, .5, 1 | 1, 1.5, 2 (frames) -> 5 bins at 0, .5, 1, 1.5, 2
    assert rebin(frames, 5).flatten().tolist() == [1.0, 2.0, 7.0, 5.0, 6.0]
    out = rebin(frames, 2)  # bins at 0 and 2: weights 1, .75, .5, .5, .25, 0 on bin 0
    assert torch.allclose(out.flatten(), torch.tensor([1 + 1.5 + 1.5 + 2 + 1.25,
                                                       0.5 + 1.5 + 2 + 3.75 + 6]))
    assert float(out.sum()) == pytest.approx(21.0)


def test_normalize_by_prompt_uses_the_past_only_and_clips():
    seq = torch.zeros(1, 4, 1, 1, 2)
    seq[0, 0, 0, 0] = torch.tensor([2.0, -4.0])
    seq[0, 3, 0, 0] = torch.tensor([8.0, 1.0])  # future bigger than the prompt
    out, scale = normalize_by_prompt(seq, 2)
    assert scale.tolist() == [4.0]
    assert out[0, 0, 0, 0].tolist() == [0.5, -1.0]
    assert out[0, 3, 0, 0].tolist() == [1.0, 0.25]
    empty, one = normalize_by_prompt(torch.zeros(1, 3, 1, 1, 1), 2)
    assert one.tolist() == [1.0] and float(empty.abs().sum()) == 0


def test_frames_from_events_counts_each_window_at_128_squared():
    w, h = 40, 30
    ev = np.zeros(3, EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = [20, 20, 0], [15, 15, 0], [0, FRAME_NS + 5, 5], [1, 0, 1]
    frames = frames_from_events(ev, 0, 2, w, h, bins=3, size=10)
    assert frames.shape == (2, 3, 10, 10)
    # crop 30x30 from x=5; area resize by 3: each event contributes 1/9 to its cell
    assert float(frames[0].sum()) == pytest.approx(1 / 9)  # x=0 is outside the crop
    assert float(frames[1].sum()) == pytest.approx(-1 / 9)


# -- guided sampling ---------------------------------------------------------------------------
def test_guided_replace_rule_exact():
    sample = torch.arange(6.0).reshape(1, 6, 1, 1, 1)
    prompt = torch.tensor([10.0, 20.0, 30.0]).reshape(1, 3, 1, 1, 1)
    noise = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1, 1)
    out = guided_replace(sample, prompt, noise, 0.64, guide_frames=2)
    # the 2 most recent past positions (1, 2) <- 0.8 * prompt + 0.6 * noise; the rest untouched
    assert out.flatten().tolist() == pytest.approx([0.0, 0.8 * 20 + 0.6 * 2, 0.8 * 30 + 0.6 * 3,
                                                    3.0, 4.0, 5.0])
    assert guided_replace(sample, prompt, noise, 0.64, 0).flatten().tolist() == \
        sample.flatten().tolist()
    with pytest.raises(ValueError):
        guided_replace(sample, prompt, noise, 0.5, 4)


def test_guided_sampling_replaces_only_while_t_at_least_tau():
    torch.manual_seed(0)
    model = VideoDenoiser(ForecastConfig(**TINY)).eval()
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    past = torch.randn(1, 3, 3, 16, 16)
    tau = 500
    out = sample_forecast(model, past, steps=4, prompt_length=2, guide_frames=3, tau=tau,
                          generator=torch.Generator().manual_seed(7))
    sched = make_scheduler(model.config)
    sched.set_timesteps(4)
    timesteps = sched.timesteps.tolist()
    assert timesteps == [999, 749, 499, 249]
    g = torch.Generator().manual_seed(7)  # the sampler's draws, in its order
    x_t = torch.randn(1, 6, 3, 16, 16, generator=g)
    prompt_noise = torch.randn(past.shape, generator=g)
    for t, x_in in zip(timesteps, seen, strict=True):
        a = sched.alphas_cumprod[t]
        expected_past = a.sqrt() * past + (1 - a).sqrt() * prompt_noise
        if t >= tau:
            assert torch.allclose(x_in[:, :3], expected_past, atol=1e-6)
        else:
            assert not torch.allclose(x_in[:, :3], expected_past, atol=1e-3)
    assert torch.allclose(seen[0][:, 3:], x_t[:, 3:])  # future positions start as the noise
    assert out.shape == (1, 6, 3, 16, 16) and torch.isfinite(out).all()


def test_make_condition_places_the_last_k_past_frames():
    past = torch.arange(1.0, 4.0).reshape(1, 3, 1, 1, 1).repeat(2, 1, 1, 1, 1)
    cond, mask = make_condition(past, torch.tensor([1, 2]), frames=5)
    assert mask.tolist() == [[0, 0, 1, 0, 0], [0, 1, 1, 0, 0]]
    assert cond[:, :, 0, 0, 0].tolist() == [[0, 0, 3, 0, 0], [0, 2, 3, 0, 0]]


# -- alignment objective -----------------------------------------------------------------------
def test_reward_normalization_with_std_correction_exact():
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0])
    sample_std = torch.tensor([0.1, 0.2, 0.1, 0.3])
    out = normalize_rewards(scores, sample_std, beta=30.0)
    z = [(s - 2.5) / math.sqrt(1.25) for s in (1, 2, 3, 4)]
    assert out.tolist() == pytest.approx([z[0], z[1] + 3.0, z[2], z[3] + 6.0], abs=1e-5)
    # equal rewards and stds: nothing to prefer
    flat = normalize_rewards(torch.ones(3), torch.full((3,), 0.2))
    assert flat.tolist() == pytest.approx([0.0, 0.0, 0.0])


def test_clipped_policy_gradient_plus_kl_exact():
    log_prob = torch.tensor([0.1, -0.5])
    old = torch.zeros(2)
    adv = torch.tensor([1.0, -1.0])
    mean = torch.tensor([[1.0], [2.0]])
    ref = torch.tensor([[0.5], [2.0]])
    loss, parts = clipped_pg_kl_loss(log_prob, old, adv, mean, ref, std=0.5, clip=0.2,
                                     kl_weight=2.0)
    # A=+1: ratio e^0.1 inside the clip range -> -e^0.1; A=-1: ratio e^-0.5 clipped to 0.8
    pg = (-math.exp(0.1) + 0.8) / 2
    kl = (0.25 / (2 * 0.25) + 0.0) / 2
    assert float(parts["pg"]) == pytest.approx(pg, abs=1e-6)
    assert float(parts["kl"]) == pytest.approx(kl, abs=1e-6)
    assert float(loss) == pytest.approx(pg + 2.0 * kl, abs=1e-6)
    assert float(parts["clip_fraction"]) == pytest.approx(0.5)
    # gradient flows only through the unclipped term
    lp = log_prob.clone().requires_grad_(True)
    clipped_pg_kl_loss(lp, old, adv, mean, ref, 0.5, 0.2, 0.0)[0].backward()
    assert lp.grad.tolist() == pytest.approx([-math.exp(0.1) / 2, 0.0], abs=1e-6)


def test_metrics_exact_cases():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    # constant frames: the luminance term alone, (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    c1 = (0.01 * 2.0) ** 2
    assert float(ssim(torch.full((1, 1, 16, 16), 0.5), torch.zeros(1, 1, 16, 16))) == \
        pytest.approx(c1 / (0.25 + c1), rel=1e-4)
    assert frechet_distance(np.zeros(2), np.eye(2), np.array([3.0, 4.0]), np.eye(2)) == \
        pytest.approx(25.0)
    a = np.array([[0, 0, 1], [1, 1, 1]])
    b = np.array([[0, 1, 1], [1, 1, 1]])
    assert miou(a, b, 3) == pytest.approx((1 / 2 + 4 / 5) / 2)


# -- live forecasting --------------------------------------------------------------------------
def test_event_history_skips_overlap_and_forgets_old_events():
    history = EventHistory(span_ns=100)
    ev = np.zeros(4, EVENT_DTYPE)
    ev["t"] = [10, 20, 30, 40]
    history.add(ev[:3], t_end=30)
    history.add(ev[1:], t_end=40)  # overlapping window: 20, 30 already held
    assert history.events(0, 100)["t"].tolist() == [10, 20, 30, 40]
    late = np.zeros(1, EVENT_DTYPE)
    late["t"] = [400]
    history.add(late, t_end=400)  # everything before 300 is forgotten
    assert history.events(0, 1000)["t"].tolist() == [400]


def test_live_forecaster_stamps_and_shapes(tmp_path):
    from event_fm.models.forecast import save_forecaster

    torch.manual_seed(0)
    model = VideoDenoiser(ForecastConfig(**TINY))
    save_forecaster(model, tmp_path / "fc", extra={"sampling": {"steps": 2, "guide_frames": 3}})
    live = LiveForecaster.from_checkpoint(tmp_path / "fc")
    assert (live.settings.steps, live.settings.guide_frames) == (2, 3)
    ev = moving_bar_events(40, 30, 5 * FRAME_NS)
    t_end = 4 * FRAME_NS
    live.observe(ev[ev["t"] <= t_end], t_end)
    result = live.predict(t_end, 40, 30, stamp_ns=10**9)
    assert result.frames.shape == (3, 3, 16, 16) and result.frames.dtype == np.float32
    assert result.stamps_ns == [10**9 + k * FRAME_NS for k in (1, 2, 3)]
    assert result.crop == (5, 0, 30)
    assert np.abs(result.frames).max() <= np.abs(result.prompt).max() + 1e-6
    with pytest.raises(ValueError):
        LiveForecaster(model, ForecastSettings(horizon=4))


# -- CPU smoke: data -> fit (diffusion, simvp) -> sample (guided and not) -> align ------------
def _cli(*argv: str) -> int:
    from training.cli import main

    return main(["forecast", *argv])


@pytest.fixture(scope="module")
def smoke_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    for split, seed in (("train", 0), ("sim", 1), ("real", 2)):
        ev = moving_bar_events(40, 30, 40 * FRAME_NS, seed)
        frames = frames_from_events(ev, 0, 40, 40, 30, 3, 16)
        (root / "data" / split).mkdir(parents=True)
        torch.save({"name": f"bar{seed}", "frames": frames.half(), "width": 40, "height": 30,
                    "source": "synthetic"}, root / "data" / split / f"bar{seed}.pt")
    config = {
        "out": str(root / "out"),
        "data": {"root": str(root / "data"), "train_stride": 4},
        # 3 past + 10 future (the report's horizons), the shipped config's residual and density
        "model": {**TINY, "frames": 13, "base": "motion", "density": "past"},
        "fit": {"steps": 4, "batch_size": 2, "lr": 1e-3, "log_every": 2, "device": "cpu"},
        "simvp_model": {"past": 3, "horizon": 10, "size": 16, "width": 8, "hidden": 16,
                        "translator_blocks": 1},
        "simvp": {"steps": 3, "batch_size": 2, "log_every": 1, "device": "cpu"},
        "sampling": {"steps": 2, "prompt_length": 2, "guide_frames": 3, "tau": 100},
        "align": {"iterations": 1, "prompts": 1, "samples_per_prompt": 2, "steps": 2,
                  "train_timesteps": 1, "lr": 1e-4},
        "fewstep": {"steps": 2, "batch_size": 2, "log_every": 1, "device": "cpu",
                    "teacher_steps": 3},
        "evaluate": {"segmentation_checkpoint": str(REPO / "models" / "default"),
                     "max_sequences": {"sim": 3, "real": 2}, "segmentation_sequences": 2},
    }
    path = root / "forecast.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, root


def test_smoke_fit_sample_align(smoke_config):
    path, root = smoke_config
    out = root / "out"
    assert _cli("fit", "--config", str(path)) == 0
    assert _cli("fit", "--config", str(path), "--model", "simvp") == 0
    model = load_forecaster(out / "fit_diffusion" / "model")
    assert 1.0 <= model.config.data_scale <= 20.0
    log = (out / "fit_diffusion" / "log.csv").read_text().splitlines()
    assert len(log) == 3 and all(math.isfinite(float(r.split(",")[-2])) for r in log[1:])
    simvp = load_forecaster(out / "fit_simvp" / "model")
    assert simvp(torch.zeros(1, 3, 3, 16, 16)).shape == (1, 10, 3, 16, 16)
    past = torch.rand(2, 3, 3, 16, 16)
    g = dict(generator=torch.Generator().manual_seed(0))
    plain = sample_forecast(model, past, steps=2, prompt_length=2, **g)
    g = dict(generator=torch.Generator().manual_seed(0))
    guided = sample_forecast(model, past, steps=2, prompt_length=2, guide_frames=3, tau=0, **g)
    assert plain.shape == guided.shape == (2, 13, 3, 16, 16)
    assert torch.isfinite(guided).all() and not torch.allclose(plain, guided)

    assert _cli("align", "--config", str(path)) == 0
    summary = json.loads((out / "align" / "summary.json").read_text())
    assert summary["iterations"] == 1 and math.isfinite(summary["last"]["loss"])
    aligned = load_forecaster(out / "align" / "model")
    changed = any(not torch.equal(a, b) for a, b in
                  zip(model.state_dict().values(), aligned.state_dict().values(), strict=True))
    assert changed, "one alignment step updates the denoiser"
    assert _cli("fewstep", "--config", str(path)) == 0
    student = load_forecaster(out / "fewstep" / "model")
    assert student.config.to_json() != aligned.config.to_json()  # notes where it came from
    assert student.config.extra["distilled_from"] == str(out / "align" / "model")
    assert (student.config.base, student.config.frames) == (aligned.config.base, 13)
    log = (out / "fewstep" / "log.csv").read_text().splitlines()
    assert len(log) == 3 and all(math.isfinite(float(r.split(",")[-2])) for r in log[1:])
    assert _cli("export", "--config", str(path), "--to", str(root / "shipped")) == 0
    live = LiveForecaster.from_checkpoint(root / "shipped")
    assert (live.settings.steps, live.settings.guide_frames) == (2, 3)

    docs = root / "docs"
    assert _cli("report", "--config", str(path), "--docs", str(docs)) == 0
    report = json.loads((docs / "forecast.json").read_text())
    for domain, count in (("sim", 3), ("real", 2)):
        r = report[domain]
        assert r["sequences"] == count
        for name in ("copy_last", "zero", "motion_comp", "simvp", "diffusion",
                     "diffusion_aligned", "diffusion_1step", "diffusion_fewstep"):
            assert set(r[name]["mse"]) == set(r[name]["ssim"]) == {"h1", "h5", "h10"}
            assert set(r[name]["structure_f1"]) == {"h1", "h5", "h10"}
        assert r["zero"]["mean_abs"] == 0.0 and r["ground_truth_mean_abs"] > 0
        assert r["zero"]["structure_f1"]["h1"] == 0.0  # predicting nothing cannot score here
        assert r["motion_comp"]["mean_abs"] > 0
        assert r["copy_last"]["seg_miou"]["h1"] <= 1.0
    assert {"1_steps", "10_steps"} <= set(report["latency_s"])
    text = (docs / "forecast.md").read_text()
    assert "## Targets" in text and "copy_last" in text and "motion_comp" in text
    assert "structure F1 h1" in text
    assert report["setup"]["model"] == {"base": "motion", "density": "past"}
    for domain in ("sim", "real"):  # issue 20's targets, on the shipped (aligned) row
        for h in ("h1", "h5"):
            assert f"- {domain} {h}, `diffusion_aligned`: seg mIoU" in text
        assert f"- {domain} density: mean |voxel|" in text
    for png in ("metrics", "loss", "samples"):
        assert (docs / f"forecast_{png}.png").stat().st_size > 0


def test_shipped_forecaster_is_small_and_loads():
    path = REPO / "models" / "forecast"
    assert (path / "model.safetensors").stat().st_size < 5_000_000
    live = LiveForecaster.from_checkpoint(path)
    cfg = live.model.config
    assert (cfg.bins, cfg.size, cfg.past, cfg.horizon) == (3, 128, 4, 10)


# -- motion-compensated extrapolation and the structure score (issue 20) ----------------------
def _moving_square(steps: int, speed: int = 3, size: int = 64) -> torch.Tensor:
    """(1, steps, 3, size, size): a textured 12 px square edge moving right ``speed`` px/frame."""
    rng = np.random.default_rng(0)
    patch = rng.uniform(0.3, 1.0, (3, 12, 12)).astype(np.float32)
    frames = np.zeros((steps, 3, size, size), np.float32)
    for k in range(steps):
        x = 8 + speed * k
        frames[k, :, 26:38, x:x + 12] = patch
    return torch.from_numpy(frames)[None]


def test_motion_compensated_forecast_moves_the_structure():
    from event_fm.models.forecast.motion import event_flow, motion_compensated_forecast
    from training.forecast.metrics import structure_f1

    seq = _moving_square(9)
    past, future = seq[:, :4], seq[:, 4:]
    flow = event_flow(past[0, -2].numpy(), past[0, -1].numpy())
    inside = flow[26:38, 20:32]
    assert abs(float(np.median(inside[..., 0])) - 3.0) < 0.5
    assert abs(float(np.median(inside[..., 1]))) < 0.5
    pred = motion_compensated_forecast(past, 5)
    copy_last = past[:, -1:].expand(-1, 5, -1, -1, -1)
    f1_motion = structure_f1(pred[0], future[0])
    f1_copy = structure_f1(copy_last[0], future[0])
    assert (f1_motion[1:] > f1_copy[1:] + 0.2).all()  # copy-last falls behind the moving edge
    assert (f1_motion > 0.95).all()  # copy-last: 0.08 at h4, 0 at h5
    # the events are carried along, not created or lost (the square stays inside the frame)
    mass = pred.abs().sum(dim=(2, 3, 4))[0]
    torch.testing.assert_close(mass, past[0, -1].abs().sum().expand(5))
    assert float(pred[0, 4, :, 26:38, 8 + 3 * 8:8 + 3 * 8 + 12].abs().sum()) > 0.95 * float(mass[4])


def test_similarity_motion_is_one_global_transform_fitted_to_the_flow():
    from event_fm.models.forecast.motion import motion_compensated_forecast, similarity_flow

    gy, gx = np.mgrid[0:64, 0:64].astype(np.float32)
    angle, scale, shift = np.deg2rad(2.0), 1.01, (1.5, -0.5)
    cx, cy = 32.0, 32.0
    x2 = scale * (np.cos(angle) * (gx - cx) - np.sin(angle) * (gy - cy)) + cx + shift[0]
    y2 = scale * (np.sin(angle) * (gx - cx) + np.cos(angle) * (gy - cy)) + cy + shift[1]
    truth = np.stack([x2 - gx, y2 - gy], axis=-1).astype(np.float32)
    noisy = truth.copy()
    rng = np.random.default_rng(0)
    outliers = rng.random(truth.shape[:2]) < 0.2
    noisy[outliers] += rng.normal(0, 8, (int(outliers.sum()), 2)).astype(np.float32)
    density = np.full((64, 64), 200, np.uint8)
    fitted = similarity_flow(noisy, density)
    assert np.abs(fitted - truth).max() < 0.05  # RANSAC ignores the 20% outliers
    assert not similarity_flow(noisy, np.zeros_like(density)).any()  # no events: no motion
    seq = _moving_square(9)
    pred = motion_compensated_forecast(seq[:, :4], 5, "similarity")
    shifted = float(pred[0, 4, :, 26:38, 8 + 3 * 8:8 + 3 * 8 + 12].abs().sum())
    assert shifted > 0.95 * float(seq[0, 3].abs().sum())  # the square moved 3 px a frame
    with pytest.raises(ValueError, match="motion must be one of"):
        motion_compensated_forecast(seq[:, :4], 2, "affine")


def test_structure_f1_cannot_be_won_by_predicting_nothing():
    from training.forecast.metrics import structure_f1

    seq = _moving_square(2)[0]
    truth = seq[1]
    assert float(structure_f1(truth, truth)) == 1.0
    assert float(structure_f1(torch.zeros_like(truth), truth)) == 0.0
    everything = torch.ones_like(truth)
    assert float(structure_f1(everything, truth)) < 0.3  # precision = the truth's density
    shifted = torch.roll(truth, 1, dims=-1)  # one pixel off: inside the tolerance
    assert float(structure_f1(shifted, truth)) == 1.0
    assert float(structure_f1(torch.roll(truth, 6, dims=-1), truth)) < 0.8
    empty = torch.zeros_like(truth)
    assert float(structure_f1(empty, empty)) == 1.0


# -- the residual forecaster (issue 20): motion base, density matched to the past -------------
RESIDUAL = dict(frames=9, past=4, bins=3, size=64, patch=4, widths=[8, 16], emb_dim=16, heads=2,
                prompt_lengths=[1, 2, 3])


def test_residual_forecaster_starts_from_the_motion_compensated_frame():
    """An untrained residual model (its output layer starts at zero) predicts a zero residual:
    its forecast is exactly the motion-compensated extrapolation, with the base in the
    condition's future positions."""
    from event_fm.models.forecast.motion import motion_compensated_forecast

    torch.manual_seed(0)
    seq = _moving_square(9)
    past = seq[:, :4]
    model = VideoDenoiser(ForecastConfig(**RESIDUAL, base="motion")).eval()
    out = sample_forecast(model, past, steps=3, prompt_length=3, guide_frames=4, tau=100,
                          generator=torch.Generator().manual_seed(0))
    expected = motion_compensated_forecast(past, 5)
    torch.testing.assert_close(out[:, 4:], expected)
    plain = VideoDenoiser(ForecastConfig(**RESIDUAL)).eval()
    assert float(sample_forecast(plain, past, steps=3)[:, 4:].abs().max()) == 0.0
    cond, mask = make_condition(past, 2, 9, expected)
    torch.testing.assert_close(cond[:, 4:], expected)
    assert mask[0].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0]


def test_residual_loss_is_measured_from_the_base():
    """On a square moving at constant speed the motion base is the future: a model that predicts
    a zero residual has (almost) no future loss; without the base it pays the whole frames."""
    from training.forecast.train import diffusion_loss

    seq = _moving_square(9)
    losses = {}
    for base in ("none", "motion"):
        cfg = ForecastConfig(**RESIDUAL, base=base)
        model = VideoDenoiser(cfg).eval()  # zero output layer: predicts x0 = 0 (residual 0)
        with torch.no_grad():
            losses[base] = float(diffusion_loss(model, cfg, make_scheduler(cfg, "ddpm"), seq,
                                                torch.Generator().manual_seed(0))["future_mse"])
    frame_energy = float((seq[:, 4:] ** 2).mean())
    assert losses["none"] == pytest.approx(frame_energy, rel=1e-5)
    assert losses["motion"] < 0.02 * losses["none"]


def test_past_density_keeps_the_strongest_pixels_at_the_observed_rate():
    from event_fm.models.forecast.sampling import active_pixels, match_past_density

    past = torch.zeros(2, 2, 3, 4, 4)
    past[0, 0, 0, 0, :3] = 1.0  # 3 and 5 active pixels: 4 on average
    past[0, 1, 1, 1, :] = 1.0
    past[0, 1, 2, 2, 0] = -1.0
    past[1, :, :, 3, 3] = 0.5  # 1 active pixel in each frame
    future = torch.arange(2 * 2 * 3 * 16, dtype=torch.float32).reshape(2, 2, 3, 4, 4) / 100
    out = match_past_density(future, past)
    assert active_pixels(out).tolist() == [[4, 4], [1, 1]]
    strength = future.abs().sum(2).flatten(2)
    kept = out.abs().sum(2).flatten(2) > 0
    for b, k in ((0, 4), (1, 1)):
        for h in range(2):
            top = strength[b, h].topk(k).indices
            assert kept[b, h, top].all()
            torch.testing.assert_close(out.flatten(3)[b, h][:, top],
                                       future.flatten(3)[b, h][:, top])
    silent = match_past_density(future, torch.zeros_like(past))
    assert float(silent.abs().max()) == 0.0  # no past events: no forecast events


def test_config_rejects_unknown_base_and_density():
    with pytest.raises(ValueError, match="base must be one of"):
        ForecastConfig(**RESIDUAL, base="flow")
    with pytest.raises(ValueError, match="density must be one of"):
        ForecastConfig(**RESIDUAL, density="auto")


def test_frame_ranges_split_one_recording_between_training_and_evaluation():
    from training.forecast.data import frame_slice

    assert frame_slice(103, None) == slice(0, 103)
    assert frame_slice(103, [0.0, 0.5]) == slice(0, 52)
    assert frame_slice(103, [0.5, 1.0]) == slice(52, 103)
    for bad in ([0.5, 0.5], [-0.1, 0.5], [0.2, 1.5]):
        with pytest.raises(ValueError, match="frame range"):
            frame_slice(10, bad)


def test_data_step_splits_a_real_bag_between_training_and_evaluation(tmp_path, capsys):
    """The real driver bags train the forecaster with their first half and score it on the
    second: the two cached parts are the whole recording's frames, without overlap."""
    from training.forecast.data import frame_slice, recording_frames, training_recordings

    bag = str(REPO / "test" / "data" / "real_bags" / "libcaer_cmp_davis346")
    config = {"out": str(tmp_path / "out"),
              "data": {"root": str(tmp_path / "data"), "size": 32,
                       "splits": {"real_train": [bag], "real": [bag]},
                       "frame_ranges": {"real_train": [0.0, 0.5], "real": [0.5, 1.0]},
                       "train_splits": ["real_train"]}}
    path = tmp_path / "forecast.yaml"
    path.write_text(yaml.safe_dump(config))
    assert _cli("data", "--config", str(path)) == 0
    whole = recording_frames(bag, 3, 32).frames
    first = torch.load(tmp_path / "data" / "real_train" / "libcaer_cmp_davis346.pt")
    second = torch.load(tmp_path / "data" / "real" / "libcaer_cmp_davis346.pt")
    cut = frame_slice(len(whole), [0.0, 0.5]).stop
    assert 0 < cut < len(whole)
    assert first["frame_range"] == [0, cut] and second["frame_range"] == [cut, len(whole)]
    torch.testing.assert_close(torch.cat([first["frames"], second["frames"]]), whole)
    assert [r.name for r in training_recordings(config["data"])] == ["libcaer_cmp_davis346"]
    config["data"]["frame_ranges"] = {"real_train": [0.0, 0.25], "real": [0.5, 1.0]}
    path.write_text(yaml.safe_dump(config))
    assert _cli("data", "--config", str(path)) == 0  # a changed range rebuilds the cache
    quarter = torch.load(tmp_path / "data" / "real_train" / "libcaer_cmp_davis346.pt")
    assert quarter["frame_range"] == [0, frame_slice(len(whole), [0.0, 0.25]).stop]
    config["data"]["frame_ranges"] = {"heldout": [0.0, 0.5]}
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert _cli("data", "--config", str(path)) != 0
    assert "splits that do not exist: ['heldout']" in capsys.readouterr().err


def test_targets_are_checked_on_the_shipped_sampling_setting():
    from training.forecast.report import shipped_row

    rows = {"diffusion": {}, "diffusion_aligned": {}, "diffusion_1step": {}}
    assert shipped_row(rows, 1) == "diffusion_1step"
    assert shipped_row(rows, 10) == "diffusion_aligned"
    assert shipped_row({"diffusion": {}}, 1) == "diffusion"
    assert shipped_row({"copy_last": {}}, 10) is None
