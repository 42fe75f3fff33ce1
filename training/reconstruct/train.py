"""Fit the reconstruction generator: Sobel structural loss, optionally + the judge surrogate.

``losses='sobel'`` is LLM-EvRep's first ablation (structure only); ``'sobel+judge'`` adds the
semantic-consistency term through the frozen teacher + segmentation head (see losses.py).
Random crops keep a CPU step cheap; the U-Net is fully convolutional, so it runs on whole frames
afterwards. Writes ``model/`` (safetensors + config.json), ``log.csv`` and ``loss.png``.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LOSS_SETS = ("sobel", "sobel+judge")


@dataclass
class FitConfig:
    data: str = "out/reconstruct/data/train.npz"
    out: str = "out/reconstruct/full"
    losses: str = "sobel+judge"
    judge_checkpoint: str = "out/train/default/heads/model"
    steps: int = 1200
    max_minutes: float | None = None  # stop early (and save) after this much wall time
    batch_size: int = 8
    crop: tuple[int, int] = (96, 128)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    sobel_weight: float = 1.0
    judge_weight: float = 0.5
    judge_feature_weight: float = 1.0
    judge_class_weight: float = 1.0
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    threads: int | None = 1  # torch CPU threads (the machine is shared)
    model: dict = field(default_factory=dict)  # ReconstructionConfig overrides

    def __post_init__(self) -> None:
        if self.losses not in LOSS_SETS:
            raise ValueError(f"losses must be one of {LOSS_SETS}, got {self.losses!r}")
        self.crop = tuple(self.crop)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")


def pick_device(name: str):
    import torch

    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fit(cfg: FitConfig, progress: bool = True) -> dict:
    """Train one generator; returns a summary (steps, losses, wall time, checkpoint path)."""
    import torch

    from event_fm.models.reconstruction import (
        ReconstructionConfig,
        ReconstructionUNet,
        save_generator,
    )
    from training.reconstruct.data import PairDataset, load_split
    from training.reconstruct.losses import JudgeSurrogate, sobel_loss

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = PairDataset(load_split(cfg.data), crop=cfg.crop, flip=True, seed=cfg.seed)
    generator_seed = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True,
                                         drop_last=len(dataset) >= cfg.batch_size,
                                         generator=generator_seed)
    model_cfg = ReconstructionConfig.from_dict(
        {**cfg.model, "extra": {"losses": cfg.losses, "steps": cfg.steps, "crop": list(cfg.crop),
                                "judge_checkpoint": cfg.judge_checkpoint
                                if "judge" in cfg.losses else None}})
    model = ReconstructionUNet(model_cfg).to(device).train()
    judge = None
    if "judge" in cfg.losses:
        from event_fm.models import load_model

        judge = JudgeSurrogate(load_model(cfg.judge_checkpoint), cfg.judge_feature_weight,
                               cfg.judge_class_weight).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, cfg.warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (
        1 + np.cos(np.pi * min(1.0, s / cfg.steps))))
    history: list[dict] = []
    start, step = time.monotonic(), 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=f"reconstruct fit ({cfg.losses})", unit="step")
    running: dict[str, float] = {}
    while step < cfg.steps:
        for tencode, frame in loader:
            tencode, frame = tencode.to(device), frame.to(device)
            generated = model(tencode)
            terms = {"sobel": sobel_loss(generated, frame)}
            loss = cfg.sobel_weight * terms["sobel"]
            if judge is not None:
                judged = judge(generated, frame)
                terms.update(judge_feature=judged["feature"], judge_classes=judged["classes"])
                loss = loss + cfg.judge_weight * judged["judge"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {step}: {terms}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            for k, v in {"loss": loss, **terms}.items():
                running[k] = running.get(k, 0.0) + float(v.detach())
            if step % cfg.log_every == 0 or step == cfg.steps:
                n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
                row = {"step": step, **{k: v / n for k, v in running.items()},
                       "lr": sched.get_last_lr()[0], "elapsed_s": time.monotonic() - start}
                history.append(row)
                running = {}
                if bar is not None:
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
            if bar is not None:
                bar.update(1)
            out_of_time = (cfg.max_minutes is not None
                           and time.monotonic() - start > 60 * cfg.max_minutes)
            if step >= cfg.steps or out_of_time:
                break
        if cfg.max_minutes is not None and time.monotonic() - start > 60 * cfg.max_minutes:
            break
    if bar is not None:
        bar.close()
    model.config.extra["steps_done"] = step
    path = save_generator(model.eval().cpu(), out / "model")
    _write_log(out / "log.csv", history)
    if history:
        from event_fm.evaluation.plots import save_loss_curve

        save_loss_curve(out / "loss.png", history, f"reconstruction ({cfg.losses})")
    return {"losses": cfg.losses, "steps": step, "wall_s": time.monotonic() - start,
            "first": history[0] if history else None, "last": history[-1] if history else None,
            "checkpoint": str(path), "parameters": model.num_parameters()}


def _write_log(path: Path, history: list[dict]) -> None:
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
