"""Held-out scores of reconstructions against the real (clean) frame: SSIM, MSE, judge Jaccard.

Rows: ``event_frame`` (the plain accumulated event frame, no learning), and one per generator
checkpoint (``sobel_only``, ``full``). SSIM is on luma (Gaussian window 11 / sigma 1.5, the
standard constants for [0, 1] images); MSE on RGB in [0, 1]; judge_jaccard is the mean Jaccard
agreement between the judge's word/class sets of the reconstruction and of the real frame
(1 = the judge sees the same content; the paper's loss is 1 minus it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from event_fm.evaluation import image_metrics
from event_fm.evaluation.image_metrics import mse

LUMA = (0.299, 0.587, 0.114)


def to_luma(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W); single-channel input passes through."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image mean SSIM of (B, C, H, W) images on luma, in float64."""
    return image_metrics.ssim(to_luma(a.double()), to_luma(b.double()), data_range).float()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def reconstruct_all(generator, tencode_u8: np.ndarray, device, batch_size: int = 8
                    ) -> np.ndarray:
    """Run a generator over (N, 3, H, W) uint8 Tencodes -> (N, H, W, 3) uint8 images."""
    out = []
    generator = generator.to(device).eval()
    with torch.inference_mode():
        for lo in range(0, len(tencode_u8), batch_size):
            x = torch.from_numpy(tencode_u8[lo:lo + batch_size]).to(device).float() / 255.0
            out.append(to_uint8(generator(x)))
    return np.concatenate(out)


def score_images(images: np.ndarray, frames: np.ndarray, judge=None,
                 real_sets: list[set[str]] | None = None) -> dict:
    """Mean SSIM, MSE (and judge Jaccard when a judge is given) of uint8 RGB images vs frames."""
    from training.reconstruct.judges import describe_batch, jaccard

    a = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    b = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    result = {"ssim": float(ssim(a, b).mean()), "mse": float(mse(a, b).mean()),
              "samples": len(images)}
    if judge is not None:
        real_sets = real_sets if real_sets is not None else describe_batch(judge, list(frames))
        sets = describe_batch(judge, list(images))
        result["judge_jaccard"] = float(np.mean([jaccard(s, r)
                                                 for s, r in zip(sets, real_sets, strict=True)]))
    return result


def evaluate(splits: dict[str, dict[str, np.ndarray]], generators: dict[str, str | Path],
             judge=None, device: str = "cpu", extra_rows: bool = True) -> dict:
    """Scores per row (event_frame, each generator [, delivered frame]) per split and overall.

    Returns ``{"rows": {row: {"ssim", "mse", "judge_jaccard", "per_split": {...}}},
    "images": {split: {row: (N, H, W, 3) uint8}}}``.
    """
    from event_fm.models.reconstruction import load_generator
    from training.reconstruct.judges import describe_batch

    models = {name: load_generator(path) for name, path in generators.items()}
    rows: dict[str, dict] = {}
    images: dict[str, dict[str, np.ndarray]] = {}
    for split, arrays in splits.items():
        frames = arrays["frame"]
        real_sets = describe_batch(judge, list(frames)) if judge is not None else None
        candidates = {"event_frame": arrays["event_frame"]}
        for name, model in models.items():
            candidates[name] = reconstruct_all(model, arrays["tencode"], torch.device(device))
        if extra_rows:
            candidates["delivered_frame"] = arrays["delivered"]
        images[split] = {**candidates, "real": frames}
        for name, imgs in candidates.items():
            score = score_images(imgs, frames, judge, real_sets)
            rows.setdefault(name, {"per_split": {}})["per_split"][split] = score
    for row in rows.values():
        per = row["per_split"].values()
        total = sum(s["samples"] for s in per)
        for key in ("ssim", "mse", "judge_jaccard"):
            if all(key in s for s in per):
                row[key] = sum(s[key] * s["samples"] for s in per) / total
        row["samples"] = total
    return {"rows": rows, "images": images}
