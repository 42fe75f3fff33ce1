"""The report mosaics people read (event_fm/evaluation/mosaic.py, plots.save_mosaic): depth on
one scale in metres with a colour bar, a legend of the classes shown, rows titled in seconds from
the start of the recording. The figures are inspected through build_eval_mosaic's Figure."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from event_fm.evaluation.mosaic import (
    SKY_COLOR,
    build_eval_mosaic,
    depth_scale,
    save_eval_mosaic,
)
from event_fm.sim.classes import CAR, CLASS_NAMES, IGNORE, ROAD

T0 = 5_000_000_000


def _row(k: int, h: int = 48, w: int = 64, sky: bool = True, **overrides) -> dict:
    rng = np.random.default_rng(k)
    truth = np.repeat(np.linspace(30.0, 2.0, h)[:, None], w, 1)
    if sky:
        truth[: h // 4] = np.inf
    semantic = np.full((h, w), ROAD, np.uint8)
    semantic[h // 2:, w // 3: w // 2] = CAR
    row = {"stamp_ns": T0 + k * 250_000_000,
           "events": rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
           "depth": truth * 1.1, "depth_truth": truth,
           "semantic": semantic, "semantic_truth": semantic.copy()}
    row.update(overrides)
    return row


def _colorbars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def _column_titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def _legend(fig, title: str):
    found = [lg for lg in fig.legends if lg.get_title().get_text() == title]
    assert len(found) == 1, [lg.get_title().get_text() for lg in fig.legends]
    return [t.get_text() for t in found[0].get_texts()]


def test_png_size_follows_the_figure_and_the_rows(tmp_path):
    from PIL import Image

    one = save_eval_mosaic(tmp_path / "one.png", [_row(0)], T0)
    four = save_eval_mosaic(tmp_path / "four.png", [_row(k) for k in range(4)], T0, dpi=50)
    assert one.exists() and four.exists()
    fig = build_eval_mosaic([_row(0)], T0)
    w_in, h_in = fig.get_size_inches()
    with Image.open(one) as im:
        width, height = im.size
    assert (width, height) == (round(w_in * 100), round(h_in * 100))
    assert width > height  # one row of five panels: a wide strip
    with Image.open(four) as im:
        w4, h4 = im.size
    assert h4 * 2 > height and h4 > w4 * 0.5  # four rows are taller than one (at half the dpi)


def test_one_colour_bar_in_metres_on_a_shared_scale():
    fig = build_eval_mosaic([_row(k) for k in range(3)], T0)
    bars = _colorbars(fig)
    assert len(bars) == 1
    label = bars[0].get_xlabel() or bars[0].get_ylabel()
    assert "depth" in label and "(m)" in label
    depth_images = [ax.images[0] for ax in fig.axes
                    if ax.images and ax.images[0].get_cmap().name.startswith("magma")]
    assert len(depth_images) == 6  # prediction and truth for three rows
    norms = {(im.norm.vmin, im.norm.vmax) for im in depth_images}
    assert len(norms) == 1
    vmin, vmax = norms.pop()
    # the 2nd-98th percentile of the finite truth (2..30 m under the sky), not the 1.1x prediction
    truth = _row(0)["depth_truth"]
    finite = truth[np.isfinite(truth)]
    assert vmin == pytest.approx(np.percentile(finite, 2), rel=0.02)
    assert vmax == pytest.approx(np.percentile(finite, 98), rel=0.02)


def test_legend_names_the_classes_shown_and_ignore():
    semantic = np.full((48, 64), ROAD, np.uint8)
    semantic[:4] = IGNORE
    fig = build_eval_mosaic([_row(0), _row(1, semantic_truth=semantic)], T0)
    assert _legend(fig, "classes") == [CLASS_NAMES[ROAD], CLASS_NAMES[CAR], "ignore"]
    named = build_eval_mosaic([_row(0)], T0, class_names=[f"c{i}" for i in range(11)])
    assert _legend(named, "classes") == [f"c{ROAD}", f"c{CAR}"]


def test_rows_are_titled_in_seconds_from_the_start():
    fig = build_eval_mosaic([_row(0), _row(5)], T0 - 1_000_000_000, title="demo")
    row_titles = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert row_titles == ["t = 1.000 s", "t = 2.250 s"]
    assert fig._suptitle.get_text() == "demo"
    assert _column_titles(fig) == ["events", "depth (events)", "depth truth",
                                   "semantic (events)", "semantic truth"]
    # no t0: the first row is t = 0
    first = build_eval_mosaic([_row(2), _row(3)], None)
    assert [ax.get_ylabel() for ax in first.axes if ax.get_ylabel()] == ["t = 0.000 s",
                                                                          "t = 0.250 s"]


def test_all_none_columns_are_omitted_and_a_missing_panel_says_so():
    rows = [_row(0, semantic_truth=None, depth_truth=None),
            _row(1, semantic_truth=None, depth_truth=None, events=None)]
    fig = build_eval_mosaic(rows, T0)
    assert _column_titles(fig) == ["events", "depth (events)", "semantic (events)"]
    assert any(t.get_text() == "no data" for ax in fig.axes for t in ax.texts)
    assert build_eval_mosaic([], T0) is None
    empty = [{"stamp_ns": T0, "events": None, "depth": None}]
    assert build_eval_mosaic(empty, T0) is None


def test_inf_depth_keeps_a_finite_scale_and_is_in_the_legend():
    all_sky = np.full((48, 64), np.inf)
    fig = build_eval_mosaic([_row(0, depth_truth=all_sky)], T0)
    (bar,) = _colorbars(fig)
    assert np.isfinite(bar.get_xlim()).all()
    depth_images = [ax.images[0] for ax in fig.axes
                    if ax.images and ax.images[0].get_cmap().name.startswith("magma")]
    for im in depth_images:
        assert np.isfinite([im.norm.vmin, im.norm.vmax]).all() and im.norm.vmin < im.norm.vmax
    assert "sky / beyond range (inf)" in _legend(fig, "depth")
    # the sky is painted in its own colour over the depth panel
    from matplotlib.colors import to_rgba

    overlay = next(ax for ax in fig.axes if ax.get_title() == "depth truth").images[1]
    assert np.allclose(overlay.get_array()[0, 0], to_rgba(SKY_COLOR))
    # no finite depth anywhere: the scale still exists
    scale = depth_scale([all_sky], [np.full((4, 4), np.nan)], depth_max_m=40.0)
    assert 0 < scale.vmin < scale.vmax == 40.0
    no_sky = build_eval_mosaic([_row(0, sky=False)], T0)
    assert [lg.get_title().get_text() for lg in no_sky.legends] == ["classes"]


def test_depth_scale_log_for_wide_ranges_and_capped_by_depth_max():
    wide = depth_scale([np.linspace(2, 80, 1000)], [])
    assert wide.log and wide.vmin == pytest.approx(3.56, rel=0.01)
    narrow = depth_scale([], [np.linspace(0.5, 2.0, 1000)])  # no truth: the prediction
    assert not narrow.log and narrow.vmax == pytest.approx(1.97, rel=0.01)
    capped = depth_scale([np.linspace(2, 80, 1000)], [], depth_max_m=20.0)
    assert 15.0 < capped.vmax <= 20.0 and capped.vmin < 5.0


def test_columns_of_different_sizes_and_extras(tmp_path):
    rows = [_row(0, events=np.zeros((260, 346, 3), np.uint8),
                 semantic=np.full((96, 128), CAR, np.uint8),
                 extra={"frame": np.zeros((120, 160), np.uint8)})]
    fig = build_eval_mosaic(rows, T0)
    assert _column_titles(fig)[-1] == "frame"
    shapes = [ax.images[0].get_array().shape[:2] for ax in fig.axes if ax.images
              and ax.get_label() != "<colorbar>"]
    assert (260, 346) in shapes and (48, 64) in shapes and (96, 128) in shapes
    assert save_eval_mosaic(tmp_path / "sizes.png", rows, T0).stat().st_size > 1000


def test_training_mosaic_uses_the_same_conventions(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    import event_fm.evaluation.mosaic as mosaic
    from event_fm.evaluation.plots import save_mosaic

    b, h, w = 2, 24, 32
    depth = torch.linspace(2, 40, h)[None, :, None].repeat(b, 1, w)
    depth[:, :3] = float("inf")
    semantic = torch.full((b, h, w), ROAD, dtype=torch.long)
    semantic[:, :2] = IGNORE
    batch = SimpleNamespace(voxels=torch.randn(b, 5, h, w), images=torch.rand(b, 3, h, w),
                            images_clean=torch.rand(b, 3, h, w), depth=depth,
                            semantic=semantic)
    logits = torch.zeros(b, 11, h, w)
    logits[:, CAR] = 1
    out = {"depth": depth[:, None].clamp(max=50), "semantic_logits": logits}
    figures = []
    build = mosaic.build_mosaic
    monkeypatch.setattr(mosaic, "build_mosaic",
                        lambda *a, **k: figures.append(build(*a, **k)) or figures[-1])
    path = tmp_path / "mosaic_val.png"
    save_mosaic(path, [("teacher_rgb", batch, out), ("student_events", batch, out)],
                max_samples=1)
    assert path.exists()
    (fig,) = figures
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()] == ["teacher_rgb #0",
                                                                        "student_events #0"]
    (bar,) = _colorbars(fig)
    assert "(m)" in bar.get_xlabel()
    assert _legend(fig, "classes") == [CLASS_NAMES[ROAD], CLASS_NAMES[CAR], "ignore"]
    assert "sky / beyond range (inf)" in _legend(fig, "depth")
