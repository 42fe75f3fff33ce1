"""What a user's window costs (issue 19): the shipped checkpoint through the engine, per stage,
at three sensor sizes and three event rates; the subscription path; a full-rate ``eval``.

    scripts/with_env.sh .venv/bin/python benchmarks/pipeline.py [--checkpoint models/default]
        [--windows 12] [--threads 1] [--skip-dds] [--skip-stages] [--runs 3]

1. Per-stage ms per 50 ms window, engine as perception_node builds it (the default model's
   depth + semantic heads, pose from the shipped event matcher, threads=1, numba voxels), at
   240x180, 640x480 and 1280x720 and 1/5/20 Mev/s. The events are the demo recording's (real
   scene structure, so matching and RANSAC see what they see live), spread over the larger
   sensors and resampled to the rate. The ratio column is the window's total against 240x180 at
   the same rate (issue 19's target: <= 1.5).
2. Subscription path: decode + append per 1 ms EVT3 packet on rclpy messages, one core.
3. End to end: the demo bag replayed at its own speed over DDS into perception_node
   (``event-fm eval`` at rate 1, a private DDS domain): windows processed of those due,
   packet-to-depth latency, with the model in its own process (the default) and in the
   node's process (``inference_process: false``), median of ``--runs`` each.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from event_fm.cli.domain import add_domain_argument, apply_domain  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZES = ((240, 180), (640, 480), (1280, 720))
RATES_MEV = (1.0, 5.0, 20.0)
STAGES = ("voxelize", "infer", "postprocess", "matcher", "pose", "total")


def demo_events(bag: Path) -> tuple[np.ndarray, int, int]:
    from event_fm.io.readers import read_all_events, read_bag_events

    first = next(iter(read_bag_events(bag)))
    return read_all_events(bag), first.width, first.height


def scaled_stream(events: np.ndarray, src: tuple[int, int], dst: tuple[int, int],
                  rate_mev: float, seconds: float, seed: int = 0) -> np.ndarray:
    """The recording's events on a ``dst`` sensor at ``rate_mev``: positions scaled (jittered
    inside the scaled pixel), events drawn with replacement to the rate, times kept."""
    from event_fm.io import make_events

    rng = np.random.default_rng(seed)
    t = events["t"] - events["t"][0]
    span = int(min(seconds * 1e9, t[-1]))
    pool = np.flatnonzero(t <= span)
    n = int(rate_mev * 1e6 * span / 1e9)
    pick = np.sort(rng.choice(pool, n, replace=True))
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    x = np.minimum((events["x"][pick] + rng.random(n)) * sx, dst[0] - 1).astype(np.int64)
    y = np.minimum((events["y"][pick] + rng.random(n)) * sy, dst[1] - 1).astype(np.int64)
    return make_events(x, y, t[pick], events["p"][pick])


def build_engine(checkpoint: Path, matcher: Path, threads: int):
    from event_fm.models.event_matcher import load_event_matcher
    from event_fm.pipeline.engine import EngineConfig, PerceptionEngine
    from event_fm.pipeline.matcher_outputs import matcher_outputs

    engine = PerceptionEngine.from_checkpoint(checkpoint, EngineConfig(device="cpu",
                                                                       threads=threads))
    engine.register(*matcher_outputs(load_event_matcher(matcher)))
    return engine


def stage_table(checkpoint: Path, matcher: Path, bag: Path, windows: int,
                threads: int) -> list[dict]:
    from event_fm.pipeline.scheduler import WindowSpec

    events, w0, h0 = demo_events(bag)
    rows = []
    cases = [(size, rate) for rate in RATES_MEV for size in SIZES]
    for (width, height), rate in tqdm(cases, desc="engine cases"):
        engine = build_engine(checkpoint, matcher, threads)
        engine.configure_thread()
        engine.ingest.decoder.width, engine.ingest.decoder.height = width, height
        f = float(max(width, height))
        engine.set_intrinsics(np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]]))
        engine.warm_up((height, width))
        # 0.95 s: 19 windows, and at 20 Mev/s under the buffer's 30 M events
        stream = scaled_stream(events, (w0, h0), (width, height), rate, 0.95)
        engine.buffer.append(stream)
        times = []
        for k in range(windows + 2):
            t0 = 50_000_000 * (k % 19)
            spec = WindowSpec(t_end=t0 + 50_000_000, t_start=t0, stamp_ns=t0 + 50_000_000)
            if k % 19 == 0:  # loop over the stream
                engine.buffer.clear()
                engine.buffer.append(stream)
            result = engine.process(spec, {"depth", "semantic", "pose"})
            if k >= 2:
                times.append(result.latency_s)
        row = {"size": f"{width}x{height}", "rate_mev": rate,
               "events_per_window": int(rate * 1e6 * 0.05)}
        for stage in STAGES:
            row[stage] = 1e3 * float(np.median([t.get(stage, 0.0) for t in times]))
        rows.append(row)
    base = {r["rate_mev"]: r["total"] for r in rows if r["size"] == "240x180"}
    for r in rows:
        r["vs_240x180"] = r["total"] / base[r["rate_mev"]]
    return rows


def subscription_path(rates_mev: list[float]) -> list[dict]:
    from event_camera_msgs.msg import EventPacket

    from event_fm.io import make_events
    from event_fm.io.convert import packetize
    from event_fm.io.events import EventBatch
    from event_fm.io.evt3_encoder import Evt3Encoder
    from event_fm.pipeline.buffer import EventBuffer
    from event_fm.pipeline.clock import ClockOffsetEstimator
    from event_fm.pipeline.ingest import StreamIngest

    rng = np.random.default_rng(0)
    rows = []
    for rate in rates_mev:
        n = int(rate * 1e6 * 0.5)
        t = np.sort(rng.integers(0, 500_000, n)) * 1000
        events = make_events(rng.integers(0, 640, n), rng.integers(0, 480, n), t,
                             rng.integers(0, 2, n))
        encoder = Evt3Encoder()
        msgs = []
        for k, (packet, _) in enumerate(packetize([EventBatch(events=events)], 1_000_000)):
            msg = EventPacket(width=640, height=480, encoding="evt3", seq=k)
            msg.header.stamp.sec = 1_700_000_000
            msg.header.stamp.nanosec = int(packet["t"][0])
            msg.events = encoder.encode(packet)
            msgs.append(msg)
        StreamIngest("bench", EventBuffer(), ClockOffsetEstimator()).add_packet(msgs[0])  # JIT
        ingest = StreamIngest("bench", EventBuffer(), ClockOffsetEstimator())
        start = time.perf_counter()
        for msg in msgs:
            ingest.add_packet(msg)
        elapsed = time.perf_counter() - start
        per_packet_ms = elapsed / len(msgs) * 1e3
        rows.append({"offered_mev_s": rate, "ms_per_1ms_packet": per_packet_ms,
                     "capacity_mev_s": len(events) / elapsed / 1e6})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(REPO / "models" / "default"))
    parser.add_argument("--matcher", default=str(REPO / "models" / "event_matcher"))
    parser.add_argument("--bag", default=str(REPO / "demo" / "bag"))
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-dds", action="store_true")
    parser.add_argument("--runs", type=int, default=3, help="full-rate evals per design")
    parser.add_argument("--skip-stages", action="store_true", help="only the DDS part")
    add_domain_argument(parser, private_by_default=True)
    args = parser.parse_args()
    apply_domain(args, private_by_default=True)
    if not args.skip_stages:
        stage_tables(args)
    if not args.skip_dds:
        dds_table(args)


def stage_tables(args: argparse.Namespace) -> None:
    print(f"1. per-stage ms per 50 ms window (shipped checkpoint + event matcher, CPU, "
          f"{args.threads} thread(s), median of {args.windows})")
    rows = stage_table(Path(args.checkpoint), Path(args.matcher), Path(args.bag), args.windows,
                       args.threads)
    print("| sensor | Mev/s | " + " | ".join(STAGES) + " | total vs 240x180 |")
    print("|---|---|" + "---|" * len(STAGES) + "---|")
    for r in rows:
        print(f"| {r['size']} | {r['rate_mev']:g} | "
              + " | ".join(f"{r[s]:.1f}" for s in STAGES) + f" | {r['vs_240x180']:.2f}x |")

    print("\n2. subscription path (decode + append per 1 ms EVT3 packet, one core)")
    print("| offered Mev/s | ms per packet | capacity Mev/s |\n|---|---|---|")
    for row in subscription_path([5, 20, 50]):
        print(f"| {row['offered_mev_s']:.0f} | {row['ms_per_1ms_packet']:.3f} | "
              f"{row['capacity_mev_s']:.1f} |")


def dds_table(args: argparse.Namespace) -> None:
    print("\n3. end to end over DDS: the demo bag at its own speed into perception_node "
          f"(median of {args.runs} runs each)")
    print("| model runs | windows processed / due | p50 ms | p90 ms | p99 ms |")
    print("|---|---|---|---|---|")
    summary = {}
    for label, separate in (("own process (default)", True), ("node's process", False)):
        runs = [full_rate_eval(Path(args.bag), Path(args.checkpoint), separate)
                for _ in range(args.runs)]
        med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        summary[label] = med
        print(f"| {label} | {med['processed']:.0f} / {med['due']:.0f} "
              f"({med['processed'] / max(1, med['due']):.0%}) | {med['p50']:.0f} | "
              f"{med['p90']:.0f} | {med['p99']:.0f} |")
    own, one = summary["own process (default)"], summary["node's process"]
    print(f"   own process vs node's process: {own['processed'] / max(1, one['processed']):.2f}x"
          f" windows, p50 {one['p50'] / max(1e-9, own['p50']):.2f}x lower")


def full_rate_eval(bag: Path, checkpoint: Path, inference_process: bool) -> dict[str, float]:
    """One ``event-fm eval`` of ``bag`` at its own speed: windows and packet->depth latency."""
    from event_fm.nodes.evaluation import evaluate_bag

    report = evaluate_bag(bag, checkpoint, REPO / "out" / "bench_pipeline", rate=1.0,
                          device="cpu", node_parameters={"inference_process": inference_process})
    lat = report["metrics"].get("latency_ms", {})
    d = report["diagnostics"]
    return {"processed": float(d.get("windows_processed", 0)),
            "due": float(d.get("windows_due", 0)),
            **{k: float(lat.get(k, float("nan"))) for k in ("p50", "p90", "p99")}}


if __name__ == "__main__":
    main()
