"""One table of what the CUDA paths do on this machine's GPU (issue 21 item 3); the body of
benchmarks/gpu_check.sh. Parts (each in a fresh process, each with its own time limit):

1. the CUDA tests (test/test_cuda.py and the CUDA cases of the other modules): passed / failed;
2. voxel grids, 20 M events at 1280x720: numba on 1 and all CPU threads, torch on the CPU, torch
   on CUDA with the upload counted (M events/s);
3. the event encoder + depth/segmentation heads at 448x448, DUNE ViT-B/14 and DINOv2 ViT-S/14
   (random weights), batch 1 and 8: fp32, bf16 autocast, fp16 weights (ms per call);
4. a 200-step full-size distillation (DUNE ViT-B/14, batch 8, bf16; benchmarks/full_size.py's
   worker): seconds per step and the CUDA peak memory;
5. `event-fm eval demo/bag --device cuda` at the recording's speed: windows kept and latency.

    scripts/with_env.sh .venv/bin/python benchmarks/gpu_check.py [--device cuda] [--quick]

``--quick`` shrinks every part (a check of the script itself; on the CPU with --device cpu).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "bench" / "gpu_check"
HEADS = ("depth", "segmentation")


def _run(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int, str]:
    try:
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, **(env or {})})
        return r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as exc:
        return 124, f"timed out after {timeout:.0f} s: {exc.stdout or ''}"


def _self(part: str, args, timeout: float) -> dict:
    code, text = _run([sys.executable, __file__, "--part", part, "--device", args.device,
                       *(["--quick"] if args.quick else [])], timeout)
    if code != 0:
        return {"error": text.strip().splitlines()[-1] if text.strip() else f"exit {code}"}
    return json.loads(text.strip().splitlines()[-1])


def _time(fn, repeat: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def part_voxels(args) -> dict:
    import numpy as np
    import torch

    from event_fm.common.threads import set_compute_threads
    from event_fm.io.events import make_events
    from event_fm.representations import voxel_grid

    n = 2_000_000 if args.quick else 20_000_000
    rng = np.random.default_rng(0)
    ev = make_events(rng.integers(0, 1280, n), rng.integers(0, 720, n),
                     np.sort(rng.integers(0, 1_000_000_000, n)), rng.integers(0, 2, n))
    cuda = args.device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    out = {}
    for label, threads, kwargs in (("numba, 1 thread", 1, {"backend": "numba"}),
                                   ("numba, all threads", os.cpu_count(), {"backend": "numba"}),
                                   ("torch CPU", os.cpu_count(), {"backend": "torch"})):
        set_compute_threads(threads)
        s = _time(lambda kw=kwargs: voxel_grid(ev, 5, 720, 1280, 0, 1_000_000_000, **kw), 3,
                  sync)
        out[label] = n / s / 1e6
    if cuda:
        s = _time(lambda: voxel_grid(ev, 5, 720, 1280, 0, 1_000_000_000, device=args.device), 5,
                  sync)
        out["torch CUDA (upload included)"] = n / s / 1e6
    return out


def part_forward(args) -> dict:
    import torch

    from event_fm.models import EventFM, EventFMConfig

    device = torch.device(args.device)
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    out = {}
    presets = ("dinov2_vits14",) if args.quick else ("dune_vitb14_448", "dinov2_vits14")
    for preset in presets:
        model = EventFM(EventFMConfig(preset=preset, merged=True, with_teacher=False))
        model = model.to(device).eval()
        for batch in ((1,) if args.quick else (1, 8)):
            x = torch.randn(batch, 5, 448, 448, device=device)
            with torch.inference_mode():
                out[f"{preset} b{batch} fp32"] = 1e3 * _time(
                    lambda m=model, x=x: m.forward_events(x, HEADS), 1 if args.quick else 10,
                    sync)
                if cuda:
                    def amp(m=model, x=x):
                        with torch.autocast("cuda", dtype=torch.bfloat16):
                            m.forward_events(x, HEADS)
                    out[f"{preset} b{batch} bf16 autocast"] = 1e3 * _time(amp, 10, sync)
        if cuda:
            half = model.half()
            with torch.inference_mode():
                for batch in (1, 8):
                    x = torch.randn(batch, 5, 448, 448, device=device).half()
                    out[f"{preset} b{batch} fp16"] = 1e3 * _time(
                        lambda m=half, x=x: m.forward_events(x, HEADS), 10,
                        sync)
        del model
    return out


def part_distill(args) -> dict:
    steps, batch = (3, 1) if args.quick else (200, 8)
    preset = "dinov2_vits14" if args.quick else "dune_vitb14_448"
    code, text = _run([sys.executable, str(REPO / "benchmarks" / "full_size.py"), "--worker",
                       "distill", "--preset", preset, "--device", args.device, "--steps",
                       str(steps), "--batch", str(batch), "--threads", str(os.cpu_count())],
                      3600)
    if code != 0:
        raise RuntimeError(text[-2000:])
    r = json.loads(text.strip().splitlines()[-1])
    return {"preset": preset, "steps": steps, "batch": batch, **r}


def part_eval(args) -> dict:
    out = OUT / "eval"
    code, text = _run([sys.executable, "-m", "event_fm.cli.main", "eval", "demo/bag",
                       "--device", args.device, "--out", str(out)], 900)
    if code != 0:
        raise RuntimeError(text[-2000:])
    report = json.loads((out / "report.json").read_text())
    lat = report["metrics"].get("latency_ms", {})
    d = report.get("diagnostics", {})
    return {"windows_processed": d.get("windows_processed"),
            "dropped_behind": d.get("windows_dropped_behind"), "p50_ms": lat.get("p50"),
            "p99_ms": lat.get("p99"),
            "depth_mae_10m": report["metrics"].get("depth_mae_10m")}


PARTS = {"voxels": part_voxels, "forward": part_forward, "distill": part_distill,
         "eval": part_eval}


def tests(args) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test/test_cuda.py",
           "test/test_representations.py::test_cuda_matches_cpu", "test/test_xfeat_teacher.py"]
    code, text = _run(cmd, 600)
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", text)}
    return {"exit": code, **counts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        print(json.dumps(PARTS[args.part](args)))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results = {"tests": tests(args)}
    for part, limit in (("voxels", 120), ("forward", 240), ("distill", 300), ("eval", 180)):
        print(f"gpu_check: {part} ...", file=sys.stderr, flush=True)
        results[part] = _self(part, args, limit)
    rows = ["| part | case | value |", "|---|---|---|"]
    t = results["tests"]
    rows.append(f"| CUDA tests | passed / failed / skipped | {t.get('passed', 0)} / "
                f"{t.get('failed', 0) + t.get('error', 0)} / {t.get('skipped', 0)} |")
    for part, unit in (("voxels", "M events/s"), ("forward", "ms per call")):
        for case, value in results[part].items():
            text = value if isinstance(value, str) else f"{value:.1f} {unit}"
            rows.append(f"| {part} | {case} | {text} |")
    for part in ("distill", "eval"):
        for case, value in results[part].items():
            text = f"{value:.3g}" if isinstance(value, float) else str(value)
            rows.append(f"| {part} | {case} | {text} |")
    table = "\n".join(rows)
    (OUT / "table.md").write_text(table + "\n")
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    print(f"device {args.device}; {time.time() - started:.0f} s\n{table}")
    return 0 if t.get("exit") == 0 and not any("error" in results[p] for p in PARTS) else 1


if __name__ == "__main__":
    raise SystemExit(main())
