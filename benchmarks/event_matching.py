"""Event matching and relative pose on held-out simulated pairs (issue 16 items 2-4).

Pairs of 50 ms windows 2-6 frames apart (the gap cycles 2, 3, 4, 5, 6) from the held-out split of
training/configs/matcher.yaml (seeds 701-708, every scene kind, used by no training recipe), at
the sensor's resolution (240x180), all through one solver (event_fm.models.estimate_relative_pose).
Error of a pair = max(rotation error, translation-direction error) (direction up to sign; on a
pair without translation the rotation alone); a failed estimate is an infinite error, so it lowers
every AUC. Rows:

1. event matcher, event-event (models/event_matcher, or --matcher)
2. the default model's matching head (models/default, as perception_node runs it: tiled forward,
   cell-centre keypoints, solver threshold max(1, stride / 4))
3. XFeat on the camera frames (frame-frame)
4. image-event: XFeat on frame A against the event matcher on window B
5. identity ("no motion")
6. ORB on accumulated event frames (cv2.ORB_create + BFMatcher Hamming crossCheck)
7. ORB on the camera frames (reference)

"unmoved" is the fraction of matches whose keypoint stayed in its descriptor cell (8 px; the
default head's cell is its stride in sensor pixels), "truth" the fraction of cells whose centre
stays in its cell under the true depth and pose (at the same cell size).

    scripts/with_env.sh .venv/bin/python benchmarks/event_matching.py [--matcher DIR]
        [--data out/train/matcher/data] [--split heldout] [--threads 1]

Writes out/bench/event_matching/{table.md,results.json} and match_image_event.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from event_fm.evaluation.pose_baselines import accumulated_event_frame, orb_matches

ROWS = ("event_matcher", "default_head", "xfeat_frames", "image_event", "identity",
        "orb_event_frames", "orb_frames")
LABELS = {
    "event_matcher": "event matcher, event-event (new)",
    "default_head": "default model's matching head, event-event",
    "xfeat_frames": "XFeat on the frames, frame-frame",
    "image_event": "image-event: XFeat frame A vs event matcher window B",
    "identity": "identity (no motion)",
    "orb_event_frames": "ORB on accumulated event frames",
    "orb_frames": "ORB on the camera frames",
}
THRESHOLDS = (5.0, 10.0, 20.0)


def rotation_error(R_est: np.ndarray, R_true: np.ndarray) -> float:
    cos = (np.trace(R_est.T @ R_true) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def pair_error(T_est: np.ndarray | None, T_true: np.ndarray) -> tuple[float, float]:
    """(max(rotation, translation direction), rotation) in degrees; None is a failure."""
    if T_est is None:
        return float("inf"), float("inf")
    rot = rotation_error(T_est[:3, :3], T_true[:3, :3])
    t_true, t_est = T_true[:3, 3], T_est[:3, 3]
    if np.linalg.norm(t_true) < 1e-3:
        return rot, rot
    n = np.linalg.norm(t_est)
    if n < 1e-12:
        return float("inf"), rot
    cos = abs(float(t_est @ t_true)) / (n * np.linalg.norm(t_true))
    return max(rot, float(np.degrees(np.arccos(min(1.0, cos))))), rot


def auc(errors: list[float], thresholds=THRESHOLDS) -> dict[str, float]:
    from event_fm.evaluation.metrics import pose_auc

    return {k.replace("auc_", ""): 100 * v for k, v in pose_auc(errors, thresholds).items()}


def unmoved(k0: np.ndarray, k1: np.ndarray, cell: float) -> tuple[int, int]:
    if not len(k0):
        return 0, 0
    same = np.all(np.floor(k0 / cell) == np.floor(k1 / cell), axis=1)
    return len(k0), int(same.sum())


def unmoved_truth(depth0: np.ndarray, T: np.ndarray, K: np.ndarray, cell: float
                  ) -> tuple[int, int]:
    h, w = depth0.shape
    u, v = np.meshgrid(np.arange(cell / 2, w, cell), np.arange(cell / 2, h, cell))
    z = depth0[np.minimum(v.astype(int), h - 1), np.minimum(u.astype(int), w - 1)].astype(float)
    ok = np.isfinite(z) & (z > 0)
    u, v, z = u[ok], v[ok], z[ok]
    X = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], 1)
    X1 = X @ T[:3, :3].T + T[:3, 3]
    front = X1[:, 2] > 1e-6
    u1 = K[0, 0] * X1[front, 0] / X1[front, 2] + K[0, 2]
    v1 = K[1, 1] * X1[front, 1] / X1[front, 2] + K[1, 2]
    inside = (u1 >= 0) & (u1 < w) & (v1 >= 0) & (v1 < h)
    k0 = np.stack([u[front][inside], v[front][inside]], 1)
    return unmoved(k0, np.stack([u1[inside], v1[inside]], 1), cell)


def solve(k0, k1, K, threshold):
    from event_fm.models import estimate_relative_pose

    pose = estimate_relative_pose(np.asarray(k0, float), np.asarray(k1, float), K, K,
                                  threshold_px=threshold)
    if not pose.ok:
        return None, pose
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = pose.R, pose.t.reshape(3)
    return T, pose


def pairs_of(dataset, max_gap: int = 6) -> list[tuple[int, int]]:
    """(i, j) with j - i cycling through 2..6 within each recording."""
    recording = []
    for path, n in dataset.entries:
        recording += [str(path.parent)] * n
    out, k = [], 0
    for i in range(len(recording)):
        gap = 2 + k % (max_gap - 1)
        j = i + gap
        if j < len(recording) and recording[j] == recording[i]:
            out.append((i, j))
            k += 1
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matcher", default=None, help="event matcher checkpoint "
                        "(default: models/event_matcher, else out/models/event_matcher)")
    parser.add_argument("--default-model", default="models/default")
    parser.add_argument("--data", default="out/train/matcher/data")
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--out", default="out/bench/event_matching")
    parser.add_argument("--max-pairs", type=int, default=None)
    parser.add_argument("--top-k", type=int, default=1024, help="keypoints per frame (XFeat)")
    parser.add_argument("--matcher-top-k", type=int, default=512,
                        help="keypoints per event window (event matcher; 512 did best on "
                        "training pairs)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from event_fm.dataset.shard_dataset import ShardDataset
    from event_fm.evaluation.match_picture import save_match_picture
    from event_fm.models import find_matches, load_model
    from event_fm.models.event_matcher import load_event_matcher
    from event_fm.models.xfeat import SparseFeatures, load_xfeat, match_descriptors
    from event_fm.representations import voxel_grid

    matcher_path = args.matcher or next(
        (p for p in ("models/event_matcher", "out/models/event_matcher")
         if Path(p, "model.safetensors").exists()), "models/event_matcher")
    matcher = load_event_matcher(matcher_path)
    teacher = load_xfeat("cpu")
    default = load_model(args.default_model)
    data = ShardDataset(args.data, args.split)
    pairs = pairs_of(data)[:args.max_pairs]
    bins_default = default.config.num_bins

    cache: dict[int, dict] = {}
    timing = {"event_matcher": [], "default_head": [], "xfeat_frames": []}

    def features(i: int) -> dict:
        if i in cache:
            return cache[i]
        s = data[i]
        vox = voxel_grid(s.events, matcher.config.num_bins, s.height, s.width, s.t_start,
                         s.t_end)
        with torch.inference_mode():
            t = time.perf_counter()
            fm = matcher.keypoints(vox, top_k=args.matcher_top_k)[0]
            timing["event_matcher"].append(time.perf_counter() - t)
            t = time.perf_counter()
            fx = teacher.keypoints(s.image, top_k=args.top_k)[0]
            timing["xfeat_frames"].append(time.perf_counter() - t)
            vd = vox if bins_default == matcher.config.num_bins else voxel_grid(
                s.events, bins_default, s.height, s.width, s.t_start, s.t_end)
            t = time.perf_counter()
            out = default.forward_events_tiled(vd[None], heads=("matching",))
            timing["default_head"].append(time.perf_counter() - t)
        entry = {"sample": s, "vox": vox, "fm": fm, "fx": fx,
                 "desc": out["descriptors"][0].float(), "conf": out["confidence"][0].float(),
                 "evframe": accumulated_event_frame(s.events, s.height, s.width)}
        if len(cache) > 16:
            cache.pop(next(iter(cache)))
        cache[i] = entry
        return entry

    stats = {r: {"err": [], "rot": [], "matches": 0, "unmoved": 0, "inliers": 0} for r in ROWS}
    truth = {}
    picture_done = False
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for n_pair, (i, j) in enumerate(pairs):
        a, b = features(i), features(j)
        sa, sb = a["sample"], b["sample"]
        K = np.asarray(sa.K, np.float64)
        T_true = np.linalg.inv(np.asarray(sb.pose, np.float64)) @ np.asarray(sa.pose,
                                                                              np.float64)
        stride_d = sa.height / a["desc"].shape[-2]
        for cell in (8.0, stride_d):
            tot, same = unmoved_truth(np.asarray(sa.depth, np.float64), T_true, K, cell)
            acc = truth.setdefault(cell, [0, 0])
            acc[0] += tot
            acc[1] += same

        def record(row, k0, k1, threshold, cell=8.0, K=K, T_true=T_true):
            T, pose = solve(k0, k1, K, threshold)
            err, rot = pair_error(T, T_true)
            st = stats[row]
            st["err"].append(err)
            st["rot"].append(rot)
            tot, same = unmoved(np.asarray(k0, float).reshape(-1, 2),
                                np.asarray(k1, float).reshape(-1, 2), cell)
            st["matches"] += tot
            st["unmoved"] += same
            st["inliers"] += int(np.sum(pose.inliers))
            st.setdefault("cell", cell)
            return pose

        def mnn(f0: SparseFeatures, f1: SparseFeatures):
            i0, i1, _ = match_descriptors(f0.descriptors, f1.descriptors)
            return f0.keypoints[i0].numpy(), f1.keypoints[i1].numpy()

        record("event_matcher", *mnn(a["fm"], b["fm"]), 1.0)
        k0, k1, _ = find_matches(a["desc"], a["conf"], b["desc"], b["conf"],
                                 stride=int(round(stride_d)), max_keypoints=1024, nms_radius=0)
        record("default_head", k0.numpy(), k1.numpy(), max(1.0, stride_d / 4), stride_d)
        record("xfeat_frames", *mnn(a["fx"], b["fx"]), 1.0)
        ki0, ki1 = mnn(a["fx"], b["fm"])
        pose = record("image_event", ki0, ki1, 1.0)
        if not picture_done and len(ki0) > 20:
            save_match_picture(out_dir / "match_image_event.png", sa.image, b["vox"], ki0, ki1,
                               pose.inliers, f"XFeat on frame {i} vs event matcher on "
                               f"window {j} ({j - i} frames later)")
            picture_done = True
        err, rot = pair_error(np.eye(4), T_true)
        stats["identity"]["err"].append(err)
        stats["identity"]["rot"].append(rot)
        record("orb_event_frames", *orb_matches(a["evframe"], b["evframe"]), 1.0)
        record("orb_frames", *orb_matches(sa.image, sb.image), 1.0)
        if (n_pair + 1) % 50 == 0:
            print(f"{n_pair + 1}/{len(pairs)} pairs, {time.time() - t0:.0f} s", flush=True)

    results = {"pairs": len(pairs), "split": f"{args.data}:{args.split}",
               "matcher": matcher_path, "default_model": args.default_model,
               "truth_unmoved": {f"{c:g}px": s / max(1, t) for c, (t, s) in truth.items()},
               "forward_ms_cpu_1thread_240x180": {k: 1000 * float(np.median(v))
                                                  for k, v in timing.items() if v},
               "rows": {}}
    lines = [f"Held-out simulated pairs: {len(pairs)} (windows 2-6 frames apart, 240x180, "
             f"{args.data}:{args.split}); AUC of max(rotation, translation direction) in %, "
             "failures counted; unmoved = matches that stayed in their cell "
             "(truth: cells that should)", "",
             "| method | AUC@5 | AUC@10 | AUC@20 | rot AUC@10 | median err (deg) | failures "
             "| matches/pair | inliers/pair | unmoved | truth unmoved |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in ROWS:
        st = stats[row]
        a_ = auc(st["err"])
        r_ = auc(st["rot"])
        n = len(st["err"])
        cell = st.get("cell", 8.0)
        res = {"auc": a_, "rot_auc": r_, "median_err_deg": float(np.median(st["err"])),
               "failures": int(np.sum(~np.isfinite(st["err"]))),
               "matches_per_pair": st["matches"] / max(1, n),
               "inliers_per_pair": st["inliers"] / max(1, n),
               "unmoved_fraction": st["unmoved"] / st["matches"] if st["matches"] else None,
               "cell_px": cell}
        tr = truth.get(cell)
        res["truth_unmoved_fraction"] = tr[1] / max(1, tr[0]) if tr and row != "identity" \
            else None
        results["rows"][row] = res
        fmt = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
        lines.append(f"| {LABELS[row]} | {a_['5']:.1f} | {a_['10']:.1f} | {a_['20']:.1f} | "
                     f"{r_['10']:.1f} | {res['median_err_deg']:.1f} | {res['failures']} | "
                     f"{res['matches_per_pair']:.0f} | {res['inliers_per_pair']:.0f} | "
                     f"{fmt(res['unmoved_fraction'])} | {fmt(res['truth_unmoved_fraction'])} |")
    ms = results["forward_ms_cpu_1thread_240x180"]
    lines += ["", "Forward + keypoints per window, CPU, 1 thread, 240x180 (median ms): " +
              ", ".join(f"{k} {v:.1f}" for k, v in ms.items())]
    table = "\n".join(lines) + "\n"
    (out_dir / "table.md").write_text(table)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    print(table)
    print(f"wrote {out_dir}/table.md, results.json, match_image_event.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
