"""``evaluate`` stage: held-out recordings, three ways — the teacher on clean RGB, the teacher on
the RGB the camera delivered (degraded where the recording is), and the student on events.

Depth (MAE at 10/20/30 m, AbsRel, RMSE, delta1), segmentation (mIoU, pixel accuracy) and relative
pose between frames through event_fm.evaluation.pose_protocol (AUC of max(rotation,
translation direction) at 5/10/20 degrees with failures counted, rotation-only AUC, the identity
baseline on the same pairs, the unmoved-match fraction). Writes
``metrics.json``, ``metrics.md`` and PNG plots (a qualitative mosaic, error versus depth).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from event_fm.dataset.shard_dataset import ShardDataset
from event_fm.evaluation.metrics import DEPTH_BINS, DepthMetrics, SegmentationMetrics
from event_fm.evaluation.pose_protocol import PoseProtocol, unmoved_fraction
from event_fm.models import EventFM, estimate_relative_pose, find_matches, load_model
from training.stages.common import Batch, to_batch

MODES = ("teacher_rgb", "teacher_delivered_rgb", "student_events")


class ModeAccumulator:
    def __init__(self, num_classes: int):
        self.depth = DepthMetrics()
        self.seg = SegmentationMetrics(num_classes)
        self.pose = PoseProtocol()
        self.identity = PoseProtocol()  # "no motion" on the same pairs, reported beside
        self.abs_err_by_depth = np.zeros(len(DEPTH_BINS) - 1)
        self.count_by_depth = np.zeros(len(DEPTH_BINS) - 1)
        self.features: list[tuple] = []  # (source, stamp, descriptors, confidence, pose, K)

    def add_depth(self, pred: np.ndarray, gt: np.ndarray) -> None:
        self.depth.update(pred, gt)
        valid = np.isfinite(gt) & (gt > 0)
        idx = np.digitize(gt[valid], DEPTH_BINS) - 1
        ok = (idx >= 0) & (idx < len(self.count_by_depth))
        np.add.at(self.abs_err_by_depth, idx[ok], np.abs(pred[valid] - gt[valid])[ok])
        np.add.at(self.count_by_depth, idx[ok], 1)

    def result(self) -> dict:
        out = {}
        if self.depth.sums:
            out.update(self.depth.compute())
        if self.seg.confusion.sum():
            seg = self.seg.compute()
            out["miou"], out["pixel_acc"] = seg["miou"], seg["pixel_acc"]
        if self.pose.rotation:
            pose = self.pose.result()
            out.update({f"pose_{k}": v for k, v in pose.items()
                        if k.startswith(("auc", "rot_auc", "median", "unmoved", "failures"))})
            out["pose_pairs"] = pose["pairs"]
            identity = self.identity.result()
            out.update({f"identity_pose_{k}": identity[k] for k in ("auc_10", "rot_auc_10")})
        return out


def _outputs(model: EventFM, batch: Batch, mode: str) -> dict:
    with torch.inference_mode():
        if mode == "student_events":
            return model.forward_events(batch.voxels)
        images = batch.images_clean if mode == "teacher_rgb" else batch.images
        return model.forward_image(images)


def _pose_errors(acc: ModeAccumulator, stride: int, gap: int) -> None:
    feats = acc.features
    for i in range(len(feats) - gap):
        a, b = feats[i], feats[i + gap]
        if a[0] != b[0] or a[4] is None or a[5] is None:
            continue
        k0, k1, _ = find_matches(a[2], a[3], b[2], b[3], stride=stride, max_keypoints=1024,
                                 nms_radius=1)
        k0, k1 = k0.numpy(), k1.numpy()
        est = estimate_relative_pose(k0, k1, a[5], b[5], threshold_px=max(1.0, stride / 4))
        T = np.linalg.inv(b[4]) @ a[4]  # camera 0 -> camera 1
        T_est = None
        if est.ok:
            T_est = np.eye(4)
            T_est[:3, :3], T_est[:3, 3] = est.R, est.t.reshape(3)
        acc.pose.add(T_est, T)
        acc.pose.add_matches(*unmoved_fraction(k0, k1, stride))
        acc.identity.add(np.eye(4), T)
    acc.features = []


def evaluate_set(model: EventFM, dataset: ShardDataset, batch_size: int = 8,
                 pose_gap: int = 2, max_samples: int | None = None, progress: bool = True,
                 mosaic_path: Path | None = None) -> dict[str, dict]:
    device = next(model.parameters()).device
    grid = model.encoder.backbone.grid_size(*model.img_size)
    n = len(dataset) if max_samples is None else min(max_samples, len(dataset))
    accs = {m: ModeAccumulator(len(model.config.class_names)) for m in MODES}
    has_delivered = False
    mosaic_rows = []
    for start in tqdm(range(0, n, batch_size), disable=not progress, unit="batch",
                      leave=False):
        samples = [dataset[i] for i in range(start, min(n, start + batch_size))]
        batch = to_batch(samples, model.img_size, model.config.num_bins, grid, device)
        if batch.images is None or model.teacher is None:  # an exported model has no teacher
            modes = ["student_events"]
        else:
            delivered_differs = any(s.image_clean is not None for s in samples)
            has_delivered |= delivered_differs
            modes = list(MODES) if delivered_differs else ["teacher_rgb", "student_events"]
        for mode in modes:
            out = _outputs(model, batch, mode)
            acc = accs[mode]
            for j, s in enumerate(samples):
                if "depth" in out and batch.depth is not None:
                    acc.add_depth(out["depth"][j, 0].float().cpu().numpy(),
                                  batch.depth[j].cpu().numpy())
                if "semantic_logits" in out and batch.semantic is not None:
                    acc.seg.update(out["semantic_logits"][j].argmax(0).cpu().numpy(),
                                   batch.semantic[j].cpu().numpy())
                if "descriptors" in out:
                    acc.features.append((s.source, s.stamp_ns, out["descriptors"][j].cpu(),
                                         out["confidence"][j].cpu(), s.pose,
                                         None if batch.K is None else batch.K[j].cpu().numpy()))
            if mosaic_path is not None and start == 0:
                mosaic_rows.append((mode, batch, out))
        for acc in accs.values():
            if len(acc.features) > 64:  # keep memory bounded; pairs across chunk edges are lost
                _pose_errors(acc, model.config.matching_stride, pose_gap)
    for acc in accs.values():
        _pose_errors(acc, model.config.matching_stride, pose_gap)
    if mosaic_path is not None and mosaic_rows:
        from event_fm.evaluation.plots import save_mosaic

        save_mosaic(mosaic_path, mosaic_rows)
    results = {m: accs[m].result() for m in MODES if (m != "teacher_delivered_rgb"
               or has_delivered) and (m == "student_events" or model.teacher is not None)}
    results["_depth_curve"] = {m: (accs[m].abs_err_by_depth / np.maximum(1, accs[m]
                                                                          .count_by_depth))
                               .tolist() for m in results}
    return results


def run_evaluate(config: dict, out_dir: Path, progress: bool = True) -> dict:
    section = config.get("evaluate", {})
    checkpoint = section.get("init")
    if not checkpoint:
        raise ValueError("evaluate.init must name the checkpoint to evaluate")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(checkpoint, device=device)
    sets = section.get("sets") or {"val": {"root": config["data"]["root"], "split": "val"}}
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(checkpoint), "sets": {}}
    for name, spec in sets.items():
        dataset = ShardDataset(spec["root"], spec.get("split", "val"))
        report["sets"][name] = evaluate_set(
            model, dataset, int(section.get("batch_size", 8)), int(section.get("pose_gap", 2)),
            section.get("max_samples"), progress, out_dir / f"mosaic_{name}.png")
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=1))
    (out_dir / "metrics.md").write_text(markdown_table(report))
    from event_fm.evaluation.plots import save_depth_curves

    save_depth_curves(out_dir / "depth_error_vs_depth.png", report)
    return report


COLUMNS = [("depth_mae_10m", "MAE@10m"), ("depth_mae_20m", "MAE@20m"),
           ("depth_mae_30m", "MAE@30m"), ("absrel", "AbsRel"), ("rmse", "RMSE"),
           ("delta1", "d<1.25"), ("miou", "mIoU"), ("pixel_acc", "Acc"),
           ("absrel_median_scaled", "AbsRel (med.-scaled)"), ("rank_correlation", "rank corr."),
           ("pose_auc_5", "AUC@5"), ("pose_auc_10", "AUC@10"), ("pose_auc_20", "AUC@20"),
           ("pose_rot_auc_10", "rot AUC@10"), ("identity_pose_rot_auc_10", "identity rot AUC@10"),
           ("pose_median_rot_deg", "med. rot err"), ("pose_unmoved_fraction", "unmoved")]


def markdown_table(report: dict) -> str:
    lines = [f"Checkpoint: `{report['checkpoint']}`", ""]
    for name, results in report["sets"].items():
        lines += [f"### {name}", "", "| input | " + " | ".join(c[1] for c in COLUMNS) + " |",
                  "|---" * (len(COLUMNS) + 1) + "|"]
        for mode, values in results.items():
            if mode.startswith("_"):
                continue
            cells = [f"{values[k]:.3f}" if isinstance(values.get(k), float) else "-"
                     for k, _ in COLUMNS]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
