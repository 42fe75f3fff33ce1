"""Voxel-grid throughput: event_fm (numba, torch CPU) against tonic and evlib.

20 million events on a 1280x720 sensor, 5 bins, then typical live windows (1, 10 and 50 ms of a
20 Mev/s stream) to show per-call overhead. Comparison packages are optional:

    .venv/bin/pip install tonic evlib
    .venv/bin/python benchmarks/representations.py [--events 20000000] [--threads 1 2]

Events are uniform over the sensor and sorted in time (the worst case for cache locality; real
scenes are kinder). Wall-clock best of ``--repeat`` runs after a warm-up call. On a shared
machine the load average is printed with the figures: read them next to it.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numba
import numpy as np
import torch

from event_fm.io.events import make_events
from event_fm.representations import voxel_grid

WIDTH, HEIGHT, BINS = 1280, 720, 5
EPOCH = 1_700_000_000_000_000_000
RATE = 20_000_000  # events per second of the simulated stream


def make_stream(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = EPOCH + np.sort(rng.integers(0, n * 1_000_000_000 // RATE, n))
    return make_events(rng.integers(0, WIDTH, n), rng.integers(0, HEIGHT, n), t,
                       rng.integers(0, 2, n))


def best_time(fn: Callable[[], object], repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def tonic_method():
    try:
        import tonic.transforms as T
    except ImportError as err:
        return None, f"tonic not installed ({err})"
    transform = T.ToVoxelGrid(sensor_size=(WIDTH, HEIGHT, 2), n_time_bins=BINS)
    return (lambda ev: transform(ev)), "tonic ToVoxelGrid (numpy, np.add.at; copies its input)"


def evlib_method():
    try:
        import evlib.representations as er
        import polars as pl
    except ImportError as err:
        return None, f"evlib not installed ({err})"

    def prepare(ev):
        return pl.DataFrame({"x": ev["x"].astype(np.int16), "y": ev["y"].astype(np.int16),
                             "t": ev["t"] // 1000, "polarity": ev["p"]})

    def run(frame):
        sparse = er.create_voxel_grid(frame, HEIGHT, WIDTH, n_time_bins=BINS)
        return er.densify_voxel_grid(sparse, BINS, HEIGHT, WIDTH)

    try:  # the API has moved between releases: check it on a tiny input before timing
        run(prepare(make_stream(1000)))
    except Exception as err:  # any failure means "not comparable"; it is reported
        return None, f"evlib API did not fit: {type(err).__name__}: {err}"
    return (prepare, run), "evlib create_voxel_grid + densify (polars; input prepared untimed)"


def event_fm_methods(threads: list[int]):
    out = []
    for n in threads:
        def numba_run(ev, n=n):
            numba.set_num_threads(n)
            return voxel_grid(ev, BINS, HEIGHT, WIDTH, int(ev["t"][0]), int(ev["t"][-1]),
                              backend="numba")

        def torch_run(ev, n=n):
            torch.set_num_threads(n)
            return voxel_grid(ev, BINS, HEIGHT, WIDTH, int(ev["t"][0]), int(ev["t"][-1]),
                              backend="torch")

        out.append((f"event_fm numba ({n} thr)", numba_run))
        out.append((f"event_fm torch CPU ({n} thr)", torch_run))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    threads = [n for n in args.threads if n <= numba.config.NUMBA_NUM_THREADS]

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} (start)")
    print(f"torch {torch.__version__}, numba {numba.__version__} "
          f"(threading layer set on first parallel call), numpy {np.__version__}")
    print(f"threads tried for torch.set_num_threads / numba.set_num_threads: {threads}")
    ev = make_stream(args.events)
    print(f"\n{args.events:,} events, {WIDTH}x{HEIGHT}, {BINS} bins, "
          f"{(ev['t'][-1] - ev['t'][0]) / 1e9:.2f} s of a {RATE / 1e6:.0f} Mev/s stream\n")

    rows: list[tuple[str, float]] = []
    for name, fn in event_fm_methods(threads):
        rows.append((name, best_time(lambda fn=fn: fn(ev), args.repeat)))
    numba_layer = numba.threading_layer()
    tonic_fn, tonic_note = tonic_method()
    tonic_s = None
    if tonic_fn is not None:
        tonic_s = best_time(lambda: tonic_fn(ev), max(1, args.repeat - 1))
        rows.append(("tonic ToVoxelGrid", tonic_s))
    print(f"tonic: {tonic_note}")
    evlib, evlib_note = evlib_method()
    if evlib is not None:
        prepare, run = evlib
        frame = prepare(ev)
        rows.append(("evlib voxel grid", best_time(lambda: run(frame), 1)))
    print(f"evlib: {evlib_note}")
    print(f"numba threading layer: {numba_layer}\n")

    print(f"{'method':32s} {'time [ms]':>10s} {'Mev/s':>8s} {'x tonic':>8s}")
    print("-" * 61)
    for name, sec in rows:
        ratio = f"{tonic_s / sec:8.1f}" if tonic_s else "       -"
        print(f"{name:32s} {sec * 1e3:10.1f} {args.events / sec / 1e6:8.1f} {ratio}")

    print(f"\nlive windows: ms per call (x tonic), best of 20, {RATE / 1e6:.0f} Mev/s stream")
    live = event_fm_methods(threads)
    if tonic_fn is not None:
        live.append(("tonic ToVoxelGrid", tonic_fn))
    spans = (1, 10, 50)
    times = {name: [best_time(lambda fn=fn, ms=ms: fn(ev[: ms * RATE // 1000]), 20)
                    for ms in spans] for name, fn in live}
    header = "".join(f"{f'{ms} ms = {ms * RATE // 1000:,} ev':>22s}" for ms in spans)
    print(f"{'method':32s}{header}")
    print("-" * (32 + 22 * len(spans)))
    ref = times.get("tonic ToVoxelGrid")
    for name, secs in times.items():
        cells = [f"{sec * 1e3:8.2f}" + (f" ({ref[k] / sec:5.1f}x)" if ref else "")
                 for k, sec in enumerate(secs)]
        print(f"{name:32s}" + "".join(f"{c:>22s}" for c in cells))
    print(f"\nload average {os.getloadavg()[0]:.2f} (end)")


if __name__ == "__main__":
    main()
