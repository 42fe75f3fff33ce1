"""``event-fm convert IN OUT``: between Prophesee .raw, AEDAT4, text, HDF5 and rosbag2.

A rosbag2 output carries ``event_camera_msgs/EventPacket`` messages in EVT3, cut into packets of
``--packet-us`` microseconds like metavision_driver's, stamped with the events' own time.

A dataset sequence written to a bag becomes a complete recording that ``event-fm eval`` scores
as it is: an ECD folder (events.txt, images.txt + images/, groundtruth.txt, calib.txt) or an
MVSEC ``<seq>_data.hdf5`` with ``--gt <seq>_gt.hdf5`` (found beside it when not given) and
``--calib`` (MVSEC's intrinsics yaml, or fx,fy,cx,cy) give events, frames, camera_info,
``/gt/pose`` and (MVSEC) ``/gt/depth``; see :mod:`event_fm.io.datasets`.
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
    parser.add_argument("--gt", default=None, metavar="FILE",
                        help="MVSEC ground-truth HDF5 (<seq>_gt.hdf5: depth_image_rect, pose)")
    parser.add_argument("--calib", default=None, metavar="YAML|TXT|fx,fy,cx,cy",
                        help="intrinsics: MVSEC's Kalibr-style yaml (cam0), a calib.txt, or "
                             "fx,fy,cx,cy (overrides an ECD folder's calib.txt)")
    parser.add_argument("--frame-times", choices=["auto", "images", "depth"], default="auto",
                        help="MVSEC: stamp frames at the depth maps' times (auto when there is "
                             "depth, so eval can score it) or at their own")


def run(args: argparse.Namespace) -> int:
    from event_fm.io.convert import convert, is_dataset_conversion
    from event_fm.io.errors import UnreadableInputError

    try:
        if is_dataset_conversion(args.input, args.output):
            from event_fm.io.datasets import convert_dataset

            c = convert_dataset(args.input, args.output, gt=args.gt, calib=args.calib,
                                frame_times=args.frame_times, width=args.width,
                                height=args.height, packet_us=args.packet_us,
                                storage=args.storage, overwrite=args.overwrite, progress=True,
                                out_topic=args.out_topic)
            print(f"wrote {c['format']} to {args.output}: {c['events']} events, {c['frames']} "
                  f"frames, {c['depth']} depth maps, {c['poses']} frame poses "
                  f"({c['poses_raw']} recorded); ROS time = sensor time + "
                  f"{c['clock_offset_ns']} ns")
            return 0
        n = convert(args.input, args.output, topic=args.topic, out_topic=args.out_topic,
                    packet_us=args.packet_us, storage=args.storage, width=args.width,
                    height=args.height, overwrite=args.overwrite, progress=True,
                    gt=args.gt, calib=args.calib)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, OSError) as exc:
        print(f"event-fm convert: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, UnreadableInputError) else 1
    print(f"wrote {n} events to {args.output}")
    return 0


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    elif isinstance(exc, OSError) and exc.filename and exc.strerror and str(exc.filename) \
            not in str(exc.strerror):
        text = f"{exc.strerror}: {exc.filename}"
    else:
        text = str(exc)
    return " ".join(text.split()) or type(exc).__name__
