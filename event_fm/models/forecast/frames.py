"""Event voxel frames for forecasting: E-Motion's format (B = 3 bins per 20 ms frame, square
crops resized to 128x128, max-|value| normalization) and the re-binning into other models' inputs.

Normalization divides a sequence by the max |value| of its *prompt* (past) frames, not of the
whole sequence as E-Motion does: at inference the future is unknown, so the scale must come from
the past; future values beyond the prompt's range are clipped to [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from event_fm.representations import voxel_grid

#: duration of one forecast frame (E-Motion: 20 ms)
FRAME_NS = 20_000_000


def square_resize(voxels: torch.Tensor, size: int) -> torch.Tensor:
    """Center square crop of (..., H, W), area-resized to (size, size) (mean over each cell)."""
    h, w = voxels.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = voxels[..., top:top + side, left:left + side]
    lead = crop.shape[:-2]
    flat = crop.reshape(-1, 1, side, side)
    out = F.adaptive_avg_pool2d(flat, size) if side != size else flat
    return out.reshape(*lead, size, size)


def frames_from_events(events: np.ndarray, t_start: int, num_frames: int, width: int,
                       height: int, bins: int = 3, size: int = 128,
                       frame_ns: int = FRAME_NS) -> torch.Tensor:
    """(num_frames, bins, size, size) voxel frames of consecutive ``frame_ns`` windows from
    ``t_start`` (sensor ns); un-normalized, area-resized (so values are event densities)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    t = events["t"]
    if len(t) > 1 and np.any(np.diff(t) < 0):
        events = events[np.argsort(t, kind="stable")]
        t = events["t"]
    edges = t_start + frame_ns * np.arange(num_frames + 1, dtype=np.int64)
    lo = np.searchsorted(t, edges[:-1], side="left")
    hi = np.searchsorted(t, edges[1:], side="right")
    frames = torch.zeros(num_frames, bins, size, size)
    for i in range(num_frames):
        chunk = events[lo[i]:hi[i]]
        grid = voxel_grid(chunk, bins, height, width, int(edges[i]), int(edges[i + 1]))
        frames[i] = square_resize(grid, size)
    return frames


def normalize_by_prompt(seq: torch.Tensor, num_prompt: int,
                        eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Divide (..., T, C, H, W) by the max |value| of the first ``num_prompt`` frames (per
    sequence), clip to [-1, 1]; returns (normalized, scale). An empty prompt keeps scale 1."""
    prompt = seq[..., :num_prompt, :, :, :]
    scale = prompt.abs().flatten(-4).amax(-1)
    scale = torch.where(scale > eps, scale, torch.ones_like(scale))
    out = (seq / scale[..., None, None, None, None]).clamp(-1.0, 1.0)
    return out, scale


def rebin_matrix(num_frames: int, bins: int, out_bins: int) -> torch.Tensor:
    """(out_bins, num_frames * bins) weights that move consecutive frames' bins onto
    ``out_bins`` bins spanning the same time, with the voxel grid's linear (B-1) weights.

    Frame k's bin b sits at time k + b / (bins - 1) (in frames); target bin j at
    j * num_frames / (out_bins - 1). Each source bin splits between its two nearest target
    bins, so the total (the net event count) is preserved.
    """
    src_t = torch.tensor([k + (b / (bins - 1) if bins > 1 else 0.0)
                          for k in range(num_frames) for b in range(bins)], dtype=torch.float64)
    pos = src_t * (out_bins - 1) / num_frames if out_bins > 1 else torch.zeros_like(src_t)
    low = pos.floor().clamp(max=out_bins - 1)
    frac = pos - low
    weights = torch.zeros(out_bins, len(src_t), dtype=torch.float64)
    idx = torch.arange(len(src_t))
    weights[low.long(), idx] += 1 - frac
    high = (low + 1).clamp(max=out_bins - 1).long()
    weights[high, idx] += frac
    return weights.float()


def rebin(frames: torch.Tensor, out_bins: int) -> torch.Tensor:
    """Consecutive frames (..., K, bins, H, W) -> one window (..., out_bins, H, W)."""
    k, bins = frames.shape[-4], frames.shape[-3]
    flat = frames.flatten(-4, -3)  # (..., K * bins, H, W)
    weights = rebin_matrix(k, bins, out_bins).to(frames.device, frames.dtype)
    return torch.einsum("os,...shw->...ohw", weights, flat)
