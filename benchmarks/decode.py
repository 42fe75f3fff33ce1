"""EVT 3.0 decoding speed: event_fm vs faery vs expelliarmus, on one CPU core.

Real recordings first: the EVT 3.0 words two Prophesee cameras wrote (the metavision_driver
bags in test/data/real_bags: an EVK4 HD at 1280x720 and a Gen3.1 VGA at 640x480), concatenated
in packet order into ``.raw`` files as Metavision writes them, one with the '% end' header line
and one without it (EVK4 files may lack it). Then two synthetic but sensor-like streams (moving
edges plus background noise read out row by row; row bursts in vector words) made with the
project's encoder. event_fm is timed from memory (the node's path) and through its public file
reader (``event_fm.io.read_events``, what ``event-fm`` commands use); faery and expelliarmus read
the same files.

    python benchmarks/decode.py [--events 5000000] [--repeat 5]
"""

from __future__ import annotations

import os

# single core for everyone: set before numpy / numba load their thread pools
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from event_fm.io.decoders import make_decoder  # noqa: E402
from event_fm.io.events import EVENT_DTYPE  # noqa: E402
from event_fm.io.evt3_encoder import encode_evt3  # noqa: E402
from event_fm.io.readers import read_events  # noqa: E402

WIDTH, HEIGHT = 1280, 720
REAL_BAGS = Path(__file__).resolve().parents[1] / "test" / "data" / "real_bags"


def pin_to_one_core() -> str:
    """Pin this process (and any native threads it starts) to one CPU."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "affinity not supported here; thread pools limited to 1"


def synthetic_events(n: int, rate_hz: float = 10e6, seed: int = 0) -> np.ndarray:
    """``n`` events: 80 % on three moving vertical edges, 20 % uniform noise, sorted the way a
    Prophesee sensor reads out (time, then row, then column); whole microseconds."""
    rng = np.random.default_rng(seed)
    t_us = np.sort(rng.uniform(0, n / rate_hz * 1e6, n)).astype(np.int64) + 1_000_000
    edge = rng.random(n) < 0.8
    k = rng.integers(0, 3, n)
    speed = np.array([900.0, -600.0, 300.0])[k]  # px / s
    x0 = np.array([100.0, 1100.0, 640.0])[k]
    x_edge = (x0 + speed * (t_us - t_us[0]) * 1e-6) % WIDTH + rng.normal(0, 3, n)
    x = np.where(edge, x_edge, rng.uniform(0, WIDTH, n)).astype(np.int64) % WIDTH
    y = rng.integers(0, HEIGHT, n)
    p = np.where(edge, (k + (speed > 0)) % 2, rng.integers(0, 2, n))
    order = np.lexsort((x, y, t_us))
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x[order], y[order], t_us[order] * 1000, p[order]
    return ev


def bursty_events(n: int, rate_hz: float = 10e6, seed: int = 1) -> np.ndarray:
    """``n`` events in row bursts: a textured edge sweeping fast fires runs of nearby pixels of
    one row in the same microsecond (what EVT 3.0 vector words are made for)."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.geometric(1 / 8, n // 4 + 16), 24)  # events per burst, mean ~7
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    sizes[-1] -= sizes.sum() - n
    sizes = sizes[sizes > 0]
    c = len(sizes)
    owner = np.repeat(np.arange(c), sizes)
    t_c = np.sort(rng.uniform(0, n / rate_hz * 1e6, c)).astype(np.int64) + 1_000_000
    y_c, p_c = rng.integers(0, HEIGHT, c), rng.integers(0, 2, c)
    x_c = rng.integers(0, WIDTH - 3 * 24, c)
    # increasing columns inside a burst, 1-3 pixels apart
    steps = np.cumsum(rng.integers(1, 4, n))
    first = np.cumsum(sizes) - sizes
    x = x_c[owner] + steps - steps[first][owner]
    order = np.lexsort((x, y_c[owner], t_c[owner]))
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"] = x[order], y_c[owner][order]
    ev["t"], ev["p"] = t_c[owner][order] * 1000, p_c[owner][order]
    return ev


def time_it(fn: Callable[[], int], repeat: int) -> tuple[float, float, int]:
    """(best, median) seconds over ``repeat`` runs after one warm-up, and the event count."""
    n = fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return min(runs), statistics.median(runs), n


def real_stream(bag: str) -> tuple[bytes, int, int, int]:
    """(EVT 3.0 bytes, events, width, height) of a real driver recording, in packet order."""
    from event_fm.io.rosbag import BagReader

    chunks, width, height = [], 0, 0
    with BagReader(REAL_BAGS / bag) as reader:
        for message in reader.messages():
            msg = reader.deserialize(message)
            if getattr(msg, "encoding", "") == "evt3":
                chunks.append(bytes(msg.events))
                width, height = msg.width, msg.height
    raw = b"".join(chunks)
    n = len(make_decoder("evt3", width, height).decode(np.frombuffer(raw, np.uint8)))
    return raw, n, width, height


def faery_decoder(path: Path, size: tuple[int, int]) -> Callable[[], int] | str:
    try:
        import faery
    except ImportError as e:
        return f"not installed ({e})"

    def run() -> int:
        n = 0
        with faery.evt.Decoder(path, size, "evt3") as dec:
            for packet in dec:
                n += len(packet["events"])
        return n

    return run


def expelliarmus_decoder(path: Path) -> Callable[[], int] | str:
    try:
        from expelliarmus import Wizard
    except ImportError as e:
        return f"not installed ({e})"
    wizard = Wizard(encoding="evt3")
    return lambda: len(wizard.read(path))


def bench_stream(name: str, raw: bytes, n: int, repeat: int, path: Path,
                 size: tuple[int, int] = (WIDTH, HEIGHT), end_line: bool = True) -> None:
    width, height = size
    header = f"% camera_integrator_name Prophesee\n% evt 3.0\n" \
             f"% format EVT3;height={height};width={width}\n% geometry {width}x{height}\n"
    path.write_bytes((header + ("% end\n" if end_line else "")).encode() + raw)
    data = np.frombuffer(raw, np.uint8)

    def event_fm_memory() -> int:
        return len(make_decoder("evt3", width, height).decode(data))

    def event_fm_file() -> int:
        return sum(len(batch) for batch in read_events(path))

    print(f"\n{name}: {n:,} events, {len(raw) / 2 / n:.2f} words/event, {len(raw) / 1e6:.1f} MB"
          f"{'' if end_line else ', header without % end'}")
    print(f"  {'decoder':<26}{'best Mev/s':>12}{'median Mev/s':>14}  events")
    rates = {}
    for label, fn in (
        ("event_fm (memory)", event_fm_memory),
        ("event_fm (file)", event_fm_file),
        ("faery (file)", faery_decoder(path, size)),
        ("expelliarmus (file)", expelliarmus_decoder(path)),
    ):
        if isinstance(fn, str):
            print(f"  {label:<26}skipped: {fn}")
            continue
        try:
            best, med, got = time_it(fn, repeat)
        except Exception as e:  # a third-party reader that cannot read the stream
            print(f"  {label:<26}failed: {type(e).__name__}: {e}")
            continue
        rates[label] = (n / best, n / med)
        flag = "" if got == n else f"  (decoded {got:,}, expected {n:,})"
        print(f"  {label:<26}{n / best / 1e6:>12.1f}{n / med / 1e6:>14.1f}  {got:,}{flag}")
    faery = rates.get("faery (file)")
    for label in ("event_fm (memory)", "event_fm (file)"):
        if faery and label in rates:
            best, med = (rates[label][i] / faery[i] for i in (0, 1))
            print(f"  ratio {label} / faery: {best:.2f} (best)  {med:.2f} (median)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(pin_to_one_core(), "| numpy", np.__version__)
    scenes = {
        "edges+noise, ADDR_X words": (synthetic_events(args.events), False),
        "row bursts, vector words": (bursty_events(args.events), True),
    }
    make_decoder("evt3", WIDTH, HEIGHT).decode(
        encode_evt3(scenes["edges+noise, ADDR_X words"][0][:99])
    )
    with tempfile.TemporaryDirectory() as tmp:
        for bag in ("evt3_trigger_1280x720", "evt3_metavision_640x480"):
            raw, n, width, height = real_stream(bag)
            for end_line in (True, False):
                bench_stream(f"real {bag}", raw, n, args.repeat,
                             Path(tmp) / f"{bag}_{end_line}.raw", (width, height), end_line)
        for i, (name, (ev, vectors)) in enumerate(scenes.items()):
            raw = encode_evt3(ev, use_vectors=vectors)
            check = make_decoder("evt3", WIDTH, HEIGHT).decode(raw).events
            assert np.array_equal(check, ev), "encoder / decoder round trip broke"
            bench_stream(name, raw, len(ev), args.repeat, Path(tmp) / f"scene{i}.raw")


if __name__ == "__main__":
    main()
