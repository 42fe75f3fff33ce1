"""Live event-to-image reconstruction: a window's events -> Tencode -> generator -> RGB image.

The node's ``~/reconstruction`` output. Independent of the perception model (its own small
checkpoint, models/reconstruction by default), and run only when someone subscribes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from event_fm.models.checkpoint import embedded_checkpoint
from event_fm.models.reconstruction import ReconstructionUNet, load_generator
from event_fm.pipeline.outputs import Output, Window
from event_fm.representations import tencode


def default_reconstruction_checkpoint() -> Path:
    """The shipped generator: in the source tree, else in the installed share dir."""
    return embedded_checkpoint("reconstruction")


class ReconstructionRunner:
    """Callable: (events, height, width, t_start, t_end) -> (H, W, 3) uint8 RGB image."""

    def __init__(self, generator: ReconstructionUNet, device: str | torch.device = "cpu",
                 half: bool = False) -> None:
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.half = half and self.device.type == "cuda"
        if self.half:
            self.generator.half()
        self.counts = bool(generator.config.tencode_counts)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "cpu",
                        half: bool = False) -> ReconstructionRunner:
        path = Path(path) if path else default_reconstruction_checkpoint()
        if not path.exists():
            raise FileNotFoundError(f"reconstruction checkpoint not found: {path}")
        return cls(load_generator(path), device, half)

    def __call__(self, events: np.ndarray, height: int, width: int, t_start: int,
                 t_end: int) -> np.ndarray:
        if height < 1 or width < 1:
            raise ValueError(f"bad sensor size {width}x{height}")
        x = tencode(events, height, width, t_start, t_end, counts=self.counts,
                    device=self.device)[None]
        with torch.inference_mode():
            image = self.generator(x.half() if self.half else x)
        return (image[0].float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0) \
            .cpu().numpy()


class ReconstructionOutput(Output):
    """'reconstruction': (H, W, 3) uint8 image from the window's events (LLM-EvRep)."""

    name, stage = "reconstruction", "reconstruct"

    def __init__(self, runner: ReconstructionRunner) -> None:
        self.runner = runner

    def compute(self, window: Window) -> np.ndarray:
        return self.runner(window.events, window.height, window.width, window.t_start,
                           window.t_end)
