"""Sensor noise of the real driver bags beside the simulator's (issue 16, item 5).

Measures background activity, hot pixels, refractory behaviour and ON/OFF balance
(``event_fm.evaluation.sensor_noise``) on every bag in ``test/data/real_bags``, on procedural
scenes of the project's simulator and on a static scene (only the pixel noise fires), all with
the simulator's default pixel model; prints the table and writes ``docs/sensor_noise.md`` and
``docs/sensor_noise.png`` (same-pixel inter-event-interval histograms and per-pixel rate
distributions, real against simulated). It also prints the defaults the real medians give and
whether ``EsimParams``' defaults are those.

    scripts/with_env.sh .venv/bin/python benchmarks/sensor_noise.py [--docs docs] [--duration 1]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from event_fm.evaluation import sensor_noise as sn
from event_fm.sim.esim import EsimParams

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "test" / "data" / "real_bags"
SCENES = ("street", "highway", "park", "room")

COLUMNS = [  # (header, NoiseStats field, format)
    ("size", None, ""),
    ("s", "duration_s", "{:.2f}"),
    ("ev/s", "event_rate", "{:.3g}"),
    ("ev/px/s", "event_rate_per_pixel", "{:.3g}"),
    ("BA Hz/px", "ba_rate", "{:.3f}"),
    ("quiet", "quiet_fraction", "{:.2f}"),
    ("isolated", "isolated_fraction", "{:.2f}"),
    ("hot px", "hot_pixels", "{:d}"),
    ("hot frac", "hot_pixel_fraction", "{:.2e}"),
    ("hot Hz", "hot_pixel_rate", "{:.1f}"),
    ("hot ev", "hot_event_fraction", "{:.3f}"),
    ("IEI min us", "iei_min_us", "{:.0f}"),
    ("IEI p1 us", "iei_p1_us", "{:.0f}"),
    ("IEI p5 us", "iei_p5_us", "{:.0f}"),
    ("IEI med us", "iei_median_us", "{:.0f}"),
    ("refr. us", "refractory_us", "{:.0f}"),
    ("ON", "on_fraction", "{:.3f}"),
    ("ON (BA)", "on_fraction_isolated", "{:.3f}"),
]


def _cell(stats: sn.NoiseStats, name: str | None, fmt: str) -> str:
    if name is None:
        return f"{stats.width}x{stats.height}"
    value = getattr(stats, name)
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    return fmt.format(value)


def measure(duration: float) -> tuple[list, list, list]:
    """(real rows, skipped real bags, simulated rows); rows are (name, stats, events)."""
    real, skipped = [], []
    for bag in sorted(p for p in REAL.iterdir() if p.is_dir()):
        events, width, height = sn.read_recording(bag)
        try:
            real.append((bag.name, sn.noise_stats(events, width, height), events))
        except ValueError as exc:
            skipped.append((bag.name, str(exc)))
    sim = []
    for k, kind in enumerate(SCENES):
        events = sn.simulated_events(kind, seed=k, duration=duration)
        sim.append((f"sim {kind} (seed {k})", sn.noise_stats(events, 346, 260), events))
    events = sn.simulated_events(None, seed=0, duration=2 * duration)
    sim.append(("sim static (noise only)", sn.noise_stats(events, 346, 260), events))
    return real, skipped, sim


def table(rows: list[tuple[str, sn.NoiseStats]]) -> str:
    head = "| recording | " + " | ".join(h for h, _, _ in COLUMNS) + " |"
    sep = "|---|" + "---|" * len(COLUMNS)
    body = ["| " + name + " | " + " | ".join(_cell(s, f, fmt) for _, f, fmt in COLUMNS) + " |"
            for name, s in rows]
    return "\n".join([head, sep, *body])


def median_row(rows: list[tuple[str, sn.NoiseStats]]) -> str:
    cells = []
    for _, name, fmt in COLUMNS:
        if name is None or name in ("hot_pixels",):
            cells.append("")
            continue
        values = [getattr(s, name) for _, s in rows]
        if name == "hot_pixel_rate":
            values = [getattr(s, name) for _, s in rows if s.hot_pixels]
        value = float(np.median(values))
        cells.append(fmt.replace(":d", ":.0f").format(value))
    return "| **median of the real bags** | " + " | ".join(cells) + " |"


def defaults_table(fit: dict[str, float]) -> str:
    p = EsimParams()
    units = {"refractory_ns": "ns", "shot_noise_rate": "Hz/px", "leak_rate": "Hz/px",
             "hot_pixel_fraction": "of pixels", "hot_pixel_rate": "Hz"}
    lines = ["| EsimParams field | default | fitted from the real medians | unit |",
             "|---|---|---|---|"]
    for f in fields(p):
        if f.name in units:
            lines.append(f"| `{f.name}` | {getattr(p, f.name):.4g} | {fit[f.name]:.4g} | "
                         f"{units[f.name]} |")
        elif f.name != "seed":
            lines.append(f"| `{f.name}` | {getattr(p, f.name):.4g} | (not a noise statistic) | |")
    return "\n".join(lines)


def plot(real, sim, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    bins = np.logspace(0, 6.5, 66)  # 1 us .. 3 s
    for group, style in ((real, "-"), (sim, "--")):
        for name, stats, events in group:
            hot = sn.hot_pixels(events, stats.width, stats.height)
            iei = sn.inter_event_intervals(events, stats.width, stats.height, exclude=hot) * 1e-3
            iei = iei[iei > 0]
            if len(iei):
                h, edges = np.histogram(iei, bins=bins, density=True)
                axes[0].step(edges[:-1], h * edges[:-1], style, where="post", label=name, lw=1.2)
            rates = sn.pixel_rates(events, stats.width, stats.height).ravel()
            rates = np.sort(rates[rates > 0])
            if len(rates):
                axes[1].plot(rates, 1.0 - np.arange(len(rates)) / len(rates), style, label=name,
                             lw=1.2)
    axes[0].set(xscale="log", yscale="log", xlabel="same-pixel inter-event interval (us)",
                ylabel="density x interval (per log unit)",
                title="inter-event intervals (hot pixels excluded)")
    axes[0].axvline(EsimParams().refractory_ns * 1e-3, color="k", lw=0.8, ls=":")
    axes[0].text(EsimParams().refractory_ns * 1e-3, axes[0].get_ylim()[0] * 2, " sim refractory",
                 fontsize=8)
    axes[1].set(xscale="log", yscale="log", xlabel="per-pixel event rate (Hz)",
                ylabel="share of active pixels with rate >= x",
                title="per-pixel rates (solid: real bags, dashed: simulator)")
    axes[1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def write_md(path: Path, real, skipped, sim, fit, elapsed: float) -> None:
    rows = [(n, s) for n, s, _ in real]
    srows = [(n, s) for n, s, _ in sim]
    static = sim[-1][1]
    ba, on = fit["ba_rate"], fit["on_fraction_ba"]
    text = f"""# Sensor noise: the real driver bags and the simulator

Written by `benchmarks/sensor_noise.py` ({elapsed:.0f} s on this CPU); the measures are
`event_fm/evaluation/sensor_noise.py` (each field of `NoiseStats` documents how it is
measured). Real: every bag in `test/data/real_bags` with at least 1 ms of events. Simulated:
the project's simulator (`event_fm.sim`, 346x260) with its default pixel model
(`EsimParams()`), on procedural scenes and on a static textured frame where only the pixel
noise fires.

## Measures

- **BA Hz/px** (background activity): events with no other event within +-5 ms in their 3x3
  neighbourhood (the BA-filter criterion), hot pixels left out, counted only in quiet cells (no
  non-isolated event within 5x5 pixels and +-1 bin of 20 ms), divided by the quiet
  pixel-seconds (**quiet**: its share of the recording) and corrected for noise events that
  fall in each other's neighbourhood (Poisson). Sparse edges of a slow scene still count: on a
  busy scene this is an upper bound of the sensor's own noise.
- **hot px / frac / Hz / ev**: pixels whose rate is >= 10x both the median active pixel's and
  the median of their 8 neighbours', with >= 20 events: count, share of pixels, median rate,
  share of all events.
- **IEI**: intervals between consecutive events of one pixel (any polarity, hot pixels out);
  **refr.** = their 0.1th percentile, the lower edge (the pixel's dead time or, on a slow
  scene, an upper bound of it).
- **ON**: share of ON events overall; **ON (BA)**: among the background events.

## Table

{table(rows + srows)}
{median_row(rows)}

Not measured: {"; ".join(f"`{n}` ({why})" for n, why in skipped) or "none"}.

## The simulator's defaults

Set from the medians of the real bags (per pixel and per second, so they hold at any
resolution): background activity {ba:.3f} Hz/px split into shot noise (50/50 polarity) and
leak events (ON only) so that the ON share of the background is the bags' {on:.3f}
(leak = (2 x {on:.3f} - 1) x BA); refractory period = the median refractory estimate; hot
pixels = the median fraction and rate. `event_fm/sim/esim.py` (`EsimParams`) documents each
number.

{defaults_table(fit)}

On the static scene the simulator measures BA {static.ba_rate:.3f} Hz/px (real median
{ba:.3f}), ON (BA) {static.on_fraction_isolated:.3f} (real {on:.3f}), hot fraction
{static.hot_pixel_fraction:.2e} at {static.hot_pixel_rate:.1f} Hz; `test/test_sensor_noise.py`
checks BA and ON share within a factor of 2 of the real medians.

## Reading the table

- The bags differ by an order of magnitude in background activity (sensors, biases and light
  differ): the 1280x720 Prophesee bag is the quietest, the 640x480 libcaer bag the noisiest
  (and a fifth of its events come from hot pixels); on the two busy bags (640x480 Prophesee,
  DAVIS346) sparse scene edges pass the criterion too, so their figures are upper bounds. The
  median is a middle sensor, not any one of them.
- Procedural scenes are busy (every surface is textured and the camera always moves): their
  BA column is dominated by sparse scene edges, as on the busiest real bag, so the noise model
  is compared on the static scene. Their hot pixels are there but not found: the criterion's
  threshold is 10x the median active pixel's rate, ~70 Hz on these scenes, above the 27.7 Hz
  they fire at (a busy real scene hides its mild hot pixels the same way).
- The 640x480 libcaer bag's short same-pixel intervals come in multiples of 195 us (its
  timestamps sit on that grid), and its hottest pixel fires every 195 us: that is its lower
  IEI edge, not a refractory circuit. The simulator has one refractory period for all pixels.
- Hot pixels in the simulator all fire at one rate with random polarity; real hot pixels
  spread from ~20 Hz to kHz and some fire one polarity only.

![inter-event intervals and per-pixel rates](sensor_noise.png)
"""
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    parser.add_argument("--duration", type=float, default=1.0,
                        help="seconds of each simulated scene (the static one runs twice this)")
    args = parser.parse_args(argv)
    start = time.time()
    real, skipped, sim = measure(args.duration)
    fit = sn.fit_noise_params([s for _, s, _ in real])
    rows = [(n, s) for n, s, _ in real] + [(n, s) for n, s, _ in sim]
    print(table(rows))
    print(median_row([(n, s) for n, s, _ in real]))
    for name, why in skipped:
        print(f"skipped {name}: {why}")
    print()
    print(defaults_table(fit))
    p = EsimParams()
    off = [k for k in ("refractory_ns", "shot_noise_rate", "leak_rate", "hot_pixel_fraction",
                       "hot_pixel_rate") if not math.isclose(getattr(p, k), fit[k], rel_tol=0.05)]
    print("EsimParams defaults match the real medians (5%)" if not off else
          f"EsimParams defaults differ from the real medians by more than 5%: {off}")
    args.docs.mkdir(parents=True, exist_ok=True)
    plot(real, sim, args.docs / "sensor_noise.png")
    write_md(args.docs / "sensor_noise.md", real, skipped, sim, fit, time.time() - start)
    print(f"wrote {args.docs / 'sensor_noise.md'} and sensor_noise.png "
          f"in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
