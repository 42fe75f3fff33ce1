"""Writing simulated recordings as rosbag2 (MCAP), laid out like a real robot recording.

Topics (``TOPICS``): ``/event_camera/events`` (event_camera_msgs/EventPacket, EVT3, ~1 ms
packets, best-effort QoS), ``/camera/image_raw`` (rgb8, sRGB-encoded; the degraded frames when
a degradation is configured), ``/camera/image_clean`` (rgb8, only when degraded),
``/camera/camera_info``, and the ground truth ``/gt/depth`` (32FC1 z-depth in metres, **+inf
for sky**), ``/gt/semantic`` (mono8 class ids, see :mod:`event_fm.sim.classes`), ``/gt/pose``
(geometry_msgs/PoseStamped, ``T_world_camera`` in frame ``world``), optionally ``/gt/flow``
(32FC2 forward flow to the next frame in pixels, NaN where undefined) and ``/gt/metadata``
(std_msgs/String, JSON, once).

Clocks, as on a real robot with a Prophesee camera and metavision_driver:

- event time in the EVT3 stream is *sensor time* = simulation time, starting at 0, floored to
  microseconds (EVT3 resolution);
- every header stamp is *ROS time* = ``start_epoch_ns`` + simulation time: frames and ground
  truth at the frame time, an EventPacket at the time of its first event;
- hence ROS time - sensor time = ``start_epoch_ns`` exactly (recorded in the metadata as
  ``clock_offset_ns``). The bag's log time of each message equals its header stamp.

The same metadata is also written as ``sim.json`` inside the bag directory, before the bag is
finalised, so a bag that looks complete always has it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from event_fm.common.rotations import quaternion_xyzw
from event_fm.io.convert import packetize
from event_fm.io.events import EventBatch, empty_events
from event_fm.io.rosbag import BagWriter

TOPICS = {
    "events": "/event_camera/events",
    "image": "/camera/image_raw",
    "clean": "/camera/image_clean",
    "camera_info": "/camera/camera_info",
    "depth": "/gt/depth",
    "semantic": "/gt/semantic",
    "pose": "/gt/pose",
    "flow": "/gt/flow",
    "metadata": "/gt/metadata",
}
DEFAULT_START_EPOCH_NS = 1_700_000_000_000_000_000
CAMERA_FRAME, EVENT_FRAME, WORLD_FRAME = "camera", "event_camera", "world"


def _to_json(data: dict, indent: int | None = None) -> str:
    def plain(value):  # numpy scalars and arrays
        return value.tolist() if hasattr(value, "tolist") else str(value)
    return json.dumps(data, indent=indent, sort_keys=True, default=plain)


class SimBagWriter:
    """Streams simulated frames (with their events) into an open :class:`BagWriter`.

    Events are held back until their 1 ms packet is complete, so packets never straddle two
    calls and the encoder sees one non-decreasing stream."""

    def __init__(self, bag: BagWriter, width: int, height: int, K: np.ndarray | None = None,
                 start_epoch_ns: int = DEFAULT_START_EPOCH_NS, packet_ns: int = 1_000_000):
        self.bag, self.width, self.height = bag, width, height
        self.K = None if K is None else np.asarray(K, dtype=np.float64)
        self.epoch, self.packet_ns = int(start_epoch_ns), int(packet_ns)
        self._pending = empty_events()
        self.n_events = 0
        self.n_packets = 0
        self.n_frames = 0

    def write_metadata(self, metadata: dict) -> None:
        msg = self.bag.msg("std_msgs/msg/String", data=_to_json(metadata))
        self.bag.write(TOPICS["metadata"], self.epoch, msg, "std_msgs/msg/String")

    def add_events(self, events: np.ndarray, until_ns: int | None = None) -> None:
        """Queue events (sensor time) and write the packets that end at or before ``until_ns``
        (all of them when None)."""
        if len(events):
            events = events.copy()
            events["t"] = (events["t"] // 1000) * 1000  # EVT3 carries microseconds
            self._pending = np.concatenate([self._pending, events]) if len(self._pending) \
                else events
        if not len(self._pending):
            return
        if until_ns is None:
            done, self._pending = self._pending, empty_events()
        else:
            cut = (int(until_ns) // self.packet_ns) * self.packet_ns
            n = int(np.searchsorted(self._pending["t"], cut, side="left"))
            done, self._pending = self._pending[:n], self._pending[n:]
        if not len(done):
            return
        for packet, triggers in packetize([EventBatch(events=done)], self.packet_ns):
            stamp = self.epoch + int(packet["t"][0])
            self.bag.write_event_packet(TOPICS["events"], stamp, packet, self.width, self.height,
                                        triggers=triggers, frame_id=EVENT_FRAME)
            self.n_events += len(packet)
            self.n_packets += 1

    def write_frame(self, frame) -> None:
        """Camera info, image(s) and whatever ground truth the frame carries, at its time."""
        stamp = self.epoch + int(frame.t_ns)
        bag = self.bag
        if self.K is not None:
            bag.write_camera_info(TOPICS["camera_info"], stamp, self.K, self.width, self.height,
                                  frame_id=CAMERA_FRAME)
        bag.write_image(TOPICS["image"], stamp, frame.image, frame_id=CAMERA_FRAME)
        if frame.clean is not None:
            bag.write_image(TOPICS["clean"], stamp, frame.clean, frame_id=CAMERA_FRAME)
        if frame.depth is not None:
            bag.write_image(TOPICS["depth"], stamp, frame.depth.astype(np.float32),
                            encoding="32FC1", frame_id=CAMERA_FRAME)
        if frame.semantic is not None:
            bag.write_image(TOPICS["semantic"], stamp, frame.semantic.astype(np.uint8),
                            encoding="mono8", frame_id=CAMERA_FRAME)
        if getattr(frame, "flow", None) is not None:
            bag.write_image(TOPICS["flow"], stamp, frame.flow.astype(np.float32),
                            encoding="32FC2", frame_id=CAMERA_FRAME)
        if frame.pose is not None:
            bag.write(TOPICS["pose"], stamp, self.pose_msg(stamp, frame.pose),
                      "geometry_msgs/msg/PoseStamped")
        self.n_frames += 1

    def pose_msg(self, stamp: int, T: np.ndarray):
        bag = self.bag
        q = quaternion_xyzw(T[:3, :3])
        pose = bag.msg(
            "geometry_msgs/msg/Pose",
            position=bag.msg("geometry_msgs/msg/Point", x=float(T[0, 3]), y=float(T[1, 3]),
                             z=float(T[2, 3])),
            orientation=bag.msg("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]),
                                z=float(q[2]), w=float(q[3])))
        return bag.msg("geometry_msgs/msg/PoseStamped", header=bag.header(stamp, WORLD_FRAME),
                       pose=pose)


def write_sim_bag(path: str | Path, frames: Iterable, width: int, height: int,
                  metadata: dict, K: np.ndarray | None = None,
                  start_epoch_ns: int = DEFAULT_START_EPOCH_NS, packet_us: int = 1000,
                  storage: str = "mcap", overwrite: bool = False, progress: bool = False,
                  total: int | None = None) -> dict:
    """Write a whole simulated recording; returns counts. Any exception (KeyboardInterrupt
    included) removes the partial bag."""
    from tqdm import tqdm

    metadata = dict(metadata, clock_offset_ns=int(start_epoch_ns),
                    start_epoch_ns=int(start_epoch_ns), topics=TOPICS,
                    clocks="header stamps = start_epoch_ns + sim time; EVT3 event time = sim "
                           "time (us); EventPacket stamp = ROS time of its first event",
                    depth="z-depth along the optical axis in metres, +inf where sky")
    with BagWriter(path, storage=storage, overwrite=overwrite) as bag:
        out = SimBagWriter(bag, width, height, K, start_epoch_ns, packet_us * 1000)
        out.write_metadata(metadata)
        for frame in tqdm(frames, total=total, unit="frame", disable=not progress,
                          leave=False):
            out.add_events(frame.events, until_ns=frame.t_ns)
            out.write_frame(frame)
        out.add_events(empty_events())
        counts = {"frames": out.n_frames, "events": out.n_events, "packets": out.n_packets}
        metadata["counts"] = counts
        (bag.partial / "sim.json").write_text(_to_json(metadata, indent=2))
    return counts
