"""``event-fm simulate``: synthetic event-camera recordings with ground truth, as rosbag2.

Either a procedural scene (``--scene``; events, frames, depth, semantics, pose) or the user's
own footage (``--from-video`` a folder of images or a video; events and frames only). Bad
parameters fail while parsing, with one line and exit status 2, before anything is computed.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

SCENES = ("street", "highway", "park", "room", "tabletop", "corridor")
MOTIONS = ("forward", "handheld", "rotation", "translation")
DEGRADATIONS = ("lowlight", "blur", "overexposure")
MAX_SIDE = 4096
#: width * height * frames above which a run would not fit memory / disk sensibly (~20 GB).
MAX_PIXEL_FRAMES = 2_000_000_000


def _fail(message: str) -> NoReturn:
    print(f"event-fm simulate: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _non_negative(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
        return value
    parse.__name__ = f"non-negative {kind.__name__}"
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def resolution(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H), each 8..4096."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 346x260, got {text!r}")
    w, h = int(parts[0]), int(parts[1])
    if not (8 <= w <= MAX_SIDE and 8 <= h <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"{w}x{h}: each side must be 8..{MAX_SIDE} pixels")
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.error = _fail  # type: ignore[method-assign]  # one line instead of usage + message
    parser.add_argument("--out", required=True, help="output bag directory")
    src = parser.add_argument_group("source")
    src.add_argument("--scene", choices=SCENES, default=None,
                     help="procedural scene kind (default street): street, highway, park, room "
                          "(a camera along a street-like axis, 2-80 m), tabletop (objects on a "
                          "table at 0.3-2 m), corridor")
    src.add_argument("--motion", choices=MOTIONS, default=None,
                     help="camera motion (default: the scene's own, forward for street, highway, "
                          "park and room, handheld for tabletop and corridor): forward, handheld "
                          "(6-DoF, slow drift plus rotation wobble), rotation (pure rotation), "
                          "translation (pure translation)")
    src.add_argument("--from-video", metavar="PATH", default=None,
                     help="simulate from a folder of images or a video instead of a scene")
    src.add_argument("--seed", type=_non_negative(int), default=0,
                     help="scene layout, textures, motion and pixel noise (default 0)")
    src.add_argument("--duration", type=_positive(float), default=None,
                     help="seconds (default 1 for scenes, the whole footage for --from-video)")
    src.add_argument("--resolution", type=resolution, default=None,
                     help="WxH (default 346x260; for --from-video the footage is resized)")
    src.add_argument("--fps", type=_positive(float), default=None,
                     help="frame rate (default 20; for footage without timestamps: its rate)")
    src.add_argument("--degrade", choices=DEGRADATIONS, default=None,
                     help="deliver degraded frames on /camera/image_raw (clean ones on "
                          "/camera/image_clean)")
    src.add_argument("--flow", action="store_true",
                     help="also write forward optical flow ground truth on /gt/flow (32FC2)")
    src.add_argument("--photo-textures", type=_fraction, default=0.0, metavar="FRACTION",
                     help="fraction of surfaces showing a real photograph (scikit-image's bundled "
                          "samples; needs scikit-image), default 0")
    src.add_argument("--exposure-ms", type=_non_negative(float), default=30.0,
                     help="exposure of blurred frames")
    src.add_argument("--light-scale", type=_positive(float), default=0.05,
                     help="scene brightness of low-light frames relative to daylight (0-1]")
    pix = parser.add_argument_group("event pixel")
    pix.add_argument("--threshold", type=_positive(float), default=0.25,
                     help="ON and OFF contrast threshold (log units)")
    pix.add_argument("--sigma", type=_non_negative(float), default=0.03,
                     help="per-pixel threshold spread")
    # defaults: the values fitted to the real driver bags (EsimParams, docs/sensor_noise.md)
    pix.add_argument("--refractory-us", type=_non_negative(float), default=265.0,
                     help="per-pixel dead time after an event")
    pix.add_argument("--noise-rate", type=_non_negative(float), default=0.123,
                     help="shot noise, Hz per pixel")
    pix.add_argument("--leak-rate", type=_non_negative(float), default=0.0033,
                     help="leak events (ON), Hz per pixel")
    pix.add_argument("--hot-pixel-fraction", type=_non_negative(float), default=1.65e-4,
                     help="share of pixels that fire on their own")
    pix.add_argument("--hot-pixel-rate", type=_non_negative(float), default=27.7,
                     help="rate of a hot pixel, Hz")
    out = parser.add_argument_group("output")
    out.add_argument("--start-epoch", type=_non_negative(float), default=1.7e9,
                     help="ROS time (s) of simulation time 0; the sensor-to-ROS clock offset")
    out.add_argument("--packet-us", type=_positive(int), default=1000,
                     help="EventPacket duration")
    out.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    out.add_argument("--overwrite", action="store_true")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(_validate=_validate)


def _validate(args: argparse.Namespace) -> None:
    """Checks that involve several arguments (still before any work)."""
    if args.from_video is not None:
        if args.scene is not None:
            _fail("--scene and --from-video exclude each other")
        if args.degrade is not None or args.flow or args.motion is not None \
                or args.photo_textures > 0:
            _fail("--degrade, --flow, --motion and --photo-textures need a procedural scene "
                  "(not --from-video)")
        return
    w, h = args.resolution or (346, 260)
    frames = round((args.duration or 1.0) * (args.fps or 20.0))
    if frames < 1:
        _fail("duration * fps gives no frame")
    if w * h * frames > MAX_PIXEL_FRAMES:
        _fail(f"{w}x{h} x {frames} frames is too large (limit {MAX_PIXEL_FRAMES:.0e} "
              "pixel-frames); shorten --duration or lower --resolution/--fps")


def run(args: argparse.Namespace) -> int:
    args._validate(args)
    import time

    from event_fm.sim.esim import EsimParams

    params = EsimParams(threshold_on=args.threshold, threshold_off=args.threshold,
                        sigma=args.sigma, refractory_ns=int(args.refractory_us * 1000),
                        shot_noise_rate=args.noise_rate, leak_rate=args.leak_rate,
                        hot_pixel_fraction=min(1.0, args.hot_pixel_fraction),
                        hot_pixel_rate=args.hot_pixel_rate,
                        seed=args.seed)
    start = time.time()
    try:
        counts, duration = _simulate(args, params)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"event-fm simulate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("event-fm simulate: interrupted; no bag written", file=sys.stderr)
        return 130
    rate = counts["events"] / duration if duration > 0 else 0.0
    print(f"wrote {args.out}: {counts['frames']} frames, {counts['events']} events "
          f"({rate / 1e6:.2f} Mev/s) in {time.time() - start:.1f} s")
    return 0


def _simulate(args: argparse.Namespace, params) -> tuple[dict, float]:
    from event_fm import __version__
    from event_fm.sim import classes
    from event_fm.sim.bag_output import write_sim_bag
    from event_fm.sim.degrade import DegradeParams
    from event_fm.sim.pipeline import SceneSimulator, SimConfig, simulate_video
    from event_fm.sim.scene import generate_scene

    epoch = int(round(args.start_epoch * 1e9))
    common = dict(start_epoch_ns=epoch, packet_us=args.packet_us, storage=args.storage,
                  overwrite=args.overwrite, progress=not args.quiet)
    meta = {"generator": f"event_fm.sim {__version__}", "esim": params.to_dict(),
            "class_names": list(classes.CLASS_NAMES), "class_colors": classes.CLASS_COLORS,
            "ignore_index": classes.IGNORE}
    if args.from_video is not None:
        from event_fm.sim.frames_io import frame_size

        size = args.resolution or frame_size(args.from_video)
        frames = simulate_video(args.from_video, params, fps=args.fps, size=size,
                                max_duration=args.duration)
        meta.update(source="video", input=str(args.from_video), fps=args.fps)
        last = {"t": 0}

        def tracked():
            for f in frames:
                last["t"] = f.t_ns
                yield f
        counts = write_sim_bag(args.out, tracked(), size[0], size[1], meta, **common)
        return counts, last["t"] * 1e-9
    w, h = args.resolution or (346, 260)
    degrade = None
    if args.degrade is not None:
        try:
            degrade = DegradeParams(args.degrade, exposure_s=args.exposure_ms * 1e-3,
                                    light_scale=args.light_scale)
        except ValueError as exc:
            _fail(str(exc))
    config = SimConfig(kind=args.scene or "street", seed=args.seed, width=w, height=h,
                       duration=args.duration or 1.0, fps=args.fps or 20.0, esim=params,
                       degrade=degrade, flow=args.flow, photo_textures=args.photo_textures)
    scene = None
    if args.motion is not None:  # else the simulator's own scene: the kind's default motion
        scene = generate_scene(config.kind, config.seed, config.duration, motion=args.motion)
    sim = SceneSimulator(config, scene)
    meta.update(source="procedural", config=config.to_dict(), scene=sim.scene.summary(),
                intrinsics=sim.intrinsics.to_dict(), pose="T_world_camera; world x forward, "
                "y left, z up; camera optical frame x right, y down, z forward")
    counts = write_sim_bag(args.out, sim.frames(), w, h, meta, K=sim.intrinsics.K,
                           total=config.n_frames, **common)
    counts["samples"] = sim.samples
    return counts, (config.n_frames - 1) / config.fps
