"""Real photographs as surface textures (issue 16 item 5).

Procedural patterns teach a model procedural statistics; a matcher distilled from a teacher
trained on real images (XFeat) should see real image content in training. scikit-image's wheel
bundles a handful of real photographs (a cat, coffee, a rocket, brick, gravel, grass, ...),
installed offline with the package; they are used as they ship, nothing is downloaded.

Each photograph becomes a square, linear-RGB mip chain (box-filtered halvings down to one
texel) packed into one array, so the renderer can sample it per ray hit with the pixel's
footprint: trilinear between the two levels around the footprint, which keeps distant photos
from aliasing into flicker (and so into spurious events). Tiles repeat mirrored, without seams.
"""

from __future__ import annotations

import functools

import numpy as np

from event_fm.sim import textures as T

#: the real photographs of scikit-image's bundled data (``skimage.data.<name>()``), offline
PHOTO_NAMES = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
               "moon", "motorcycle", "page", "rocket", "text")
#: side of the finest mip level (texels)
PHOTO_SIZE = 256


def photos_available() -> bool:
    """Whether scikit-image (the photographs' source) is installed."""
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        return False
    return True


def _load(name: str) -> np.ndarray:
    """One bundled photograph as (H, W, 3) uint8 sRGB."""
    try:
        import skimage.data
    except ImportError as exc:
        raise RuntimeError("photo textures need scikit-image (pip install scikit-image, or the "
                           "'photos' extra of event_fm); it ships the photographs") from exc
    if name == "motorcycle":  # the left view of the stereo pair
        image = np.asarray(skimage.data.stereo_motorcycle()[0])
    else:
        image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def _square(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = image[y0:y0 + side, x0:x0 + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def mip_chain(linear: np.ndarray) -> np.ndarray:
    """(S, S, 3) float32 -> (S*S + (S/2)^2 + ... + 1, 3) levels, finest first (S a power of 2)."""
    size = linear.shape[0]
    if size & (size - 1) or linear.shape[1] != size:
        raise ValueError(f"a mip chain needs a square power-of-two image, got {linear.shape}")
    levels = [linear.reshape(-1, 3)]
    level = linear
    while level.shape[0] > 1:
        level = 0.25 * (level[0::2, 0::2] + level[1::2, 0::2] + level[0::2, 1::2]
                        + level[1::2, 1::2])
        levels.append(level.reshape(-1, 3))
    return np.concatenate(levels).astype(np.float32)


@functools.lru_cache(maxsize=1)
def photo_atlas() -> np.ndarray:
    """(len(PHOTO_NAMES), texels, 3) float32 linear RGB mip chains of the photographs."""
    chains = []
    for name in PHOTO_NAMES:
        srgb = _square(_load(name), PHOTO_SIZE).astype(np.float32) / 255.0
        chains.append(mip_chain(np.power(srgb, 2.2)))  # the renderer's radiance is linear
    return np.stack(chains)


def empty_atlas() -> np.ndarray:
    """The atlas a scene without photographs passes (one black texel)."""
    return np.zeros((1, 1, 3), np.float32)


def uses_photos(tex: np.ndarray) -> bool:
    return bool(np.any(np.asarray(tex) == T.PHOTO))


def photo_row(index: int, size_m: float, gain: float = 1.0) -> np.ndarray:
    """Parameter row of a photograph ``index`` tiled every ``size_m`` metres."""
    return T.texture_row((gain, gain, gain), scale=float(size_m), extra1=float(index))


def with_photo_textures(tex: np.ndarray, params: np.ndarray, sizes: np.ndarray, fraction: float,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``tex``/``params`` with about ``fraction`` of the surfaces showing a photograph.

    ``sizes`` (metres, one per surface) sets each tile's size: 0.3-1.2 of the surface's extent,
    so a photograph reads as a picture, a mural or a material depending on the surface."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"photo texture fraction must be in [0, 1], got {fraction}")
    tex, params = np.array(tex, copy=True), np.array(params, copy=True)
    pick = rng.random(len(tex)) < fraction
    for i in np.flatnonzero(pick):
        size = float(np.clip(sizes[i] * rng.uniform(0.3, 1.2), 0.1, 20.0))
        tex[i] = T.PHOTO
        params[i] = photo_row(int(rng.integers(len(PHOTO_NAMES))), size, rng.uniform(0.7, 1.2))
    return tex, params
