"""Inference helpers from REALM: overlapping tiles for other aspect ratios, and memory hold.

The encoder is trained at one input size; sensors come in many. Rather than distorting the input,
it is covered by tiles of the model's aspect ratio taken from the corners (plus evenly spaced
middle tiles when two per side do not cover it); dense outputs are pasted back and overlaps
averaged with a count mask. Memory hold keeps the last valid prediction through windows with no
events, where the encoder would only see zeros and answer with noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F

__all__ = ["MemoryHold", "active_pixels", "plan_tiles", "tile_starts", "tiled_forward"]

Box = tuple[int, int, int, int]  # (y0, x0, height, width) in input pixels


def tile_starts(length: int, tile: int) -> list[int]:
    """Offsets of ``tile``-sized tiles covering ``length``: both ends, then evenly between."""
    if tile >= length:
        return [0]
    count = math.ceil(length / tile)
    span = length - tile
    return sorted({round(i * span / (count - 1)) for i in range(count)})


def plan_tiles(
    image_size: tuple[int, int],
    model_size: tuple[int, int],
    tile_size: tuple[int, int] | None = None,
) -> list[Box]:
    """Tiles covering ``image_size`` (H, W).

    By default a tile has the model's aspect ratio and is as large as fits (the input's tighter
    side is covered by one tile, e.g. a left and a right tile for a wide input); each tile is then
    resized to ``model_size``. An explicit ``tile_size`` in input pixels (e.g. the model size, as
    REALM does on DSEC with four corner tiles) is used as given, clipped to the image.
    """
    height, width = image_size
    if tile_size is None:
        scale = min(height / model_size[0], width / model_size[1])
        th = min(height, max(1, round(model_size[0] * scale)))
        tw = min(width, max(1, round(model_size[1] * scale)))
    else:
        th, tw = min(tile_size[0], height), min(tile_size[1], width)
    return [(y, x, th, tw) for y in tile_starts(height, th) for x in tile_starts(width, tw)]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def tiled_forward(
    fn: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    inputs: torch.Tensor,
    model_size: tuple[int, int],
    tile_size: tuple[int, int] | None = None,
    keep: Iterable[str] | None = None,
    native: bool = False,
) -> dict[str, torch.Tensor]:
    """Run ``fn`` on overlapping tiles of ``inputs`` (B, C, H, W) and stitch its outputs.

    ``fn`` maps a (B', C, *model_size) batch of tiles to a dict (all tiles go in one call,
    B' = B x tiles, and outputs are split back per tile). Dense outputs (B, C', h, w) may have any
    stride relative to the model input (h / model_h): they are stitched on a canvas of the same
    stride over the whole input, overlaps averaged. Global outputs (B, C') are averaged over
    tiles; anything else is dropped. ``keep``: only these keys are stitched (the rest is
    dropped), because pasting wide maps nobody reads (128 depth logits, 192-d patch features)
    back at sensor size costs more than the network at large sensors. ``native``: the canvas
    has the model's own pixel density (a 1280x720 input tiled by 720x960 tiles into a 96x128
    model gets a 96x171 canvas) and tiles are pasted without resizing, so the cost does not grow
    with the sensor; the caller resizes only what it publishes.
    """
    if inputs.ndim != 4:
        raise ValueError(f"expected inputs (B, C, H, W), got {tuple(inputs.shape)}")
    height, width = inputs.shape[-2:]
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, torch.Tensor] = {}
    tiles = plan_tiles((height, width), model_size, tile_size)
    wanted = None if keep is None else set(keep)
    # all tiles in one call: one batched forward costs less than one forward per tile
    batch = inputs.shape[0]
    stacked = torch.cat([_resize(inputs[..., y0:y0 + th, x0:x0 + tw], model_size)
                         for y0, x0, th, tw in tiles])
    results = {key: value for key, value in fn(stacked).items()
               if (wanted is None or key in wanted) and isinstance(value, torch.Tensor)
               and value.is_floating_point() and value.shape[:1] == stacked.shape[:1]}
    for i, (y0, x0, th, tw) in enumerate(tiles):
        for key, full in results.items():
            value = full[i * batch:(i + 1) * batch]
            if value.ndim == 2:
                sums[key] = sums.get(key, 0) + value
                counts[key] = counts.get(key, 0) + 1
                continue
            if value.ndim != 4:
                continue
            fy, fx = value.shape[-2] / model_size[0], value.shape[-1] / model_size[1]
            if native:  # input pixels -> model pixels of the (equal-sized) tiles
                fy, fx = fy * model_size[0] / th, fx * model_size[1] / tw
            canvas_h, canvas_w = round(height * fy), round(width * fx)
            if key not in sums:
                sums[key] = value.new_zeros(*value.shape[:2], canvas_h, canvas_w)
                counts[key] = value.new_zeros(1, 1, canvas_h, canvas_w)
            oy, ox = round(y0 * fy), round(x0 * fx)
            oh = min(round(th * fy), canvas_h - oy)
            ow = min(round(tw * fx), canvas_w - ox)
            sums[key][..., oy:oy + oh, ox:ox + ow] += _resize(value, (oh, ow))
            counts[key][..., oy:oy + oh, ox:ox + ow] += 1
    out = {}
    for key, total in sums.items():
        count = counts[key]
        out[key] = total / count.clamp(min=1) if isinstance(count, torch.Tensor) else total / count
    return out


def active_pixels(voxels: torch.Tensor) -> torch.Tensor:
    """Pixels with any non-zero bin, per sample (B,): an event-activity measure for a voxel grid."""
    return (voxels != 0).any(dim=1).flatten(1).sum(dim=1)


class MemoryHold:
    """Replace outputs of (nearly) empty windows by the last valid ones, per sample.

    Call once per window with the model outputs and that window's event count (an int or one per
    sample). Windows with fewer than ``min_events`` events return the previous valid outputs;
    before any valid window there is nothing to hold and the outputs pass through. ``held``
    reports which samples of the last call were replaced.
    """

    def __init__(self, min_events: int = 1) -> None:
        self.min_events = min_events
        self._last: dict[str, torch.Tensor] = {}
        self._has_valid: torch.Tensor | None = None
        self.held = torch.zeros(0, dtype=torch.bool)

    def reset(self) -> None:
        self._last = {}
        self._has_valid = None
        self.held = torch.zeros(0, dtype=torch.bool)

    def __call__(
        self, outputs: Mapping[str, torch.Tensor], num_events: int | torch.Tensor
    ) -> dict[str, torch.Tensor]:
        tensors = [v for v in outputs.values() if isinstance(v, torch.Tensor) and v.ndim > 0]
        batch = tensors[0].shape[0] if tensors else 1
        counts = torch.as_tensor(num_events).reshape(-1).cpu()
        if counts.numel() == 1:
            counts = counts.expand(batch)
        if counts.numel() != batch:
            raise ValueError(f"{counts.numel()} event counts for a batch of {batch}")
        valid = counts >= self.min_events
        has = self._has_valid
        if has is None or has.numel() != batch:
            self._last, has = {}, torch.zeros(batch, dtype=torch.bool)
        hold = ~valid & has
        result: dict[str, torch.Tensor] = {}
        for key, value in outputs.items():
            last = self._last.get(key)
            if (
                isinstance(value, torch.Tensor) and last is not None and hold.any()
                and last.shape == value.shape
            ):
                mask = hold.to(value.device).view(-1, *([1] * (value.ndim - 1)))
                value = torch.where(mask, last.to(value.device), value)
            result[key] = value
            if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == batch:
                self._last[key] = value.detach().clone()
        self._has_valid = has | valid
        self.held = hold
        return result
