"""EventFM forward time and peak memory, batch 1: the shipped checkpoint by default.

By default the model is ``models/default`` (what the nodes run, at its own 96x128 input), plus
its tiled forward over whole sensors as the engine calls it (only the published outputs kept,
model-resolution canvas): 240x180, 640x480, 1280x720. ``--preset NAME`` times a random-weight
model of that preset instead, with the cases below. Cases: events with all heads, events with
depth only (and with the cheaper depth_logit_stride 4, preset only), the event encoder alone,
and the RGB teacher with all heads (preset only: the shipped model has no teacher). Time is
the median of ``--repeat`` calls after ``--warmup``; each case runs in a fresh process so that
its peak memory is its own. CPU memory is the peak resident-set growth over the process before
the first forward (ru_maxrss; torch allocations are invisible to tracemalloc); on CUDA it is
torch.cuda.max_memory_allocated above the weights.

    .venv/bin/python benchmarks/model_forward.py [--preset tiny] [--device cpu|cuda]
        [--repeat 30] [--warmup 5] [--threads N] [--onnx] [--json]

``--onnx`` exports the checkpoint (``event-fm export``, to out/bench/model.onnx) and runs the
model cases and the engine's tiled calls again through ONNX Runtime, the same inputs in the same
run, with the ratio to PyTorch beside them.

On a shared machine the load average is printed with the figures: read them next to it. With
other processes busy, torch's default of one thread per core can stall on every op (each waits
for a descheduled worker); ``--threads 1`` then gives the figures a dedicated core would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    # name: (input, heads, config overrides)
    "events_all_heads": ("events", None, {}),
    "events_depth": ("events", ("depth",), {}),
    "events_depth_stride4": ("events", ("depth",), {"depth_logit_stride": 4}),
    "events_encoder_only": ("events", (), {}),
    "image_all_heads": ("image", None, {}),
    "engine_240x180": ("sensor", (180, 240), {}),
    "engine_640x480": ("sensor", (480, 640), {}),
    "engine_1280x720": ("sensor", (720, 1280), {}),
}
PRESET_ONLY = ("events_depth_stride4", "image_all_heads")
SENSOR_CASES = ("engine_240x180", "engine_640x480", "engine_1280x720")
REPO = Path(__file__).resolve().parents[1]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


ONNX_CASES = ("events_all_heads", "events_depth", "events_encoder_only") + SENSOR_CASES


def run_case(name: str, preset: str | None, device: str, repeat: int, warmup: int,
             checkpoint: str) -> dict:
    import torch

    from event_fm.models import EventFM, EventFMConfig, load_model

    source, heads, overrides = CASES[name]
    torch.manual_seed(0)
    if preset:
        model = EventFM(EventFMConfig(preset=preset, **overrides)).eval().to(device)
    else:
        model = load_model(checkpoint, device).eval()
    h, w = model.img_size
    if source == "sensor":  # the engine's call: depth + semantics, published keys, native
        h, w = heads
        x = torch.rand(1, model.config.num_bins, h, w, device=device)
        heads = ("depth", "segmentation")

        def forward(v, heads):
            return model.forward_events_tiled(v, heads, keep=("depth", "semantic_logits"),
                                              native=True)
    elif checkpoint.endswith(".onnx"):  # ONNX Runtime computes only the outputs kept
        x = torch.randn(1, model.config.num_bins, h, w, device=device)
        wanted = model.output_names(heads)

        def forward(v, heads):
            return model.forward_events(v, heads, keep=wanted)
    elif source == "events":
        x = torch.randn(1, model.config.num_bins, h, w, device=device)
        forward = model.forward_events
    else:
        x = torch.rand(1, 3, h, w, device=device)
        forward = model.forward_image
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeat):
            sync()
            t0 = time.perf_counter()
            forward(x, heads=heads)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {
        "case": name,
        "input": [1, int(x.shape[1]), h, w],
        "median_ms": statistics.median(times) * 1e3,
        "min_ms": min(times) * 1e3,
        "peak_mb": max(peak, 0) / 2**20,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None,
                        help="time a random-weight model of this preset instead")
    parser.add_argument("--checkpoint", default=str(REPO / "models" / "default"))
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--cases", nargs="*", default=None, choices=list(CASES))
    parser.add_argument("--onnx", action="store_true",
                        help="also run the checkpoint exported to ONNX, through ONNX Runtime")
    parser.add_argument("--json", action="store_true", help="print one JSON list")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(run_case(args.worker, args.preset or None, args.device, args.repeat,
                                  args.warmup, args.checkpoint)))
        return
    if args.cases is None:
        args.cases = [c for c in CASES if (c not in SENSOR_CASES if args.preset
                                           else c not in PRESET_ONLY)]

    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    runs = [(case, args.checkpoint) for case in args.cases]
    if args.onnx and not args.preset:
        onnx_path = REPO / "out" / "bench" / "model.onnx"
        subprocess.run([sys.executable, "-c", "from event_fm.cli.main import main; "
                        "raise SystemExit(main())", "export", args.checkpoint, str(onnx_path)],
                       check=True, env=env, capture_output=True)
        runs += [(case, str(onnx_path)) for case in args.cases if case in ONNX_CASES]
    results = []
    for case, checkpoint in runs:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", case,
               "--preset", args.preset or "", "--checkpoint", checkpoint,
               "--device", args.device,
               "--repeat", str(args.repeat), "--warmup", str(args.warmup)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["runtime"] = "onnxruntime" if checkpoint.endswith(".onnx") else "torch"
        results.append(result)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    threads = results[0]["threads"] if results else "?"
    model = f"preset {args.preset}" if args.preset else args.checkpoint
    print(f"{model} on {args.device} ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {threads} torch threads, load average {load})")
    torch_ms = {r["case"]: r["median_ms"] for r in results if r["runtime"] == "torch"}
    print(f"{'case':24s} {'runtime':>12s} {'input':>16s} {'median ms':>10s} {'min ms':>8s} "
          f"{'peak MB':>8s} {'vs torch':>9s}")
    for r in results:
        shape = "x".join(str(s) for s in r["input"])
        ratio = torch_ms[r["case"]] / r["median_ms"] if r["case"] in torch_ms else float("nan")
        print(f"{r['case']:24s} {r['runtime']:>12s} {shape:>16s} {r['median_ms']:10.1f} "
              f"{r['min_ms']:8.1f} {r['peak_mb']:8.1f} {ratio:8.2f}x")


if __name__ == "__main__":
    main()
