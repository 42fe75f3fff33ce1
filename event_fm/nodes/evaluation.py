"""``event-fm eval``: a recording through the real node graph over DDS, scored against its
ground truth. The bag is replayed by a publisher node, perception_node processes it exactly as
on a robot (in a process of its own, as a launch file runs it), and a collector node records the
outputs and when they arrived."""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import Image

from event_fm.common.stamps import stamp_to_ns
from event_fm.evaluation.empty_window import empty_window_prediction
from event_fm.evaluation.frame_teacher import has_image_teacher, teacher_on_frames
from event_fm.evaluation.label_free import score_label_free
from event_fm.evaluation.pose_baselines import xfeat_pose
from event_fm.evaluation.recording import Recording
from event_fm.evaluation.scoring import (
    GroundTruth,
    Outputs,
    score,
    trajectory_at,
    write_report,
    xfeat_available,
)
from event_fm.io.msg_definitions import EVENT_TYPES
from event_fm.io.rosbag import BagReader
from event_fm.nodes.node_process import PerceptionProcess
from event_fm.nodes.replay import BagReplayer

NODE = "event_fm_perception"
DRAIN_LIMIT_S = 60.0
NODE_START_LIMIT_S = 120.0


def _image_array(msg: Image) -> np.ndarray:
    dtype = {"32FC1": np.float32, "mono8": np.uint8, "rgb8": np.uint8}[msg.encoding]
    a = np.frombuffer(bytes(msg.data), dtype=dtype)
    return a.reshape(msg.height, msg.width, -1).squeeze(-1) if msg.encoding != "rgb8" \
        else a.reshape(msg.height, msg.width, 3)


class Collector(Node):
    def __init__(self, outputs: Outputs):
        super().__init__("event_fm_eval_collector")
        self.outputs = outputs
        self.arrivals: dict[int, float] = {}
        self.last_output = time.monotonic()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                         reliability=ReliabilityPolicy.RELIABLE)
        for name in ("depth", "semantic", "events_image"):
            self.create_subscription(Image, f"/{NODE}/{name}",
                                     lambda m, n=name: self._on_image(n, m), qos)
        self.create_subscription(PoseStamped, f"/{NODE}/pose", self._on_pose, qos)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def _on_image(self, name: str, msg: Image) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        getattr(self.outputs, name)[stamp] = _image_array(msg).copy()
        if name == "depth":
            self.arrivals[stamp] = time.monotonic()
        self.last_output = time.monotonic()

    def _on_pose(self, msg: PoseStamped) -> None:
        q, p = msg.pose.orientation, msg.pose.position
        T = np.eye(4)
        T[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
        T[:3, 3] = [p.x, p.y, p.z]
        # ~/pose is the current camera in the previous one's frame; scoring wants T(c1 <- c0)
        self.outputs.pose[stamp_to_ns(msg.header.stamp)] = np.linalg.inv(T)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(": perception"):  # the totals; tasks follow
                self.outputs.diagnostics = {kv.key: kv.value for kv in status.values}


def _refuse_foreign_publishers(player: Node, topic: str) -> None:
    """Scores are only worth something on the recording alone: another publisher on the event
    topic (another job in the same DDS domain) mixes its packets in."""
    foreign = player.count_publishers(topic) - 1
    if foreign > 0:
        raise RuntimeError(f"{foreign} other publisher(s) on {topic} in DDS domain "
                           f"{os.environ.get('ROS_DOMAIN_ID', '0')}: refusing to score a mixed "
                           "stream (pick a free domain with --domain)")


def _wait_for_node(perception: PerceptionProcess, replayer: BagReplayer, collector: Node,
                   inputs: list[str]) -> None:
    """Until the node (loading its checkpoint and warming up in its own process) reads every
    input the bag feeds it and its depth reaches the collector."""
    deadline = time.monotonic() + NODE_START_LIMIT_S
    depth_topic = f"/{NODE}/depth"
    while not (all(replayer.publishers[t].get_subscription_count() > 0 for t in inputs
                   if t in replayer.publishers)
               and collector.count_publishers(depth_topic) > 0):
        perception.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"perception_node did not subscribe to {inputs} within "
                               f"{NODE_START_LIMIT_S:.0f} s:\n{perception.log_tail()}")
        time.sleep(0.1)
    time.sleep(0.5)  # let DDS finish matching the writers before the first packet


def score_recording(bag_path: Path, checkpoint: str | Path, outputs: Outputs,
                    window_ms: float, device: str, trajectory: str | Path | None = None,
                    teacher: str | Path | None = None) -> tuple[dict, GroundTruth]:
    """Scores with the baselines; a recording without labels gets the label-free section
    (and the pose protocol when a TUM ``trajectory`` gives the camera's poses)."""
    gt = GroundTruth.from_bag(bag_path)
    truth_topics = [k for k in ("depth", "semantic", "pose") if getattr(gt, k)]
    if trajectory is not None:
        gt.pose = trajectory_at(trajectory, sorted(set(outputs.depth) | set(outputs.pose)))
        truth_topics.append(f"pose from {Path(trajectory).name}")
    recording = Recording.from_bag(bag_path)
    empty = None
    if recording.width and recording.height:
        empty = empty_window_prediction(checkpoint, recording.height, recording.width, device)
    window_ns = int(window_ms * 1e6)
    metrics = score(outputs, gt, recording=recording, window_ns=window_ns, empty=empty)
    metrics["ground_truth_topics"] = truth_topics
    if len(recording.events):
        metrics["recording_start_ns"] = int(recording.events["t"][0]) + recording.offset_ns
    if not (gt.depth and gt.semantic):
        frame_teacher = None
        source = teacher or (checkpoint if has_image_teacher(checkpoint) else None)
        if source is not None and recording.frames:
            frame_teacher = teacher_on_frames(source, recording.frames, device)
        frame_pose = xfeat_pose if recording.frames and xfeat_available() else None
        metrics["label_free"] = score_label_free(outputs, recording, empty, window_ns,
                                                 frame_pose, frame_teacher)
        metrics["label_free"]["teacher"] = str(source) if frame_teacher is not None else None
    return metrics, gt


def evaluate_bag(bag_path: str | Path, checkpoint: str | Path, out_dir: str | Path,
                 rate: float = 1.0, device: str = "auto", window_ms: float = 50.0,
                 checkpoint_note: str = "", trajectory: str | Path | None = None,
                 teacher: str | Path | None = None,
                 node_parameters: dict | None = None) -> dict:
    """``node_parameters``: perception_node parameters over eval's own (e.g.
    ``{"inference_process": False}`` to measure the one-process design)."""
    import rclpy

    bag_path, out_dir = Path(bag_path), Path(out_dir)
    with BagReader(bag_path) as bag:
        topics = bag.topics
    events = [t for t, s in topics.items() if s.msgtype in EVENT_TYPES]
    if not events:
        raise ValueError(f"{bag_path}: no event topic")
    has_images = "/camera/image_raw" in topics
    params = {"checkpoint": str(checkpoint), "device": device, "event_topic": events[0],
              "event_msg_type": topics[events[0]].msgtype, "window_ms": window_ms,
              "image_topic": "/camera/image_raw" if has_images else "",
              "window_mode": "frame" if has_images else "rate",
              "camera_info_topic": "/camera/camera_info" if "/camera/camera_info" in topics
              else "", "diagnostics_period_s": 0.5, "heads": ["depth", "semantic", "pose"],
              **(node_parameters or {})}
    outputs = Outputs()
    published: list[tuple[int, float]] = []  # (event packet log time, wall time)
    node_inputs = [t for t in (events[0], params["image_topic"], params["camera_info_topic"])
                   if t]
    rclpy.init()
    executor = SingleThreadedExecutor()  # spun from a thread: the events executor is not
    collector = Collector(outputs)
    player = Node("event_fm_eval_player")
    try:
        with PerceptionProcess(params, out_dir) as perception:
            for node in (collector, player):
                executor.add_node(node)
            spinner = threading.Thread(target=executor.spin, daemon=True)
            spinner.start()
            replayer = BagReplayer(player, str(bag_path), rate=rate)
            _wait_for_node(perception, replayer, collector, node_inputs)

            last_check = [time.monotonic()]

            def on_publish(topic: str, log_time: int, wall: float) -> None:
                if topic == events[0]:
                    published.append((log_time, wall))
                if wall - last_check[0] > 0.5:  # discovery of another job can lag the start
                    last_check[0] = wall
                    _refuse_foreign_publishers(player, events[0])
                    perception.check_alive()

            _refuse_foreign_publishers(player, events[0])
            replayer.play_once(on_publish=on_publish)
            # drain the last windows: quiet for 3 s, and never longer than the backlog could
            # take (another publisher would keep outputs coming for ever)
            collector.last_output = drain_start = time.monotonic()
            while time.monotonic() - collector.last_output < 3.0:
                _refuse_foreign_publishers(player, events[0])
                perception.check_alive()
                if time.monotonic() - drain_start > DRAIN_LIMIT_S:
                    raise RuntimeError(f"outputs still arriving {DRAIN_LIMIT_S:.0f} s after "
                                       "the recording ended: another publisher in this domain?")
                time.sleep(0.1)
            time.sleep(0.6)  # one more diagnostics period
    finally:
        executor.shutdown()
        for node in (collector, player):
            node.destroy_node()
        rclpy.shutdown()

    log_times = [p[0] for p in published]
    for stamp, arrived in collector.arrivals.items():
        i = bisect_left(log_times, stamp)  # first packet at or after the window end
        if i < len(published):
            outputs.latency_s.append(max(0.0, arrived - published[i][1]))
    metrics, gt = score_recording(bag_path, checkpoint, outputs, window_ms, device, trajectory,
                                  teacher)
    report = {"bag": str(bag_path), "checkpoint": str(checkpoint),
              "checkpoint_note": checkpoint_note, "rate": rate,
              "recording_start_ns": metrics.pop("recording_start_ns", None),
              "metrics": metrics, "diagnostics": outputs.diagnostics,
              "outputs": {"depth": len(outputs.depth), "semantic": len(outputs.semantic),
                          "pose": len(outputs.pose)},
              "ground_truth": {"depth": len(gt.depth), "semantic": len(gt.semantic),
                               "pose": len(gt.pose)}}
    write_report(out_dir, report, outputs, gt)
    return report
