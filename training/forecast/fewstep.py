"""Few-step distillation of the diffusion forecaster (issue 20, item 4): a student that maps
the sampler's starting noise to the trained model's multi-step DDIM result in one step.

Deterministic DDIM (eta = 0) is a fixed map from the initial noise and the prompt to a forecast;
the student (initialized from the teacher) learns that map at the first timestep (Luhman and
Luhman's knowledge distillation of the sampler). Each training step draws prompts from the
training windows and one noise per prompt, runs the teacher's ``teacher_steps``-step guided
sampling from it and regresses the student's one-step output from the same noise onto the
teacher's sample (both in the model's own space: residuals over the motion base). The shipped
sampling settings stay the live ones (prompt length, guide frames, tau).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from event_fm.models.forecast import load_forecaster, make_scheduler, save_forecaster
from event_fm.models.forecast.sampling import sample_forecast
from training.forecast.data import SequenceDataset, training_recordings
from training.forecast.train import SequenceTask

#: keys of the ``fewstep`` section that are not runner options
FEWSTEP_KEYS = ("teacher_steps", "student_steps")


class FewStepTask(SequenceTask):
    def __init__(self, config: dict, teacher_path: str | Path, own: dict):
        self.teacher = load_forecaster(teacher_path).eval().requires_grad_(False)
        if not hasattr(self.teacher.config, "data_scale"):
            raise ValueError(f"{teacher_path}: few-step distillation needs a diffusion model")
        self.model = copy.deepcopy(self.teacher).requires_grad_(True)
        self.cfg = cfg = self.teacher.config
        data = config["data"]
        self._dataset = SequenceDataset(training_recordings(data), cfg.frames, cfg.past,
                                        stride=int(data.get("train_stride", 2)), flip=True,
                                        min_prompt_events=1.0)
        sampling = config.get("sampling", {})
        self.prompt_length = min(int(sampling.get("prompt_length", 3)), max(cfg.prompt_lengths))
        self.guide = int(sampling.get("guide_frames", 4))
        self.tau = int(sampling.get("tau", 100))
        self.teacher_steps = int(own.get("teacher_steps", sampling.get("steps", 10)))
        self.student_steps = int(own.get("student_steps", 1))
        self.scheduler = make_scheduler(cfg, "ddim")
        self.teacher_path = str(teacher_path)

    def losses(self, batch: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        device = next(self.model.parameters()).device
        cfg = self.cfg
        past = batch[:, :cfg.past].to(device) * cfg.data_scale
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        target = self._sample(self.teacher, past, self.teacher_steps, seed, grad=False)
        pred = self._sample(getattr(self, "ddp_module", self.model), past, self.student_steps,
                            seed, grad=True)
        loss = F.mse_loss(pred[:, cfg.past:], target[:, cfg.past:])
        return {"loss": loss}

    def _sample(self, model, past: torch.Tensor, steps: int, seed: int,
                grad: bool) -> torch.Tensor:
        """The model's own sample (before the base and the density) from the noise of
        ``seed``: teacher and student start from the same draw."""
        return sample_forecast(model, past, steps, self.prompt_length, self.guide, self.tau,
                               generator=torch.Generator(device=past.device).manual_seed(seed),
                               scheduler=self.scheduler, finish=False, grad=grad)

    def save_final(self, out_dir: Path) -> None:
        save_forecaster(self.model, Path(out_dir) / "model",
                        extra={"distilled_from": self.teacher_path,
                               "teacher_steps": self.teacher_steps,
                               "student_steps": self.student_steps})

