"""Relative-pose solver cost and accuracy on the matches the node really solves (issue 19).

Replays recordings with ground-truth poses (default: demo/bag), cuts a 50 ms window ending at
every ground-truth stamp, matches consecutive windows with the shipped event matcher exactly as
perception_node's ``pose`` output does (MatcherPoseOutput), and then times every solver on the
same match sets, one thread:

- ``event_fm``: ``event_fm.models.estimate_relative_pose`` (USAC with inner local optimisation,
  at most 250 hypotheses scored at twice the inlier threshold, vectorized cheirality, batched
  Gauss-Newton refinement) -- what the node runs;
- ``opencv_recoverpose``: findEssentialMat (same settings) + cv2.recoverPose per candidate, no
  refinement -- the textbook OpenCV path, the peer the ratio is against;
- ``poselib``: poselib.estimate_relative_pose (LO-RANSAC + bundle refinement), when installed.

Accuracy is the pose protocol's: error = max(rotation, translation direction), failures count
as failures; AUC@5/10/20 in %. ``--scenes`` adds six simulated recordings of 2 s (tabletop,
corridor, street, room, park; hand-held, forward, pure rotation and pure translation), made
once under out/bench/pose_scenes, so the solver is timed on denser match sets and every motion.

    scripts/with_env.sh .venv/bin/python benchmarks/pose_solver.py [BAG ...] [--scenes] \
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from event_fm.common.threads import set_compute_threads
from event_fm.evaluation.metrics import pose_auc
from event_fm.evaluation.recording import Recording
from event_fm.evaluation.scoring import GroundTruth
from event_fm.models import estimate_relative_pose
from event_fm.models.event_matcher import load_event_matcher
from event_fm.models.pose import rotation_error_deg
from event_fm.pipeline.matcher_outputs import EventFeaturesOutput, MatcherPoseOutput
from event_fm.pipeline.outputs import Window, intrinsics
from event_fm.pipeline.scheduler import WindowSpec
from event_fm.representations import voxel_grid

REPO = Path(__file__).resolve().parents[1]
#: (scene, motion, seed): held-out seeds, away from the training seeds
SCENES = [("tabletop", "handheld", 101), ("corridor", "handheld", 102),
          ("street", "forward", 103), ("room", "rotation", 104), ("park", "translation", 105),
          ("tabletop", "rotation", 106)]
CLI = "from event_fm.cli.main import main; raise SystemExit(main())"


def scene_bags(folder: Path) -> list[Path]:
    """The SCENES recordings, simulated through the CLI where they are missing."""
    bags = []
    for scene, motion, seed in tqdm(SCENES, desc="scene recordings", leave=False):
        bag = folder / f"{scene}_{motion}_{seed}"
        if not (bag / "metadata.yaml").exists():
            subprocess.run([sys.executable, "-c", CLI,
                            "simulate", "--out", str(bag), "--scene", scene, "--motion", motion,
                            "--seed", str(seed), "--duration", "2", "--quiet", "--overwrite"],
                           check=True)
        bags.append(bag)
    return bags


def match_sets(bag: Path, matcher_dir: Path, window_ms: float = 50.0) -> list[dict]:
    """(k0, k1, K, threshold, T_true) for consecutive ground-truth stamps of one bag."""
    rec, gt = Recording.from_bag(bag), GroundTruth.from_bag(bag)
    matcher = load_event_matcher(matcher_dir)
    features = EventFeaturesOutput(matcher)
    pose_output = MatcherPoseOutput()
    K_rec, _ = rec.intrinsics()
    stamps = sorted(gt.pose)
    out, previous = [], None
    for stamp in tqdm(stamps, desc=f"matching {bag.name}", leave=False):
        events = rec.window(stamp, int(window_ms * 1e6))
        t_end = stamp - rec.offset_ns
        spec = WindowSpec(t_end=t_end, t_start=t_end - int(window_ms * 1e6), stamp_ns=stamp)
        window = Window(spec, events, spec.t_start, rec.width, rec.height, K=K_rec)
        window.voxels = voxel_grid(events, matcher.config.num_bins, rec.height, rec.width,
                                   spec.t_start, t_end, backend="numba")
        current = features.compute(window)
        if previous is not None:
            k0, k1, _, threshold = pose_output.match(previous[1], current, window)
            T_true = np.linalg.inv(gt.pose[stamp]) @ gt.pose[previous[0]]
            out.append({"k0": k0, "k1": k1, "K": intrinsics(window),
                        "threshold": threshold, "T": T_true,
                        "size": (rec.width, rec.height)})
        previous = (stamp, current)
    return out


def error_deg(R: np.ndarray | None, t: np.ndarray | None, T: np.ndarray) -> float:
    if R is None or t is None or not np.linalg.norm(t) > 0:
        return float("inf")
    rot = rotation_error_deg(R, T[:3, :3])
    t_true = T[:3, 3]
    if np.linalg.norm(t_true) < 1e-3:
        return rot
    cos = abs(float(t @ t_true)) / (np.linalg.norm(t) * np.linalg.norm(t_true))
    return max(rot, float(np.degrees(np.arccos(min(1.0, cos)))))


def solve_event_fm(s: dict):
    pose = estimate_relative_pose(s["k0"], s["k1"], s["K"], s["K"],
                                  threshold_px=s["threshold"])
    return (pose.R, pose.t) if pose.ok else (None, None)


def solve_opencv(s: dict):
    if len(s["k0"]) < 5:
        return None, None
    K = s["K"]
    x0 = cv2.undistortPoints(s["k0"].reshape(-1, 1, 2), K, None).reshape(-1, 2)
    x1 = cv2.undistortPoints(s["k1"].reshape(-1, 1, 2), K, None).reshape(-1, 2)
    focal = float(np.mean([K[0, 0], K[1, 1]]))
    try:
        E, mask = cv2.findEssentialMat(x0, x1, np.eye(3), method=cv2.USAC_ACCURATE,
                                       prob=0.99999, threshold=s["threshold"] / focal,
                                       maxIters=10000)
    except cv2.error:
        return None, None
    if E is None or E.shape[0] < 3:
        return None, None
    best = None
    for k in range(E.shape[0] // 3):
        count, R, t, _ = cv2.recoverPose(E[3 * k:3 * k + 3], x0, x1, np.eye(3),
                                         mask=mask.copy())
        if best is None or count > best[0]:
            best = (count, R, t.reshape(3))
    return (best[1], best[2]) if best and best[0] >= 5 else (None, None)


def solve_poselib(s: dict):
    import poselib

    if len(s["k0"]) < 5:
        return None, None
    K, (w, h) = s["K"], s["size"]
    cam = {"model": "PINHOLE", "width": w, "height": h,
           "params": [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]}
    pose, info = poselib.estimate_relative_pose(s["k0"], s["k1"], cam, cam,
                                                {"max_epipolar_error": s["threshold"]}, {})
    return (pose.R, pose.t) if info.get("num_inliers", 0) >= 5 else (None, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bags", nargs="*", default=[str(REPO / "demo" / "bag")])
    parser.add_argument("--matcher", default=str(REPO / "models" / "event_matcher"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenes", action="store_true",
                        help="add six simulated recordings of every motion (out/bench/pose_scenes)")
    args = parser.parse_args()
    bags = [Path(b) for b in args.bags]
    if args.scenes:
        bags += scene_bags(REPO / "out" / "bench" / "pose_scenes")
    set_compute_threads(1)
    torch.manual_seed(0)
    sets = [s for bag in bags for s in match_sets(bag, Path(args.matcher))]
    solvers = {"event_fm": solve_event_fm, "opencv_recoverpose": solve_opencv}
    try:
        import poselib  # noqa: F401

        solvers["poselib"] = solve_poselib
    except ImportError:
        print("(poselib not installed: its row is left out)")
    sizes = [len(s["k0"]) for s in sets]
    print(f"{len(sets)} match sets from {len(bags)} recording(s); matches per set: median "
          f"{int(np.median(sizes))}, max {max(sizes)}")
    rows = {}
    for name, solve in solvers.items():
        cv2.setRNGSeed(0)
        errors = [error_deg(*solve(s), s["T"]) for s in sets]  # also warms up
        started = time.perf_counter()
        for _ in range(args.repeats):
            for s in sets:
                solve(s)
        ms = 1e3 * (time.perf_counter() - started) / (args.repeats * len(sets))
        rows[name] = (ms, {k: 100 * v for k, v in pose_auc(errors, (5.0, 10.0, 20.0)).items()},
                      float(np.median(errors)))
    peer = rows["opencv_recoverpose"][0]
    print("\n| solver | ms per pose | vs OpenCV recoverPose | AUC@5 | AUC@10 | AUC@20 | median "
          "error (deg) |\n|---|---|---|---|---|---|---|")
    for name, (ms, aucs, med) in rows.items():
        print(f"| {name} | {ms:.2f} | {peer / ms:.2f}x faster | {aucs['auc_5']:.1f} | "
              f"{aucs['auc_10']:.1f} | {aucs['auc_20']:.1f} | {med:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
