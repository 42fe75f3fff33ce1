"""perception_node's ``~/forecast`` and ``~/forecast_image``: loading the forecaster from the
node's parameters and turning a ForecastResult into messages.

``~/forecast`` is ``event_fm_msgs/EventForecast``: no standard message carries a stack of
multi-bin float frames with a stamp per frame (sensor_msgs/Image is one frame with one stamp and
at most 4 float channels per named encoding), so the message composes standard types - a Header
stamped at the input window's end, builtin_interfaces/Time per predicted frame, the frame
duration - with one flat float32 array and its layout fields (frames x bins x H x W, plus the
sensor crop the 128x128 grid covers). ``~/forecast_image`` is an rgb8 strip for viewing.
"""

from __future__ import annotations

import array
from pathlib import Path

import numpy as np

from event_fm.models.checkpoint import embedded_checkpoint
from event_fm.nodes.image_msgs import array_to_image
from event_fm.pipeline.forecast import (
    ForecastResult,
    ForecastSettings,
    LiveForecaster,
    forecast_strip,
)


def default_forecast_checkpoint() -> Path:
    """The shipped forecaster: in the source tree, else in the installed share dir."""
    return embedded_checkpoint("forecast")


def load_live_forecaster(values: dict, device) -> LiveForecaster:
    path = Path(values["forecast_checkpoint"]) if values["forecast_checkpoint"] \
        else default_forecast_checkpoint()
    settings = LiveForecaster.from_checkpoint(path, device="cpu").settings
    settings = ForecastSettings(**{**settings.__dict__, "steps": values["forecast_steps"],
                                   "horizon": values["forecast_horizon"],
                                   "guide_frames": values["forecast_guide_frames"]})
    return LiveForecaster.from_checkpoint(path, settings, device)


def _time(ns: int):
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def forecast_message(result: ForecastResult, frame_id: str):
    from builtin_interfaces.msg import Duration
    from event_fm_msgs.msg import EventForecast

    msg = EventForecast()
    msg.header.stamp = _time(result.stamp_ns)
    msg.header.frame_id = frame_id
    msg.stamps = [_time(t) for t in result.stamps_ns]
    msg.frame_duration = Duration(sec=0, nanosec=int(result.frame_ns))
    _, msg.bins, msg.height, msg.width = (int(n) for n in result.frames.shape)
    msg.crop_x, msg.crop_y, msg.crop_size = (int(n) for n in result.crop)
    msg.data = array.array("f", np.ascontiguousarray(result.frames, np.float32).tobytes())
    return msg


def publish_forecast(pubs: dict, result: ForecastResult, frame_id: str) -> None:
    if pubs["forecast"].get_subscription_count():
        pubs["forecast"].publish(forecast_message(result, frame_id))
    if pubs["forecast_image"].get_subscription_count():
        pubs["forecast_image"].publish(array_to_image(forecast_strip(result), "rgb8",
                                                      result.stamp_ns, frame_id))
