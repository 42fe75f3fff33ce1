"""Voxel grids: events spread over B time bins with bilinear weights (Zhu et al., E2VID, REALM).

An event at t in [t_start, t_end] sits at tn = (B - 1)(t - t_start)/(t_end - t_start) and adds
its polarity (+1 ON, -1 OFF) times (1 - |tn - b|) to the two bins b nearest to tn; an event on a
bin adds exactly 1 to it, so the first and the last event of a window are both inside the grid
(tonic scales by B instead and loses the last one). t_end == t_start puts the events at that
instant in bin 0. Events outside the window or the sensor are dropped (counted in ``stats``,
see :mod:`event_fm.representations._accumulate`).

The numba backend runs batches window-per-thread and single windows of at least
``NUMBA_SPLIT_MIN`` events over per-thread partial grids. GNU OpenMP (numba's usual threading
layer) does not survive ``fork``: in forked data-loader workers set ``NUMBA_NUM_THREADS=1``
(the kernels then never start a pool) or use the ``spawn`` start method.
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np
import torch

from event_fm.representations import _numba_kernels as nk
from event_fm.representations import _torch_kernels as tk
from event_fm.representations._accumulate import (
    Backend,
    check_backend,
    check_sensor,
    check_window,
    new_stats_counter,
    record,
)
from event_fm.representations._inputs import (
    Columns,
    Events,
    chunk_size,
    columns,
    concat,
    resolve_device,
    to_numpy,
    to_torch,
    torch_chunks,
)
from event_fm.representations.normalization import NORMALIZATIONS, Normalization
from event_fm.representations.normalization import normalize as apply_normalization
from event_fm.representations.windows import Windows

#: Below this many events one thread beats splitting one window over threads: each thread needs
#: its own zeroed grid and the partial grids are summed after (1280x720x5: ~18 MB per thread).
NUMBA_SPLIT_MIN = 4_000_000
#: numba's workqueue threading layer (used when neither TBB nor OpenMP is present) aborts on
#: parallel launches from two Python threads at once; nodes may call from several threads.
_PARALLEL = threading.Lock()


def voxel_grid(events: Events, num_bins: int, height: int, width: int, t_start: int, t_end: int,
               normalize: Normalization = "none", backend: Backend = "torch", device=None,
               stats: dict | None = None) -> torch.Tensor:
    """Voxel grid (num_bins, height, width) float32 of the events in [t_start, t_end] (ns).

    ``events``: a structured event array, a dict of 1-D arrays/tensors or an (N, 4) x, y, t, p
    tensor (see :mod:`event_fm.representations._inputs`); order does not matter. ``device``
    defaults to where tensor events live, else the CPU; numpy events travel there once.
    ``stats``, if given, receives the event and drop counts.
    """
    _check(num_bins, normalize, backend)
    height, width = check_sensor(height, width)
    t0, t1 = check_window(t_start, t_end)
    cols = columns(events)
    device = resolve_device(cols, device)
    if backend == "numba":
        grid = _numba_single(to_numpy(cols), num_bins, height, width, t0, t1, stats)
        grid = torch.from_numpy(grid).to(device)
    else:
        plane = height * width
        flat = torch.zeros((num_bins + 2) * plane, dtype=torch.float32, device=device)
        counter = new_stats_counter(stats, device)
        for chunk in torch_chunks(cols, device):
            tk.voxel(flat, chunk, t0, t1 - t0, 0, num_bins, height, width, num_bins * plane,
                     counter)
        record(stats, len(cols), counter)
        grid = flat[: num_bins * plane].view(num_bins, height, width)
    return apply_normalization(grid, normalize)


def voxel_grid_batch(events: Events | list[Events], window_bounds, num_bins: int, height: int,
                     width: int, normalize: Normalization = "none", backend: Backend = "torch",
                     device=None, stats: dict | None = None) -> torch.Tensor:
    """Voxel grids of many windows in one call -> (N, num_bins, height, width) float32.

    Three forms:

    * ``events`` a list (or tuple) of event inputs, one per window, and ``window_bounds`` an
      (N, 2) array of (t_start, t_end);
    * one event input and a :class:`Windows` (from :mod:`.windows`): its index ranges select
      each window's events, its times normalize them;
    * one event input and an (N, 2) array of (t_start, t_end): each window takes the events with
      t in [t_start, t_end] (windows may overlap; unsorted events are sorted first).

    Each window is normalized on its own; see :func:`normalize_sequence` for joint scaling.
    """
    _check(num_bins, normalize, backend)
    height, width = check_sensor(height, width)
    cols, index, times = _batch_layout(events, window_bounds)
    device = resolve_device(cols, device)
    if backend == "numba":
        grid = _numba_batch(to_numpy(cols), index, times, num_bins, height, width, stats)
        grid = torch.from_numpy(grid).to(device)
    else:
        grid = _torch_batch(cols, index, times, num_bins, height, width, device, stats)
    return apply_normalization(grid, normalize)


def _check(num_bins: int, normalize: str, backend: str) -> None:
    check_backend(backend)
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")


def _batch_layout(events, window_bounds):
    """(columns, (N, 2) index ranges, (N, 2) int64 times) for any of the batch forms.

    Index ranges are numpy for numpy events and torch (on the events' device) for tensors.
    """
    if isinstance(window_bounds, Windows):
        if isinstance(events, (list, tuple)):
            raise TypeError("a Windows object indexes one event array, not a list")
        return columns(events), window_bounds.index, _times(window_bounds.time)
    times = _times(window_bounds)
    if isinstance(events, (list, tuple)):
        if len(events) != times.shape[0]:
            raise ValueError(f"{len(events)} event sets but {times.shape[0]} windows")
        cols, offsets = concat(list(events))
        return cols, offsets, times
    cols = columns(events)
    if cols.is_torch:
        t = cols.t
        if t.numel() > 1 and bool((t[1:] < t[:-1]).any()):
            cols = cols.take(torch.argsort(t, stable=True))
        t = cols.t.contiguous()
        starts = torch.from_numpy(times[:, 0].copy()).to(t.device)
        ends = torch.from_numpy(times[:, 1].copy()).to(t.device)
        index = torch.stack([torch.searchsorted(t, starts, side="left"),
                             torch.searchsorted(t, ends, side="right")], dim=1)
        return cols, index, times
    t = cols.t
    if t.shape[0] > 1 and bool(np.any(t[1:] < t[:-1])):
        cols = cols.take(np.argsort(t, kind="stable"))
    index = np.stack([np.searchsorted(cols.t, times[:, 0], side="left"),
                      np.searchsorted(cols.t, times[:, 1], side="right")], axis=1)
    return cols, index.astype(np.int64), times


def _times(bounds) -> np.ndarray:
    if isinstance(bounds, torch.Tensor):
        bounds = bounds.cpu().numpy()
    times = np.asarray(bounds)
    if times.ndim != 2 or times.shape[1] != 2 or not np.issubdtype(times.dtype, np.integer):
        raise ValueError("window bounds must be an (N, 2) integer array of (t_start, t_end) ns")
    times = times.astype(np.int64)
    if np.any(times[:, 1] < times[:, 0]):
        raise ValueError("a window ends before it starts")
    return times


def _numba_single(cols: Columns, nbins, height, width, t0, t1, stats) -> np.ndarray:
    n = len(cols)
    threads = nb.get_num_threads()
    if n >= NUMBA_SPLIT_MIN and threads > 1:
        partial = np.zeros((threads, nbins, height, width), np.float32)
        counts = np.zeros((threads, 2), np.int64)
        with _PARALLEL:
            nk.voxel_split(*cols, 0, n, t0, t1, partial, counts)
        record(stats, n, counts)
        return partial[0]
    out = np.zeros((nbins, height, width), np.float32)
    counts = nk.voxel_range(*cols, 0, n, t0, t1, out)
    record(stats, n, counts)
    return out


def _numba_batch(cols: Columns, index, times, nbins, height, width, stats) -> np.ndarray:
    if isinstance(index, torch.Tensor):
        index = index.cpu().numpy()
    index = np.ascontiguousarray(index, dtype=np.int64)
    out = np.zeros((times.shape[0], nbins, height, width), np.float32)
    counts = np.zeros((times.shape[0], 2), np.int64)
    if nb.get_num_threads() > 1 and times.shape[0] > 1:
        with _PARALLEL:
            nk.voxel_windows(*cols, index[:, 0].copy(), index[:, 1].copy(), times[:, 0].copy(),
                             times[:, 1].copy(), out, counts)
    else:  # NUMBA_NUM_THREADS=1 (e.g. forked loader workers): never start a thread pool
        for k, ((a, b), (t0, t1)) in enumerate(zip(index.tolist(), times.tolist(), strict=True)):
            counts[k] = nk.voxel_range(*cols, a, b, t0, t1, out[k])
    record(stats, int((index[:, 1] - index[:, 0]).sum()), counts)
    return out


def _torch_batch(cols: Columns, index, times, nbins, height, width, device, stats):
    """Gather every window's events (with their window id) and scatter them all at once."""
    n_win = times.shape[0]
    plane = height * width
    cells = nbins * plane
    flat = torch.zeros(n_win * cells + 2 * plane, dtype=torch.float32, device=device)
    counter = new_stats_counter(stats, device)
    win, pos = _gather_index(index, cols.t.device if cols.is_torch else None)
    t0 = torch.from_numpy(times[:, 0]).to(device)
    span = torch.from_numpy(times[:, 1] - times[:, 0]).to(device)
    step = chunk_size(device)
    for lo in range(0, int(pos.shape[0]), step):
        chunk = to_torch(cols.take(pos[lo:lo + step]), device)
        w = win[lo:lo + step]
        w = (w if isinstance(w, torch.Tensor) else torch.from_numpy(w)).to(device)
        tk.voxel(flat, chunk, t0[w], span[w], w * cells, nbins, height, width, n_win * cells,
                 counter)
    record(stats, int(pos.shape[0]), counter)
    return flat[: n_win * cells].view(n_win, nbins, height, width)


def _gather_index(index, device: torch.device | None):
    """Per gathered event: its window id and its position in the columns (on ``device``)."""
    if device is not None:
        index = torch.as_tensor(index, dtype=torch.int64).to(device)
        starts, ends = index[:, 0], index[:, 1]
        lengths = ends - starts
        total = int(lengths.sum())  # the batch's one host sync: the gathered size
        ids = torch.arange(len(lengths), device=lengths.device)
        win = torch.repeat_interleave(ids, lengths, output_size=total)
        base = torch.repeat_interleave(starts - (lengths.cumsum(0) - lengths), lengths,
                                       output_size=total)
        return win, base + torch.arange(total, device=lengths.device)
    index = np.asarray(index, dtype=np.int64)
    starts, ends = index[:, 0], index[:, 1]
    lengths = ends - starts
    win = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    base = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return win, base + np.arange(base.shape[0], dtype=np.int64)
