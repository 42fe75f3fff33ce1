"""The shipped checkpoints through `event-fm eval` on the real driver bags, which carry no labels
(issue 16's real-data table): whether depth and segmentation follow the input (against the
model's own answer on an empty window and the recording's mode layout), and pose from the event
matcher beside ORB on accumulated event frames (success, fraction of matches that stayed in
their 8 px cell). The bags hold events only, so there is no frame teacher or frame pose here.

    scripts/with_env.sh .venv/bin/python benchmarks/real_bags.py \
        [--bags test/data/real_bags] [--matcher DIR ...] [--rate 0.25] [--out out/bench/real]

Writes out/bench/real/table.md (and the per-bag reports); --docs FILE copies the table there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
HEADER = ("| recording | matcher | windows | depth change vs empty | depth rank corr. with empty "
          "| depth change between windows | seg. agreement with mode layout | seg. agreement "
          "with empty | pose success | ORB events success | unmoved | ORB events unmoved |")


DOC_HEAD = """# The shipped checkpoints on the real driver bags (no labels)

`scripts/with_env.sh .venv/bin/python benchmarks/real_bags.py --rate {rate}` (`event-fm eval` on
each bag of test/data/real_bags; events only, so no frame teacher and no frame pose). Depth
"change vs empty": mean relative difference from the model's answer on an empty window (0: the
input is ignored); "rank corr. with empty": Spearman correlation with that answer (1: the same
layout whatever the input); segmentation agreement with the recording's mode layout and with
the empty-window answer (1: a constant layout); pose success and the fraction of matches that
stayed in their 8 px cell, for the event matcher and ORB on accumulated event frames.

"""


def _f(v, d: int = 3) -> str:
    return f"{v:.{d}f}" if isinstance(v, (int, float)) else "-"


def evaluate(bag: Path, matcher: str | None, out: Path, rate: float) -> dict:
    cmd = [sys.executable, "-m", "event_fm.cli.main", "eval", str(bag), "--out", str(out),
           "--rate", str(rate)]
    if matcher:
        cmd += ["--matcher", matcher]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"eval of {bag} failed: {result.stderr[-2000:]}")
    return json.loads((out / "report.json").read_text())


def row(bag: str, matcher: str, report: dict) -> str:
    m = report["metrics"]
    lf = m.get("label_free", {})
    sens = lf.get("input_sensitivity", {})
    pose = lf.get("pose", {})
    model, orb = pose.get("model", {}), pose.get("orb_event_frames", {})
    windows = report.get("diagnostics", {}).get("windows_processed", "-")
    return "| " + " | ".join([
        bag, matcher, str(windows), _f(sens.get("depth_change_vs_empty")),
        _f(sens.get("depth_rank_corr_with_empty")), _f(sens.get("depth_change_between_windows")),
        _f(sens.get("semantic_agreement_with_mode_layout")),
        _f(sens.get("semantic_agreement_with_empty")), _f(model.get("success_fraction"), 2),
        _f(orb.get("success_fraction"), 2), _f(model.get("unmoved_fraction"), 2),
        _f(orb.get("unmoved_fraction"), 2)]) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bags", default=str(REPO / "test/data/real_bags"))
    parser.add_argument("--matcher", action="append", default=None,
                        help="event matcher checkpoint(s); default the shipped one")
    parser.add_argument("--rate", type=float, default=0.25,
                        help="replay speed (below 1: every window is processed)")
    parser.add_argument("--out", default=str(REPO / "out/bench/real"))
    parser.add_argument("--docs", default=None, help="also write the table to this file")
    args = parser.parse_args()
    bags = sorted(p for p in Path(args.bags).iterdir() if p.is_dir())
    matchers = args.matcher or [None]
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    runs = [(b, m) for b in bags for m in matchers]
    for bag, matcher in tqdm(runs, unit="eval"):
        name = Path(matcher).name if matcher else "shipped"
        out = Path(args.out) / bag.name / name
        try:
            report = evaluate(bag, matcher, out, args.rate)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            why = "no window (too short)" if "no output" in str(exc) else "eval failed"
            lines.append(f"| {bag.name} | {name} | {why} | " + "- | " * 9)
            continue
        lines.append(row(bag.name, name, report))
    table = DOC_HEAD.format(rate=args.rate) + "\n".join(lines) + "\n"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "table.md").write_text(table)
    if args.docs:
        Path(args.docs).write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
