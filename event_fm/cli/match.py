"""``event-fm match BAG --at T0 --to T1``: match two moments of a recording and draw it.

Image-event (default): XFeat on the camera frame nearest T0 against the event matcher on the
window ending at T1, in one descriptor space (REALM's Image-Event row). ``--kind event-event``
matches two event windows, ``--kind image-image`` two frames (XFeat). Times are seconds from the
start of the recording. Prints the matches, the inliers and the relative pose (with its error
where the bag has ``/gt/pose``) and writes the match picture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

KINDS = ("image-event", "event-event", "image-image")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="recording with events (and camera frames for image-*)")
    parser.add_argument("--at", type=float, required=True, help="first moment (s from start)")
    parser.add_argument("--to", type=float, required=True, help="second moment (s from start)")
    parser.add_argument("--kind", choices=KINDS, default="image-event")
    parser.add_argument("--window-ms", type=float, default=50.0, help="event window length")
    parser.add_argument("--matcher", default=None,
                        help="event matcher checkpoint (default: the shipped models/event_matcher)")
    parser.add_argument("--out", default="out/match.png", help="the match picture (PNG)")


def run(args: argparse.Namespace) -> int:
    if not Path(args.bag).exists():
        print(f"event-fm match: no such bag: {args.bag}", file=sys.stderr)
        return 1
    if not args.window_ms > 0 or args.at < 0 or args.to < 0:
        print("event-fm match: --window-ms must be positive and times >= 0", file=sys.stderr)
        return 2
    import numpy as np

    from event_fm.evaluation.match_picture import event_frame_rgb, save_match_picture
    from event_fm.evaluation.pose_protocol import pose_errors
    from event_fm.evaluation.recording import Recording
    from event_fm.evaluation.scoring import GroundTruth
    from event_fm.models.event_matcher import (
        load_event_matcher,
        match_events,
        match_image_to_events,
    )
    from event_fm.models.xfeat import match_images

    rec = Recording.from_bag(args.bag)
    if not len(rec.events):
        print(f"event-fm match: {args.bag} holds no events", file=sys.stderr)
        return 2
    start = int(rec.events["t"][0]) + rec.offset_ns
    s0, s1 = start + int(args.at * 1e9), start + int(args.to * 1e9)
    window = int(args.window_ms * 1e6)
    size = (rec.height, rec.width)
    K, assumed = rec.intrinsics()
    tolerance = int(np.median(np.diff(sorted(rec.frames)))) if len(rec.frames) > 1 else 10**8

    def frame(stamp: int):
        image = rec.frame_near(stamp, tolerance)
        if image is None:
            raise ValueError(f"no camera frame within {tolerance / 1e6:.0f} ms of "
                             f"{(stamp - start) / 1e9:.3f} s")
        return image

    def events(stamp: int):
        ev = rec.window(stamp, window)
        if len(ev) < 10:
            raise ValueError(f"only {len(ev)} events in the window ending at "
                             f"{(stamp - start) / 1e9:.3f} s")
        return ev

    try:
        # the inputs first: a moment without a frame or events is refused before any model loads
        if args.kind == "image-event":
            frame(s0), events(s1)
        elif args.kind == "event-event":
            events(s0), events(s1)
        else:
            frame(s0), frame(s1)
        matcher = None if args.kind == "image-image" else load_event_matcher(args.matcher)
        def span(stamp: int) -> tuple[int, int]:  # the window in sensor time
            return stamp - rec.offset_ns - window, stamp - rec.offset_ns

        if args.kind == "image-event":
            left = frame(s0)
            result = match_image_to_events(left, events(s1), K, K, matcher=matcher, size=size,
                                           window=span(s1))
            right = event_frame_rgb(events(s1), *size)
        elif args.kind == "event-event":
            from event_fm.representations import voxel_grid

            e0, e1 = events(s0), events(s1)
            bins = matcher.config.num_bins
            result = match_events(voxel_grid(e0, bins, *size, *span(s0)),
                                  voxel_grid(e1, bins, *size, *span(s1)), K, matcher=matcher)
            left, right = event_frame_rgb(e0, *size), event_frame_rgb(e1, *size)
        else:
            left, right = frame(s0), frame(s1)
            result = match_images(left, right, K)
    except (ValueError, OSError) as exc:
        print(f"event-fm match: {exc}", file=sys.stderr)
        return 2
    pose = result.pose
    lines = [f"{args.kind}: {len(result.kpts0)} matches, {int(pose.inliers.sum())} inliers"
             + (" (intrinsics assumed: no camera_info)" if assumed else "")]
    if pose.ok:
        angle = np.degrees(np.arccos(np.clip((np.trace(pose.R) - 1) / 2, -1, 1)))
        lines.append(f"pose: rotation {angle:.2f} deg, translation direction "
                     f"{np.round(pose.t.reshape(3), 3).tolist()}")
        gt = GroundTruth.from_bag(args.bag)
        if gt.pose:
            def near(s):
                k = min(gt.pose, key=lambda x: abs(x - s))
                return gt.pose[k] if abs(k - s) < 5 * 10**7 else None

            p0, p1 = near(s0), near(s1)
            if p0 is not None and p1 is not None:
                T = np.eye(4)
                T[:3, :3], T[:3, 3] = pose.R, pose.t.reshape(3)
                rot, trans = pose_errors(T, np.linalg.inv(p1) @ p0)
                lines.append(f"error against /gt/pose: rotation {rot:.2f} deg, translation "
                             f"direction {trans:.2f} deg")
    else:
        lines.append("pose: failed (too few consistent matches)")
    caption = f"{args.kind}  {args.at:.3f} s -> {args.to:.3f} s"
    out = save_match_picture(args.out, left, right, result.kpts0, result.kpts1, pose.inliers,
                             caption)
    print("\n".join(lines))
    print(f"picture: {out}")
    return 0
