"""``event-fm run``: the launch file's nodes in one process (no ros2 launch needed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PARAMS = Path(__file__).resolve().parents[2] / "config" / "perception.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="parameter YAML")
    parser.add_argument("--record", action="store_true", help="also run recorder_node")
    parser.add_argument("--checkpoint", default=None, help="override the model checkpoint")
    parser.add_argument("--device", default=None, help="override the device (auto/cpu/cuda:N)")
    parser.add_argument("--event-topic", default=None)
    parser.add_argument("--image-topic", default=None)


def run(args: argparse.Namespace) -> int:
    from event_fm.nodes.ros_types import install_stop_handlers

    # first, so a Ctrl-C during the heavy imports below is not swallowed by them
    stop = install_stop_handlers()
    from event_fm.nodes.graph import run_graph, yaml_parameters

    try:
        perception = yaml_parameters(args.params, "event_fm_perception")
        recorder = yaml_parameters(args.params, "event_fm_recorder")
    except (OSError, ValueError) as exc:
        print(f"event-fm run: cannot read {args.params}: {exc}", file=sys.stderr)
        return 2
    for key, value in (("checkpoint", args.checkpoint), ("device", args.device),
                       ("event_topic", args.event_topic), ("image_topic", args.image_topic)):
        if value is not None:
            perception[key] = value
            if key in ("event_topic", "image_topic") and value:
                recorder[key] = value
    try:
        run_graph(perception, recorder if args.record else None, stop)
    except (RuntimeError, ValueError) as exc:
        print(f"event-fm run: {exc}", file=sys.stderr)
        return 1
    return 0
