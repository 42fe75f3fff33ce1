"""Sampling the diffusion forecaster with diffusers' DDIM scheduler, with E-Motion's
high-temporal-resolution guided sampling (their Algorithm 2).

With ``base: motion`` the model predicts the residual over the motion-compensated last frame
(:mod:`.motion`), carried in the condition's future positions and added back to the sample; with
``density: past`` every future frame keeps only its strongest pixels, as many as the past frames
had on average (noise-free space and the observed event rate).

Guided sampling: while the timestep t >= tau, the ``guide_frames`` most recent past positions of
the noisy sample are replaced by the true prompt frames noised to level t with one fixed noise
draw (sqrt(abar_t) x_pm + sqrt(1 - abar_t) eps_pm); below tau the sample is denoised normally. The
sequence layout has the past at positions [0, past), so with guide_frames == past (E-Motion's
best, s = 4) these are exactly "the first s frames".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from event_fm.models.forecast.denoiser import ForecastConfig, VideoDenoiser, make_condition
from event_fm.models.forecast.motion import motion_compensated_forecast


def forecast_base(past: torch.Tensor, config: ForecastConfig) -> torch.Tensor | None:
    """What the future positions are predicted over: None (``base: none``) or the
    motion-compensated extrapolation of ``past`` (B, P, C, H, W) for the model's horizon."""
    if config.base == "none":
        return None
    return motion_compensated_forecast(past, config.horizon).to(past.device, past.dtype)


def active_pixels(frames: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) -> (...,) number of pixels with any event."""
    return (frames.abs().sum(-3) > 0).flatten(-2).sum(-1)


def match_past_density(future: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
    """Each future frame (B, H, C, S, S) keeps its k strongest pixels (by sum |value| over the
    bins), k = the mean number of active pixels in that sample's past frames (B, P, C, S, S)."""
    b, horizon, c, h, w = future.shape
    keep = active_pixels(past).float().mean(1).round().long().clamp(0, h * w)  # (B,)
    strength = future.abs().sum(2).flatten(2)  # (B, H, S*S)
    order = strength.argsort(dim=-1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(h * w, device=future.device).expand_as(order))
    mask = (rank < keep[:, None, None]) & (strength > 0)
    return future * mask.reshape(b, horizon, 1, h, w).to(future.dtype)


def make_scheduler(config: ForecastConfig, kind: str = "ddim"):
    """The training (``ddpm``) or sampling (``ddim``, trailing spacing so 1 step starts from
    pure noise) scheduler for the model's noise schedule."""
    common = dict(num_train_timesteps=config.num_train_timesteps,
                  beta_schedule=config.beta_schedule, prediction_type=config.prediction_type,
                  clip_sample=False)
    if kind == "ddpm":
        return DDPMScheduler(**common)
    if kind == "ddim":
        return DDIMScheduler(**common, timestep_spacing="trailing", set_alpha_to_one=True)
    raise ValueError(f"unknown scheduler kind {kind!r}: ddpm or ddim")


def guided_replace(sample: torch.Tensor, prompt: torch.Tensor, prompt_noise: torch.Tensor,
                   alpha_cumprod: float | torch.Tensor, guide_frames: int) -> torch.Tensor:
    """Algorithm 2's replacement: the last ``guide_frames`` of the prompt positions
    (``prompt``: (B, P, C, H, W)) in ``sample`` (B, T, C, H, W) become the prompt noised to
    ``alpha_cumprod``; everything else is unchanged. Returns a new tensor."""
    p = prompt.shape[1]
    if not 0 <= guide_frames <= p:
        raise ValueError(f"guide_frames must be in [0, {p}], got {guide_frames}")
    out = sample.clone()
    if guide_frames == 0:
        return out
    a = torch.as_tensor(alpha_cumprod, dtype=sample.dtype, device=sample.device)
    sl = slice(p - guide_frames, p)
    out[:, sl] = a.sqrt() * prompt[:, sl] + (1 - a).sqrt() * prompt_noise[:, sl]
    return out


@dataclass
class Step:
    """One reverse step of a recorded trajectory (for policy-gradient alignment)."""

    timestep: int
    sample: torch.Tensor  # x_t as the model saw it (after any guided replacement)
    prev_sample: torch.Tensor  # x_{t-1}
    log_prob: torch.Tensor  # (B,) mean Gaussian log-density of prev_sample
    mean: torch.Tensor
    std: float


def step_distribution(model: VideoDenoiser, scheduler: DDIMScheduler, sample: torch.Tensor,
                      timestep: int, cond: torch.Tensor, mask: torch.Tensor,
                      eta: float) -> tuple[torch.Tensor, float]:
    """Mean and std of p(x_{t-1} | x_t) under the DDIM update with stochasticity ``eta``."""
    t = torch.full((sample.shape[0],), int(timestep), device=sample.device, dtype=torch.long)
    output = model(sample, t, cond, mask)
    mean = scheduler.step(output, int(timestep), sample, eta=eta,
                          variance_noise=torch.zeros_like(sample)).prev_sample
    prev_t = int(timestep) - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    std = eta * float(scheduler._get_variance(int(timestep), prev_t)) ** 0.5 if eta > 0 else 0.0
    return mean, std


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """Per-sample mean (over all dims) Gaussian log-density: the policy's log-probability."""
    var = std ** 2
    lp = -((x - mean) ** 2) / (2 * var) - torch.log(torch.tensor(std)) - 0.5 * torch.log(
        torch.tensor(2 * torch.pi))
    return lp.flatten(1).mean(1)


def sample_forecast(model: VideoDenoiser, past: torch.Tensor, steps: int = 10,
                    prompt_length: int = 3, guide_frames: int = 0, tau: int = 0,
                    eta: float = 0.0, generator: torch.Generator | None = None,
                    record: bool = False, scheduler: DDIMScheduler | None = None,
                    finish: bool = True, grad: bool = False):
    """Forecast sequences (B, T, C, H, W) in model space from past frames (B, P, C, H, W).

    ``prompt_length``: past frames given as conditioning; ``guide_frames``/``tau``: guided
    sampling (0 frames: off); ``eta`` > 0: stochastic DDIM (needed for log-probabilities);
    ``record``: also return the trajectory as a list of :class:`Step` (in the model's own
    space: residuals over the base where it has one). The returned future positions are the
    forecast (base added, density matched); ``finish=False`` returns the model's own sample.
    Runs without gradients unless ``grad`` (few-step distillation differentiates through it).
    """
    with torch.set_grad_enabled(grad):
        cfg = model.config
        scheduler = scheduler or make_scheduler(cfg, "ddim")
        scheduler.set_timesteps(steps, device=past.device)
        b = past.shape[0]
        shape = (b, cfg.frames, cfg.bins, past.shape[-2], past.shape[-1])
        sample = torch.randn(shape, generator=generator, device=past.device)
        prompt_noise = torch.randn(past.shape, generator=generator, device=past.device)
        base = forecast_base(past, cfg)
        cond, mask = make_condition(past, prompt_length, cfg.frames, base)
        trajectory: list[Step] = []
        for t in scheduler.timesteps.tolist():
            if guide_frames and t >= tau:
                sample = guided_replace(sample, past, prompt_noise, scheduler.alphas_cumprod[t],
                                        guide_frames)
            mean, std = step_distribution(model, scheduler, sample, t, cond, mask, eta)
            if std > 0:
                noise = torch.randn(mean.shape, generator=generator, device=mean.device)
                prev = mean + std * noise
            else:
                prev = mean
            if record:
                lp = gaussian_log_prob(prev, mean, std) if std > 0 else torch.zeros(b)
                trajectory.append(Step(t, sample, prev, lp, mean, std))
            sample = prev
        if finish:
            sample = finish_forecast(sample, past, base, cfg)
        return (sample, trajectory) if record else sample


def finish_forecast(sample: torch.Tensor, past: torch.Tensor, base: torch.Tensor | None,
                    config: ForecastConfig) -> torch.Tensor:
    """The model's sample (B, T, C, H, W) -> the forecast: base added to the future positions,
    density matched to the past where the model asks for it."""
    if base is None and config.density == "free":
        return sample
    p = config.past
    future = sample[:, p:] if base is None else sample[:, p:] + base
    if config.density == "past":
        future = match_past_density(future, past)
    return torch.cat([sample[:, :p], future], dim=1)
