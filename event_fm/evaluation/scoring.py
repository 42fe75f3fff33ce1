"""Scoring node outputs against a recording's ground truth (``event-fm eval``), with the training
module's metric code, and writing the report people read: JSON, markdown, a mosaic and a
latency histogram. No ROS here: outputs arrive as plain arrays keyed by stamp."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from event_fm.common.stamps import stamp_to_ns
from event_fm.dataset.sync import pose_to_matrix
from event_fm.evaluation.metrics import DepthMetrics, SegmentationMetrics
from event_fm.evaluation.pose_baselines import accumulated_event_frame, orb_pose, xfeat_pose
from event_fm.evaluation.pose_protocol import (
    PoseProtocol,
    unmoved_fraction,
    unmoved_fraction_truth,
)
from event_fm.evaluation.recording import Recording
from event_fm.evaluation.recording import resize_nearest as _resize_nearest
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


def trajectory_at(path: str | Path, stamps: list[int]) -> dict[int, np.ndarray]:
    """T_world_camera at each stamp from a TUM trajectory file (interpolated; stamps outside
    it, or in a gap, are left out). Its times must be on the bag's header clock."""
    from event_fm.io.datasets import interpolate_poses, read_tum_trajectory

    t, poses = read_tum_trajectory(path)
    at = np.asarray(stamps, dtype=np.int64)
    values, valid = interpolate_poses(t, poses, at)
    out = {}
    for stamp, v, ok in zip(at, values, valid, strict=True):
        if ok:
            T = np.eye(4)
            T[:3, :3] = Rotation.from_quat(v[3:]).as_matrix()
            T[:3, 3] = v[:3]
            out[int(stamp)] = T
    return out


def _match(stamp: int, table: dict[int, np.ndarray], tol_ns: int = 1_000_000):
    if stamp in table:
        return table[stamp]
    near = min(table, key=lambda s: abs(s - stamp), default=None)
    return table[near] if near is not None and abs(near - stamp) <= tol_ns else None


def _pose_pairs(outputs: Outputs, gt: GroundTruth):
    """Consecutive processed windows (s0, s1) with the true motion T(c1 <- c0) between them."""
    stamps = sorted(set(outputs.depth) | set(outputs.semantic) | set(outputs.pose))
    for s0, s1 in zip(stamps, stamps[1:], strict=False):
        p0, p1 = _match(s0, gt.pose), _match(s1, gt.pose)
        if p0 is not None and p1 is not None:
            yield s0, s1, np.linalg.inv(p1) @ p0


def _score_depth(preds: dict[int, np.ndarray], gt: GroundTruth) -> tuple[DepthMetrics, int]:
    metrics, n = DepthMetrics(), 0
    for stamp, pred in preds.items():
        truth = _match(stamp, gt.depth)
        if truth is not None:
            metrics.update(pred, _resize_nearest(truth, pred.shape))
            n += 1
    return metrics, n


def _depth_baselines(outputs: Outputs, gt: GroundTruth, empty: dict | None) -> dict:
    """The best constant depth in hindsight (the median of every valid true pixel: the MAE
    optimum) and the model's own prediction on an empty window, scored like the model."""
    truths = [_match(s, gt.depth) for s in outputs.depth]
    values = np.concatenate([t[np.isfinite(t) & (t > 0) & (t <= 80)].ravel()
                             for t in truths if t is not None] or [np.zeros(0)])
    out = {}
    if len(values):
        c = float(np.median(values))
        const, _ = _score_depth({s: np.full_like(p, c) for s, p in outputs.depth.items()}, gt)
        out["constant"] = {"value_m": c, **const.compute()}
    if empty is not None and "depth" in empty:
        preds = {s: _resize_nearest(empty["depth"], p.shape) for s, p in outputs.depth.items()}
        out["empty_window"] = _score_depth(preds, gt)[0].compute()
    return out


def _semantic_baselines(outputs: Outputs, gt: GroundTruth, num_classes: int,
                        empty: dict | None) -> dict:
    """The best constant layout in hindsight (each pixel's most frequent true class over the
    recording) and the model's prediction on an empty window."""
    pairs = [(p, _match(s, gt.semantic)) for s, p in outputs.semantic.items()]
    pairs = [(p, _resize_nearest(t, p.shape)) for p, t in pairs if t is not None]
    if not pairs:
        return {}
    shape = pairs[0][0].shape
    votes = np.zeros((num_classes + 1, *shape), dtype=np.int32)
    for _, t in pairs:
        if t.shape == shape:
            t = np.where(t < num_classes, t, num_classes).astype(np.int64)
            np.put_along_axis(votes, t[None], np.take_along_axis(votes, t[None], 0) + 1, 0)
    layout = votes[:num_classes].argmax(0).astype(np.uint8)
    out = {}
    for name, pred in (("constant_layout", layout),
                       ("empty_window", None if empty is None else empty.get("semantic"))):
        if pred is None:
            continue
        seg = SegmentationMetrics(num_classes)
        for _, t in pairs:
            seg.update(_resize_nearest(pred, t.shape), t)
        r = seg.compute()
        out[name] = {"miou": r["miou"], "pixel_acc": r["pixel_acc"]}
    return out


def _score_pose(outputs: Outputs, gt: GroundTruth, recording: Recording | None,
                window_ns: int) -> dict:
    """The model and the baselines on the same pairs (see pose_protocol)."""
    methods = {"model": PoseProtocol(), "identity": PoseProtocol()}
    truth = PoseProtocol()
    d = outputs.diagnostics
    matches, unmoved = int(float(d.get("pose_matches", 0))), int(float(d.get(
        "pose_matches_unmoved", 0)))
    methods["model"].add_matches(matches, unmoved)
    K = cell = None
    if recording is not None and recording.width:
        K, _ = recording.intrinsics()
        cell = float(d.get("pose_cell_px") or 0.0)
        cell = cell if cell > 0 else recording.height / 12  # the default model's 12-row grid
        methods["orb_event_frames"] = PoseProtocol()
        if recording.frames:
            methods["orb_camera_frames"] = PoseProtocol()
            if xfeat_available():
                methods["xfeat_camera_frames"] = PoseProtocol()
    frame_tol = _frame_tolerance(recording)
    for s0, s1, T_true in _pose_pairs(outputs, gt):
        methods["model"].add(outputs.pose.get(s1), T_true)
        methods["identity"].add(np.eye(4), T_true)
        if K is None:
            continue
        depth0 = _match(s0, gt.depth)
        if depth0 is not None:
            truth.add_matches(*unmoved_fraction_truth(
                _resize_nearest(depth0, (recording.height, recording.width)), T_true, K, cell))
        h, w = recording.height, recording.width
        e0 = accumulated_event_frame(recording.window(s0, window_ns), h, w)
        e1 = accumulated_event_frame(recording.window(s1, window_ns), h, w)
        T, k0, k1 = orb_pose(e0, e1, K)
        methods["orb_event_frames"].add(T, T_true)
        methods["orb_event_frames"].add_matches(*unmoved_fraction(k0, k1, cell))
        if "orb_camera_frames" not in methods:
            continue
        f0, f1 = recording.frame_near(s0, frame_tol), recording.frame_near(s1, frame_tol)
        for name, method in (("orb_camera_frames", orb_pose), ("xfeat_camera_frames", xfeat_pose)):
            if name in methods:
                T, k0, k1 = (None, [], []) if f0 is None or f1 is None else method(f0, f1, K)
                methods[name].add(T, T_true)
                methods[name].add_matches(*unmoved_fraction(k0, k1, cell))
    out = {name: m.result() for name, m in methods.items()}
    if truth.matches:
        out["ground_truth"] = {"unmoved_fraction": truth.unmoved / truth.matches}
    return out


def xfeat_available() -> bool:
    from event_fm.models.xfeat import XFeatUnavailable, xfeat_weights_path

    try:
        xfeat_weights_path()
    except XFeatUnavailable:
        return False
    return True


def _frame_tolerance(recording: Recording | None) -> int:
    if recording is None or len(recording.frames) < 2:
        return 0
    return int(np.median(np.diff(sorted(recording.frames))) // 2)


def score(outputs: Outputs, gt: GroundTruth, num_classes: int = 11,
          recording: Recording | None = None, window_ns: int = 50_000_000,
          empty: dict | None = None) -> dict:
    """Every metric of the outputs, each with its trivial baselines: depth beside the best
    constant and the empty-window prediction (``empty``: the model's output on a window without
    events), segmentation beside the best constant layout, pose beside identity and ORB on
    event frames (and on camera frames), through the one pose protocol. ``recording`` (its
    events, frames and intrinsics) is needed for the ORB baselines and the true unmoved
    fraction."""
    depth, n_depth = _score_depth(outputs.depth, gt)
    seg = SegmentationMetrics(num_classes)
    n_seg = 0
    for stamp, pred in outputs.semantic.items():
        truth = _match(stamp, gt.semantic)
        if truth is not None:
            seg.update(pred, _resize_nearest(truth, pred.shape))
            n_seg += 1
    pose = _score_pose(outputs, gt, recording, window_ns) if gt.pose else {}
    n_pose = pose.get("model", {}).get("pairs", 0)
    result: dict = {"scored_windows": {"depth": n_depth, "semantic": n_seg, "pose": n_pose}}
    if n_depth:
        result.update(depth.compute())
        result["depth_baselines"] = _depth_baselines(outputs, gt, empty)
    if n_seg:
        s = seg.compute()
        result["miou"], result["pixel_acc"] = s["miou"], s["pixel_acc"]
        result["semantic_baselines"] = _semantic_baselines(outputs, gt, num_classes, empty)
    if n_pose:
        model = pose["model"]
        result.update({f"pose_{k}": model[k] for k in model if k.startswith(("auc", "rot_auc"))})
        result["pose_median_rot_deg"] = model["median_rot_deg"]
        result["pose_median_trans_deg"] = model["median_trans_deg"]
        result["pose_failures"] = model["failures"]
        result["pose"] = pose
    if outputs.latency_s:
        lat = np.array(outputs.latency_s) * 1e3
        result["latency_ms"] = {f"p{q}": float(np.percentile(lat, q)) for q in (50, 90, 99)}
        result["latency_ms"]["mean"] = float(lat.mean())
    return result


def _f(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and np.isfinite(value) \
        else "-"


DEPTH_COLUMNS = (("depth_mae_10m", "MAE@10m"), ("depth_mae_20m", "MAE@20m"),
                 ("depth_mae_30m", "MAE@30m"), ("absrel", "AbsRel"), ("silog", "SILog"),
                 ("absrel_median_scaled", "AbsRel (median-scaled)"),
                 ("rank_correlation", "rank corr."))
POSE_COLUMNS = (("auc_5", "AUC@5"), ("auc_10", "AUC@10"), ("auc_20", "AUC@20"),
                ("rot_auc_5", "rot AUC@5"), ("rot_auc_10", "rot AUC@10"),
                ("rot_auc_20", "rot AUC@20"), ("median_rot_deg", "med. rot (deg)"),
                ("median_trans_deg", "med. t-dir (deg)"))


def report_tables(m: dict) -> list[str]:
    """The markdown tables of a scored recording, baselines beside the model."""
    lines: list[str] = []
    if "absrel" in m:
        lines += ["## Depth", "", "| predictor | " + " | ".join(c[1] for c in DEPTH_COLUMNS)
                  + " |", "|---" * (len(DEPTH_COLUMNS) + 1) + "|"]
        rows = [("model", m)] + [(f"{k.replace('_', ' ')}" + (
            f" ({v['value_m']:.1f} m)" if "value_m" in v else ""), v)
            for k, v in m.get("depth_baselines", {}).items()]
        lines += [f"| {name} | " + " | ".join(_f(v.get(k)) for k, _ in DEPTH_COLUMNS) + " |"
                  for name, v in rows]
        lines.append("")
    if "miou" in m:
        lines += ["## Semantic segmentation", "", "| predictor | mIoU | pixel accuracy |",
                  "|---|---|---|", f"| model | {_f(m['miou'])} | {_f(m['pixel_acc'])} |"]
        lines += [f"| {k.replace('_', ' ')} | {_f(v['miou'])} | {_f(v['pixel_acc'])} |"
                  for k, v in m.get("semantic_baselines", {}).items()]
        lines.append("")
    if "pose" in m:
        lines += ["## Relative pose between consecutive processed windows", "",
                  "Error = max(rotation, translation direction); a window without a published "
                  "pose is a failure. rot AUC ignores translation (REALM's protocol).", "",
                  "| method | " + " | ".join(c[1] for c in POSE_COLUMNS)
                  + " | failures / pairs | unmoved matches |",
                  "|---" * (len(POSE_COLUMNS) + 3) + "|"]
        truth = m["pose"].get("ground_truth", {})
        for name, v in m["pose"].items():
            if name == "ground_truth":
                continue
            lines.append(f"| {name.replace('_', ' ')} | "
                         + " | ".join(_f(v.get(k)) for k, _ in POSE_COLUMNS)
                         + f" | {v.get('failures', '-')} / {v.get('pairs', 0)} | "
                         + f"{_f(v.get('unmoved_fraction'), 2)} |")
        if truth:
            lines.append("| ground truth | " + " | ".join("-" for _ in POSE_COLUMNS)
                         + f" | - | {_f(truth['unmoved_fraction'], 2)} |")
        lines.append("")
    return lines


def label_free_tables(lf: dict) -> list[str]:
    """The markdown of a recording scored without labels."""
    lines = ["## Without labels", "",
             "This recording has no depth/semantic ground truth: these figures need none.", ""]
    sens = lf.get("input_sensitivity", {})
    if sens:
        lines += ["### Does the output follow the input?", "",
                  "Agreement near 1 and rank correlation near 1 with the empty-window answer "
                  "mean the model shows the same layout whatever it sees.", "",
                  "| measure | value |", "|---|---|"]
        lines += [f"| {k.replace('_', ' ')} | {_f(v)} |" for k, v in sens.items()]
        lines.append("")
    pose = lf.get("pose", {})
    if pose:
        ref = pose.get("reference")
        lines += ["### Pose", "",
                  (f"Reference motion: {ref['method']} on {ref['pairs']} pairs (unit "
                   "translation); errors as in the pose protocol." if ref else
                   "No camera frames: no reference motion, only success and unmoved matches."),
                  "", "| method | AUC@5 | AUC@10 | AUC@20 | rot AUC@10 | pose found | "
                  "unmoved matches |", "|---|---|---|---|---|---|---|"]
        for name, v in pose.items():
            if name == "reference":
                continue
            lines.append(f"| {name.replace('_', ' ')} | {_f(v.get('auc_5'))} | "
                         f"{_f(v.get('auc_10'))} | {_f(v.get('auc_20'))} | "
                         f"{_f(v.get('rot_auc_10'))} | {_f(v.get('success_fraction'), 2)} | "
                         f"{_f(v.get('unmoved_fraction'), 2)} |")
        if ref:
            lines.append(f"| reference | - | - | - | - | - | {_f(ref['unmoved_fraction'], 2)} |")
        lines.append("")
    agreement = lf.get("teacher_agreement")
    if agreement:
        lines += [f"### Against the image teacher on the frames (`{lf.get('teacher')}`)", "",
                  "| predictor | depth AbsRel (median-scaled) | depth rank corr. | "
                  "class agreement | windows |", "|---|---|---|---|---|"]
        for name, v in agreement.items():
            lines.append(f"| {name.replace('_', ' ')} | "
                         f"{_f(v.get('depth_absrel_median_scaled'))} | "
                         f"{_f(v.get('depth_rank_correlation'))} | "
                         f"{_f(v.get('semantic_agreement'))} | {v.get('windows', 0)} |")
        lines.append("")
    elif "teacher" in lf:
        lines += ["No image teacher (a checkpoint with its RGB branch, `--teacher`) or no frames:"
                  " depth and class agreement not scored.", ""]
    return lines


def write_report(out_dir: Path, report: dict, outputs: Outputs, gt: GroundTruth) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=str))
    m = report["metrics"]
    lines = [f"# event-fm eval: {report['bag']}", "", f"Checkpoint: `{report['checkpoint']}`"]
    if report.get("checkpoint_note"):
        lines += ["", f"**{report['checkpoint_note']}**"]
    topics = m.get("ground_truth_topics")
    if topics is not None:
        lines += ["", f"Ground truth: {', '.join(topics) if topics else 'none in this recording'}"]
    lines += [""] + report_tables(m)
    if "label_free" in m:
        lines += label_free_tables(m["label_free"])
    lat = m.get("latency_ms", {})
    lines += ["## Run", "", f"- windows scored: {m['scored_windows']}"]
    if lat:
        lines.append(f"- latency packet -> depth p50 / p90 / p99: {lat['p50']:.0f} / "
                     f"{lat['p90']:.0f} / {lat['p99']:.0f} ms")
    lines += ["", "Node diagnostics at the end:", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(report.get("diagnostics", {}).items())]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    _mosaic(out_dir / "mosaic.png", outputs, gt, report.get("recording_start_ns"),
            title=f"event-fm eval: {report['bag']}")
    _latency_histogram(out_dir / "latency.png", outputs.latency_s)


def _mosaic(path: Path, outputs: Outputs, gt: GroundTruth, t0_ns: int | None = None,
            rows: int = 4, title: str | None = None) -> None:
    from event_fm.evaluation.mosaic import save_eval_mosaic
    from event_fm.sim.classes import CLASS_NAMES

    stamps = sorted(outputs.depth)
    if not stamps:
        return
    picks = [stamps[int(i)] for i in np.linspace(0, len(stamps) - 1, min(rows, len(stamps)))]
    save_eval_mosaic(path, [{"stamp_ns": s, "events": outputs.events_image.get(s),
                             "depth": outputs.depth.get(s), "depth_truth": _match(s, gt.depth),
                             "semantic": outputs.semantic.get(s),
                             "semantic_truth": _match(s, gt.semantic)} for s in picks],
                     t0_ns if t0_ns is not None else stamps[0], CLASS_NAMES, title=title)


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
