"""End to end over real DDS: a real event-camera bag replayed into perception_node with the
forecast head; nothing is forecast while nobody subscribes (diagnostics counter), then
~/forecast (one sensor_msgs/Image 32FC3 per future frame, stamped window end + k x 20 ms, in
time order) and ~/forecast_image come out with the declared layout and agreeing values. Without
DDS: the frame messages carry exactly the values the engine's forecast output computed."""

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
from sensor_msgs.msg import Image  # noqa: E402

from event_fm.common.stamps import stamp_to_ns  # noqa: E402
from event_fm.io.events import make_events  # noqa: E402
from event_fm.models.forecast import ForecastConfig, VideoDenoiser, save_forecaster  # noqa: E402
from event_fm.nodes.forecast_output import forecast_frames  # noqa: E402
from event_fm.pipeline.engine import PerceptionEngine  # noqa: E402
from event_fm.pipeline.forecast import ForecastSettings, LiveForecaster, forecast_outputs  # noqa: E402,E501
from event_fm.pipeline.scheduler import WindowSpec  # noqa: E402

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


FRAME_NS = 20_000_000


def _frame(msg: Image) -> np.ndarray:
    """A 32FC3 forecast frame as (H, W, 3) float32."""
    return np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.width, 3)


def _per_window(frames: list[Image]) -> list[list[Image]]:
    """Frame messages grouped by input window: consecutive stamps FRAME_NS apart (windows are
    50 ms apart, so one window's last frame and the next one's first never are)."""
    groups: list[list[Image]] = []
    for msg in frames:
        if groups and stamp_to_ns(msg.header.stamp) - stamp_to_ns(groups[-1][-1].header.stamp) \
                == FRAME_NS:
            groups[-1].append(msg)
        else:
            groups.append([msg])
    return groups


def test_forecast_messages_carry_the_engine_values(tiny_forecaster):
    """The engine's forecast output, through the node's converter: one 32FC3 image per future
    frame, in time order, stamped at its future time, values = the engine's frames."""
    from event_fm.models import load_model

    engine = PerceptionEngine(load_model(REPO / "models" / "default"))
    forecaster = LiveForecaster.from_checkpoint(tiny_forecaster,
                                                ForecastSettings(steps=2, horizon=HORIZON))
    engine.register(*forecast_outputs(forecaster))
    assert {"forecast", "forecast_image"} <= engine.available
    engine.ingest.decoder.width, engine.ingest.decoder.height = 640, 480
    rng = np.random.default_rng(0)
    n = 20_000
    engine.buffer.append(make_events(rng.integers(0, 640, n), rng.integers(0, 480, n),
                                     np.sort(rng.integers(0, 100_000_000, n)),
                                     rng.integers(0, 2, n)))
    stamp = 1_700_000_000_123_456_789
    result = engine.process(WindowSpec(t_start=50_000_000, t_end=100_000_000, stamp_ns=stamp),
                            {"forecast"})
    forecast = result.get("forecast")
    assert result.get("forecast_image") is None and result.get("depth") is None
    assert forecast.frames.shape == (HORIZON, 3, SIZE, SIZE)
    assert forecast.crop == (80, 0, 480)  # 640x480: the centred square the grid covers
    assert forecast.frame_ns == FRAME_NS
    msgs = forecast_frames(forecast, stamp, "cam")
    assert len(msgs) == HORIZON
    for k, msg in enumerate(msgs, start=1):
        assert (msg.encoding, msg.height, msg.width, msg.step) == ("32FC3", SIZE, SIZE,
                                                                   SIZE * 12)
        assert stamp_to_ns(msg.header.stamp) == stamp + k * FRAME_NS
        assert msg.header.frame_id == "cam"
        np.testing.assert_array_equal(_frame(msg), forecast.frames[k - 1].transpose(1, 2, 0))


def test_forecast_outputs_over_dds(tiny_forecaster):
    node_proc = subprocess.Popen(
        [sys.executable, "-m", "event_fm.nodes.perception_node", "--ros-args",
         "-r", "events:=/event_camera/events",
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
                    node.create_subscription(Image, "/event_fm_perception/forecast",
                                             got["forecast"].append, 10 * HORIZON)
                    node.create_subscription(Image, "/event_fm_perception/forecast_image",
                                             got["forecast_image"].append, 10)
            if replay.poll() is not None and len(got["forecast"]) >= 4 * HORIZON:
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

    windows = _per_window(got["forecast"])
    if len(windows[0]) < HORIZON:
        windows = windows[1:]  # subscribed while a window's frames were going out
    assert len(windows) >= 3, log
    window_stamps = []
    for frames in windows:
        stamps = [stamp_to_ns(m.header.stamp) for m in frames]
        assert len(stamps) == HORIZON, stamps
        window_end = stamps[0] - FRAME_NS
        assert stamps == [window_end + k * FRAME_NS for k in range(1, HORIZON + 1)]
        window_stamps.append(window_end)
        for msg in frames:
            assert (msg.encoding, msg.height, msg.width, msg.step) == ("32FC3", SIZE, SIZE,
                                                                       SIZE * 12)
            assert len(msg.data) == SIZE * SIZE * 3 * 4 and np.isfinite(_frame(msg)).all()
            assert msg.header.frame_id
    assert window_stamps == sorted(window_stamps) and len(set(window_stamps)) == len(window_stamps)
    assert got["forecast_image"], log
    img = got["forecast_image"][0]
    # last past frame + HORIZON predicted frames, 2-pixel white gaps
    width = (HORIZON + 1) * SIZE + 2 * HORIZON
    assert (img.encoding, img.height, img.width) == ("rgb8", SIZE, width)
    # the strip shows the same forecast: a tile is red only where ON - OFF > 0, blue where < 0
    strips = {stamp_to_ns(m.header.stamp): m for m in got["forecast_image"]}
    compared = 0
    for window_end, frames in zip(window_stamps, windows, strict=True):
        if window_end not in strips:
            continue
        strip = np.frombuffer(bytes(strips[window_end].data), np.uint8).reshape(SIZE, width, 3)
        for k, msg in enumerate(frames, start=1):
            tile = strip[:, k * (SIZE + 2):k * (SIZE + 2) + SIZE]
            net = _frame(msg).sum(-1)
            assert np.all(net[tile[..., 0] > 0] > 0) and np.all(net[tile[..., 2] > 0] < 0)
        compared += 1
    assert compared >= 1, "no window arrived on both forecast topics"
    values = {kv.key: kv.value for kv in got["diagnostics"][-1].status[0].values}
    assert int(values["forecasts_computed"]) >= len(windows)


@pytest.mark.parametrize("method", ["motion", "motion_similarity"])
def test_motion_method_carries_the_moving_edge_forward(tiny_forecaster, method):
    """forecast_method 'motion' / 'motion_similarity': the last past frame moved along the past
    frames' flow (dense, or one similarity fitted to it), no sampling: a vertical edge sweeping
    right keeps sweeping right in the forecast."""
    forecaster = LiveForecaster.from_checkpoint(
        tiny_forecaster, ForecastSettings(horizon=HORIZON, method=method))
    speed = 40.0 / FRAME_NS  # sensor px per ns on a 480x480 sensor: 1.33 forecast px per frame
    t = np.arange(0, 80_000_000, 20_000, dtype=np.int64)
    rows = np.tile(np.arange(100, 380, 4), len(t))
    times = np.repeat(t, len(np.arange(100, 380, 4)))
    cols = (100 + speed * times).astype(np.int64)
    events = make_events(cols, rows, times, np.ones(len(times), np.int64))
    forecaster.observe(events, 80_000_000)
    result = forecaster.predict(80_000_000, 480, 480, 1)
    assert result.frames.shape == (HORIZON, 3, SIZE, SIZE)

    def column(frame: np.ndarray) -> float:  # centroid of the event density along x
        d = np.abs(frame).sum(axis=(0, 1))
        return float((d * np.arange(len(d))).sum() / d.sum())

    last = column(result.prompt[-1])
    ahead = [column(f) for f in result.frames]
    assert ahead[0] > last and ahead[-1] > ahead[0]  # moving on, in order
    with pytest.raises(ValueError, match="forecast method"):
        ForecastSettings(method="magic")
