"""Mosaics a person can read: events, depth and segmentation panels in a grid, with one depth
colour scale in metres (colour bar), a legend of the classes shown, what sky / missing depth
look like, and rows labelled in seconds from the start of the recording.

``save_eval_mosaic`` draws the ``event-fm eval`` picture; ``build_mosaic`` is the shared drawing
that the training report's mosaic (``plots.save_mosaic``) uses too. Core layer: numpy and
matplotlib (Agg) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Depth +inf (sky, no return within range) and depth without a value (NaN, <= 0, -inf): colours
#: that the depth colour map (magma_r: near light yellow, far black) does not contain.
SKY_COLOR = "#62b6f0"
NO_DEPTH_COLOR = "#a8a8a8"
DEPTH_CMAP = "magma_r"
IGNORE_LABEL = 255
#: The palette (sim.classes.colorize) draws ignore (255) black like "background"; the mosaics
#: draw it white so that the two can be told apart.
IGNORE_COLOR = (255, 255, 255)
#: Columns of the eval mosaic, in order: row key, column title, kind.
EVAL_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("events", "events", "image"),
    ("depth", "depth (events)", "depth"),
    ("depth_truth", "depth truth", "depth"),
    ("semantic", "semantic (events)", "semantic"),
    ("semantic_truth", "semantic truth", "semantic"),
)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str  # "image" (RGB or grey), "depth" (metres), "semantic" (label ids)


@dataclass(frozen=True)
class DepthScale:
    vmin: float
    vmax: float
    log: bool

    def norm(self):
        from matplotlib.colors import LogNorm, Normalize

        return (LogNorm if self.log else Normalize)(vmin=self.vmin, vmax=self.vmax)


def seconds_label(stamp_ns: int, t0_ns: int) -> str:
    """``t = 1.250 s``: a stamp in seconds from the start of the recording."""
    return f"t = {(int(stamp_ns) - int(t0_ns)) / 1e9:.3f} s"


def depth_scale(truths: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
                depth_max_m: float | None = None) -> DepthScale:
    """One scale for every depth panel: the 2nd-98th percentile of the finite, positive truth
    depths (of the predictions where no truth is shown). ``depth_max_m`` (the sensor's range)
    caps the far end, and with no finite depth at all the scale is ``depth_max_m``/100 to
    ``depth_max_m`` (80 m without it). Logarithmic when the range spans 8x or more."""

    def finite(arrays):
        vals = [np.asarray(a, np.float64).ravel() for a in arrays if a is not None]
        vals = np.concatenate(vals) if vals else np.zeros(0)
        return vals[np.isfinite(vals) & (vals > 0)]

    values = finite(truths)
    if not values.size:
        values = finite(predictions)
    cap = float(depth_max_m) if depth_max_m is not None and depth_max_m > 0 else None
    if cap is not None and (values <= cap).any():
        values = values[values <= cap]
    if values.size:
        lo, hi = (float(v) for v in np.percentile(values, [2, 98]))
    else:
        hi = cap or 80.0
        lo = hi / 100
    if cap is not None:
        hi = min(hi, cap)
        lo = min(lo, hi)
    if hi <= lo * 1.05:  # (near) constant depth: a +-10% window around it
        mid = max(hi, 1e-3)
        lo, hi = mid * 0.9, mid * 1.1
    lo = max(lo, 1e-3)
    return DepthScale(lo, hi, hi / lo >= 8.0)


def _depth_overlay(depth: np.ndarray) -> tuple[np.ndarray, bool, bool]:
    """RGBA overlay painting +inf in SKY_COLOR and missing depth in NO_DEPTH_COLOR."""
    from matplotlib.colors import to_rgba

    d = np.asarray(depth, np.float64)
    sky = np.isposinf(d)
    missing = (~np.isfinite(d) & ~sky) | (np.isfinite(d) & (d <= 0))
    over = np.zeros(d.shape + (4,), np.float32)
    over[sky] = to_rgba(SKY_COLOR)
    over[missing] = to_rgba(NO_DEPTH_COLOR)
    return over, bool(sky.any()), bool(missing.any())


def _show_image(ax, img: np.ndarray) -> None:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = a.astype(np.float64)
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        ax.imshow(a, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
    else:
        if a.dtype != np.uint8:
            a = np.clip(np.nan_to_num(a.astype(np.float64)), 0, 1)
        ax.imshow(a, interpolation="nearest")


def _aspect(images: list) -> float:
    ratios = [np.asarray(a).shape[1] / max(1, np.asarray(a).shape[0]) for a in images
              if a is not None]
    return max(ratios) if ratios else 4 / 3


def _nice_log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks inside [lo, hi] (1-5 when that gives more than 7), in metres."""
    for mantissas in ((1, 2, 5), (1, 5), (1,)):
        ticks = [m * 10.0 ** e for e in range(-3, 5) for m in mantissas]
        inside = [t for t in ticks if lo <= t * (1 + 1e-9) and t <= hi * (1 + 1e-9)]
        if len(inside) <= 7:
            return inside
    return inside


def build_mosaic(rows: Sequence[dict], columns: Sequence[Column], row_labels: Sequence[str],
                 class_names: Sequence[str] | None = None, depth_max_m: float | None = None,
                 title: str | None = None, panel_height_in: float = 2.0):
    """The figure: one row per entry of ``rows`` (dicts keyed by the columns' keys, a value may be
    None), the columns whose panels are not all None, the row labels down the left. Returns a
    matplotlib Figure outside pyplot (None when nothing is to be drawn): ``save_figure`` writes
    it, and nothing needs closing."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from event_fm.sim.classes import CLASS_NAMES

    names = tuple(class_names) if class_names is not None else CLASS_NAMES
    columns = [c for c in columns if any(r.get(c.key) is not None for r in rows)]
    if not rows or not columns:
        return None
    depth_cols = [c for c in columns if c.kind == "depth"]
    truths = [r.get(c.key) for r in rows for c in depth_cols if "truth" in c.key]
    preds = [r.get(c.key) for r in rows for c in depth_cols if "truth" not in c.key]
    scale = depth_scale(truths, preds, depth_max_m) if depth_cols else None

    aspects = [_aspect([r.get(c.key) for r in rows]) for c in columns]
    labels_present: set[int] = set()
    for r in rows:
        for c in columns:
            if c.kind == "semantic" and r.get(c.key) is not None and np.ndim(r[c.key]) == 2:
                labels_present |= {int(v) for v in np.unique(r[c.key])}
    legend_w = 1.9 if labels_present or depth_cols else 0.0
    width = panel_height_in * sum(aspects) + 0.7 + legend_w
    height = (panel_height_in * len(rows) + 0.45 + (0.9 if depth_cols else 0.1)
              + (0.35 if title else 0))
    fig = Figure(figsize=(max(width, 4.0), height), layout="constrained")  # not in pyplot
    grid = fig.add_gridspec(len(rows), len(columns), width_ratios=aspects)
    axes = np.empty((len(rows), len(columns)), dtype=object)
    mappable, any_sky, any_missing = None, False, False
    for i, (r, label) in enumerate(zip(rows, row_labels, strict=True)):
        for j, c in enumerate(columns):
            ax = axes[i, j] = fig.add_subplot(grid[i, j])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if i == 0:
                ax.set_title(c.title, fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
            img = r.get(c.key)
            if img is None:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=8,
                        color="0.5", transform=ax.transAxes)
                continue
            if c.kind == "depth":
                d = np.asarray(img, np.float64)
                shown = np.where(np.isfinite(d) & (d > 0), d, np.nan)
                mappable = ax.imshow(np.ma.masked_invalid(shown), cmap=DEPTH_CMAP,
                                     norm=scale.norm(), interpolation="nearest")
                over, sky, missing = _depth_overlay(d)
                any_sky |= sky
                any_missing |= missing
                if sky or missing:
                    ax.imshow(over, interpolation="nearest")
            elif c.kind == "semantic" and np.ndim(img) == 2:
                ax.imshow(_colorize(img), interpolation="nearest")
            else:
                _show_image(ax, img)
    if mappable is not None:
        cbar = fig.colorbar(mappable, ax=[a for a, c in zip(axes[-1], columns, strict=True)
                                          if c.kind == "depth"],
                            location="bottom", fraction=0.08, shrink=0.9, aspect=30,
                            extend=_extend(rows, depth_cols, scale))
        cbar.set_label("depth (m), log scale" if scale.log else "depth (m)", fontsize=9)
        if scale.log:
            from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

            ticks = _nice_log_ticks(scale.vmin, scale.vmax)
            for end in (scale.vmin, scale.vmax):  # the ends too, where they do not crowd a tick
                if all(abs(np.log10(end / t)) > 0.15 for t in ticks):
                    ticks.append(end)
            ticks = sorted(ticks)
            cbar.ax.xaxis.set_major_locator(FixedLocator(ticks))
            cbar.ax.xaxis.set_minor_locator(NullLocator())
            cbar.ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        cbar.ax.tick_params(labelsize=8)
    if labels_present:
        handles = [Patch(facecolor=_colorize(np.array([[k]]))[0, 0] / 255.0, edgecolor="0.3",
                         linewidth=0.5, label=_class_name(k, names))
                   for k in sorted(labels_present)]
        fig.legend(handles=handles, title="classes", loc="outside right upper", fontsize=8,
                   title_fontsize=9, frameon=False)
    depth_handles = []
    if any_sky:
        depth_handles.append(Patch(facecolor=SKY_COLOR, label="sky / beyond range (inf)"))
    if any_missing:
        depth_handles.append(Patch(facecolor=NO_DEPTH_COLOR, label="no depth (NaN or <= 0)"))
    if depth_handles:
        fig.legend(handles=depth_handles, title="depth", loc="outside right lower", fontsize=8,
                   title_fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _colorize(labels: np.ndarray) -> np.ndarray:
    from event_fm.sim.classes import colorize

    labels = np.asarray(labels)
    rgb = colorize(labels)
    rgb[labels == IGNORE_LABEL] = IGNORE_COLOR
    return rgb


def _class_name(label: int, names: Sequence[str]) -> str:
    if label == IGNORE_LABEL:
        return "ignore"
    return names[label] if 0 <= label < len(names) else f"class {label}"


def _extend(rows, depth_cols, scale: DepthScale) -> str:
    lo = hi = False
    for r in rows:
        for c in depth_cols:
            if r.get(c.key) is None:
                continue
            d = np.asarray(r[c.key], np.float64)
            d = d[np.isfinite(d) & (d > 0)]
            if d.size:
                lo |= bool(d.min() < scale.vmin)
                hi |= bool(d.max() > scale.vmax)
    return {(False, False): "neither", (True, False): "min", (False, True): "max",
            (True, True): "both"}[(lo, hi)]


def build_eval_mosaic(rows: Sequence[dict], t0_ns: int | None, class_names=None,
                      depth_max_m: float | None = None, title: str | None = None):
    """The ``event-fm eval`` mosaic as a matplotlib Figure (None for no rows). ``rows``: dicts
    with ``stamp_ns`` and any of ``events`` (HxWx3 uint8), ``depth`` / ``depth_truth`` (HxW
    metres, +inf = sky), ``semantic`` / ``semantic_truth`` (HxW label ids, 255 = ignore) and
    ``extra`` (name -> image, drawn as an image column). ``t0_ns``: the recording's start (None:
    the earliest row)."""
    rows = list(rows)
    if not rows:
        return None
    if t0_ns is None:
        t0_ns = min(int(r["stamp_ns"]) for r in rows)
    columns = [Column(*c) for c in EVAL_COLUMNS]
    extras: list[str] = []
    for r in rows:
        extras += [k for k in (r.get("extra") or {}) if k not in extras]
    columns += [Column(f"extra:{k}", k, "image") for k in extras]
    flat = [{**{k: v for k, v in r.items() if k != "extra"},
             **{f"extra:{k}": v for k, v in (r.get("extra") or {}).items()}} for r in rows]
    labels = [seconds_label(r["stamp_ns"], t0_ns) for r in rows]
    return build_mosaic(flat, columns, labels, class_names, depth_max_m, title)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """PNG of a figure built here (not registered with pyplot: nothing to close)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def save_eval_mosaic(path: str | Path, rows: Sequence[dict], t0_ns: int | None,
                     class_names=None, depth_max_m: float | None = None,
                     title: str | None = None, dpi: int = 100) -> Path | None:
    """Write the eval mosaic PNG (see ``build_eval_mosaic``); the path, or None (and no file)
    when there is nothing to draw."""
    fig = build_eval_mosaic(rows, t0_ns, class_names, depth_max_m, title)
    return None if fig is None else save_figure(fig, path, dpi)
