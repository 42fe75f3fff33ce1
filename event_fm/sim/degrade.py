"""Degraded camera frames: the conditions where a frame camera fails and events should win.

The events are always simulated from the clean high-rate signal; only the frames the simulated
frame camera delivers (``/camera/image_raw``) go through one of these models:

- ``lowlight``: the scene is ``light_scale`` times darker; the sensor collects Poisson photon
  noise (``full_well`` electrons at full scale) plus Gaussian read noise, quantises to 8 bits,
  and the ISP gains the result back up, amplifying noise and quantisation steps;
- ``blur``: the sensor integrates linear radiance over ``exposure_s`` ending at the frame stamp
  (the average of ``blur_subframes`` renders across the exposure);
- ``overexposure``: a gain of ``gain`` followed by clipping at full scale.

All models work on linear radiance; :func:`to_uint8` then applies the sRGB curve, as a camera's
ISP does, so the 8-bit frames look natural (events use linear luminance, before that curve).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DEGRADE_MODES = ("lowlight", "blur", "overexposure")


@dataclass(frozen=True)
class DegradeParams:
    mode: str
    light_scale: float = 0.05
    full_well: float = 4000.0
    read_noise: float = 6.0
    exposure_s: float = 0.03
    blur_subframes: int = 8
    gain: float = 4.0

    def __post_init__(self) -> None:
        if self.mode not in DEGRADE_MODES:
            raise ValueError(f"unknown degradation {self.mode!r}; choose from "
                             f"{', '.join(DEGRADE_MODES)}")
        if not 0 < self.light_scale <= 1 or self.exposure_s < 0 or self.blur_subframes < 1:
            raise ValueError("invalid degradation parameters")

    def to_dict(self) -> dict:
        return asdict(self)


def low_light(rgb: np.ndarray, params: DegradeParams, rng: np.random.Generator) -> np.ndarray:
    """Dark, noisy, quantised then gained-up version of linear ``rgb`` in [0, 1]."""
    electrons = rng.poisson(np.clip(rgb, 0, 1) * params.light_scale * params.full_well)
    signal = (electrons + rng.normal(0.0, params.read_noise, rgb.shape)) / params.full_well
    quantised = np.round(np.clip(signal, 0.0, 1.0) * 255.0) / 255.0
    return np.clip(quantised / params.light_scale, 0.0, 1.0).astype(np.float32)


def over_exposure(rgb: np.ndarray, params: DegradeParams) -> np.ndarray:
    return np.clip(rgb * params.gain, 0.0, 1.0).astype(np.float32)


def motion_blur(subframes: list[np.ndarray]) -> np.ndarray:
    """Average of linear-radiance renders spread over the exposure."""
    return np.mean(np.stack(subframes), axis=0).astype(np.float32)


def exposure_times(t_end: float, params: DegradeParams) -> np.ndarray:
    """Times (s) of the sub-frames integrated by a blurred frame stamped ``t_end``."""
    n = params.blur_subframes
    if n == 1 or params.exposure_s == 0:
        return np.array([t_end])
    return t_end - params.exposure_s * (1.0 - np.arange(n) / (n - 1))


def degrade(rgb: np.ndarray, params: DegradeParams, rng: np.random.Generator,
            subframes: list[np.ndarray] | None = None) -> np.ndarray:
    """The delivered frame for a clean render ``rgb`` (``subframes`` for blur)."""
    if params.mode == "lowlight":
        return low_light(rgb, params, rng)
    if params.mode == "overexposure":
        return over_exposure(rgb, params)
    return motion_blur(subframes if subframes else [rgb])


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """sRGB transfer curve: linear radiance -> display values, both in [0, 1]."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def to_uint8(rgb: np.ndarray, srgb: bool = True) -> np.ndarray:
    """8-bit frame as a camera delivers it: sRGB-encoded linear radiance (or raw if not)."""
    values = srgb_encode(rgb) if srgb else np.clip(rgb, 0.0, 1.0)
    return (values * 255.0 + 0.5).astype(np.uint8)
