"""recorder_node: records synchronized training pairs live, into the training shard format.

Per camera frame: the event window ending at it, the frame and any configured ground-truth
topics — cut by the same SampleAssembler the offline dataset builder uses. Shards become visible
only when complete (write, fsync, rename), so a kill loses at most the open shard and a restart
continues with new shard numbers.
"""

from __future__ import annotations

import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image

from event_fm.dataset.shards import ShardWriter
from event_fm.dataset.sync import SampleAssembler, SyncConfig
from event_fm.io.decoders import warm_up as warm_up_decoders
from event_fm.nodes.parameters import (
    EVENT_MSG_TYPES,
    QOS_CHOICES,
    ParamSpec,
    declare,
    read_and_validate,
    reject_invalid_updates,
)
from event_fm.nodes.ros_types import install_stop_handlers, message_class, qos_from_name

PARAMS = [
    ParamSpec("output_dir", "recordings/live", "directory of the shard dataset to append to"),
    ParamSpec("session", "", "name stored with each sample (default: the start time)"),
    ParamSpec("event_topic", "events", "event packets to record (relative: remap it)"),
    ParamSpec("event_msg_type", EVENT_MSG_TYPES[0], "message type of event_topic",
              choices=EVENT_MSG_TYPES),
    ParamSpec("event_qos", "best_effort", "QoS of the event subscription", choices=QOS_CHOICES),
    ParamSpec("image_topic", "image", "camera frames; one sample per frame (relative: remap it)"),
    ParamSpec("image_qos", "sensor_data", "QoS of image subscriptions", choices=QOS_CHOICES),
    ParamSpec("image_qos_depth", 100, "image queue depth: covers a start-up stall of seconds",
              min=1, max=10_000),
    ParamSpec("camera_info_topic", "camera_info", "intrinsics stored with each sample"),
    ParamSpec("depth_topic", "", "optional ground-truth depth (32FC1 m); empty: none"),
    ParamSpec("semantic_topic", "", "optional ground-truth labels (mono8); empty: none"),
    ParamSpec("pose_topic", "", "optional ground-truth pose (PoseStamped); empty: none"),
    ParamSpec("window_ms", 50.0, "event window ending at each frame (ms)", min=0.1, max=10_000.0),
    ParamSpec("window_events", 0, "fixed-count windows instead (0: use window_ms)", min=0,
              max=100_000_000),
    ParamSpec("samples_per_shard", 32, "samples per shard file", min=1, max=100_000),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics", min=0.05, max=3600.0),
]

#: sample skips that mean a frame arrived with no events to pair it with
NO_EVENTS = ("events_end_before_frame", "empty_window")


class RecorderNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("event_fm_recorder", **kwargs)
        declare(self, PARAMS)
        self.add_on_set_parameters_callback(reject_invalid_updates(PARAMS))
        self.values: dict = {}
        self.writer: ShardWriter | None = None
        self.assembler: SampleAssembler | None = None
        self._subs = []
        self._lock = threading.Lock()
        self.samples_written = 0
        self.frames_seen = 0
        self._diag_timer = None
        self._diagnostics_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics",
                                                                10)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.values, errors = read_and_validate(self, PARAMS)
        if errors:
            for e in errors:
                self.get_logger().error(f"invalid parameter {e}")
            return TransitionCallbackReturn.FAILURE
        warm_up_decoders()  # JIT before subscribing: a first-packet stall would lose frames
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self.values
        session = v["session"] or time.strftime("live_%Y%m%d_%H%M%S")
        fields = {"image": v["image_topic"], "depth": v["depth_topic"],
                  "semantic": v["semantic_topic"], "pose": v["pose_topic"]}
        fields = {name: topic for name, topic in fields.items() if topic}
        sync = SyncConfig(event_topic=v["event_topic"], image_topic=v["image_topic"],
                          clean_image_topic=None, camera_info_topic=v["camera_info_topic"],
                          depth_topic=v["depth_topic"] or None,
                          semantic_topic=v["semantic_topic"] or None,
                          pose_topic=v["pose_topic"] or None, window_ms=v["window_ms"],
                          window_events=v["window_events"], require=list(fields))
        self.assembler = SampleAssembler(sync, set(fields), v["event_topic"], session)
        self.writer = ShardWriter(v["output_dir"], v["samples_per_shard"],
                                  prefix=f"shard_{session}",
                                  meta={"recorder": {k: str(x) for k, x in v.items()}})
        event_cls = message_class(v["event_msg_type"])
        self._subs.append(self.create_subscription(
            event_cls, v["event_topic"], self._on_events, qos_from_name(v["event_qos"], 1000)))
        image_qos = qos_from_name(v["image_qos"], v["image_qos_depth"])
        for name, topic in fields.items():
            cls = Image if name in ("image", "depth", "semantic") else \
                message_class("geometry_msgs/msg/PoseStamped")
            self._subs.append(self.create_subscription(
                cls, topic, lambda msg, n=name: self._on_field(n, msg), image_qos))
        if v["camera_info_topic"]:
            self._subs.append(self.create_subscription(
                CameraInfo, v["camera_info_topic"], self._on_camera_info, 10))
        self._diag_timer = self.create_timer(v["diagnostics_period_s"], self._publish_diagnostics)
        self.get_logger().info(f"recording session {session} into {v['output_dir']}")
        return super().on_activate(state)

    def counters(self) -> dict[str, int]:
        """Where every frame went: written, skipped by reason, or still pending."""
        a = self.assembler
        skipped = dict(a.skipped) if a is not None else {}
        ingest = a.ingest.stats if a is not None else None
        # skips of entries that held no frame (ground truth whose image never came, or an
        # unusable ground-truth message) do not account for frames
        skipped = {k: v for k, v in skipped.items()
                   if k != "missing_image" and not (k.startswith("bad_") and k != "bad_image")}
        pending = sum("image" in parts for parts in a.pending.values()) if a is not None else 0
        return {"frames_seen": self.frames_seen, "samples_written": self.samples_written,
                "frames_pending": pending,
                "frames_without_events": sum(skipped.get(k, 0) for k in NO_EVENTS),
                **{f"skipped_{k}": v for k, v in sorted(skipped.items())},
                "event_packets": ingest.messages if ingest else 0,
                "event_seq_gaps": ingest.seq_gaps if ingest else 0,
                "event_packets_quarantined": ingest.quarantined if ingest else 0,
                "sensor_resets": ingest.sensor_resets if ingest else 0}

    def _publish_diagnostics(self) -> None:
        with self._lock:
            c = self.counters()
        unexplained = c["frames_seen"] - c["samples_written"] - c["frames_pending"] - sum(
            v for k, v in c.items() if k.startswith("skipped_"))
        level, message = DiagnosticStatus.OK, "ok"
        if unexplained:
            level, message = DiagnosticStatus.ERROR, f"{unexplained} frames unaccounted for"
        elif c["frames_seen"] > c["samples_written"] + c["frames_pending"]:
            level, message = DiagnosticStatus.WARN, "frames skipped: " + ", ".join(
                f"{k[8:]} {v}" for k, v in c.items() if k.startswith("skipped_") and v)
        elif c["event_seq_gaps"]:
            level, message = DiagnosticStatus.WARN, f"{c['event_seq_gaps']} event packets lost"
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: recorder",
                                  message=message, hardware_id=self.values.get("output_dir", ""),
                                  values=[KeyValue(key=k, value=str(v)) for k, v in c.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(msg)

    def _on_events(self, msg) -> None:
        with self._lock:
            self.assembler.add_event_packet(msg)
            self._drain()

    def _on_field(self, name: str, msg) -> None:
        with self._lock:
            if name == "image":
                self.frames_seen += 1
            self.assembler.add(name, msg)
            self._drain()

    def _on_camera_info(self, msg) -> None:
        with self._lock:
            self.assembler.add_camera_info(msg)

    def _drain(self, final: bool = False) -> None:
        for sample in self.assembler.ready(final=final):
            self.writer.add(sample)
            self.samples_written += 1

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._lock:
            if self.assembler is not None:
                self._drain(final=True)
            if self.writer is not None:
                self.writer.close()
        self._publish_diagnostics()  # the final account, before the publisher goes inactive
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self.get_logger().info(f"wrote {self.samples_written} samples; skipped: "
                               f"{dict(self.assembler.skipped) if self.assembler else {}}")
        return super().on_deactivate(state)


def main(argv: list[str] | None = None) -> int:
    """ros2 run entry point. Exit 2: configure failed, 3: activate failed."""
    from event_fm.nodes.graph import TransitionFailed, run_lifecycle_nodes

    stop = install_stop_handlers()
    try:  # deactivation at shutdown flushes the open shard
        run_lifecycle_nodes([RecorderNode], stop, args=argv if argv is not None else sys.argv)
    except TransitionFailed as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
