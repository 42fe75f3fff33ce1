"""CPU kernels: one pass over the events, scattering straight into the output grid.

Every kernel takes the columns x, y, t, p, a half-open index range and the window [t0, t1]
(int64 ns, inclusive), and returns how many events fell outside the sensor and outside the
window. Times are made relative in int64 before any float conversion, so absolute epochs
(~1.7e18 ns) lose no precision.

Parallel versions never let two threads write one cell: windows of a batch go to different
threads, and a single large window is split into per-thread partial grids that are summed after.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def voxel_range(x, y, t, p, lo, hi, t0, t1, out):
    """Bilinear-in-time voxel grid of events [lo, hi) into ``out`` (B, H, W) float32."""
    nbins, height, width = out.shape
    span = t1 - t0
    # tn = dt * (B - 1) / span: numerator exact in float64, one rounding, so an event on a bin
    # gets exactly weight 1 there. span == 0: only events at t0 remain, all in bin 0.
    numer = float(nbins - 1)
    denom = float(span) if span > 0 else 1.0
    oob = 0
    oow = 0
    for i in range(lo, hi):
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        if xi < 0 or yi < 0 or xi >= width or yi >= height:
            oob += 1
            continue
        dt = np.int64(t[i]) - t0
        if dt < 0 or dt > span:
            oow += 1
            continue
        tn = (float(dt) * numer) / denom
        b = np.int64(tn)
        w1 = tn - b
        v = 1.0 if p[i] > 0 else -1.0
        out[b, yi, xi] += np.float32(v * (1.0 - w1))
        if w1 > 0.0:
            out[b + 1, yi, xi] += np.float32(v * w1)
    return oob, oow


@nb.njit(cache=True, nogil=True, parallel=True)
def voxel_windows(x, y, t, p, starts, ends, t0s, t1s, out, counts):
    """One grid per window, windows spread over threads: out (N, B, H, W), counts (N, 2)."""
    for n in nb.prange(out.shape[0]):
        oob, oow = voxel_range(x, y, t, p, starts[n], ends[n], t0s[n], t1s[n], out[n])
        counts[n, 0] = oob
        counts[n, 1] = oow


@nb.njit(cache=True, nogil=True, parallel=True)
def voxel_split(x, y, t, p, lo, hi, t0, t1, partial, counts):
    """One window over C threads: partial (C, B, H, W) zeros; the sum lands in partial[0]."""
    nparts = partial.shape[0]
    n = hi - lo
    for c in nb.prange(nparts):
        a = lo + c * n // nparts
        b = lo + (c + 1) * n // nparts
        oob, oow = voxel_range(x, y, t, p, a, b, t0, t1, partial[c])
        counts[c, 0] = oob
        counts[c, 1] = oow
    flat = partial.reshape(nparts, -1)
    for j in nb.prange(flat.shape[1]):
        s = flat[0, j]
        for c in range(1, nparts):
            s += flat[c, j]
        flat[0, j] = s


@nb.njit(cache=True, nogil=True)
def count_range(x, y, t, p, lo, hi, t0, t1, nbins, split, out):
    """Event counts into ``out`` (C, H, W) int32 with C = nbins, or 2 * nbins when ``split``.

    Channel = polarity * nbins + floor(nbins * dt / span) (the last bin keeps t1; span == 0
    puts everything in bin 0), polarity-major as in RVT's stacked histogram.
    """
    height, width = out.shape[1], out.shape[2]
    span = t1 - t0
    oob = 0
    oow = 0
    for i in range(lo, hi):
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        if xi < 0 or yi < 0 or xi >= width or yi >= height:
            oob += 1
            continue
        dt = np.int64(t[i]) - t0
        if dt < 0 or dt > span:
            oow += 1
            continue
        b = (dt * nbins) // span if span > 0 else 0
        if b >= nbins:
            b = nbins - 1
        if split and p[i] > 0:
            b += nbins
        out[b, yi, xi] += 1
    return oob, oow


@nb.njit(cache=True, nogil=True)
def last_time_range(x, y, t, p, lo, hi, t0, t1, split, out):
    """Latest ``t - t0`` per pixel into ``out`` (C, H, W) int64 preset to -1; C = 2 if split.

    A maximum, not "the last one seen", so unsorted input gives the same answer.
    """
    height, width = out.shape[1], out.shape[2]
    span = t1 - t0
    oob = 0
    oow = 0
    for i in range(lo, hi):
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        if xi < 0 or yi < 0 or xi >= width or yi >= height:
            oob += 1
            continue
        dt = np.int64(t[i]) - t0
        if dt < 0 or dt > span:
            oow += 1
            continue
        c = 1 if split and p[i] > 0 else 0
        if dt > out[c, yi, xi]:
            out[c, yi, xi] = dt
    return oob, oow
