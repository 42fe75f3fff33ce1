"""perception_node's ``~/forecast`` and ``~/forecast_image``: loading the forecaster from the
node's parameters and turning a ForecastResult into standard messages.

``~/forecast`` carries one ``sensor_msgs/Image`` per predicted frame, published in time order
after each input window: encoding ``32FC3`` (the 3 voxel bins of a 20 ms frame as channels,
oldest bin first; signed event density ON - OFF per grid cell and bin, the prompt's scale
restored), 128x128 for the shipped model (the grid covers the sensor's centred square,
``min(width, height)`` on a side), header stamp = the end of that future frame (window end +
k x 20 ms, k = 1..horizon). ``~/forecast_image`` is an rgb8 strip for viewing, stamped at the
window's end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sensor_msgs.msg import Image

from event_fm.models.checkpoint import embedded_checkpoint
from event_fm.nodes.image_msgs import array_to_image
from event_fm.nodes.output_topics import OutputTopic, image_topic
from event_fm.pipeline.forecast import ForecastResult, ForecastSettings, LiveForecaster


def default_forecast_checkpoint() -> Path:
    """The shipped forecaster: in the source tree, else in the installed share dir."""
    return embedded_checkpoint("forecast")


def load_live_forecaster(values: dict, device) -> LiveForecaster:
    path = Path(values["forecast_checkpoint"]) if values["forecast_checkpoint"] \
        else default_forecast_checkpoint()
    settings = LiveForecaster.from_checkpoint(path, device="cpu").settings
    settings = ForecastSettings(**{**settings.__dict__, "steps": values["forecast_steps"],
                                   "horizon": values["forecast_horizon"],
                                   "guide_frames": values["forecast_guide_frames"],
                                   "method": values["forecast_method"]})
    return LiveForecaster.from_checkpoint(path, settings, device)


def forecast_frames(result: ForecastResult, stamp_ns: int, frame_id: str) -> list[Image]:
    """One 32FC<bins> image per predicted frame, each stamped at its own future time (the
    window's stamp is in the result)."""
    _, bins, _, _ = result.frames.shape
    if not 1 <= bins <= 4:
        raise ValueError(f"a forecast frame has {bins} bins; Image float encodings hold 1-4")
    return [array_to_image(np.ascontiguousarray(frame.transpose(1, 2, 0), np.float32),
                           f"32FC{bins}", stamp, frame_id)
            for frame, stamp in zip(result.frames, result.stamps_ns, strict=True)]


def forecast_topics(horizon: int) -> dict[str, OutputTopic]:
    """The node's rows for the forecast outputs; the queue holds two windows of frames."""
    return {"forecast": OutputTopic("forecast", "~/forecast", Image, forecast_frames,
                                    depth=max(5, 2 * int(horizon))),
            "forecast_image": image_topic("forecast_image", "rgb8")}
