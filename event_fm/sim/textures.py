"""Procedural, band-limited surface textures evaluated per ray hit (numba).

Events come from intensity edges, so surfaces carry high-frequency detail (noise, stripes,
bricks, tiles, checkers). Point-sampling such detail on distant surfaces would alias into
flicker that a real pixel, which integrates light over its footprint, never sees; every pattern
therefore takes the pixel's footprint on the surface (metres) and fades the components finer
than the footprint to their mean (noise octaves) or integrates them over it (lines).

A texture is an id plus a parameter row ``[r1, g1, b1, r2, g2, b2, scale, seed, extra1,
extra2]``: two albedo colours (linear RGB in [0, 1]), a size multiplier, a noise seed and two
texture-specific values. ``(u, v)`` are metric surface coordinates, v pointing up on walls.
``PHOTO`` samples a real photograph of :mod:`event_fm.sim.photos` (row: gain, -, tile size in
metres, -, photograph index) from the mip-chain atlas every shading call receives.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

FLAT, ASPHALT, PAVING, BRICK, FACADE, FOLIAGE, BARK, METAL, CAR, CLOTH, SIGN, CHECKER, FENCE, \
    GRASS, PHOTO = range(15)
TEXTURE_NAMES = ("flat", "asphalt", "paving", "brick", "facade", "foliage", "bark", "metal",
                 "car", "cloth", "sign", "checker", "fence", "grass", "photo")
N_PARAMS = 10


def texture_row(c1, c2=(0.5, 0.5, 0.5), scale: float = 1.0, seed: int = 0, extra1: float = 0.0,
                extra2: float = 0.0) -> np.ndarray:
    """Parameter row of one textured surface."""
    return np.array([*c1, *c2, scale, seed, extra1, extra2], dtype=np.float64)


@nb.njit(cache=True, inline="always")
def _hash(ix, iy, seed):
    h = (ix * 374761393 + iy * 668265263 + seed * 1442695041) & 0xFFFFFFFF
    h = ((h ^ (h >> 15)) * 2146121005) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1597334677) & 0xFFFFFFFF
    h = h ^ (h >> 16)
    return h / 4294967296.0


@nb.njit(cache=True, inline="always")
def _clamp01(x):
    return min(max(x, 0.0), 1.0)


@nb.njit(cache=True)
def value_noise(x, y, seed):
    """Smooth value noise in [0, 1) with unit cells."""
    fx0, fy0 = math.floor(x), math.floor(y)
    ix, iy = np.int64(fx0), np.int64(fy0)
    fx, fy = x - fx0, y - fy0
    sx, sy = fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy)
    a = _hash(ix, iy, seed)
    b = _hash(ix + 1, iy, seed)
    c = _hash(ix, iy + 1, seed)
    d = _hash(ix + 1, iy + 1, seed)
    top = a + (b - a) * sx
    bot = c + (d - c) * sx
    return top + (bot - top) * sy


@nb.njit(cache=True, inline="always")
def _fade(freq, fp):
    """Weight of a pattern with ``freq`` cycles per metre seen through a footprint ``fp``."""
    return _clamp01(1.5 - 2.0 * fp * freq)


@nb.njit(cache=True)
def fbm(x, y, freq, octaves, fp, seed):
    """Fractal noise in [0, 1], mean 0.5, octaves finer than the footprint faded out."""
    total = 0.0
    norm = 0.0
    amp = 1.0
    for i in range(octaves):
        w = _fade(freq, fp)
        if w > 0.0:
            total += amp * (w * value_noise(x * freq, y * freq, seed + 17 * i) + (1.0 - w) * 0.5)
        else:  # finer than the footprint: its mean, without evaluating it
            total += amp * 0.5
        norm += amp
        amp *= 0.55
        freq *= 2.0
    return total / norm


@nb.njit(cache=True)
def lines(x, period, width, fp):
    """Coverage in [0, 1] of a footprint centred at ``x`` by lines of ``width`` every ``period``
    (centred on multiples of the period)."""
    d = x - period * math.floor(x / period + 0.5)  # signed offset from the nearest line centre
    hw = 0.5 * width
    f = max(fp, 1e-9)
    cover = max(0.0, min(d + 0.5 * f, hw) - max(d - 0.5 * f, -hw)) / f
    m = _clamp01(2.0 * fp / period - 0.5)
    return cover * (1.0 - m) + (width / period) * m


@nb.njit(cache=True, inline="always")
def _mix(P, row, a):
    """(1 - a) * colour1 + a * colour2."""
    return (P[row, 0] + (P[row, 3] - P[row, 0]) * a, P[row, 1] + (P[row, 4] - P[row, 1]) * a,
            P[row, 2] + (P[row, 5] - P[row, 2]) * a)


@nb.njit(cache=True, inline="always")
def _mirror(i, n):
    """Texel index ``i`` of a tile of ``n`` repeated mirrored (seamless)."""
    m = i % (2 * n)
    return m if m < n else 2 * n - 1 - m


@nb.njit(cache=True)
def _photo_level(atlas, k, level, size, x, y):
    """Bilinear sample of mip ``level`` of photograph ``k`` at finest-level texel (x, y)."""
    offset = 0
    n = size
    for _ in range(level):
        offset += n * n
        n = max(n // 2, 1)
    scale = float(size) / n
    fx = x / scale - 0.5
    fy = y / scale - 0.5
    x0, y0 = math.floor(fx), math.floor(fy)
    ax, ay = fx - x0, fy - y0
    ix0, ix1 = _mirror(np.int64(x0), n), _mirror(np.int64(x0) + 1, n)
    iy0, iy1 = _mirror(np.int64(y0), n), _mirror(np.int64(y0) + 1, n)
    i00, i01 = offset + iy0 * n + ix0, offset + iy0 * n + ix1
    i10, i11 = offset + iy1 * n + ix0, offset + iy1 * n + ix1
    w00, w01, w10, w11 = (1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay
    r = (atlas[k, i00, 0] * w00 + atlas[k, i01, 0] * w01 + atlas[k, i10, 0] * w10
         + atlas[k, i11, 0] * w11)
    g = (atlas[k, i00, 1] * w00 + atlas[k, i01, 1] * w01 + atlas[k, i10, 1] * w10
         + atlas[k, i11, 1] * w11)
    b = (atlas[k, i00, 2] * w00 + atlas[k, i01, 2] * w01 + atlas[k, i10, 2] * w10
         + atlas[k, i11, 2] * w11)
    return r, g, b


@nb.njit(cache=True)
def sample_photo(atlas, k, u, v, tile, fp):
    """Radiance of photograph ``k`` tiled every ``tile`` metres at (u, v), averaged over a
    footprint of ``fp`` metres (trilinear between the two mip levels around it)."""
    texels = atlas.shape[1]
    size = 1
    while (4 * size * size - 1) // 3 < texels:  # the chain of an S x S image has (4S^2 - 1)/3
        size *= 2
    if k < 0 or k >= atlas.shape[0] or size == 1:
        return 0.5, 0.5, 0.5  # no atlas given: the photograph's mean, roughly
    x = u / tile * size
    y = -v / tile * size  # v points up, image rows down
    lod = math.log2(max(fp / tile * size, 1.0))
    top = math.log2(size)
    lod = min(lod, top)
    l0 = int(math.floor(lod))
    a = lod - l0
    r, g, b = _photo_level(atlas, k, l0, size, x, y)
    if a > 0.0 and l0 + 1 <= top:
        r1, g1, b1 = _photo_level(atlas, k, l0 + 1, size, x, y)
        r, g, b = r + (r1 - r) * a, g + (g1 - g) * a, b + (b1 - b) * a
    return r, g, b


@nb.njit(cache=True)
def shade_texture(tex, P, row, u, v, fp, photos):
    """Albedo (r, g, b) of texture ``tex`` with parameter row ``P[row]`` at (u, v); ``photos``
    is the atlas of :func:`event_fm.sim.photos.photo_atlas` (or a 1-texel stand-in when the
    scene shows none).

    Rows are indexed rather than sliced: a slice per pixel costs reference counting that
    threads contend on."""
    s = P[row, 6]
    seed = np.int64(P[row, 7])
    if tex == PHOTO:
        r, g, b = sample_photo(photos, np.int64(P[row, 8]), u, v, s, fp)
        return r * P[row, 0], g * P[row, 1], b * P[row, 2]
    if tex == ASPHALT:
        n = fbm(u, v, 3.0 / s, 5, fp, seed)
        k = 0.55 + 0.9 * n
        r, g, b = P[row, 0] * k, P[row, 1] * k, P[row, 2] * k
        if P[row, 8] > 0.0:  # lane marks: dashed centre line and solid edges (v = lateral metres)
            dash = lines(u, 9.0, 3.0, fp)
            cover = lines(v, 1e6, 0.15, fp) * dash
            edge = P[row, 9] - 0.35
            cover += lines(abs(v) - edge, 1e6, 0.15, fp)
            cover = _clamp01(cover)
            r = r + (P[row, 3] - r) * cover
            g = g + (P[row, 4] - g) * cover
            b = b + (P[row, 5] - b) * cover
        return r, g, b
    if tex == PAVING:
        tile = 0.5 * s
        w = _fade(1.0 / tile, fp)
        var = 0.8 + 0.4 * (w * _hash(np.int64(math.floor(u / tile)),
                                     np.int64(math.floor(v / tile)), seed) + (1.0 - w) * 0.5)
        k = var * (0.8 + 0.4 * fbm(u, v, 6.0, 3, fp, seed))
        grout = max(lines(u, tile, 0.03, fp), lines(v, tile, 0.03, fp))
        r, g, b = _mix(P, row, grout)
        return r * k, g * k, b * k
    if tex == BRICK:
        bw, bh = 0.25 * s, 0.075 * s
        course = math.floor(v / bh)
        uu = u + 0.5 * bw * (course % 2)
        w = _fade(1.0 / bh, fp)
        var = 0.7 + 0.6 * (w * _hash(np.int64(math.floor(uu / bw)), np.int64(course), seed)
                           + (1.0 - w) * 0.5)
        mortar = max(lines(uu, bw, 0.012 * s, fp), lines(v, bh, 0.012 * s, fp))
        k = 0.85 + 0.3 * fbm(u, v, 20.0, 2, fp, seed)
        r, g, b = P[row, 0] * var * k, P[row, 1] * var * k, P[row, 2] * var * k
        return (r + (P[row, 3] - r) * mortar, g + (P[row, 4] - g) * mortar,
                b + (P[row, 5] - b) * mortar)
    if tex == FACADE:
        k = 0.75 + 0.5 * fbm(u, v, 2.0 / s, 5, fp, seed)
        window = lines(u, 3.0 * s, 1.3 * s, fp) * lines(v - 1.8 * s, 3.2 * s, 1.6 * s, fp)
        if v < 0.8 * s:
            window = 0.0
        sill = lines(v - 0.95 * s, 3.2 * s, 0.08 * s, fp) * lines(u, 3.0 * s, 1.5 * s, fp)
        r, g, b = P[row, 0] * k, P[row, 1] * k, P[row, 2] * k
        r = r + (P[row, 3] - r) * window
        g = g + (P[row, 4] - g) * window
        b = b + (P[row, 5] - b) * window
        lift = 1.0 + 0.6 * sill
        return r * lift, g * lift, b * lift
    if tex == FOLIAGE or tex == GRASS:
        freq = 4.0 / s if tex == FOLIAGE else 12.0 / s
        n = fbm(u, v * (1.0 if tex == FOLIAGE else 0.3), freq, 5, fp, seed)
        a = fbm(u, v, 0.7 / s, 3, fp, seed + 5)
        r, g, b = _mix(P, row, a)
        k = 0.35 + 1.3 * n
        return r * k, g * k, b * k
    if tex == BARK:
        n = fbm(u * 6.0, v * 0.5, 4.0 / s, 4, fp * 6.0, seed)
        k = 0.5 + n
        return P[row, 0] * k, P[row, 1] * k, P[row, 2] * k
    if tex == METAL:
        band = lines(v, 0.6 * s, 0.15 * s, fp)
        r, g, b = _mix(P, row, band)
        k = 0.9 + 0.2 * fbm(u, v, 10.0, 2, fp, seed)
        return r * k, g * k, b * k
    if tex == CAR:
        if P[row, 8] > 0.0:  # cabin: glass with pillars every ``extra1`` metres
            pillar = lines(u, P[row, 8], 0.12, fp)
            r, g, b = _mix(P, row, 1.0 - pillar)
            k = 0.8 + 0.4 * fbm(u, v, 3.0, 3, fp, seed)
            return r * k, g * k, b * k
        trim = lines(v - 0.45 * s, 1e6, 0.05, fp) + lines(u, 1.4 * s, 0.03, fp)
        k = 0.9 + 0.2 * fbm(u, v, 6.0, 3, fp, seed)
        r, g, b = P[row, 0] * k, P[row, 1] * k, P[row, 2] * k
        t = _clamp01(trim)
        return r * (1.0 - 0.7 * t), g * (1.0 - 0.7 * t), b * (1.0 - 0.7 * t)
    if tex == CLOTH:
        a = 1.0 if v < P[row, 8] else 0.0
        stripes = lines(v, 0.12 * s, 0.05 * s, fp) * (1.0 - a)
        r, g, b = _mix(P, row, a)
        k = (0.8 + 0.4 * fbm(u, v, 8.0, 3, fp, seed)) * (1.0 - 0.4 * stripes)
        return r * k, g * k, b * k
    if tex == SIGN:
        a = lines(u + v, 0.25 * s, 0.1 * s, fp)
        return _mix(P, row, a)
    if tex == CHECKER:
        period = 2.0 * s
        a = lines(u, period, s, fp)
        c = lines(v, period, s, fp)
        x = a + c - 2.0 * a * c  # xor of two square waves, averaged over the footprint
        r, g, b = _mix(P, row, x)
        k = 0.9 + 0.2 * fbm(u, v, 4.0, 3, fp, seed)
        return r * k, g * k, b * k
    if tex == FENCE:
        slat = lines(u, 0.14 * s, 0.09 * s, fp)
        rail = max(lines(v - 0.25, 1e6, 0.08, fp), lines(v - P[row, 8] + 0.15, 1e6, 0.08, fp))
        a = _clamp01(max(slat, rail))
        r, g, b = _mix(P, row, 1.0 - a)
        k = 0.85 + 0.3 * fbm(u, v, 5.0, 3, fp, seed)
        return r * k, g * k, b * k
    k = 0.85 + 0.3 * fbm(u, v, 1.5 / s, 4, fp, seed)  # FLAT
    return P[row, 0] * k, P[row, 1] * k, P[row, 2] * k


@nb.njit(cache=True)
def sky_color(dx, dy, dz, fp_angle, P):
    """Sky radiance along a unit direction: horizon-to-zenith gradient with soft clouds.
    ``P[0]`` = [horizon rgb, zenith rgb, cloudiness, seed, ...]."""
    e = max(dz, 0.0)
    a = _clamp01(e * 2.5)
    r, g, b = _mix(P, 0, a)
    h = e + 0.08  # clouds on a plane above the camera
    fp = fp_angle / (h * h)
    c = fbm(dx / h, dy / h, 0.6, 5, fp, np.int64(P[0, 7]))
    k = 1.0 + P[0, 6] * (c - 0.5) * 2.0
    return r * k, g * k, b * k
