"""``event-fm info PATH``: what is in a recording, per event and image topic."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="rosbag2 directory, .db3/.mcap file, or event file")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _fmt_rate(rate: float) -> str:
    for unit, scale in (("Gev/s", 1e9), ("Mev/s", 1e6), ("kev/s", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.2f} {unit}"
    return f"{rate:.0f} ev/s"


def _join_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def skipped_lines(stream: dict) -> list[str]:
    """Skipped words in three kinds, so that words no decoder turns into events (by design)
    and the usual start-of-stream words do not read like data loss."""
    from event_fm.io.stats import split_skipped

    if not stream.get("dropped"):
        return []
    by_design, at_start, malformed = split_skipped(stream["dropped"])
    lines = []
    if by_design:
        lines.append(f"  not events    {sum(by_design.values())} words, skipped by design "
                     "(OTHERS/CONTINUED/padding, markers)")
    if at_start:
        lines.append(f"  before sync   {sum(at_start.values())} words before the first "
                     "time word: normal at the start of a stream")
    lines.append(f"  malformed     {_join_counts(malformed) if malformed else 'none'}")
    return lines


def format_report(report: dict) -> str:
    lines = [f"recording: {report['path']}"]
    for s in report["event_topics"]:
        span = "-" if s["t_first_ns"] is None else (
            f"{s['t_first_ns'] / 1e9:.6f} .. {s['t_last_ns'] / 1e9:.6f} s "
            f"({s['duration_s']:.3f} s)")
        lines += [
            f"events  {s['topic'] or '(file)'}  [{s['type']}]",
            f"  encoding      {s['encoding'] or '-'}",
            f"  resolution    {s['width']}x{s['height']}",
            f"  messages      {s['messages']}",
            f"  events        {s['events']} (ON {s['on']}, OFF {s['off']})",
            f"  triggers      {s['triggers']}",
            f"  time span     {span}",
            f"  rate          mean {_fmt_rate(s['mean_rate_ev_s'])}, "
            f"peak {_fmt_rate(s['peak_rate_ev_s'])} (10 ms bins)",
            f"  seq gaps      {s['seq_gaps']} missing, {s['seq_backwards']} backwards",
            f"  time order    {s['time_backwards']} events earlier than their predecessor",
        ]
        lines += skipped_lines(s)
    for s in report["image_topics"]:
        lines.append(f"images  {s['topic']}  [{s['type']}]  {s['messages']} msgs, "
                     f"{s['rate_hz']:.2f} Hz")
    for s in report["other_topics"]:
        lines.append(f"other   {s['topic']}  [{s['type']}]  {s['messages']} msgs")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from event_fm.io.errors import UnreadableInputError
    from event_fm.io.stats import summarize

    try:
        report = summarize(args.path, progress=not args.json and sys.stderr.isatty()).to_dict()
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"event-fm info: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UnreadableInputError) else 1
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
