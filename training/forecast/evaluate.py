"""Forecasts of every method on one held-out domain, and their scores per horizon.

Methods: copy-last (repeat the last past frame), zero, motion-compensated extrapolation (the last
frame carried along the flow of the last two), the SimVP-style CNN, and the diffusion
forecaster with and without guided sampling and alignment. All see the same windows: 4 past
frames, 10 future frames, normalized by the past frames' max |value|.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from event_fm.models.forecast import sample_forecast
from event_fm.models.forecast.motion import motion_compensated_forecast
from training.forecast.features import SegmentationProbe
from training.forecast.metrics import feature_frechet, miou, mse, ssim, structure_f1

HORIZONS = (1, 5, 10)


@dataclass
class DiffusionVariant:
    model: torch.nn.Module
    guide_frames: int
    tau: int
    steps: int
    prompt_length: int


def diffusion_forecast(v: DiffusionVariant, past: torch.Tensor, seed: int = 0,
                       batch_size: int = 8) -> torch.Tensor:
    """Future frames (N, H, C, S, S) in normalized units (clipped to [-1, 1])."""
    cfg = v.model.config
    outs = []
    for i in range(0, len(past), batch_size):
        g = torch.Generator(device=past.device).manual_seed(seed + i)
        x0 = sample_forecast(v.model, past[i:i + batch_size] * cfg.data_scale, v.steps,
                             v.prompt_length, v.guide_frames, v.tau, generator=g)
        outs.append((x0[:, cfg.past:] / cfg.data_scale).clamp(-1, 1))
    return torch.cat(outs)


def baseline_forecasts(past: torch.Tensor, horizon: int,
                       simvp: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    out = {"copy_last": past[:, -1:].expand(-1, horizon, -1, -1, -1).clone(),
           "zero": torch.zeros(past.shape[0], horizon, *past.shape[2:]),
           "motion_comp": motion_compensated_forecast(past, horizon),
           "motion_comp_similarity": motion_compensated_forecast(past, horizon, "similarity")}
    if simvp is not None:
        with torch.no_grad():
            out["simvp"] = torch.cat([simvp(past[i:i + 16]) for i in range(0, len(past), 16)])
    return out


def score(preds: dict[str, torch.Tensor], future: torch.Tensor,
          probe: SegmentationProbe | None = None, probe_count: int = 0) -> dict:
    """Per method: mse/ssim/structure F1 per horizon, mean |voxel|; with a probe also
    encoder-FD and the segmentation mIoU against the true future's segmentation, per horizon."""
    result: dict = {"ground_truth_mean_abs": float(future.abs().mean())}
    horizons = [h for h in HORIZONS if h <= future.shape[1]]
    truth_probe = {}
    if probe is not None:
        n = min(probe_count or len(future), len(future))
        for h in horizons:
            truth_probe[h] = probe(future[:n, h - 1:h])
    for name, pred in preds.items():
        entry: dict = {"mse": {}, "ssim": {}, "structure_f1": {},
                       "mean_abs": float(pred.abs().mean())}
        for h in horizons:
            entry["structure_f1"][f"h{h}"] = float(
                structure_f1(pred[:, h - 1], future[:, h - 1]).mean())
            entry["mse"][f"h{h}"] = float(mse(pred[:, h - 1], future[:, h - 1]).mean())
            entry["ssim"][f"h{h}"] = float(ssim(pred[:, h - 1], future[:, h - 1]).mean())
        if probe is not None:
            entry["feature_fd"], entry["seg_miou"] = {}, {}
            for h in horizons:
                tokens, labels = probe(pred[:n, h - 1:h])
                t_tokens, t_labels = truth_probe[h]
                entry["feature_fd"][f"h{h}"] = feature_frechet(
                    tokens.flatten(0, 1).numpy(), t_tokens.flatten(0, 1).numpy())
                entry["seg_miou"][f"h{h}"] = float(np.mean(
                    [miou(labels[i], t_labels[i], probe.num_classes) for i in range(n)]))
        result[name] = entry
    return result


def sampling_latency(model: torch.nn.Module, steps: int, guide_frames: int, tau: int,
                     repeats: int = 3) -> float:
    """Median seconds for one forecast (batch 1) with ``steps`` denoising steps."""
    cfg = model.config
    past = torch.zeros(1, cfg.past, cfg.bins, cfg.size, cfg.size)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        sample_forecast(model, past, steps, 3, guide_frames, tau)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def timed(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0
