"""``event-fm replay BAG``: publish a recording over DDS with its timing and recorded QoS."""

from __future__ import annotations

import argparse
import sys

from event_fm.cli.domain import add_domain_argument, apply_domain


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_domain_argument(parser, private_by_default=False)
    parser.add_argument("bag", help="rosbag2 directory or .db3/.mcap file")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("--loop", action="store_true", help="replay until interrupted")
    parser.add_argument("--topics", nargs="+", default=None, help="only these topics")
    parser.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO",
                        help="publish topic FROM under the name TO")
    parser.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to this long for the event topics to have a subscriber "
                        "(then up to 2 s for the other topics)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before playing")
    parser.add_argument("--linger", type=float, default=1.0,
                        help="seconds to stay up after the last message so DDS delivers it")


def _parse_remap(items: list[str]) -> dict[str, str]:
    remap = {}
    for item in items:
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"bad remap {item!r}: use FROM:=TO")
        remap[src] = dst
    return remap


def topics_problem(bag: str, topics: list[str] | None, remap: dict[str, str]) -> str | None:
    """A --topics or --remap name the bag does not have (checked before DDS starts), or None.

    Without it a typo replays nothing and reports success.
    """
    from event_fm.io.rosbag import BagReader

    with BagReader(bag) as reader:
        have = sorted(reader.topics)
    if not have:
        return f"{bag}: the bag has no topics"
    named = [("--topics", t) for t in topics or []] + [("--remap", t) for t in remap]
    missing = [(flag, t) for flag, t in named if t not in have]
    if missing:
        flag = missing[0][0]
        names = ", ".join(t for f, t in missing if f == flag)
        return f"{flag} {names}: not in {bag} (its topics: {', '.join(have)})"
    return None


def run(args: argparse.Namespace) -> int:
    apply_domain(args, private_by_default=False)  # a bad --domain: one line, exit 2
    if args.rate <= 0:
        print("event-fm replay: --rate must be positive", file=sys.stderr)
        return 2
    try:
        remap = _parse_remap(args.remap)
    except ValueError as exc:
        print(f"event-fm replay: {exc}", file=sys.stderr)
        return 2
    try:
        problem = topics_problem(args.bag, args.topics, remap)
    except FileNotFoundError as exc:
        print(f"event-fm replay: {exc}", file=sys.stderr)
        return 1
    if problem:
        print(f"event-fm replay: {problem}", file=sys.stderr)
        return 2
    from event_fm.nodes.replay import replay_bag

    try:
        stats = replay_bag(args.bag, rate=args.rate, loop=args.loop, topics=args.topics,
                           remap=remap, wait_for_subscribers=args.wait_for_subscribers,
                           delay=args.delay, linger=args.linger)
    except (FileNotFoundError, ValueError) as exc:
        print(f"event-fm replay: {exc}", file=sys.stderr)
        return 1
    for topic, why in stats.skipped_topics.items():
        print(f"event-fm replay: skipped {topic}: {why}", file=sys.stderr)
    if stats.unmatched:
        print("event-fm replay: not every topic had a subscriber; played anyway",
              file=sys.stderr)
    print(f"event-fm replay: published {stats.published} messages")
    return 0
