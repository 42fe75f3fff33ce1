"""``event-fm run``: the launch file's nodes in one process (no ros2 launch needed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from event_fm.cli.domain import add_domain_argument, apply_domain

DEFAULT_PARAMS = Path(__file__).resolve().parents[2] / "config" / "perception.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_domain_argument(parser, private_by_default=False)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="parameter YAML")
    parser.add_argument("--record", action="store_true", help="also run recorder_node")
    parser.add_argument("--checkpoint", default=None, help="override the model checkpoint")
    parser.add_argument("--device", default=None, help="override the device (auto/cpu/cuda:N)")
    parser.add_argument("--event-topic", default="/event_camera/events",
                        help="the driver's event packets (remaps the nodes' 'events')")
    parser.add_argument("--image-topic", default=None,
                        help="camera frames (remaps 'image'; also gives perception_node "
                        "frames; default /camera/image_raw for the recorder only)")
    parser.add_argument("--camera-info-topic", default="/camera/camera_info",
                        help="camera intrinsics (remaps 'camera_info')")


def params_problem(values: dict[str, Any], specs: list, node: str) -> str | None:
    """The first parameter the node would refuse at configure time, named with its range."""
    by_name = {spec.name: spec for spec in specs}
    for name, value in values.items():
        spec = by_name.get(name)
        if spec is None:
            return f"{node}: unknown parameter {name!r}"
        numeric = isinstance(spec.default, int | float) and not isinstance(spec.default, bool)
        if numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{node}.{name}: {value!r} is not a number"
        problem = spec.check(value)
        if problem:
            bounds = (f" (valid range {spec.min:g} .. {spec.max:g})"
                      if spec.min is not None and spec.max is not None else "")
            return f"{node}.{problem}{bounds}"
    return None


def run(args: argparse.Namespace) -> int:
    apply_domain(args, private_by_default=False)  # a bad --domain: one line, exit 2
    from event_fm.nodes.ros_types import install_stop_handlers

    # first, so a Ctrl-C during the heavy imports below is not swallowed by them
    stop = install_stop_handlers()
    import yaml

    from event_fm.nodes.graph import run_graph, yaml_parameters
    from event_fm.nodes.perception_params import PARAMS as PERCEPTION_PARAMS
    from event_fm.nodes.recorder_node import PARAMS as RECORDER_PARAMS

    try:
        if not isinstance(yaml.safe_load(Path(args.params).read_text()) or {}, dict):
            raise TypeError("not a mapping")
        perception = yaml_parameters(args.params, "event_fm_perception")
        recorder = yaml_parameters(args.params, "event_fm_recorder")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        print(f"event-fm run: {args.params}:{where} not valid YAML "
              f"({getattr(exc, 'problem', None) or exc})", file=sys.stderr)
        return 2
    except (AttributeError, TypeError):
        print(f"event-fm run: {args.params}: not a ROS 2 parameter file (expected "
              "NODE: {ros__parameters: {...}})", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"event-fm run: cannot read {args.params}: {exc}", file=sys.stderr)
        return 2
    problem = (params_problem(perception, PERCEPTION_PARAMS, "event_fm_perception")
               or (params_problem(recorder, RECORDER_PARAMS, "event_fm_recorder")
                   if args.record else None))
    if problem:
        print(f"event-fm run: {args.params}: {problem}", file=sys.stderr)
        return 2
    for key, value in (("checkpoint", args.checkpoint), ("device", args.device)):
        if value is not None:
            perception[key] = value
    if args.image_topic:  # frames for perception_node too (it has none by default)
        perception["image_topic"] = "image"
    remaps = {"events": args.event_topic, "image": args.image_topic or "/camera/image_raw",
              "camera_info": args.camera_info_topic}
    try:
        run_graph(perception, recorder if args.record else None, stop, remaps)
    except (RuntimeError, ValueError) as exc:
        print(f"event-fm run: {exc}", file=sys.stderr)
        return 1
    return 0
