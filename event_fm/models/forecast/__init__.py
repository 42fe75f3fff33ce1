"""Event-sequence forecasters: the video diffusion denoiser, the SimVP-style baseline, sampling.

Frames are event voxel grids of ``bins`` (3) time bins per 20 ms frame at ``size`` (128) squared,
normalized by the max |value| of the prompt frames (see :mod:`.frames`).
"""

from event_fm.models.forecast.checkpoint import load_forecaster, save_forecaster
from event_fm.models.forecast.denoiser import ForecastConfig, VideoDenoiser
from event_fm.models.forecast.frames import (
    FRAME_NS,
    frames_from_events,
    normalize_by_prompt,
    rebin,
    square_resize,
)
from event_fm.models.forecast.sampling import (
    guided_replace,
    make_scheduler,
    sample_forecast,
)
from event_fm.models.forecast.simvp import SimVP, SimVPConfig

__all__ = [
    "FRAME_NS", "ForecastConfig", "SimVP", "SimVPConfig", "VideoDenoiser", "frames_from_events",
    "guided_replace", "load_forecaster", "make_scheduler", "normalize_by_prompt", "rebin",
    "sample_forecast", "save_forecaster", "square_resize",
]
