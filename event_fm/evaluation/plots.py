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


def save_mosaic(path: Path, rows: list[tuple], max_samples: int = 4,
                class_names=None) -> None:
    """The training evaluate-stage mosaic: one row per (sample, input mode) of ``rows``
    ((mode, batch, outputs) triples): input, depth prediction, depth truth, segmentation and its
    truth, with the eval mosaic's conventions (``mosaic.build_mosaic``): one depth scale in
    metres with its colour bar, sky/missing depth in their own colours, a class legend."""
    from event_fm.evaluation.mosaic import Column, build_mosaic, save_figure

    entries, labels = [], []
    for mode, batch, out in rows:
        for j in range(min(max_samples, batch.voxels.shape[0])):
            if mode == "student_events":
                v = batch.voxels[j].sum(0).float().cpu().numpy()
                m = np.abs(v).max() or 1.0
                inp = np.stack([np.clip(v / m, 0, 1), np.zeros_like(v), np.clip(-v / m, 0, 1)],
                               -1)
            else:
                img = batch.images_clean if mode == "teacher_rgb" else batch.images
                inp = img[j].permute(1, 2, 0).float().cpu().numpy()
            entries.append({
                "input": inp,
                "depth": out["depth"][j, 0].float().cpu().numpy() if "depth" in out else None,
                "depth_truth": batch.depth[j].cpu().numpy() if batch.depth is not None else None,
                "semantic": (out["semantic_logits"][j].argmax(0).cpu().numpy().astype(np.uint8)
                             if "semantic_logits" in out else None),
                "semantic_truth": (batch.semantic[j].cpu().numpy().astype(np.uint8)
                                   if getattr(batch, "semantic", None) is not None else None)})
            labels.append(f"{mode} #{j}")
    events_rows = any(mode == "student_events" for mode, _, _ in rows)
    columns = [Column("input", "input (events: red ON, blue OFF)" if events_rows else "input",
                      "image"),
               Column("depth", "depth", "depth"), Column("depth_truth", "depth truth", "depth"),
               Column("semantic", "segmentation", "semantic"),
               Column("semantic_truth", "segmentation truth", "semantic")]
    fig = build_mosaic(entries, columns, labels, class_names)
    if fig is not None:
        save_figure(fig, path, dpi=80)


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
