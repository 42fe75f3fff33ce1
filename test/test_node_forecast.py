"""End to end over real DDS: a real event-camera bag replayed into perception_node with the
forecast head; nothing is forecast while nobody subscribes (diagnostics counter), then
~/forecast (event_fm_msgs/EventForecast) and ~/forecast_image come out with future stamps 20 ms
apart after the window stamp and the declared layout."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

rclpy = pytest.importorskip("rclpy", reason="make setup provides rclpy; run tests via make test")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from event_fm_msgs.msg import EventForecast  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from event_fm.models.forecast import ForecastConfig, VideoDenoiser, save_forecaster  # noqa: E402

CLI = [sys.executable, "-m", "event_fm.cli.main"]
REPO = Path(__file__).resolve().parents[1]
BAG = REPO / "test" / "data" / "real_bags" / "evt3_metavision_640x480"
HORIZON, SIZE = 3, 16


@pytest.fixture(scope="module")
def tiny_forecaster(tmp_path_factory):
    """A real (untrained, tiny) forecaster: the node path is what is tested, not its skill."""
    torch.manual_seed(0)
    cfg = ForecastConfig(frames=7, past=4, size=SIZE, patch=2, widths=(8, 16), emb_dim=16,
                         heads=2)
    path = tmp_path_factory.mktemp("forecaster") / "model"
    save_forecaster(VideoDenoiser(cfg), path, extra={"sampling": {"steps": 2}})
    return path


def _ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def test_forecast_outputs_over_dds(tiny_forecaster):
    node_proc = subprocess.Popen(
        [sys.executable, "-m", "event_fm.nodes.perception_node", "--ros-args",
         "-p", f"checkpoint:={REPO / 'models' / 'default'}", "-p", "device:=cpu",
         "-p", "heads:=[forecast]", "-p", f"forecast_checkpoint:={tiny_forecaster}",
         "-p", "forecast_steps:=2", "-p", f"forecast_horizon:={HORIZON}",
         "-p", "diagnostics_period_s:=0.2", "-p", "memory_hold:=false"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rclpy.init()
    got: dict[str, list] = {"forecast": [], "forecast_image": [], "diagnostics": []}
    unsubscribed_diag = None
    try:
        node = rclpy.create_node("forecast_test_client")
        node.create_subscription(DiagnosticArray, "/diagnostics", got["diagnostics"].append, 10)
        replay = subprocess.Popen([*CLI, "replay", str(BAG), "--rate", "0.1",
                                   "--wait-for-subscribers", "60"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
            if unsubscribed_diag is None and got["diagnostics"]:
                values = {kv.key: kv.value for kv in got["diagnostics"][-1].status[0].values}
                if int(values.get("windows_processed", 0)) >= 3:
                    unsubscribed_diag = values  # windows ran, nobody listened to forecasts
                    node.create_subscription(EventForecast, "/event_fm_perception/forecast",
                                             got["forecast"].append, 10)
                    node.create_subscription(Image, "/event_fm_perception/forecast_image",
                                             got["forecast_image"].append, 10)
            if replay.poll() is not None and len(got["forecast"]) >= 3:
                break
        replay.communicate(timeout=60)
        for _ in range(20):
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        node_proc.terminate()
        log = node_proc.communicate(timeout=60)[0].decode()
    assert node_proc.returncode == 0, log
    assert unsubscribed_diag is not None, log
    assert int(unsubscribed_diag.get("forecasts_computed", 0)) == 0, "computed without subscribers"

    assert len(got["forecast"]) >= 3, log
    for msg in got["forecast"]:
        stamp = _ns(msg.header.stamp)
        stamps = [_ns(s) for s in msg.stamps]
        assert len(stamps) == HORIZON
        assert stamps == [stamp + (k + 1) * 20_000_000 for k in range(HORIZON)]
        assert (msg.frame_duration.sec, msg.frame_duration.nanosec) == (0, 20_000_000)
        assert (msg.bins, msg.height, msg.width) == (3, SIZE, SIZE)
        assert (msg.crop_x, msg.crop_y, msg.crop_size) == (80, 0, 480)  # 640x480 center square
        data = np.asarray(msg.data, dtype=np.float32)
        assert data.size == HORIZON * 3 * SIZE * SIZE and np.isfinite(data).all()
        assert msg.header.frame_id
    window_stamps = [_ns(m.header.stamp) for m in got["forecast"]]
    assert window_stamps == sorted(window_stamps) and len(set(window_stamps)) == len(window_stamps)
    assert got["forecast_image"], log
    img = got["forecast_image"][0]
    # last past frame + HORIZON predicted frames, 2-pixel white gaps
    width = (HORIZON + 1) * SIZE + 2 * HORIZON
    assert (img.encoding, img.height, img.width) == ("rgb8", SIZE, width)
    values = {kv.key: kv.value for kv in got["diagnostics"][-1].status[0].values}
    assert int(values["forecasts_computed"]) >= len(got["forecast"])
