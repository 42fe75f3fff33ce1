"""Overlapping tiling for other aspect ratios, and memory hold through empty windows."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from event_fm.models import MemoryHold, active_pixels, plan_tiles, tiled_forward
from event_fm.models.inference import tile_starts

MODEL = (16, 32)  # (H, W) of a toy model: aspect 1:2


def test_tile_starts_use_corners_then_the_middle():
    assert tile_starts(32, 32) == [0]
    assert tile_starts(20, 32) == [0]
    assert tile_starts(48, 32) == [0, 16]
    assert tile_starts(80, 32) == [0, 24, 48]  # left, centre, right


def test_plan_tiles():
    # Wide input at the model's scale: a left and a right tile.
    assert plan_tiles((16, 48), MODEL) == [(0, 0, 16, 32), (0, 16, 16, 32)]
    # Twice the model size in both directions with the same aspect: one scaled tile.
    assert plan_tiles((32, 64), MODEL) == [(0, 0, 32, 64)]
    # REALM on DSEC: 448 px tiles at native scale on 480x640 -> the four corners.
    corners = plan_tiles((480, 640), (448, 448), tile_size=(448, 448))
    assert corners == [(0, 0, 448, 448), (0, 192, 448, 448), (32, 0, 448, 448),
                       (32, 192, 448, 448)]


def test_constant_head_gives_the_constant_back():
    def head(x):
        b = x.shape[0]
        return {"depth": torch.full((b, 1, *x.shape[-2:]), 7.0),
                "coarse": torch.full((b, 3, x.shape[-2] // 8, x.shape[-1] // 8), -2.0),
                "cls": torch.ones(b, 4), "ignored": torch.zeros(b, 2, 2, 2, 2)}

    for size in [(16, 48), (16, 80), (40, 56), (32, 64)]:
        out = tiled_forward(head, torch.randn(2, 5, *size), MODEL)
        assert out["depth"].shape == (2, 1, *size)
        torch.testing.assert_close(out["depth"], torch.full((2, 1, *size), 7.0))
        assert out["coarse"].shape == (2, 3, round(size[0] / 8), round(size[1] / 8))
        torch.testing.assert_close(out["coarse"], torch.full_like(out["coarse"], -2.0))
        torch.testing.assert_close(out["cls"], torch.ones(2, 4))
        assert "ignored" not in out


def test_keep_stitches_only_the_named_outputs_and_leaves_them_unchanged():
    def head(x):
        b = x.shape[0]
        return {"depth": x[:, :1] * 2, "logits": x.repeat(1, 8, 1, 1), "cls": torch.ones(b, 4)}

    x = torch.randn(1, 2, 16, 80)
    full = tiled_forward(head, x, MODEL)
    kept = tiled_forward(head, x, MODEL, keep=("depth", "cls"))
    assert set(kept) == {"depth", "cls"} and set(full) == {"depth", "logits", "cls"}
    torch.testing.assert_close(kept["depth"], full["depth"])
    assert tiled_forward(head, x, MODEL, keep=()) == {}


def test_native_canvas_keeps_the_model_resolution_whatever_the_input_size():
    def head(x):
        return {"depth": x[:, :1] + 1.0, "coarse": F.avg_pool2d(x, 8)}

    # a 4x larger input, one tile: the canvas is the model's 16x32, the tile pasted as is
    x = torch.randn(1, 2, 64, 128)
    out = tiled_forward(head, x, MODEL, native=True)
    tile = F.interpolate(x, size=MODEL, mode="bilinear", align_corners=False, antialias=True)
    assert out["depth"].shape == (1, 1, *MODEL) and out["coarse"].shape == (1, 2, 2, 4)
    torch.testing.assert_close(out["depth"], tile[:, :1] + 1.0)
    # two tiles side by side (32x64 each, model 16x32): a 16x48 canvas, the overlap averaged
    wide = tiled_forward(lambda t: {"d": torch.ones(t.shape[0], 1, *t.shape[-2:])},
                         torch.zeros(1, 1, 32, 96), MODEL, native=True)["d"]
    assert wide.shape == (1, 1, 16, 48)
    torch.testing.assert_close(wide, torch.ones_like(wide))
    # the sensor-size canvas is the native one resized (same content, more pixels)
    assert tiled_forward(head, x, MODEL)["depth"].shape == (1, 1, 64, 128)


def test_identity_and_strided_outputs_stitch_exactly():
    x = torch.randn(1, 2, 16, 80)

    def model(tile):
        assert tile.shape[-2:] == MODEL
        return {"same": tile, "pooled": F.avg_pool2d(tile, 8)}

    out = tiled_forward(model, x, MODEL)
    torch.testing.assert_close(out["same"], x)
    torch.testing.assert_close(out["pooled"], F.avg_pool2d(x, 8))


def test_position_dependent_output_is_averaged_where_tiles_overlap():
    """A toy head that outputs each pixel's column inside its tile: columns 0-15 are seen only
    by the left tile, 32-47 only by the right one, and 16-31 by both (average of both)."""
    def local_column(tile):
        cols = torch.arange(tile.shape[-1], dtype=torch.float32)
        return {"col": cols.expand(tile.shape[0], 1, tile.shape[-2], -1)}

    out = tiled_forward(local_column, torch.zeros(1, 1, 16, 48), MODEL)["col"][0, 0, 0]
    expected = torch.empty(48)
    expected[:16] = torch.arange(16.0)
    expected[16:32] = (torch.arange(16.0, 32.0) + torch.arange(0.0, 16.0)) / 2
    expected[32:] = torch.arange(16.0, 32.0)
    torch.testing.assert_close(out, expected)


def test_scaled_tiles_are_resized_to_the_model_and_run_in_one_batch():
    seen = []

    def model(tile):
        seen.append(tuple(tile.shape))
        return {"map": torch.ones(tile.shape[0], 1, *tile.shape[-2:])}

    out = tiled_forward(model, torch.randn(1, 1, 32, 96), MODEL)  # tiles of 32x64, scale 2
    assert seen == [(2, 1, *MODEL)] and out["map"].shape == (1, 1, 32, 96)
    with pytest.raises(ValueError):
        tiled_forward(model, torch.randn(32, 96), MODEL)


def test_memory_hold_repeats_the_last_valid_output():
    hold = MemoryHold(min_events=10)
    first = {"depth": torch.full((1, 1, 2, 2), 3.0)}
    assert torch.equal(hold(first, 100)["depth"], first["depth"]) and not hold.held.any()
    noise = {"depth": torch.randn(1, 1, 2, 2)}
    assert torch.equal(hold(noise, 2)["depth"], first["depth"]) and hold.held.all()
    assert torch.equal(hold(noise, 0)["depth"], first["depth"])  # still held
    fresh = {"depth": torch.full((1, 1, 2, 2), 5.0)}
    assert torch.equal(hold(fresh, 10)["depth"], fresh["depth"]) and not hold.held.any()
    hold.reset()
    assert torch.equal(hold(noise, 0)["depth"], noise["depth"])  # nothing to hold yet


def test_memory_hold_per_sample():
    hold = MemoryHold()
    hold({"x": torch.tensor([[1.0], [2.0]])}, torch.tensor([5, 0]))
    out = hold({"x": torch.tensor([[9.0], [8.0]])}, torch.tensor([0, 3]))
    # sample 0 is empty now -> held at 1; sample 1 is valid -> new value
    assert out["x"].tolist() == [[1.0], [8.0]] and hold.held.tolist() == [True, False]
    out = hold({"x": torch.tensor([[7.0], [6.0]])}, torch.tensor([0, 0]))
    assert out["x"].tolist() == [[1.0], [8.0]]
    with pytest.raises(ValueError):
        hold({"x": torch.zeros(2, 1)}, torch.tensor([1, 2, 3]))


def test_active_pixels_counts_pixels_with_events():
    v = torch.zeros(2, 5, 4, 4)
    v[0, 1, 0, 0] = 1.0
    v[0, 3, 0, 0] = -1.0
    v[0, 2, 3, 3] = 0.5
    assert active_pixels(v).tolist() == [2, 0]
