"""perception_node: live depth, semantics, relative pose and diagnostics from an event camera.

A lifecycle node and thin glue over :class:`event_fm.pipeline.engine.PerceptionEngine`:
subscription callbacks only decode and append (they must keep up with tens of Mev/s); a worker
thread takes the newest due window, runs the model and publishes. Configure validates the
parameters, activate loads the model and subscribes, deactivate releases the device. Outputs
without subscribers are not computed.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TransformStamped
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from event_fm.io.decoders import warm_up as warm_up_decoders
from event_fm.io.legacy import legacy_to_batch
from event_fm.io.msg_definitions import LEGACY_ARRAY_TYPES
from event_fm.models.checkpoint import embedded_checkpoint
from event_fm.nodes.image_msgs import array_to_image, check_image
from event_fm.nodes.parameters import declare, read_and_validate, reject_invalid_updates
from event_fm.nodes.perception_params import PARAMS
from event_fm.nodes.ros_types import (
    install_stop_handlers,
    message_class,
    qos_from_name,
    spin_until_stopped,
)
from event_fm.pipeline.engine import (
    EngineConfig,
    PerceptionEngine,
    WindowResult,
    colorize,
    resolve_device,
)


def default_checkpoint() -> Path:
    """The embedded default model: in the source tree, else in the installed share dir."""
    return embedded_checkpoint("default")


def rotation_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix (Shepperd's method, numerically safe)."""
    m = np.asarray(R, dtype=np.float64)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        return ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s,
                0.25 * s)
    i = int(np.argmax(np.diag(m)))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
    q = np.zeros(4)
    q[i] = 0.25 * s
    q[j] = (m[j, i] + m[i, j]) / s
    q[k] = (m[k, i] + m[i, k]) / s
    q[3] = (m[k, j] - m[j, k]) / s
    return float(q[0]), float(q[1]), float(q[2]), float(q[3])


class PerceptionNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("event_fm_perception", **kwargs)
        declare(self, PARAMS)
        self.add_on_set_parameters_callback(reject_invalid_updates(PARAMS))
        self.values: dict = {}
        self.engine: PerceptionEngine | None = None
        self._subs: list = []
        self._pubs: dict = {}
        self._worker: threading.Thread | None = None
        self._running = threading.Event()
        self._diag_timer = None
        self._frame_id = ""
        self._T_world_cam = np.eye(4)
        self.published = 0
        self._last_events = (0, time.monotonic())
        self.malformed_images = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.values, errors = read_and_validate(self, PARAMS)
        try:
            resolve_device(self.values["device"])
        except (ValueError, RuntimeError) as exc:
            errors.append(f"device: {exc}")
        if self.values["half"] and self.values["device"] == "cpu":
            errors.append("half: half precision needs a CUDA device")
        if errors:
            for e in errors:
                self.get_logger().error(f"invalid parameter {e}")
            return TransitionCallbackReturn.FAILURE
        v = self.values
        pub = self.create_lifecycle_publisher
        self._pubs = {
            "depth": pub(Image, "~/depth", 5),
            "semantic": pub(Image, "~/semantic", 5),
            "semantic_color": pub(Image, "~/semantic_color", 5),
            "pose": pub(PoseStamped, "~/pose", 10),
            "events_image": pub(Image, "~/events_image", 5),
            "reconstruction": pub(Image, "~/reconstruction", 5),
            "diagnostics": pub(DiagnosticArray, "/diagnostics", 10),
        }
        if v["publish_tf"]:
            self._pubs["tf"] = pub(TFMessage, "/tf", 100)
        if "forecast" in v["heads"]:
            from event_fm_msgs.msg import EventForecast

            self._pubs["forecast"] = pub(EventForecast, "~/forecast", 5)
            self._pubs["forecast_image"] = pub(Image, "~/forecast_image", 5)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self.values
        checkpoint = Path(v["checkpoint"]) if v["checkpoint"] else default_checkpoint()
        config = EngineConfig(window_mode=v["window_mode"], window_ms=v["window_ms"],
                              window_events=v["window_events"],
                              output_rate_hz=v["output_rate_hz"],
                              max_window_age_ms=v["max_window_age_ms"],
                              buffer_max_events=v["buffer_max_events"],
                              memory_hold=v["memory_hold"],
                              memory_hold_min_events=v["memory_hold_min_events"],
                              device=v["device"], half=v["half"])
        try:
            self.engine = PerceptionEngine.from_checkpoint(checkpoint, config, v["event_topic"])
        except Exception as exc:  # noqa: BLE001 - activation fails with the reason, not a crash
            self.get_logger().error(f"cannot load model from {checkpoint}: {exc}")
            return TransitionCallbackReturn.FAILURE
        if "reconstruction" in v["heads"] and not self._load_reconstruction():
            self.engine = None
            return TransitionCallbackReturn.FAILURE
        if "forecast" in v["heads"] and not self._load_forecaster():
            self.engine = None
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(
            f"model {checkpoint} on {self.engine.device}; outputs {sorted(self._heads())}")
        warm_up_decoders()  # JIT now, not inside the first packet's callback
        self._subscribe()
        self._running.set()
        self._worker = threading.Thread(target=self._work, name="event_fm_worker", daemon=True)
        self._worker.start()
        self._diag_timer = self.create_timer(v["diagnostics_period_s"], self._publish_diagnostics)
        return super().on_activate(state)

    def _load_reconstruction(self) -> bool:
        from event_fm.pipeline.reconstruction import ReconstructionRunner

        path = self.values["reconstruction_checkpoint"] or None
        try:
            self.engine.attach_reconstructor(ReconstructionRunner.from_checkpoint(
                path, self.engine.device, self.engine.half))
        except Exception as exc:  # noqa: BLE001 - activation fails with the reason
            self.get_logger().error(f"cannot load reconstruction generator {path or ''}: {exc}")
            return False
        return True

    def _load_forecaster(self) -> bool:
        from event_fm.nodes.forecast_output import load_live_forecaster

        try:
            self.engine.attach_forecaster(load_live_forecaster(self.values, self.engine.device))
        except Exception as exc:  # noqa: BLE001 - activation fails with the reason
            self.get_logger().error(f"cannot load forecaster "
                                    f"{self.values['forecast_checkpoint']}: {exc}")
            return False
        return True

    def stop_worker(self) -> None:
        self._running.clear()
        if self._worker is not None:
            self._worker.join(timeout=30)
            self._worker = None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_worker()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        self._release_device()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for publisher in self._pubs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._pubs = {}
        return TransitionCallbackReturn.SUCCESS

    def _release_device(self) -> None:
        if self.engine is not None:
            on_cuda = self.engine.device.type == "cuda"
            self.engine = None
            if on_cuda:
                import torch

                torch.cuda.empty_cache()

    # -- inputs ----------------------------------------------------------------------------
    def _subscribe(self) -> None:
        v = self.values
        event_qos = qos_from_name(v["event_qos"], v["event_qos_depth"])
        callback = self._on_legacy if v["event_msg_type"] in LEGACY_ARRAY_TYPES \
            else self._on_packet
        self._subs.append(self.create_subscription(
            message_class(v["event_msg_type"]), v["event_topic"], callback, event_qos))
        image_qos = qos_from_name(v["image_qos"], v["image_qos_depth"])
        if v["image_topic"]:
            self._subs.append(self.create_subscription(Image, v["image_topic"], self._on_image,
                                                       image_qos))
        if v["camera_info_topic"]:
            self._subs.append(self.create_subscription(CameraInfo, v["camera_info_topic"],
                                                       self._on_camera_info, image_qos))

    def _on_packet(self, msg) -> None:
        if not self._frame_id:
            self._frame_id = self.values["frame_id"] or msg.header.frame_id or "event_camera"
        self.engine.add_packet(msg)

    def _on_legacy(self, msg) -> None:
        try:
            batch = legacy_to_batch(msg, topic=self.values["event_topic"])
        except Exception as exc:  # noqa: BLE001
            self.engine.ingest.stats.dropped["malformed_message"] += 1
            self.get_logger().warning(f"dropping malformed event array: {exc}",
                                      throttle_duration_sec=5.0)
            return
        self.engine.ingest.decoder.width, self.engine.ingest.decoder.height = \
            batch.width, batch.height
        self.engine.add_batch(batch)

    def _on_image(self, msg: Image) -> None:
        problem = check_image(msg)
        if problem:
            self.malformed_images += 1
            self.get_logger().warning(f"dropping image: {problem}", throttle_duration_sec=5.0)
            return
        if self.values["window_mode"] == "frame":
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            self.engine.add_frame(stamp)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        if K[0, 0] > 0 and K[1, 1] > 0:
            self.engine.set_intrinsics(K)

    # -- worker ------------------------------------------------------------------------------
    def _heads(self) -> set[str]:
        wanted = set(self.values["heads"])
        return wanted & (self.engine.available if self.engine else set())

    def _subscribed_outputs(self) -> tuple[set[str], bool]:
        subs = {name: p.get_subscription_count() > 0 for name, p in self._pubs.items()}
        outputs = set()
        if subs.get("depth"):
            outputs.add("depth")
        if subs.get("semantic") or subs.get("semantic_color"):
            outputs.add("semantic")
        if subs.get("pose") or "tf" in self._pubs:
            outputs.add("pose")
        if subs.get("reconstruction"):
            outputs.add("reconstruction")
        if subs.get("forecast") or subs.get("forecast_image"):
            outputs.add("forecast")
        return outputs & self._heads(), bool(subs.get("events_image"))

    def _work(self) -> None:
        while self._running.is_set():
            engine = self.engine
            if engine is None:
                return
            try:
                spec = engine.next_window()
                if spec is None:
                    time.sleep(0.002)
                    continue
                outputs, want_image = self._subscribed_outputs()
                result = engine.process(spec, outputs, events_image=want_image)
                t0 = time.perf_counter()
                self._publish(result)
                engine.latency_sum["publish"] += time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001 - keep running through bad windows
                if engine is not None:
                    engine.counters["window_errors"] += 1
                self.get_logger().error(f"window failed: {exc}", throttle_duration_sec=5.0)

    def _publish(self, r: WindowResult) -> None:
        frame = self._frame_id or self.values["frame_id"] or "event_camera"
        stamp = r.stamp_ns
        if r.depth is not None:
            self._pubs["depth"].publish(array_to_image(r.depth, "32FC1", stamp, frame))
        if r.semantic is not None:
            self._pubs["semantic"].publish(array_to_image(r.semantic, "mono8", stamp, frame))
            if self._pubs["semantic_color"].get_subscription_count():
                self._pubs["semantic_color"].publish(
                    array_to_image(colorize(r.semantic), "rgb8", stamp, frame))
        if r.events_image is not None:
            self._pubs["events_image"].publish(array_to_image(r.events_image, "rgb8", stamp,
                                                              frame))
        if r.reconstruction is not None:
            self._pubs["reconstruction"].publish(array_to_image(r.reconstruction, "rgb8", stamp,
                                                                frame))
        if r.pose is not None and r.pose.ok:
            self._publish_pose(r, frame)
        if r.forecast is not None:
            from event_fm.nodes.forecast_output import publish_forecast

            publish_forecast(self._pubs, r.forecast, frame)
        self.published += 1

    def _publish_pose(self, r: WindowResult, frame: str) -> None:
        msg = PoseStamped()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(r.stamp_ns, 1_000_000_000)
        msg.header.frame_id = frame
        t = r.pose.t.reshape(3)
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in t)
        q = rotation_to_quaternion(r.pose.R)
        o = msg.pose.orientation
        o.x, o.y, o.z, o.w = q
        self._pubs["pose"].publish(msg)
        if "tf" in self._pubs:
            T_c1_c0 = np.eye(4)
            T_c1_c0[:3, :3], T_c1_c0[:3, 3] = r.pose.R, t
            self._T_world_cam = self._T_world_cam @ np.linalg.inv(T_c1_c0)
            tf = TransformStamped()
            tf.header = msg.header
            tf.header.frame_id = self.values["odom_frame"]
            tf.child_frame_id = frame
            tr = self._T_world_cam[:3, 3]
            tf.transform.translation.x, tf.transform.translation.y, \
                tf.transform.translation.z = (float(v) for v in tr)
            qx, qy, qz, qw = rotation_to_quaternion(self._T_world_cam[:3, :3])
            rot = tf.transform.rotation
            rot.x, rot.y, rot.z, rot.w = qx, qy, qz, qw
            self._pubs["tf"].publish(TFMessage(transforms=[tf]))

    def _publish_diagnostics(self) -> None:
        engine = self.engine
        if engine is None:
            return
        d = engine.diagnostics()
        d["malformed_images"] = self.malformed_images
        d["published_windows"] = self.published
        events, when = d["events"], time.monotonic()
        d["event_rate_ev_s"] = (events - self._last_events[0]) / max(1e-6, when -
                                                                     self._last_events[1])
        self._last_events = (events, when)
        status = DiagnosticStatus(name="event_fm: perception", hardware_id=self.get_name())
        problems = [k for k in ("windows_dropped_behind", "windows_dropped_stale",
                                "window_errors") if d.get(k)]
        bad_input = sum(v for k, v in d["malformed"].items() if k != "ignored")
        status.level = DiagnosticStatus.WARN if problems or bad_input or self.malformed_images \
            else DiagnosticStatus.OK
        status.message = "dropping windows or input" if status.level else "ok"
        flat = dict(d)
        for reason, count in d.pop("malformed").items():
            flat[f"malformed_{reason}"] = count
        flat.pop("malformed", None)
        status.values = [KeyValue(key=k, value=str(v)) for k, v in sorted(flat.items())]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pubs["diagnostics"].publish(array)


def main(argv: list[str] | None = None) -> int:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    stop = install_stop_handlers()
    args = list(sys.argv if argv is None else argv)
    autostart = "--no-autostart" not in args
    args = [a for a in args if a != "--no-autostart"]
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = PerceptionNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    try:
        if autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                code = 2
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                code = 3
        if code == 0:
            spin_until_stopped(stop, executor=executor)
    finally:
        node.stop_worker()  # before anything it publishes with is destroyed
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
