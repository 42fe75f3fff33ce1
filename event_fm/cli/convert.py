"""``event-fm convert IN OUT``: between Prophesee .raw, AEDAT4, text, HDF5 and rosbag2.

A rosbag2 output carries ``event_camera_msgs/EventPacket`` messages in EVT3, cut into packets of
``--packet-us`` microseconds like metavision_driver's, stamped with the events' own time.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="bag, .raw, .aedat4, .h5, events.txt or ECD folder")
    parser.add_argument("output", help="output path; the format follows the suffix "
                        "(.raw, .h5, .txt, or a directory / .mcap name for rosbag2)")
    parser.add_argument("--topic", default=None, help="event topic to read from an input bag")
    parser.add_argument("--out-topic", default="/event_camera/events",
                        help="event topic in an output bag")
    parser.add_argument("--packet-us", type=int, default=1000,
                        help="packet duration in an output bag (us)")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument("--width", type=int, default=0, help="sensor width if the input lacks it")
    parser.add_argument("--height", type=int, default=0, help="sensor height if the input lacks it")
    parser.add_argument("--overwrite", action="store_true")


def run(args: argparse.Namespace) -> int:
    from event_fm.io.convert import convert
    from event_fm.io.errors import UnreadableInputError

    try:
        n = convert(args.input, args.output, topic=args.topic, out_topic=args.out_topic,
                    packet_us=args.packet_us, storage=args.storage, width=args.width,
                    height=args.height, overwrite=args.overwrite, progress=True)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as exc:
        print(f"event-fm convert: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UnreadableInputError) else 1
    print(f"wrote {n} events to {args.output}")
    return 0
