"""Pipeline benchmark (issue 8): subscription-path throughput, end-to-end latency, and pipeline
overhead relative to the model forward.

    scripts/with_env.sh python benchmarks/pipeline.py [--checkpoint models/default]

1. Subscription path: what a callback does per EventPacket (decode EVT3 + append to the buffer),
   on rclpy message objects, one core, for packet sizes of 1 ms at rising event rates; the
   sustainable rate is where the per-packet cost stays below the packet period.
2. Overhead: per window, voxelization + post-processing + event image versus the model forward,
   on the demo recording.
3. End to end: packet in -> depth out percentiles, replaying the demo bag over DDS into
   perception_node (``event-fm eval``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def synthetic_stream(rate_ev_s: float, seconds: float, width=640, height=480, seed=0):
    rng = np.random.default_rng(seed)
    from event_fm.io import make_events

    n = int(rate_ev_s * seconds)
    t = np.sort(rng.integers(0, int(seconds * 1e6), n)) * 1000
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n), t,
                       rng.integers(0, 2, n))


def subscription_path(rates_mev: list[float]) -> list[dict]:
    from event_camera_msgs.msg import EventPacket

    from event_fm.io.convert import packetize
    from event_fm.io.events import EventBatch
    from event_fm.io.evt3_encoder import Evt3Encoder
    from event_fm.pipeline.buffer import EventBuffer
    from event_fm.pipeline.clock import ClockOffsetEstimator
    from event_fm.pipeline.ingest import StreamIngest

    rows = []
    for rate in rates_mev:
        events = synthetic_stream(rate * 1e6, 0.5)
        encoder = Evt3Encoder()
        msgs = []
        for k, (packet, _) in enumerate(packetize([EventBatch(events=events)], 1_000_000)):
            msg = EventPacket(width=640, height=480, encoding="evt3", seq=k)
            msg.header.stamp.sec = 1_700_000_000
            msg.header.stamp.nanosec = int(packet["t"][0])
            msg.events = encoder.encode(packet)
            msgs.append(msg)
        ingest = StreamIngest("bench", EventBuffer(), ClockOffsetEstimator())
        ingest.add_packet(msgs[0])  # JIT warm-up
        ingest = StreamIngest("bench", EventBuffer(), ClockOffsetEstimator())
        start = time.perf_counter()
        for msg in msgs:
            ingest.add_packet(msg)
        elapsed = time.perf_counter() - start
        per_packet_ms = elapsed / len(msgs) * 1e3
        rows.append({"offered_mev_s": rate, "packets": len(msgs),
                     "ms_per_1ms_packet": per_packet_ms,
                     "capacity_mev_s": len(events) / elapsed / 1e6,
                     "keeps_up": per_packet_ms < 1.0})
    return rows


def overhead(checkpoint: Path, bag: Path) -> list[dict]:
    """Per window: voxelization and post-processing versus the model forward, for the depth
    path alone and for every output (semantics, pose with RANSAC, the events image)."""
    from event_fm.io.rosbag import BagReader
    from event_fm.pipeline.engine import EngineConfig, PerceptionEngine

    cases = {"depth only": {"depth"},
             "depth+semantic+pose+events image": {"depth", "semantic", "pose", "events_image"}}
    rows = []
    for name, outputs in cases.items():
        engine = PerceptionEngine.from_checkpoint(checkpoint, EngineConfig(device="cpu"))
        times = []
        with BagReader(bag) as reader:
            for message in reader.messages(["/event_camera/events"]):
                engine.add_packet(reader.deserialize(message))
                spec = engine.next_window()
                if spec is not None:
                    times.append(engine.process(spec, outputs).latency_s)
        times = times[2:]  # warm-up
        infer = float(np.median([t["infer"] for t in times]))
        other = float(np.median([t["voxelize"] + t["postprocess"] for t in times]))
        rows.append({"case": name, "windows": len(times), "infer_ms": 1e3 * infer,
                     "pipeline_ms": 1e3 * other, "overhead_fraction": other / infer})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(REPO / "models" / "default"))
    parser.add_argument("--bag", default=str(REPO / "demo" / "bag"))
    parser.add_argument("--skip-dds", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)

    print("1. subscription path (decode + append per 1 ms EVT3 packet, one core)")
    print(f"{'offered Mev/s':>14} {'ms/packet':>10} {'capacity Mev/s':>15} keeps up")
    for row in subscription_path([5, 20, 50, 100]):
        print(f"{row['offered_mev_s']:>14.0f} {row['ms_per_1ms_packet']:>10.3f} "
              f"{row['capacity_mev_s']:>15.1f} {row['keeps_up']}")

    print("\n2. pipeline overhead vs model forward (demo recording, CPU, 1 thread)")
    for o in overhead(Path(args.checkpoint), Path(args.bag)):
        print(f"   {o['case']}: infer {o['infer_ms']:.1f} ms, voxelize+postprocess "
              f"{o['pipeline_ms']:.1f} ms -> overhead {100 * o['overhead_fraction']:.1f}% of "
              f"the forward ({o['windows']} windows)")

    if not args.skip_dds:
        from event_fm.nodes.evaluation import evaluate_bag

        print("\n3. end to end over DDS (demo bag replayed into perception_node)")
        report = evaluate_bag(args.bag, args.checkpoint, REPO / "out" / "bench_pipeline",
                              device="cpu")
        lat = report["metrics"].get("latency_ms", {})
        print("   packet in -> depth out: " + ", ".join(f"{k} {v:.0f} ms"
                                                       for k, v in lat.items()))
        d = report["diagnostics"]
        print(f"   windows processed {d.get('windows_processed')}, dropped behind "
              f"{d.get('windows_dropped_behind')}")


if __name__ == "__main__":
    main()
