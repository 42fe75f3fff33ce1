"""Fit the reconstruction generator on the project's runner (resume, DDP, AMP, tqdm, log.csv,
loss.png): Sobel structural loss, optionally + the judge surrogate.

``losses='sobel'`` is LLM-EvRep's first ablation (structure only); ``'sobel+judge'`` adds the
semantic-consistency term through the frozen teacher + segmentation head (see losses.py).
Random crops keep a CPU step cheap; the U-Net is fully convolutional, so it runs on whole frames
afterwards. Writes ``model/`` (safetensors + config.json) next to the runner's files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import default_collate

from training.runner import Task

LOSS_SETS = ("sobel", "sobel+judge")


@dataclass
class ReconstructSettings:
    """The generator's own keys of the ``fit`` section (the runner takes steps, lr, ...)."""

    losses: str = "sobel+judge"
    judge_checkpoint: str = "out/train/default/heads/model"
    data: str = "out/reconstruct/data/train.npz"
    crop: tuple[int, int] = (96, 128)
    sobel_weight: float = 1.0
    judge_weight: float = 0.5
    judge_feature_weight: float = 1.0
    judge_class_weight: float = 1.0
    threads: int | None = 1  # torch CPU threads (the machine is shared)
    model: dict = field(default_factory=dict)  # ReconstructionConfig overrides

    def __post_init__(self) -> None:
        if self.losses not in LOSS_SETS:
            raise ValueError(f"losses must be one of {LOSS_SETS}, got {self.losses!r}")
        self.crop = tuple(self.crop)


class ReconstructTask(Task):
    """The U-Net is the trainable module; the judge stays frozen outside it (never saved)."""

    def __init__(self, settings: ReconstructSettings, steps: int, seed: int = 0):
        from event_fm.models.reconstruction import ReconstructionConfig, ReconstructionUNet
        from training.reconstruct.data import PairDataset, load_split

        self.settings = settings
        self._dataset = PairDataset(load_split(settings.data), crop=settings.crop, flip=True,
                                    seed=seed)
        judge_ckpt = settings.judge_checkpoint if "judge" in settings.losses else None
        self.model = ReconstructionUNet(ReconstructionConfig.from_dict(
            {**settings.model, "extra": {"losses": settings.losses, "steps": steps,
                                         "crop": list(settings.crop),
                                         "judge_checkpoint": judge_ckpt}}, "fit.model"))
        self.judge = None
        if judge_ckpt:
            from event_fm.models import load_model
            from training.reconstruct.losses import JudgeSurrogate

            if not Path(judge_ckpt).exists():
                raise FileNotFoundError(f"judge checkpoint not found: {judge_ckpt}")
            self.judge = JudgeSurrogate(load_model(judge_ckpt), settings.judge_feature_weight,
                                        settings.judge_class_weight)
        self.steps_done = 0

    def trainable(self) -> torch.nn.Module:
        return self.model

    def dataset(self):
        return self._dataset

    def collate(self, samples: list):
        return default_collate(samples)

    def losses(self, batch, step: int) -> dict[str, torch.Tensor]:
        from training.reconstruct.losses import sobel_loss

        device = next(self.model.parameters()).device
        tencode, frame = (t.to(device) for t in batch)
        generated = getattr(self, "ddp_module", self.model)(tencode)
        terms = {"sobel": sobel_loss(generated, frame)}
        loss = self.settings.sobel_weight * terms["sobel"]
        if self.judge is not None:
            judged = self.judge.to(device)(generated, frame)
            terms.update(judge_feature=judged["feature"], judge_classes=judged["classes"])
            loss = loss + self.settings.judge_weight * judged["judge"]
        self.steps_done = step + 1
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}

    def save_final(self, out_dir: Path) -> None:
        from event_fm.models.reconstruction import save_generator

        self.model.config.extra["steps_done"] = self.steps_done
        save_generator(self.model.cpu(), Path(out_dir) / "model")
