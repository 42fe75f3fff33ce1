"""``event-fm`` entry point: one sub-command per module, each registering its own parser.

Sub-command modules are imported lazily so that ``event-fm info`` does not pay for torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from event_fm import __version__

DESCRIPTION = ("Event-camera perception with foundation-model encoders: inspect, convert and "
               "simulate recordings, replay them over ROS 2, run and evaluate the perception "
               "nodes, and train the models. 'event-fm COMMAND --help' for each command.")

#: sub-command name -> (module path, one-line help). Each module has add_arguments() and run().
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("event_fm.cli.info", "summarize the event and image topics of a recording"),
    "convert": ("event_fm.cli.convert", "convert between .raw, AEDAT4, text, HDF5 and rosbag2"),
    "simulate": ("event_fm.cli.simulate", "simulate event-camera recordings with ground truth"),
    "replay": ("event_fm.cli.replay", "publish a rosbag2 over DDS with its timing and QoS"),
    "run": ("event_fm.cli.run", "run the perception (and recorder) nodes in one process"),
    "eval": ("event_fm.cli.eval", "replay a recording through the nodes and score the outputs"),
    "match": ("event_fm.cli.match", "match a camera frame / event window against another "
              "moment of a recording and draw it"),
    "export": ("event_fm.cli.export", "write a checkpoint as one ONNX graph (run by ONNX "
               "Runtime wherever a checkpoint goes)"),
    "import": ("event_fm.cli.import_checkpoint", "a peer's released checkpoint (REALM, GEP) as "
               "an event_fm checkpoint, loaded strictly"),
    "train": ("training.cli", "training: FAMILY STEP with FAMILY in distill, forecast, gep, "
              "reconstruct"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="event-fm", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"event-fm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(sub_parser)
    return parser


def _input_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean a bad input or config (one line, exit 2), not a bug."""
    import yaml

    from event_fm.common.strict_config import ConfigError
    from event_fm.io.errors import UnreadableInputError

    return (UnreadableInputError, ConfigError, ValueError, OSError, yaml.YAMLError)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    return text


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; every failure ends as one stderr line and a non-zero exit."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while the sub-command modules import
        return 130
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    prog = f"event-fm {args.command}"
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        if os.environ.get("EVENT_FM_DEBUG"):
            raise
        if isinstance(exc, _input_errors()):
            print(f"{prog}: {_one_line(exc)}", file=sys.stderr)
            return 2
        print(f"{prog}: {type(exc).__name__}: {_one_line(exc)} "
              "(set EVENT_FM_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def _entry() -> None:
    try:
        code = main()
    except KeyboardInterrupt:  # during argument parsing or imports
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    _entry()
