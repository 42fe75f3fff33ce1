"""``event-fm eval BAG --checkpoint CKPT``: replay a recording through the nodes over DDS and
score the outputs against its ground-truth topics (report: JSON, markdown, PNG mosaic, latency
histogram)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from event_fm.cli.domain import add_domain_argument, apply_domain


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="recording; /gt/depth, /gt/semantic, /gt/pose topics are "
                        "scored where present, label-free figures otherwise")
    parser.add_argument("--checkpoint", default=None, help="model (default: the embedded one)")
    parser.add_argument("--out", default="out/eval", help="report directory")
    parser.add_argument("--rate", type=float, default=1.0, help="replay speed factor")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--window-ms", type=float, default=50.0)
    parser.add_argument("--trajectory", default=None,
                        help="TUM-format camera poses (t tx ty tz qx qy qz qw, header clock) to "
                             "score pose on a recording without /gt/pose")
    parser.add_argument("--matcher", default=None,
                        help="event matcher checkpoint for pose (default: the shipped "
                             "models/event_matcher)")
    parser.add_argument("--teacher", default=None,
                        help="checkpoint with an RGB branch: its depth and classes on the "
                             "camera frames are the reference where there are no labels")
    add_domain_argument(parser, private_by_default=True)


def checkpoint_note(path: Path) -> str:
    """What the checkpoint is, in its own words (its meta 'note'), for the report."""
    from event_fm.models.checkpoint import read_meta

    try:
        meta = read_meta(path)
    except (OSError, ValueError):
        return ""
    return str(meta.get("note", ""))


def summary_lines(report: dict) -> list[str]:
    m = report["metrics"]
    lines = []
    if report.get("checkpoint_note"):
        lines.append(f"NOTE: {report['checkpoint_note']}")
    if "depth_mae_10m" in m:
        lines.append(f"depth: MAE@10m {m['depth_mae_10m']:.2f} m, @20m {m['depth_mae_20m']:.2f}"
                     f" m, @30m {m['depth_mae_30m']:.2f} m, AbsRel {m['absrel']:.3f}")
    if "miou" in m:
        lines.append(f"semantic: mIoU {m['miou']:.3f}, pixel accuracy {m['pixel_acc']:.3f}")
    for name, b in m.get("depth_baselines", {}).items():
        lines.append(f"  baseline {name.replace('_', ' ')}: MAE@10m {b['depth_mae_10m']:.2f} m, "
                     f"AbsRel {b['absrel']:.3f}")
    if "absrel_median_scaled" in m:
        lines.append(f"  scale-free: SILog {m['silog']:.1f}, AbsRel (median-scaled) "
                     f"{m['absrel_median_scaled']:.3f}, rank correlation "
                     f"{m['rank_correlation']:.3f}")
    for name, b in m.get("semantic_baselines", {}).items():
        lines.append(f"  baseline {name.replace('_', ' ')}: mIoU {b['miou']:.3f}")
    for name, p in m.get("pose", {}).items():
        if name == "ground_truth":
            lines.append(f"  ground truth: unmoved matches {p['unmoved_fraction']:.2f}")
            continue
        if "auc_10" not in p:
            continue
        unmoved = (f", unmoved matches {p['unmoved_fraction']:.2f}"
                   if "unmoved_fraction" in p else "")
        label = "pose" if name == "model" else f"  baseline {name.replace('_', ' ')}"
        lines.append(f"{label}: AUC@5/10/20 {p['auc_5']:.3f}/{p['auc_10']:.3f}/"
                     f"{p['auc_20']:.3f} (rotation only {p['rot_auc_5']:.3f}/"
                     f"{p['rot_auc_10']:.3f}/{p['rot_auc_20']:.3f}), median rotation error "
                     f"{p['median_rot_deg']:.2f} deg, failures {p['failures']}/{p['pairs']}"
                     f"{unmoved}")
    if "latency_ms" in m:
        lat = m["latency_ms"]
        lines.append(f"latency packet->depth: p50 {lat['p50']:.0f} ms, p90 {lat['p90']:.0f} ms, "
                     f"p99 {lat['p99']:.0f} ms")
    topics = m.get("ground_truth_topics")
    if topics is not None and not topics:
        lines.append("ground truth: none in this recording (no /gt/* topics); label-free "
                     "figures follow")
    lf = m.get("label_free", {})
    for k, v in lf.get("input_sensitivity", {}).items():
        lines.append(f"  {k.replace('_', ' ')}: {v:.3f}")
    for name, p in lf.get("pose", {}).items():
        if name == "reference":
            lines.append(f"  pose reference: {p['method']}, {p['pairs']} pairs, unmoved "
                         f"matches {p['unmoved_fraction']:.2f}")
            continue
        parts = [f"{key} {p[key]:.3f}" for key in ("auc_10", "rot_auc_10", "success_fraction",
                                                   "unmoved_fraction") if key in p]
        lines.append(f"  pose {name.replace('_', ' ')}: " + ", ".join(parts))
    for name, p in (lf.get("teacher_agreement") or {}).items():
        parts = [f"{key.replace('_', ' ')} {p[key]:.3f}" for key in (
            "depth_absrel_median_scaled", "depth_rank_correlation", "semantic_agreement")
            if key in p]
        lines.append(f"  vs teacher on frames, {name.replace('_', ' ')}: " + ", ".join(parts))
    d = report.get("diagnostics", {})
    processed = d.get("windows_processed", "? (no diagnostics received)")
    lines.append(f"windows: {processed} processed, "
                 f"{d.get('windows_dropped_behind', 0)} dropped (behind), "
                 f"{d.get('windows_dropped_stale', 0)} dropped (stale); "
                 f"scored {m['scored_windows']}")
    return lines


def writable_dir(path: str | Path) -> str | None:
    """Create ``path`` and prove a file can be written there; why not, or None."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".event_fm_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"cannot write the report to {out}: {exc.strerror or exc}"
    return None


def bag_event_problem(bag: str | Path) -> str | None:
    """Why the bag cannot be evaluated (no event topic, no packet with events), or None.

    Checked before any node starts: otherwise the run ends with a report of nothing.
    """
    from event_fm.io.msg_definitions import EVENT_TYPES
    from event_fm.io.rosbag import BagReader

    with BagReader(bag) as reader:
        topics = [t for t, s in reader.topics.items() if s.msgtype in EVENT_TYPES]
        if not topics:
            listed = ", ".join(f"{t} [{s.msgtype}]" for t, s in sorted(reader.topics.items()))
            return f"{bag}: no event topic (topics: {listed or 'none'})"
        count = 0
        for message in reader.messages([topics[0]]):
            count += 1
            if len(getattr(reader.deserialize(message), "events", ())):
                return None
    if count == 0:
        return f"{bag}: {topics[0]} holds no messages"
    return f"{bag}: none of the {count} packets on {topics[0]} holds any events"


def run(args: argparse.Namespace) -> int:
    # arguments and inputs first, before the heavy imports and before any node starts
    for flag, value in (("--window-ms", args.window_ms), ("--rate", args.rate)):
        if not value > 0:  # also refuses nan
            print(f"event-fm eval: {flag} must be positive, got {value:g}", file=sys.stderr)
            return 2
    if not Path(args.bag).exists():
        print(f"event-fm eval: no such bag: {args.bag}", file=sys.stderr)
        return 1
    for flag, path in (("--trajectory", args.trajectory), ("--teacher", args.teacher),
                       ("--matcher", args.matcher)):
        if path is not None and not Path(path).exists():
            print(f"event-fm eval: {flag}: no such file: {path}", file=sys.stderr)
            return 1
    if args.trajectory is not None:
        from event_fm.io.datasets import read_tum_trajectory
        from event_fm.io.errors import UnreadableInputError

        try:
            read_tum_trajectory(args.trajectory)
        except (UnreadableInputError, OSError) as exc:
            print(f"event-fm eval: --trajectory: {exc}", file=sys.stderr)
            return 2
    problem = writable_dir(args.out) or bag_event_problem(args.bag)
    if problem:
        print(f"event-fm eval: {problem}", file=sys.stderr)
        return 2
    apply_domain(args, private_by_default=True)  # a bad --domain: one line, exit 2

    from event_fm.nodes.engine_builder import default_checkpoint
    from event_fm.nodes.evaluation import evaluate_bag

    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    if not checkpoint.exists():
        print(f"event-fm eval: checkpoint not found: {checkpoint}", file=sys.stderr)
        return 1
    node_parameters = ({"event_matcher_checkpoint": str(args.matcher)} if args.matcher
                       else None)
    try:
        report = evaluate_bag(args.bag, checkpoint, args.out, args.rate, args.device,
                              args.window_ms, checkpoint_note(checkpoint), args.trajectory,
                              args.teacher, node_parameters=node_parameters)
    except (RuntimeError, ValueError) as exc:
        print(f"event-fm eval: {exc}", file=sys.stderr)
        return 1
    scored = report["metrics"].get("scored_windows") or 0
    scored = sum(scored.values()) if isinstance(scored, dict) else scored
    if "windows_processed" not in report.get("diagnostics", {}) and not scored:
        print("event-fm eval: the perception node produced no output and no diagnostics; "
              f"nothing to report (partial files in {args.out})", file=sys.stderr)
        return 1
    print("\n".join(summary_lines(report)))
    print(f"report: {Path(args.out) / 'report.md'} (mosaic.png, latency.png, report.json)")
    return 0
