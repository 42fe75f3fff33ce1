"""Motion alignment (E-Motion Algorithm 1): fine-tune the denoiser on its own sampled
trajectories with a clipped policy-gradient objective plus a KL term to the frozen reference.

Each iteration: draw prompts, sample ``samples_per_prompt`` stochastic trajectories (DDIM with
eta > 0, so every reverse step is a Gaussian with a log-probability) with the current policy,
reward the forecasts (SSIM - lambda * encoder-FD / FD_ref), standardize the rewards per batch
and add the std correction (beta = 30), then take one optimizer step on the clipped surrogate
over a few random reverse steps. The sampling policy is the "old" policy of the ratio (it is
replaced by the updated one every iteration, theta' <- theta); the KL goes to the frozen
pre-trained model.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from event_fm.common.devices import resolve_device
from event_fm.common.strict_config import check_keys
from event_fm.models.forecast import (
    load_forecaster,
    make_scheduler,
    sample_forecast,
    save_forecaster,
)
from event_fm.models.forecast.denoiser import make_condition
from event_fm.models.forecast.sampling import forecast_base, gaussian_log_prob, step_distribution
from training.forecast.data import SequenceDataset, training_recordings
from training.forecast.features import SegmentationProbe
from training.forecast.metrics import feature_frechet, ssim
from training.forecast.reward import clipped_pg_kl_loss, normalize_rewards

log = logging.getLogger(__name__)


def reward_windows(future: torch.Tensor) -> torch.Tensor:
    """Future frames (N, H, C, S, S) -> (N * 2, H/2, C, S, S): two windows per forecast, the
    encoder's view for the FD term (fewer encoder passes than one per frame)."""
    n, h = future.shape[:2]
    half = h // 2
    return future[:, :2 * half].reshape(n * 2, half, *future.shape[2:])


class Rewarder:
    """SSIM and encoder-FD of forecasts against the true future."""

    def __init__(self, probe: SegmentationProbe, fd_weight: float):
        self.probe, self.fd_weight = probe, fd_weight
        self.fd_ref: float | None = None

    def __call__(self, pred: torch.Tensor, true: torch.Tensor) -> dict[str, torch.Tensor]:
        n = pred.shape[0]
        s = ssim(pred, true).mean(1)  # (N,) over frames
        tokens_pred, _ = self.probe(reward_windows(pred))
        tokens_true, _ = self.probe(reward_windows(true))
        tp = tokens_pred.reshape(n, -1, tokens_pred.shape[-1]).numpy()
        tt = tokens_true.reshape(n, -1, tokens_true.shape[-1]).numpy()
        fd = torch.tensor([feature_frechet(tp[i], tt[i]) for i in range(n)], dtype=torch.float32)
        if self.fd_ref is None:
            self.fd_ref = max(float(fd.mean()), 1e-6)
        score = s - self.fd_weight * fd / self.fd_ref
        return {"score": score, "ssim": s, "fd": fd}


#: The keys an ``align`` section may hold (strict: any other is a ConfigError naming it).
ALIGN_KEYS = ("beta", "clip", "device", "eta", "fd_weight", "iterations", "kl_weight", "lr",
              "prompts", "samples_per_prompt", "seed", "steps", "train_timesteps")
#: The keys of ``sampling`` (the live forecaster's settings, exported as checkpoint meta).
SAMPLING_KEYS = ("guide_frames", "horizon", "method", "prompt_length", "seed", "steps", "tau")


def run_alignment(config: dict, init: Path, out: Path, iterations: int | None = None) -> dict:
    cfg = dict(config.get("align") or {})
    samp = dict(config.get("sampling") or {})
    check_keys(cfg, ALIGN_KEYS, "align")
    check_keys(samp, SAMPLING_KEYS, "sampling")
    iterations = int(iterations if iterations is not None else cfg.get("iterations", 20))
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = resolve_device(cfg.get("device", "cpu"))
    policy = load_forecaster(init, device)
    if not hasattr(policy.config, "data_scale"):
        raise ValueError(f"{init}: alignment needs a diffusion checkpoint")
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    mcfg = policy.config
    data = config["data"]
    dataset = SequenceDataset(training_recordings(data), mcfg.frames, mcfg.past,
                              stride=int(data.get("train_stride", 2)), min_prompt_events=1.0)
    seg = config.get("evaluate", {}).get("segmentation_checkpoint", "models/default")
    rewarder = Rewarder(SegmentationProbe(seg, device), float(cfg.get("fd_weight", 2.0)))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=float(cfg.get("lr", 1e-5)),
                                  weight_decay=0.0)
    scheduler = make_scheduler(mcfg, "ddim")
    prompts, per_prompt = int(cfg.get("prompts", 2)), int(cfg.get("samples_per_prompt", 4))
    steps, eta = int(cfg.get("steps", 10)), float(cfg.get("eta", 1.0))
    k_train = int(cfg.get("train_timesteps", 4))
    prompt_length = int(samp.get("prompt_length", 3))
    guide, tau = int(samp.get("guide_frames", 4)), int(samp.get("tau", 100))
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.csv"
    log_path.unlink(missing_ok=True)
    history = []
    for it in tqdm(range(iterations), desc="align", unit="it"):
        t0 = time.perf_counter()
        idx = rng.choice(len(dataset), size=prompts, replace=False)
        seq = torch.stack([dataset[int(i)] for i in idx]).repeat_interleave(per_prompt, 0)
        seq = seq.to(device)
        past = seq[:, :mcfg.past] * mcfg.data_scale
        policy.eval()
        x0, trajectory = sample_forecast(policy, past, steps, prompt_length, guide, tau, eta=eta,
                                         record=True, scheduler=scheduler)
        pred = (x0[:, mcfg.past:] / mcfg.data_scale).clamp(-1, 1)
        rewards = rewarder(pred.cpu(), seq[:, mcfg.past:].cpu())
        sample_std = pred.flatten(1).std(1).cpu()
        advantages = normalize_rewards(rewards["score"], sample_std,
                                       float(cfg.get("beta", 30.0))).to(device)
        cond, mask = make_condition(past, prompt_length, mcfg.frames, forecast_base(past, mcfg))
        policy.train()
        optimizer.zero_grad(set_to_none=True)
        # the last reverse step lands on abar = 1 with zero variance: no log-probability there
        stochastic = [s for s in trajectory if s.std > 0]
        chosen = rng.choice(len(stochastic), size=min(k_train, len(stochastic)), replace=False)
        stats = []
        for j in chosen:
            step = stochastic[int(j)]
            mean, std = step_distribution(policy, scheduler, step.sample, step.timestep, cond,
                                          mask, eta)
            with torch.no_grad():
                ref_mean, _ = step_distribution(reference, scheduler, step.sample,
                                                step.timestep, cond, mask, eta)
            log_prob = gaussian_log_prob(step.prev_sample, mean, std)
            loss, parts = clipped_pg_kl_loss(log_prob, step.log_prob, advantages, mean,
                                             ref_mean, std, float(cfg.get("clip", 0.2)),
                                             float(cfg.get("kl_weight", 1.0)))
            (loss / len(chosen)).backward()
            stats.append({"loss": float(loss.detach()),
                          **{k: float(v) for k, v in parts.items()}})
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        row = {"iteration": it + 1, "reward": float(rewards["score"].mean()),
               "ssim": float(rewards["ssim"].mean()), "fd": float(rewards["fd"].mean()),
               "sample_std": float(sample_std.mean()),
               "pred_mean_abs": float(pred.abs().mean()),
               **{k: float(np.mean([s[k] for s in stats])) for k in stats[0]},
               "sec": time.perf_counter() - t0}
        history.append(row)
        with log_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if it == 0:
                writer.writeheader()
            writer.writerow(row)
    save_forecaster(policy, out / "model", extra={"aligned_from": str(init),
                                                  "iterations": iterations,
                                                  "fd_ref": rewarder.fd_ref})
    _plot(history, out / "align.png")
    summary = {"iterations": iterations, "first": history[0], "last": history[-1],
               "checkpoint": str(out / "model"), "samples_per_iteration": prompts * per_prompt,
               "beta": float(cfg.get("beta", 30.0))}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _plot(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [h["iteration"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    for ax, key in zip(axes, ("ssim", "fd", "pred_mean_abs"), strict=True):
        ax.plot(it, [h[key] for h in history])
        ax.set_xlabel("iteration")
        ax.set_title(key)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
