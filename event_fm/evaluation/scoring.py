"""Scoring node outputs against a recording's ground truth (``event-fm eval``), with the training
module's metric code, and writing the report people read: JSON, markdown, a mosaic and a
latency histogram. No ROS here: outputs arrive as plain arrays keyed by stamp."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from event_fm.common.stamps import stamp_to_ns
from event_fm.dataset.sync import pose_to_matrix
from event_fm.evaluation.metrics import (
    DepthMetrics,
    SegmentationMetrics,
    pose_auc,
    rotation_error_deg,
)
from event_fm.io.rosbag import BagReader, image_to_array


@dataclass
class Outputs:
    depth: dict[int, np.ndarray] = field(default_factory=dict)
    semantic: dict[int, np.ndarray] = field(default_factory=dict)
    pose: dict[int, np.ndarray] = field(default_factory=dict)  # stamp -> 4x4 T_c1_c0
    events_image: dict[int, np.ndarray] = field(default_factory=dict)
    latency_s: list[float] = field(default_factory=list)
    diagnostics: dict[str, str] = field(default_factory=dict)


@dataclass
class GroundTruth:
    depth: dict[int, np.ndarray] = field(default_factory=dict)
    semantic: dict[int, np.ndarray] = field(default_factory=dict)
    pose: dict[int, np.ndarray] = field(default_factory=dict)  # stamp -> T_world_camera

    @classmethod
    def from_bag(cls, path: str | Path, depth_topic: str = "/gt/depth",
                 semantic_topic: str = "/gt/semantic", pose_topic: str = "/gt/pose"):
        gt = cls()
        with BagReader(path) as bag:
            topics = [t for t in (depth_topic, semantic_topic, pose_topic) if t in bag.topics]
            for message in bag.messages(topics):
                msg = bag.deserialize(message)
                stamp = stamp_to_ns(msg.header.stamp)
                if message.topic == depth_topic:
                    gt.depth[stamp] = image_to_array(msg).astype(np.float32)
                elif message.topic == semantic_topic:
                    gt.semantic[stamp] = image_to_array(msg)
                else:
                    gt.pose[stamp] = pose_to_matrix(msg.pose)
        return gt


def _match(stamp: int, table: dict[int, np.ndarray], tol_ns: int = 1_000_000):
    if stamp in table:
        return table[stamp]
    near = min(table, key=lambda s: abs(s - stamp), default=None)
    return table[near] if near is not None and abs(near - stamp) <= tol_ns else None


def _resize_nearest(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if a.shape[:2] == shape:
        return a
    ys = (np.arange(shape[0]) * a.shape[0] / shape[0]).astype(int)
    xs = (np.arange(shape[1]) * a.shape[1] / shape[1]).astype(int)
    return a[ys][:, xs]


def score(outputs: Outputs, gt: GroundTruth, num_classes: int = 11) -> dict:
    depth, seg = DepthMetrics(), SegmentationMetrics(num_classes)
    scored = {"depth": 0, "semantic": 0, "pose": 0}
    for stamp, pred in outputs.depth.items():
        truth = _match(stamp, gt.depth)
        if truth is not None:
            depth.update(pred, _resize_nearest(truth, pred.shape))
            scored["depth"] += 1
    for stamp, pred in outputs.semantic.items():
        truth = _match(stamp, gt.semantic)
        if truth is not None:
            seg.update(pred, _resize_nearest(truth, pred.shape))
            scored["semantic"] += 1
    rot_errors = []
    stamps = sorted(set(outputs.depth) | set(outputs.semantic) | set(outputs.pose))
    for stamp, T_rel in sorted(outputs.pose.items()):
        earlier = [s for s in stamps if s < stamp]
        if not earlier:
            continue
        p0, p1 = _match(earlier[-1], gt.pose), _match(stamp, gt.pose)
        if p0 is None or p1 is None:
            continue
        truth = np.linalg.inv(p1) @ p0
        rot_errors.append(rotation_error_deg(T_rel[:3, :3], truth[:3, :3]))
        scored["pose"] += 1
    result: dict = {"scored_windows": scored}
    if scored["depth"]:
        result.update(depth.compute())
    if scored["semantic"]:
        s = seg.compute()
        result["miou"], result["pixel_acc"] = s["miou"], s["pixel_acc"]
    if rot_errors:
        result.update({f"pose_{k}": v for k, v in pose_auc(rot_errors).items()})
        result["pose_median_rot_deg"] = float(np.median(rot_errors))
    if outputs.latency_s:
        lat = np.array(outputs.latency_s) * 1e3
        result["latency_ms"] = {f"p{q}": float(np.percentile(lat, q)) for q in (50, 90, 99)}
        result["latency_ms"]["mean"] = float(lat.mean())
    return result


def write_report(out_dir: Path, report: dict, outputs: Outputs, gt: GroundTruth) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=str))
    m = report["metrics"]
    rows = [("depth MAE @10/20/30 m", " / ".join(
        f"{m[k]:.2f}" for k in ("depth_mae_10m", "depth_mae_20m", "depth_mae_30m") if k in m)),
            ("AbsRel / RMSE / delta<1.25", " / ".join(
                f"{m[k]:.3f}" for k in ("absrel", "rmse", "delta1") if k in m)),
            ("mIoU / pixel accuracy", " / ".join(f"{m[k]:.3f}" for k in ("miou", "pixel_acc")
                                                 if k in m)),
            ("pose AUC @5/10/20 deg", " / ".join(
                f"{m[k]:.3f}" for k in ("pose_auc_5", "pose_auc_10", "pose_auc_20") if k in m)),
            ("latency p50 / p90 / p99 (ms)", " / ".join(
                f"{v:.0f}" for k, v in m.get("latency_ms", {}).items() if k != "mean")),
            ("windows scored", str(m["scored_windows"]))]
    lines = [f"# event-fm eval: {report['bag']}", "", f"Checkpoint: `{report['checkpoint']}`"]
    if report.get("checkpoint_note"):
        lines += ["", f"**{report['checkpoint_note']}**"]
    lines += ["", "| metric | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    lines += ["", "Node diagnostics at the end:", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(report.get("diagnostics", {}).items())]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    _mosaic(out_dir / "mosaic.png", outputs, gt)
    _latency_histogram(out_dir / "latency.png", outputs.latency_s)


def _mosaic(path: Path, outputs: Outputs, gt: GroundTruth, rows: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from event_fm.sim.classes import colorize

    stamps = sorted(outputs.depth)
    if not stamps:
        return
    picks = [stamps[int(i)] for i in np.linspace(0, len(stamps) - 1, min(rows, len(stamps)))]
    fig, axes = plt.subplots(len(picks), 5, figsize=(15, 2.6 * len(picks)), squeeze=False)
    titles = ("events", "depth (events)", "depth truth", "semantic (events)", "semantic truth")
    for row, stamp in zip(axes, picks, strict=True):
        d_gt, s_gt = _match(stamp, gt.depth), _match(stamp, gt.semantic)
        images = [outputs.events_image.get(stamp), outputs.depth.get(stamp), d_gt,
                  colorize(outputs.semantic[stamp]) if stamp in outputs.semantic else None,
                  colorize(s_gt) if s_gt is not None else None]
        for ax, img, title in zip(row, images, titles, strict=True):
            if img is not None:
                if img.ndim == 2:
                    ax.imshow(np.clip(np.nan_to_num(img, posinf=80.0) / 80.0, 0, 1),
                              cmap="magma_r")
                else:
                    ax.imshow(img)
            ax.set_title(f"{title}\n{stamp / 1e9:.3f} s", fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _latency_histogram(path: Path, latency_s: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if latency_s:
        ax.hist(np.array(latency_s) * 1e3, bins=30)
    ax.set_xlabel("packet in -> depth out (ms)")
    ax.set_ylabel("windows")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
