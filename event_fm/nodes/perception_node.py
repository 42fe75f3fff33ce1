"""perception_node: live depth, semantics, relative pose and diagnostics from an event camera.

A lifecycle node and thin glue over :class:`event_fm.pipeline.engine.PerceptionEngine`:
subscription callbacks only decode and append (they must keep up with tens of Mev/s); a worker
thread takes the newest due window, runs the model and publishes. Configure validates the
parameters, activate loads the model and subscribes, deactivate releases the device. One table
of :class:`~event_fm.nodes.output_topics.OutputTopic` rows maps engine outputs to topics; it
creates the publishers, decides what is computed (outputs without subscribers are not) and
publishes.
"""

from __future__ import annotations

import sys
import threading
import time
from functools import partial

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TransformStamped
from nav_msgs.msg import Odometry
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from event_fm.common.memory import bound_heap_growth, release_free_memory
from event_fm.common.rotations import quaternion_xyzw
from event_fm.common.stamps import set_stamp, stamp_to_ns
from event_fm.io.decoders import warm_up as warm_up_decoders
from event_fm.io.msg_definitions import LEGACY_ARRAY_TYPES
from event_fm.io.rosbag import image_to_array
from event_fm.nodes.diagnostics import DiagnosticsReporter
from event_fm.nodes.engine_builder import (
    EngineBuildError,
    build_compute_engine,
    build_engine,
)
from event_fm.nodes.graph import TransitionFailed, run_lifecycle_nodes
from event_fm.nodes.image_msgs import check_image
from event_fm.nodes.output_topics import OutputTopic, image_topic, pose_messages
from event_fm.nodes.parameters import declare, read_and_validate, reject_invalid_updates
from event_fm.nodes.perception_params import HEADS, PARAMS
from event_fm.nodes.ros_types import install_stop_handlers, message_class, qos_from_name
from event_fm.pipeline.clock import ClockOffsetEstimator
from event_fm.pipeline.compute_process import ComputeProcess, ComputeProcessError
from event_fm.pipeline.engine import PerceptionEngine, WindowResult, resolve_device

#: stamps within this of ROS now come from a live source on this clock (not a replayed bag)
LIVE_BASELINE_NS = 10_000_000_000


class PerceptionNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("event_fm_perception", **kwargs)
        declare(self, PARAMS)
        self.add_on_set_parameters_callback(reject_invalid_updates(PARAMS))
        self.values: dict = {}
        self.engine: PerceptionEngine | None = None
        self._subs: list = []
        self._topics: dict[str, OutputTopic] = {}  # publisher name -> row
        self._pubs: dict = {}
        self._diagnostics_pub = None
        self._enabled: set[str] = set()  # outputs the model has and ``heads`` allows
        self._worker: threading.Thread | None = None
        self._compute: ComputeProcess | None = None  # the model's process (inference_process)
        self._running = threading.Event()
        self._diag_timer = None
        self._frame_id = ""
        self._T_base_cam = np.eye(4)  # the camera on the base (from /tf_static)
        self.published = 0
        self.malformed_images = 0
        self._frames_wanted = False  # image_pose keeps the latest frame's image
        # arrival delay of event packets (ROS now - header stamp): its running minimum is the
        # transport baseline (or a replayed bag's offset), what exceeds it waited in a queue
        self._arrival = ClockOffsetEstimator(window_ns=30_000_000_000,
                                             reset_threshold_ns=3600 * 10**9)
        self._input_lag_ms: float | None = None
        self._ages_lock = threading.Lock()
        self._output_ages: dict[str, list[float]] = {}
        self._reporter: DiagnosticsReporter | None = None

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
        bound_heap_growth()
        self._topics = self._output_topics()
        self._pubs = {name: self.create_lifecycle_publisher(row.msg_type, row.topic, row.depth)
                      for name, row in self._topics.items()}
        self._diagnostics_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics",
                                                                10)
        return TransitionCallbackReturn.SUCCESS

    def _output_topics(self) -> dict[str, OutputTopic]:
        """The one table from engine outputs to topics (publisher name -> row)."""
        v = self.values
        table = {name: image_topic(name, encoding) for name, encoding in (
            ("depth", "32FC1"), ("semantic", "mono8"), ("semantic_color", "rgb8"))}
        table["camera_info"] = OutputTopic("depth", "~/camera_info", CameraInfo,
                                           self._camera_info_messages, 5)
        table["pose"] = OutputTopic("pose", "~/pose", PoseStamped, pose_messages, 10)
        table["image_pose"] = OutputTopic("image_pose", "~/image_pose", PoseStamped,
                                          pose_messages, 10)
        table["odom"] = OutputTopic("odometry", "~/odom", Odometry, self._odom_messages, 10)
        if v["publish_tf"]:
            table["tf"] = OutputTopic("odometry", "/tf", TFMessage, self._tf_messages, 100,
                                      always=True)
        table["events_image"] = image_topic("events_image", "rgb8")
        table["reconstruction"] = image_topic("reconstruction", "rgb8")
        if "forecast" in v["heads"]:
            from event_fm.nodes.forecast_output import forecast_topics

            table.update(forecast_topics(v["forecast_horizon"]))
        return table

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self.values
        try:
            built = build_engine(v)
        except EngineBuildError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        self.engine = built.engine
        for note in built.notes:
            self.get_logger().info(note)
        self._frames_wanted = ("image_pose" in v["heads"]
                               and v["image_pose_reference"] != "keyframe")
        self._enabled = self._enabled_outputs()
        self.get_logger().info(
            f"model {built.checkpoint} on {self.engine.device}; outputs {sorted(self._enabled)}")
        warm_up_decoders()  # JIT now, not inside the first packet's callback
        try:
            seconds = self._start_compute()
        except Exception as exc:  # noqa: BLE001 - activation fails with the reason, not a crash
            self.get_logger().error(f"warm-up of {built.checkpoint} failed: {exc}")
            self.engine = None
            return TransitionCallbackReturn.FAILURE
        where = "in its own process" if self._compute is not None else "in this process"
        self.get_logger().info(f"warmed up in {seconds:.2f} s ({where})")
        self._reporter = DiagnosticsReporter(self.get_name(), v["max_window_age_ms"])
        self._subscribe()
        self._running.set()
        self._worker = threading.Thread(target=self._work, name="event_fm_worker", daemon=True)
        self._worker.start()
        self._diag_timer = self.create_timer(v["diagnostics_period_s"], self._publish_diagnostics)
        return super().on_activate(state)

    def _start_compute(self) -> float:
        """Warm every JIT path before subscribing: in a compute process of its own when
        ``inference_process`` is on (it builds its engine from the same parameters), else
        here. Returns the warm-up's seconds."""
        if not self.values["inference_process"]:
            return self.engine.warm_up()  # voxel kernels, the model, the matcher
        self._compute = ComputeProcess(partial(build_compute_engine, dict(self.values)))
        return float(self._compute.start()["warm_up_s"])

    def stop_worker(self) -> None:
        self._running.clear()
        if self._worker is not None:
            self._worker.join(timeout=30)
            self._worker = None
        if self._compute is not None:
            self._compute.close()
            self._compute = None

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
        for publisher in [*self._pubs.values(), self._diagnostics_pub]:
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self._pubs, self._topics, self._diagnostics_pub = {}, {}, None
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
        if v["base_frame"]:
            static = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                reliability=ReliabilityPolicy.RELIABLE)
            self._subs.append(self.create_subscription(TFMessage, "/tf_static",
                                                       self._on_tf_static, static))

    def _on_packet(self, msg) -> None:
        if not self._frame_id:
            self._frame_id = self.values["frame_id"] or msg.header.frame_id or "event_camera"
        self._note_arrival(stamp_to_ns(msg.header.stamp))
        self.engine.add_packet(msg)

    def _note_arrival(self, stamp_ns: int) -> None:
        now = self.get_clock().now().nanoseconds
        baseline = self._arrival.update(now, stamp_ns)
        live = abs(baseline) <= LIVE_BASELINE_NS
        self._input_lag_ms = (now - stamp_ns - baseline) / 1e6 if live else None

    def _now_in_stamp_time(self) -> int | None:
        """ROS now on the input stamps' time base (minus the transport baseline), when the
        stamps are on this clock (a live driver: the baseline is transport delay); None for a
        replayed recording, whose stamps are from another day and whose pace is the replay's,
        and before the first packet."""
        baseline = self._arrival.offset_ns
        if baseline is None or abs(baseline) > LIVE_BASELINE_NS:
            return None
        return self.get_clock().now().nanoseconds - baseline

    def _on_legacy(self, msg) -> None:
        try:
            self.engine.add_legacy_array(msg)  # counts malformed arrays
        except Exception as exc:  # noqa: BLE001
            self.get_logger().warning(f"dropping malformed event array: {exc}",
                                      throttle_duration_sec=5.0)

    def _on_image(self, msg: Image) -> None:
        problem = check_image(msg)
        if problem:
            self.malformed_images += 1
            self.get_logger().warning(f"dropping image: {problem}", throttle_duration_sec=5.0)
            return
        frame_mode = self.values["window_mode"] == "frame"
        if frame_mode or self._frames_wanted:
            image = None
            if self._frames_wanted:
                try:
                    image = image_to_array(msg)
                except ValueError as exc:
                    self.malformed_images += 1
                    self.get_logger().warning(f"dropping image: {exc}",
                                              throttle_duration_sec=5.0)
                    return
            self.engine.add_frame(stamp_to_ns(msg.header.stamp), image, schedule=frame_mode)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        if K[0, 0] > 0 and K[1, 1] > 0:
            self.engine.set_intrinsics(K)

    # -- worker ------------------------------------------------------------------------------
    def _enabled_outputs(self) -> set[str]:
        """Available outputs that ``heads`` allows: a head by name; an output that is no head
        (semantic_color, events_image, forecast_image) when all it derives from is enabled."""
        wanted, enabled = set(self.values["heads"]), set()
        available = self.engine.available
        for name, output in self.engine.outputs.items():  # dependencies come first
            if name not in available:
                continue
            if name in HEADS:
                allowed = name in wanted
            else:
                allowed = all(r in enabled for r in output.requires)
            if allowed:
                enabled.add(name)
        return enabled

    def _wanted_outputs(self) -> set[str]:
        """Enabled outputs with a subscribed topic (or an ``always`` row)."""
        return {row.output for name, row in self._topics.items()
                if row.always or self._pubs[name].get_subscription_count() > 0} & self._enabled

    def _work(self) -> None:
        if self.engine is not None:
            self.engine.configure_thread()
        while self._running.is_set():
            engine = self.engine
            if engine is None:
                return
            try:
                spec = engine.next_window(self._now_in_stamp_time())
                if spec is None:
                    time.sleep(0.002)
                    continue
                result = self._process(engine, spec)
                t0 = time.perf_counter()
                self._publish(result)
                engine.add_latency("publish", time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001 - keep running through bad windows
                if engine is not None:
                    engine.count("window_errors")
                self.get_logger().error(f"window failed: {exc}", throttle_duration_sec=5.0)

    def _process(self, engine: PerceptionEngine, spec) -> WindowResult:
        """One window, here or in the compute process; a compute process that died is
        restarted (counted) and the window is lost, not the node."""
        if self._compute is None:
            return engine.process(spec, self._wanted_outputs())
        t0 = time.perf_counter()
        events, t_start = engine.window_events(spec)
        try:
            result, stats = self._compute.compute(spec, events, t_start, engine.sensor_size,
                                                  self._wanted_outputs(), engine.K,
                                                  engine.latest_frame)
        except ComputeProcessError:
            if not self._compute.alive:
                engine.count("compute_process_restarts")
                self.get_logger().error("the compute process died; restarting it")
                self._compute.close()
                self._compute.start()
            raise
        engine.absorb_compute_stats(stats)
        engine.add_latency("transfer", time.perf_counter() - t0 - result.latency_s["total"])
        return result

    def _publish(self, r: WindowResult) -> None:
        frame = self._frame_id or self.values["frame_id"] or "event_camera"
        for name, row in self._topics.items():
            value = r.get(row.output)
            if value is None:
                continue
            publisher = self._pubs[name]
            if row.always or publisher.get_subscription_count() > 0:
                for msg in row.convert(value, r.stamp_ns, frame):
                    publisher.publish(msg)
                now = self._now_in_stamp_time()
                if now is not None:
                    with self._ages_lock:
                        self._output_ages.setdefault(name, []).append((now - r.stamp_ns) / 1e6)
        self.published += 1

    # -- odometry (REP-105) ------------------------------------------------------------------
    def _on_tf_static(self, msg: TFMessage) -> None:
        """The camera's mounting on the base (base_frame -> camera frame, one hop) from the
        robot's static transforms, so ~/odom and /tf track the base, not the camera."""
        camera = self._frame_id or self.values["frame_id"]
        for tf in msg.transforms:
            if tf.header.frame_id == self.values["base_frame"] and tf.child_frame_id == camera:
                r, p = tf.transform.rotation, tf.transform.translation
                T = np.eye(4)
                T[:3, :3] = Rotation.from_quat([r.x, r.y, r.z, r.w]).as_matrix()
                T[:3, 3] = [p.x, p.y, p.z]
                self._T_base_cam = T

    def _body(self, frame: str) -> tuple[str, np.ndarray, np.ndarray]:
        """(tracked frame, T(base <- camera), its inverse): the camera itself without a base."""
        if self.values["base_frame"]:
            return self.values["base_frame"], self._T_base_cam, np.linalg.inv(self._T_base_cam)
        return frame, np.eye(4), np.eye(4)

    def _odom_messages(self, odo, stamp_ns: int, frame: str) -> list[Odometry]:
        """~/odom: pose of the tracked frame in odom_frame (the first window's pose of it) and
        its velocity in its own frame; covariance -1 on translation when not metric."""
        child, T_bc, T_cb = self._body(frame)
        T = T_bc @ odo.T_odom_cam @ T_cb
        step = T_bc @ odo.T_prev_cur @ T_cb
        msg = Odometry()
        set_stamp(msg.header.stamp, stamp_ns)
        msg.header.frame_id, msg.child_frame_id = self.values["odom_frame"], child
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        p.x, p.y, p.z = (float(v) for v in T[:3, 3])
        q.x, q.y, q.z, q.w = (float(v) for v in quaternion_xyzw(T[:3, :3]))
        if odo.dt_s > 0 and odo.tracking:
            lin, ang = msg.twist.twist.linear, msg.twist.twist.angular
            lin.x, lin.y, lin.z = (float(v) / odo.dt_s for v in step[:3, 3])
            ang.x, ang.y, ang.z = (float(v) / odo.dt_s
                                   for v in Rotation.from_matrix(step[:3, :3]).as_rotvec())
        if not odo.metric:  # scale unknown: translations are directions only
            for i in range(3):
                msg.pose.covariance[7 * i] = -1.0
                msg.twist.covariance[7 * i] = -1.0
        return [msg]

    def _tf_messages(self, odo, stamp_ns: int, frame: str) -> list[TFMessage]:
        """/tf: odom_frame -> base_frame (or the camera frame when no base is set)."""
        child, T_bc, T_cb = self._body(frame)
        T = T_bc @ odo.T_odom_cam @ T_cb
        tf = TransformStamped()
        set_stamp(tf.header.stamp, stamp_ns)
        tf.header.frame_id = self.values["odom_frame"]
        tf.child_frame_id = child
        tr = tf.transform.translation
        tr.x, tr.y, tr.z = (float(v) for v in T[:3, 3])
        rot = tf.transform.rotation
        rot.x, rot.y, rot.z, rot.w = (float(v) for v in quaternion_xyzw(T[:3, :3]))
        return [TFMessage(transforms=[tf])]

    def _camera_info_messages(self, depth, stamp_ns: int, frame: str) -> list[CameraInfo]:
        """~/camera_info beside ~/depth (same stamp, K for the depth image's size), so
        depth_image_proc can make a point cloud; nothing while the intrinsics are unknown."""
        K = self.engine.K if self.engine is not None else None
        if K is None:
            return []
        h, w = depth.shape[:2]
        sensor_w, sensor_h = self.engine.sensor_size
        sx, sy = (w / sensor_w, h / sensor_h) if sensor_w and sensor_h else (1.0, 1.0)
        Ks = np.diag([sx, sy, 1.0]) @ K
        msg = CameraInfo()
        set_stamp(msg.header.stamp, stamp_ns)
        msg.header.frame_id = frame
        msg.width, msg.height = int(w), int(h)
        msg.distortion_model = "plumb_bob"
        msg.d = [0.0] * 5
        msg.k = [float(v) for v in Ks.reshape(-1)]
        msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        msg.p = [float(Ks[0, 0]), 0.0, float(Ks[0, 2]), 0.0, 0.0, float(Ks[1, 1]),
                 float(Ks[1, 2]), 0.0, 0.0, 0.0, 1.0, 0.0]
        return [msg]

    def _publish_diagnostics(self) -> None:
        engine, reporter = self.engine, self._reporter
        if engine is None or reporter is None:
            return
        d = engine.diagnostics()
        d["malformed_images"] = self.malformed_images
        d["published_windows"] = self.published
        with self._ages_lock:
            ages, self._output_ages = self._output_ages, {}
        subscribed = [n for n, pub in self._pubs.items() if pub.get_subscription_count() > 0]
        statuses = reporter.statuses(d, time.monotonic(), str(engine.device), ages,
                                     self._input_lag_ms, subscribed)
        array = DiagnosticArray(status=statuses)
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)
        release_free_memory()  # after a burst, RSS returns near idle instead of staying at peak


def main(argv: list[str] | None = None) -> int:
    """ros2 run entry point; ``--no-autostart`` leaves the node unconfigured (lifecycle
    services drive it). Exit 2: configure failed, 3: activate failed."""
    stop = install_stop_handlers()
    args = list(sys.argv if argv is None else argv)
    autostart = "--no-autostart" not in args
    args = [a for a in args if a != "--no-autostart"]
    try:
        run_lifecycle_nodes([PerceptionNode], stop, args=args, autostart=autostart)
    except TransitionFailed as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
