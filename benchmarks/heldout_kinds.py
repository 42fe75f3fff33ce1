"""The shipped checkpoints through `event-fm eval` on held-out recordings of every scene kind,
each figure beside its baselines (pose protocol, empty-window and constant depth, constant
layout). Writes a markdown table (default docs/heldout_kinds.md) and the per-bag reports.

    scripts/with_env.sh .venv/bin/python benchmarks/heldout_kinds.py \
        [--bags data/generated/varied_eval/heldout] [--rate 0.25] [--out out/bench/kinds] \
        [--compare CHECKPOINT]

``--compare`` scores a second checkpoint (the model shipped before, or a candidate) on the same
bags into a second table. What the table file holds after the ``KEEP`` line (hand-written
sections) is kept.

Make the bags with: HELDOUT_PER_KIND=1 SEEDS_PER_MIX=0 CLOSE_PER_MIX=0 HELDOUT_S=2 \
    scripts/simulate_varied_data.sh data/generated/varied_eval
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]


def _f(v, d: int = 3) -> str:
    return f"{v:.{d}f}" if isinstance(v, (int, float)) else "-"


def row(name: str, m: dict) -> str:
    pose = m.get("pose", {})
    depth_b = m.get("depth_baselines", {})
    seg_b = m.get("semantic_baselines", {})

    def auc(method: str, key: str = "auc_10") -> str:
        return _f(pose.get(method, {}).get(key))

    return " | ".join([
        name, _f(m.get("absrel")), _f(m.get("absrel_median_scaled")),
        _f(depth_b.get("empty_window", {}).get("absrel_median_scaled")),
        _f(depth_b.get("constant", {}).get("absrel_median_scaled")),
        _f(m.get("rank_correlation")), _f(depth_b.get("empty_window", {}).get("rank_correlation")),
        _f(m.get("miou")), _f(seg_b.get("constant_layout", {}).get("miou")),
        auc("model"), auc("identity"), auc("orb_event_frames"), auc("orb_camera_frames"),
        auc("xfeat_camera_frames"),
        _f(pose.get("model", {}).get("unmoved_fraction"), 2),
        _f(pose.get("ground_truth", {}).get("unmoved_fraction"), 2)])


#: the table file's text after this line is kept when the tables are rewritten
KEEP = "<!-- written by hand below this line; benchmarks/heldout_kinds.py keeps it -->"

HEADER = ("| recording | AbsRel | AbsRel (med.-sc.) | empty window | constant | rank corr. "
          "| empty window | mIoU | constant layout | pose AUC@10 | identity | ORB events "
          "| ORB frames | XFeat frames | unmoved | true unmoved |\n" + "|---" * 16 + "|")


def score_bags(bags: list[Path], checkpoint: str | None, out: Path, rate: float) -> list[str]:
    """One table row per bag that `event-fm eval` scored with ``checkpoint``."""
    rows = []
    for bag in tqdm(bags, unit="bag", desc=checkpoint or "models/default"):
        extra = ["--checkpoint", checkpoint] if checkpoint else []
        result = subprocess.run([sys.executable, "-m", "event_fm.cli.main", "eval", str(bag),
                                 "--out", str(out / bag.name), "--rate", str(rate), *extra],
                                capture_output=True, text=True, cwd=REPO)
        if result.returncode != 0:
            print(f"{bag.name}: eval failed\n{result.stderr[-2000:]}", file=sys.stderr)
            continue
        report = json.loads((out / bag.name / "report.json").read_text())
        rows.append(row(bag.name, report["metrics"]))
    return rows


def table(rows: list[str]) -> str:
    return HEADER + "\n" + "\n".join(f"| {r} |" for r in rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bags", default="data/generated/varied_eval/heldout")
    parser.add_argument("--rate", type=float, default=0.25)
    parser.add_argument("--out", default="out/bench/kinds")
    parser.add_argument("--table", default="docs/heldout_kinds.md")
    parser.add_argument("--checkpoint", default=None,
                        help="model to score (default: the shipped models/default)")
    parser.add_argument("--compare", default=None,
                        help="a second model scored into a second table (the one shipped before, "
                             "or a candidate)")
    args = parser.parse_args()
    bags = sorted(p for p in Path(args.bags).iterdir() if p.is_dir())
    if not bags:
        print(f"no recordings in {args.bags}", file=sys.stderr)
        return 1
    shipped = score_bags(bags, args.checkpoint, Path(args.out) / "shipped", args.rate)
    text = ("# Held-out simulated recordings of every scene kind\n\n"
            f"`benchmarks/heldout_kinds.py --bags {args.bags} --rate {args.rate}`: "
            f"{args.checkpoint or 'the shipped default model'} and the event matcher through "
            "`event-fm eval`. AbsRel is metric; the other depth columns are "
            "scale-free (per-image median scaling; Spearman rank correlation); pose AUC@10 is "
            "of max(rotation, translation direction) with failures counted.\n\n"
            + table(shipped))
    if args.compare:
        other = score_bags(bags, args.compare, Path(args.out) / "compare", args.rate)
        text += (f"\n## {args.compare} on the same bags\n\n`--compare {args.compare}` (same "
                 "command, same matcher):\n\n" + table(other))
    table_path = Path(args.table)
    earlier = table_path.read_text() if table_path.exists() else ""
    if KEEP in earlier:
        text += "\n" + KEEP + earlier.split(KEEP, 1)[1]
    table_path.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
