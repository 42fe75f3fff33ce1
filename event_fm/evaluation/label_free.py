"""Scoring a real recording that has no ``/gt/*`` topics: what can be checked without labels.

- Input sensitivity, always: how far each window's depth and classes are from the model's own
  answer on an empty window and from the recording's most common layout. A model that outputs one
  layout whatever it sees agrees with both almost everywhere.
- Pose, always: how often a pose came out and how many matches stayed in their cell, beside ORB on
  accumulated event frames.
- With camera frames: XFeat (a real-image matcher) on consecutive frames is the reference motion;
  the model, identity and ORB on event frames are scored against it with the pose protocol.
- With an image teacher (an EventFM checkpoint that keeps its RGB branch): student-on-events
  against teacher-on-frames agreement for depth (median-scaled AbsRel, rank correlation) and
  classes (pixel agreement), with the empty-window prediction's agreement beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from event_fm.evaluation.metrics import rank_correlation
from event_fm.evaluation.pose_baselines import accumulated_event_frame, orb_pose
from event_fm.evaluation.pose_protocol import PoseProtocol, unmoved_fraction
from event_fm.evaluation.recording import Recording
from event_fm.evaluation.recording import resize_nearest as _resize_nearest

__all__ = ["FrameTeacher", "score_label_free"]


def _absrel_scaled(pred: np.ndarray, ref: np.ndarray) -> float:
    ok = np.isfinite(pred) & np.isfinite(ref) & (pred > 0) & (ref > 0)
    if ok.sum() < 2:
        return float("nan")
    p, r = pred[ok], ref[ok]
    p = p * (np.median(r) / np.median(p))
    return float(np.mean(np.abs(p - r) / r))


def _mean(values: list[float]) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _input_sensitivity(outputs, empty: dict | None) -> dict:
    out: dict = {}
    depths = [outputs.depth[s] for s in sorted(outputs.depth)]
    if depths and empty is not None and "depth" in empty:
        e = empty["depth"]
        out["depth_change_vs_empty"] = _mean([_absrel_scaled(d, _resize_nearest(e, d.shape))
                                              for d in depths])
        out["depth_rank_corr_with_empty"] = _mean([
            rank_correlation(d[np.isfinite(d)], _resize_nearest(e, d.shape)[np.isfinite(d)])
            for d in depths])
    if len(depths) > 1:
        out["depth_change_between_windows"] = _mean([_absrel_scaled(b, a) for a, b in
                                                     zip(depths, depths[1:], strict=False)])
    labels = [outputs.semantic[s] for s in sorted(outputs.semantic)]
    if labels:
        shape = labels[0].shape
        same = [x for x in labels if x.shape == shape]
        stack = np.stack(same).astype(np.int64)
        votes = np.zeros((int(stack.max()) + 1, *shape), dtype=np.int32)
        for x in stack:
            np.put_along_axis(votes, x[None], np.take_along_axis(votes, x[None], 0) + 1, 0)
        mode = votes.argmax(0)
        out["semantic_agreement_with_mode_layout"] = float(np.mean([np.mean(x == mode)
                                                                    for x in stack]))
        if empty is not None and "semantic" in empty:
            e = _resize_nearest(empty["semantic"], shape)
            out["semantic_agreement_with_empty"] = float(np.mean([np.mean(x == e)
                                                                  for x in stack]))
    return out


@dataclass
class FrameTeacher:
    """Predictions of an image model on the recording's frames, keyed by frame stamp."""

    depth: dict[int, np.ndarray]
    semantic: dict[int, np.ndarray]


def _teacher_agreement(outputs, recording: Recording, teacher: FrameTeacher,
                       empty: dict | None, tolerance_ns: int) -> dict:
    rows: dict[str, dict[str, list[float]]] = {"model": {}, "empty_window": {}}

    def add(row: str, key: str, value: float) -> None:
        rows[row].setdefault(key, []).append(value)

    def near(table: dict[int, np.ndarray], stamp: int):
        if not table:
            return None
        s = min(table, key=lambda k: abs(k - stamp))
        return table[s] if abs(s - stamp) <= tolerance_ns else None

    for stamp, d in outputs.depth.items():
        ref = near(teacher.depth, stamp)
        if ref is None:
            continue
        ref = _resize_nearest(ref, d.shape)
        candidates = [("model", d)]
        if empty is not None and "depth" in empty:
            candidates.append(("empty_window", _resize_nearest(empty["depth"], d.shape)))
        ok = np.isfinite(ref) & (ref > 0)
        for row, pred in candidates:
            add(row, "depth_absrel_median_scaled", _absrel_scaled(pred, ref))
            add(row, "depth_rank_correlation", rank_correlation(pred[ok], ref[ok]))
    for stamp, s in outputs.semantic.items():
        ref = near(teacher.semantic, stamp)
        if ref is None:
            continue
        ref = _resize_nearest(ref, s.shape)
        add("model", "semantic_agreement", float(np.mean(s == ref)))
        if empty is not None and "semantic" in empty:
            add("empty_window", "semantic_agreement",
                float(np.mean(_resize_nearest(empty["semantic"], s.shape) == ref)))
    return {row: {k: _mean(v) for k, v in values.items()} | {"windows": max(
        (len(v) for v in values.values()), default=0)}
        for row, values in rows.items() if values}


def _pose_without_truth(outputs, recording: Recording, window_ns: int,
                        reference=None) -> dict:
    """Pose success and unmoved matches; scored against XFeat's frame-to-frame motion when a
    ``reference(frame0, frame1, K) -> 4x4 or None`` and frames exist."""
    d = outputs.diagnostics
    stamps = sorted(set(outputs.depth) | set(outputs.pose))
    pairs = list(zip(stamps, stamps[1:], strict=False))
    methods = {"model": PoseProtocol(), "identity": PoseProtocol(),
               "orb_event_frames": PoseProtocol()}
    methods["model"].add_matches(int(float(d.get("pose_matches", 0))),
                                 int(float(d.get("pose_matches_unmoved", 0))))
    K, _ = recording.intrinsics()
    cell = float(d.get("pose_cell_px") or 0.0)
    cell = cell if cell > 0 else recording.height / 12
    h, w = recording.height, recording.width
    found = {"model": 0, "orb_event_frames": 0}
    frames = reference is not None and len(recording.frames) >= 2
    tol = int(np.median(np.diff(sorted(recording.frames))) // 2) if frames else 0
    reference_pairs = 0
    ref_matches = [0, 0]
    for s0, s1 in pairs:
        e0 = accumulated_event_frame(recording.window(s0, window_ns), h, w)
        e1 = accumulated_event_frame(recording.window(s1, window_ns), h, w)
        T_orb, k0, k1 = orb_pose(e0, e1, K)
        methods["orb_event_frames"].add_matches(*unmoved_fraction(k0, k1, cell))
        found["orb_event_frames"] += T_orb is not None
        found["model"] += s1 in outputs.pose
        if not frames:
            continue
        f0, f1 = recording.frame_near(s0, tol), recording.frame_near(s1, tol)
        if f0 is None or f1 is None:
            continue
        T_ref, r0, r1 = reference(f0, f1, K)
        if T_ref is None:
            continue
        reference_pairs += 1
        total, same = unmoved_fraction(r0, r1, cell)
        ref_matches[0] += total
        ref_matches[1] += same
        methods["model"].add(outputs.pose.get(s1), T_ref)
        methods["identity"].add(np.eye(4), T_ref)
        methods["orb_event_frames"].add(T_orb, T_ref)
    out = {}
    for name, m in methods.items():
        r = m.result() if m.rotation else {"pairs": 0}
        if m.matches:
            r["unmoved_fraction"] = m.unmoved / m.matches
        if name in found and pairs:
            r["success_fraction"] = found[name] / len(pairs)
        out[name] = r
    if not reference_pairs:
        out.pop("identity")
    else:
        out["reference"] = {"method": "XFeat on camera frames", "pairs": reference_pairs,
                            "unmoved_fraction": ref_matches[1] / max(1, ref_matches[0])}
    return out


def score_label_free(outputs, recording: Recording, empty: dict | None = None,
                     window_ns: int = 50_000_000, frame_pose=None,
                     teacher: FrameTeacher | None = None) -> dict:
    """The label-free section of an eval report (see the module docstring)."""
    result: dict = {"input_sensitivity": _input_sensitivity(outputs, empty)}
    if recording.width and (outputs.depth or outputs.pose):
        result["pose"] = _pose_without_truth(outputs, recording, window_ns, frame_pose)
    if teacher is not None and recording.frames:
        tol = int(np.median(np.diff(sorted(recording.frames))) // 2) \
            if len(recording.frames) > 1 else 25_000_000
        result["teacher_agreement"] = _teacher_agreement(outputs, recording, teacher, empty,
                                                         tol)
    return result
