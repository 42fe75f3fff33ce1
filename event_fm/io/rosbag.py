"""rosbag2 reading and writing through the pure-Python ``rosbags`` library.

Real recordings have quirks that rosbags' high-level reader rejects: an empty
``storage_identifier`` in metadata.yaml, MCAP schemas stored as ROS 2 IDL with ``#include``,
sqlite3 bags with no embedded definitions, and the older ``event_array_msgs`` type name. This
module reads them all with one typestore that already knows the event message types, falling back
to the storage files themselves when the directory's metadata is unusable.

Writing goes to ``<path>.partial`` and is renamed on success, so an interrupted run never leaves
a bag that looks complete.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rosbags.interfaces import (
    MessageDefinitionFormat,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import ReaderError
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from event_fm.common.stamps import ns_to_time
from event_fm.io.errors import UnreadableInputError
from event_fm.io.msg_definitions import DEFINITIONS

log = logging.getLogger(__name__)

STORAGE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}
_DEFINITION_SEPARATOR = "=" * 80


def make_typestore():
    """A ROS 2 Kilted typestore with the event-camera message types registered."""
    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for name, text in DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def is_bag(path: str | Path) -> bool:
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").exists() or any(
            p.suffix in STORAGE_SUFFIXES for p in path.iterdir())
    return path.suffix in STORAGE_SUFFIXES


@dataclass
class TopicSummary:
    name: str
    msgtype: str
    count: int
    qos: list[Qos] = field(default_factory=list)


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    log_time_ns: int
    raw: bytes | memoryview


class UnknownMessageTypeError(KeyError):
    pass


class BagReader:
    """Reads any rosbag2 directory or single .db3/.mcap file, in log-time order per file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no such bag: {self.path}")
        self.typestore = make_typestore()
        self._readers: list[Reader] = []
        self._metadata: dict[str, Any] = {}
        self.topics: dict[str, TopicSummary] = {}

    # -- opening -------------------------------------------------------------------------------
    def open(self) -> BagReader:
        if self.path.is_dir():
            self._metadata = self._read_metadata()
            self._readers = self._open_directory()
        else:
            self._readers = [self._open_reader(self.path)]
        self._collect_topics()
        return self

    def _read_metadata(self) -> dict[str, Any]:
        meta_path = self.path / "metadata.yaml"
        if not meta_path.exists():
            return {}
        try:
            data = yaml.safe_load(meta_path.read_text()) or {}
            return data.get("rosbag2_bagfile_information", {}) or {}
        except yaml.YAMLError as exc:
            log.warning("%s: unreadable metadata.yaml (%s); reading storage files", self.path, exc)
            return {}

    def _open_directory(self) -> list[Reader]:
        if self._metadata.get("storage_identifier") in ("mcap", "sqlite3"):
            try:
                return [self._open_reader(self.path)]
            except Exception as exc:  # noqa: BLE001 - rosbags raises ReaderError, apsw, struct
                log.info("%s: directory reader failed (%s); reading files one by one",
                         self.path, exc)
        names = self._metadata.get("relative_file_paths") or []
        files = [self.path / Path(n).name for n in names]
        files = [f for f in files if f.exists()] or sorted(
            p for p in self.path.iterdir() if p.suffix in STORAGE_SUFFIXES)
        if not files:
            raise UnreadableInputError(f"{self.path}: no .mcap or .db3 storage files found")
        return [self._open_reader(f) for f in files]

    @staticmethod
    def _open_reader(path: Path) -> Reader:
        """rosbags' reader; for a storage file it refuses, what a killed recording left of it."""
        try:
            reader = Reader(path)
            reader.open()
            return reader
        except Exception as exc:  # noqa: BLE001 - rosbags raises ReaderError, apsw, struct errors
            if path.is_dir():
                raise
            from event_fm.io.salvage import salvage_storage_file

            return salvage_storage_file(path, exc)  # type: ignore[return-value]

    def _metadata_qos(self) -> dict[str, list[Qos]]:
        qos: dict[str, list[Qos]] = {}
        for entry in self._metadata.get("topics_with_message_count", []) or []:
            topic = entry.get("topic_metadata", {})
            try:
                qos[topic["name"]] = parse_qos(topic.get("offered_qos_profiles", []))
            except (KeyError, ReaderError):
                continue
        return qos

    def _collect_topics(self) -> None:
        meta_qos = self._metadata_qos()
        for reader in self._readers:
            for conn in reader.connections:
                self._register_definition(conn)
                summary = self.topics.setdefault(
                    conn.topic, TopicSummary(conn.topic, conn.msgtype, 0))
                summary.count += conn.msgcount
                if not summary.qos:
                    summary.qos = list(getattr(conn.ext, "offered_qos_profiles", []) or [])
                    summary.qos = summary.qos or meta_qos.get(conn.topic, [])

    def _register_definition(self, conn) -> None:
        """Register a type the bag embeds but the typestore lacks (our own types win)."""
        if conn.msgtype in self.typestore.fielddefs or not conn.msgdef.data:
            return
        try:
            if conn.msgdef.format == MessageDefinitionFormat.IDL:
                types = get_types_from_idl(conn.msgdef.data)
            else:
                types = {}
                sections = conn.msgdef.data.split(_DEFINITION_SEPARATOR)
                types.update(get_types_from_msg(sections[0], conn.msgtype))
                for section in sections[1:]:
                    header, _, body = section.strip().partition("\n")
                    if header.startswith("MSG: "):
                        name = header[5:].strip()
                        if "/msg/" not in name:
                            name = name.replace("/", "/msg/", 1)
                        types.update(get_types_from_msg(body, name))
            new = {k: v for k, v in types.items() if k not in self.typestore.fielddefs}
            self.typestore.register(new)
        except Exception as exc:  # noqa: BLE001 - a bad embedded schema must not stop reading
            log.warning("%s: cannot use the embedded definition of %s (%s)", self.path,
                        conn.msgtype, exc)

    def close(self) -> None:
        for reader in self._readers:
            if reader.is_open:
                reader.close()
        self._readers = []

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------
    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        wanted = set(topics) if topics is not None else None
        for reader in self._readers:
            conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
            if not conns:
                continue
            yield from self._file_messages(reader, conns)

    def _file_messages(self, reader: Reader, conns: list) -> Iterator[BagMessage]:
        """One file's messages; damage found while reading ends that file with a warning."""
        it = iter(reader.messages(connections=conns))
        count = 0
        while True:
            try:
                conn, stamp, raw = next(it)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - apsw.CorruptError, ReaderError, struct
                path = Path(getattr(reader, "path", self.path))
                rest = self._salvage_rest(path, conns, count, exc)
                if rest is None:
                    log.warning("%s: damaged: read %d messages, the rest is unreadable (%s)",
                                path.name, count, exc)
                    return
                yield from rest
                return
            count += 1
            yield BagMessage(conn.topic, conn.msgtype, stamp, raw)

    @staticmethod
    def _salvage_rest(path: Path, conns: list, count: int,
                      exc: BaseException) -> Iterator[BagMessage] | None:
        """After rosbags failed mid-file: the messages the salvage reader finds past ``count``."""
        if not path.is_file():
            return None
        from event_fm.io.salvage import salvage_storage_file

        try:
            salvaged = salvage_storage_file(path, exc)
        except (UnreadableInputError, OSError):
            return None
        wanted = {c.topic for c in conns}
        picked = [c for c in salvaged.connections if c.topic in wanted]

        def rest() -> Iterator[BagMessage]:
            try:
                for i, (conn, stamp, raw) in enumerate(salvaged.messages(connections=picked)):
                    if i >= count:
                        yield BagMessage(conn.topic, conn.msgtype, stamp, raw)
            finally:
                salvaged.close()

        return rest() if picked else None

    def deserialize(self, message: BagMessage) -> Any:
        if message.msgtype not in self.typestore.fielddefs:
            raise UnknownMessageTypeError(
                f"{self.path}: no definition for {message.msgtype} on {message.topic}")
        return self.typestore.deserialize_cdr(message.raw, message.msgtype)


# -- writing -----------------------------------------------------------------------------------
_INFINITE = QosTime(sec=9223372036, nsec=854775807)


def make_qos(reliability: str = "reliable", depth: int = 10) -> Qos:
    """QoS as recorded in metadata (replay uses it): 'reliable' or 'best_effort'."""
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=(QosReliability.BEST_EFFORT if reliability == "best_effort"
                     else QosReliability.RELIABLE),
        durability=QosDurability.VOLATILE,
        deadline=_INFINITE,
        lifespan=_INFINITE,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_INFINITE,
        avoid_ros_namespace_conventions=False,
    )


#: The drivers' event QoS (best_effort, keep_last 1000) and the usual sensor-data QoS.
EVENT_QOS = make_qos("best_effort", 1000)
SENSOR_QOS = make_qos("best_effort", 5)
RELIABLE_QOS = make_qos("reliable", 10)

_IMAGE_ENCODINGS = {("uint8", 1): "mono8", ("uint8", 3): "rgb8", ("uint16", 1): "mono16",
                    ("float32", 1): "32FC1", ("uint16", 3): "rgb16"}


class BagWriter:
    """Writes a rosbag2 (MCAP by default) with event packets, images, camera info and any type."""

    def __init__(self, path: str | Path, storage: str = "mcap", overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise FileExistsError(f"bag already exists: {self.path}")
        self.overwrite = overwrite
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.storage = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
        self.typestore = make_typestore()
        self._writer: Writer | None = None
        self._connections: dict[str, Any] = {}
        self._encoders: dict[str, Any] = {}
        self._seq: dict[str, int] = {}

    def open(self) -> BagWriter:
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self._writer = Writer(self.partial, version=9, storage_plugin=self.storage)
        self._writer.open()
        return self

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        if self.path.exists():
            shutil.rmtree(self.path)
        self.partial.rename(self.path)
        # Storage files are named after the partial directory; keep metadata consistent.
        self._rename_storage_files()

    def _rename_storage_files(self) -> None:
        meta_path = self.path / "metadata.yaml"
        text = meta_path.read_text()
        for f in self.path.iterdir():
            if f.name.startswith(self.partial.name):
                new_name = self.path.name + f.name[len(self.partial.name):]
                f.rename(self.path / new_name)
                text = text.replace(f.name, new_name)
        meta_path.write_text(text)

    def abort(self) -> None:
        """Drop everything written (used on errors and interrupts)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001
                pass
            self._writer = None
        shutil.rmtree(self.partial, ignore_errors=True)

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- topics --------------------------------------------------------------------------------
    def add_topic(self, topic: str, msgtype: str, qos: Qos = RELIABLE_QOS):
        if topic in self._connections:
            return self._connections[topic]
        assert self._writer is not None, "open() the writer first"
        conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore,
                                           offered_qos_profiles=[qos])
        self._connections[topic] = conn
        return conn

    def msg(self, msgtype: str, **fields):
        return self.typestore.types[msgtype](**fields)

    def header(self, stamp_ns: int, frame_id: str = ""):
        stamp = ns_to_time(stamp_ns, self.typestore.types["builtin_interfaces/msg/Time"])
        return self.msg("std_msgs/msg/Header", stamp=stamp, frame_id=frame_id)

    def write(self, topic: str, log_time_ns: int, message, msgtype: str | None = None,
              qos: Qos = RELIABLE_QOS) -> None:
        msgtype = msgtype or message.__msgtype__
        conn = self.add_topic(topic, msgtype, qos)
        assert self._writer is not None
        self._writer.write(conn, int(log_time_ns),
                           self.typestore.serialize_cdr(message, msgtype))

    def write_event_packet(self, topic: str, stamp_ns: int, events: np.ndarray, width: int,
                           height: int, triggers: np.ndarray | None = None,
                           frame_id: str = "event_camera", time_base: int = 0) -> None:
        """EVT3-encode one packet of events (state carried per topic, like a driver)."""
        from event_fm.io.evt3_encoder import Evt3Encoder

        encoder = self._encoders.setdefault(topic, Evt3Encoder())
        payload = np.frombuffer(encoder.encode(events, triggers), dtype=np.uint8)
        self.write_encoded_packet(topic, stamp_ns, payload, "evt3", width, height, frame_id,
                                  time_base)

    def write_encoded_packet(self, topic: str, stamp_ns: int, payload: np.ndarray, encoding: str,
                             width: int, height: int, frame_id: str = "event_camera",
                             time_base: int = 0,
                             msgtype: str = "event_camera_msgs/msg/EventPacket") -> None:
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        message = self.msg(msgtype, header=self.header(stamp_ns, frame_id), height=height,
                           width=width, seq=seq, time_base=time_base, encoding=encoding,
                           is_bigendian=False, events=np.asarray(payload, dtype=np.uint8))
        self.write(topic, stamp_ns, message, msgtype, EVENT_QOS)

    def write_image(self, topic: str, stamp_ns: int, image: np.ndarray, encoding: str | None = None,
                    frame_id: str = "camera", qos: Qos = SENSOR_QOS) -> None:
        image = np.ascontiguousarray(image)
        channels = 1 if image.ndim == 2 else image.shape[2]
        encoding = encoding or _IMAGE_ENCODINGS[(image.dtype.name, channels)]
        message = self.msg(
            "sensor_msgs/msg/Image", header=self.header(stamp_ns, frame_id),
            height=image.shape[0], width=image.shape[1], encoding=encoding,
            is_bigendian=0, step=image.shape[1] * channels * image.dtype.itemsize,
            data=np.frombuffer(image.tobytes(), dtype=np.uint8))
        self.write(topic, stamp_ns, message, "sensor_msgs/msg/Image", qos)

    def write_camera_info(self, topic: str, stamp_ns: int, K: np.ndarray, width: int, height: int,
                          D: np.ndarray | None = None, frame_id: str = "camera") -> None:
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        P = np.zeros((3, 4))
        P[:, :3] = K
        roi = self.msg("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0,
                       width=0, do_rectify=False)
        message = self.msg(
            "sensor_msgs/msg/CameraInfo", header=self.header(stamp_ns, frame_id),
            height=height, width=width, distortion_model="plumb_bob",
            d=np.asarray(D if D is not None else np.zeros(5), dtype=np.float64),
            k=K.ravel(), r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0, roi=roi)
        self.write(topic, stamp_ns, message, "sensor_msgs/msg/CameraInfo", RELIABLE_QOS)


def image_to_array(message) -> np.ndarray:
    """sensor_msgs/Image (rosbags or rclpy) to an HxW[xC] array, validating sizes."""
    dtypes = {"mono8": (np.uint8, 1), "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3),
              "mono16": (np.uint16, 1), "rgb16": (np.uint16, 3), "32FC1": (np.float32, 1),
              "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4), "8UC1": (np.uint8, 1),
              "16UC1": (np.uint16, 1)}
    if message.encoding not in dtypes:
        raise ValueError(f"unsupported image encoding {message.encoding!r}")
    dtype, channels = dtypes[message.encoding]
    h, w, step = int(message.height), int(message.width), int(message.step)
    row = w * channels * np.dtype(dtype).itemsize
    data = np.frombuffer(bytes(message.data) if not isinstance(message.data, np.ndarray)
                         else message.data.tobytes(), dtype=np.uint8)
    if step < row or data.size != step * h:
        raise ValueError(f"image {w}x{h} {message.encoding} step {step} disagrees with "
                         f"{data.size} data bytes")
    rows = data.reshape(h, step)[:, :row]
    array = np.ascontiguousarray(rows).view(dtype)
    if message.is_bigendian and array.dtype.itemsize > 1:
        array = array.byteswap()
    return array.reshape(h, w, channels) if channels > 1 else array.reshape(h, w)
