"""Pictures people look at: qualitative mosaics and error curves (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _depth_vis(depth: np.ndarray, d_max: float = 80.0) -> np.ndarray:
    d = np.where(np.isfinite(depth), depth, d_max)
    return np.clip(d / d_max, 0, 1)


def save_mosaic(path: Path, rows: list[tuple], max_samples: int = 4) -> None:
    """One row per (sample, input mode): input, depth prediction, depth truth, segmentation."""
    from event_fm.sim.classes import colorize

    plt = _plt()
    entries = []
    for mode, batch, out in rows:
        for j in range(min(max_samples, batch.voxels.shape[0])):
            if mode == "student_events":
                v = batch.voxels[j].sum(0).cpu().numpy()
                m = np.abs(v).max() or 1.0
                inp = np.stack([np.clip(v / m, 0, 1), np.zeros_like(v), np.clip(-v / m, 0, 1)],
                               -1)
            else:
                img = batch.images_clean if mode == "teacher_rgb" else batch.images
                inp = img[j].permute(1, 2, 0).cpu().numpy()
            depth = out["depth"][j, 0].float().cpu().numpy() if "depth" in out else None
            seg = (out["semantic_logits"][j].argmax(0).cpu().numpy().astype(np.uint8)
                   if "semantic_logits" in out else None)
            gt = batch.depth[j].cpu().numpy() if batch.depth is not None else None
            entries.append((f"{mode} #{j}", inp, depth, gt, seg))
    fig, axes = plt.subplots(len(entries), 4, figsize=(12, 2.4 * len(entries)), squeeze=False)
    for row, (title, inp, depth, gt, seg) in zip(axes, entries, strict=True):
        row[0].imshow(inp)
        row[0].set_title(title, fontsize=8)
        for ax, img, name in ((row[1], depth, "depth"), (row[2], gt, "depth truth")):
            if img is not None:
                ax.imshow(_depth_vis(img), cmap="magma_r")
            ax.set_title(name, fontsize=8)
        if seg is not None:
            row[3].imshow(colorize(seg))
        row[3].set_title("segmentation", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_depth_curves(path: Path, report: dict) -> None:
    from event_fm.evaluation.metrics import DEPTH_BINS

    plt = _plt()
    centers = (DEPTH_BINS[:-1] + DEPTH_BINS[1:]) / 2
    fig, ax = plt.subplots(figsize=(6, 4))
    for set_name, results in report["sets"].items():
        for mode, curve in results.get("_depth_curve", {}).items():
            ax.plot(centers, curve, marker="o", label=f"{set_name}: {mode}")
    ax.set_xlabel("true depth (m)")
    ax.set_ylabel("mean abs. error (m)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_loss_curve(path: Path, history: list[dict], title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["loss"] for h in history])
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_bars(path: Path, values: dict[str, float], ylabel: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(values)), 3.8))
    ax.bar(range(len(values)), list(values.values()))
    ax.set_xticks(range(len(values)), list(values), rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
