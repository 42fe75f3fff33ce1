"""Legacy per-event EventArray messages (dvs_msgs, prophesee_event_msgs, dv_ros2_msgs)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from event_fm.common.stamps import stamp_to_ns
from event_fm.io.events import EVENT_DTYPE
from event_fm.io.legacy import events_from_objects, legacy_to_batch

INTERFACES = Path(__file__).resolve().parents[1] / "interfaces"


@pytest.fixture(scope="module")
def typestore():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types = {}
    for pkg in ("dvs_msgs", "prophesee_event_msgs"):
        for name in ("Event", "EventArray"):
            text = (INTERFACES / pkg / "msg" / f"{name}.msg").read_text()
            types.update(get_types_from_msg(text, f"{pkg}/msg/{name}"))
    store.register(types)
    return store


def _ros2_msg(store, pkg: str, rows, width=640, height=480, stamp=(12, 345)):
    Time = store.types["builtin_interfaces/msg/Time"]
    Header = store.types["std_msgs/msg/Header"]
    Event = store.types[f"{pkg}/msg/Event"]
    Array = store.types[f"{pkg}/msg/EventArray"]
    events = [
        Event(x=x, y=y, ts=Time(sec=s, nanosec=ns), polarity=bool(p)) for x, y, s, ns, p in rows
    ]
    msg = Array(
        header=Header(stamp=Time(sec=stamp[0], nanosec=stamp[1]), frame_id="cam"),
        height=height,
        width=width,
        events=events,
    )
    # through CDR and back, as a bag reader would hand it over
    return store.deserialize_cdr(store.serialize_cdr(msg, Array.__msgtype__), Array.__msgtype__)


def _expected(rows) -> np.ndarray:
    return np.array(
        [(x, y, s * 1_000_000_000 + ns, int(p)) for x, y, s, ns, p in rows], dtype=EVENT_DTYPE
    )


@pytest.mark.parametrize("pkg", ["dvs_msgs", "prophesee_event_msgs"])
def test_rosbags_messages(typestore, pkg):
    rows = [(1, 2, 1_700_000_000, 999_999_999, 1), (639, 479, 1_700_000_001, 0, 0), (5, 6, 0, 7, 1)]
    msg = _ros2_msg(typestore, pkg, rows)
    batch = legacy_to_batch(msg, topic="/dvs/events")
    np.testing.assert_array_equal(batch.events, _expected(rows))
    assert batch.stamp_ns == 12 * 1_000_000_000 + 345
    assert (batch.width, batch.height, batch.topic) == (640, 480, "/dvs/events")
    assert batch.dropped == {} and len(batch.triggers) == 0


def test_out_of_bounds_dropped_and_geometry_override(typestore):
    rows = [(1, 2, 0, 1, 1), (640, 2, 0, 2, 0), (3, 480, 0, 3, 1), (4, 4, 0, 4, 0)]
    msg = _ros2_msg(typestore, "dvs_msgs", rows)
    batch = legacy_to_batch(msg)
    assert batch.events["x"].tolist() == [1, 4]
    assert batch.dropped == {"out_of_bounds": 2}
    assert len(legacy_to_batch(msg, width=1000, height=1000)) == 4
    unknown = _ros2_msg(typestore, "dvs_msgs", rows, width=0, height=0)
    assert len(legacy_to_batch(unknown)) == 4  # no geometry: nothing to check against


def test_empty_message(typestore):
    batch = legacy_to_batch(_ros2_msg(typestore, "prophesee_event_msgs", []))
    assert len(batch) == 0 and batch.events.dtype == EVENT_DTYPE


def test_ros1_style_and_integer_times():
    ros1 = NS(
        header=NS(stamp=NS(secs=3, nsecs=4), seq=17),
        width=10,
        height=10,
        events=[NS(x=1, y=2, ts=NS(secs=5, nsecs=6), polarity=True)],
    )
    batch = legacy_to_batch(ros1)
    assert batch.events.tolist() == [(1, 2, 5_000_000_006, 1)]
    assert (batch.stamp_ns, batch.seq) == (3_000_000_004, 17)
    ints = events_from_objects([NS(x=3, y=4, ts=123, polarity=0), NS(x=5, y=6, ts=124, polarity=1)])
    assert ints.tolist() == [(3, 4, 123, 0), (5, 6, 124, 1)]
    assert stamp_to_ns(NS(sec=1, nanosec=2)) == 1_000_000_002


@settings(max_examples=50, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 65535),
            st.integers(0, 65535),
            st.integers(0, 2**32 - 1),
            st.integers(0, 999_999_999),
            st.booleans(),
        ),
        max_size=50,
    )
)
def test_objects_property(rows):
    objs = [NS(x=x, y=y, ts=NS(sec=s, nanosec=ns), polarity=p) for x, y, s, ns, p in rows]
    np.testing.assert_array_equal(events_from_objects(objs), _expected(rows))


def test_conversion_speed():
    """200 k events: one pass over the objects, well under a second."""
    n = 200_000
    ts = NS(sec=1, nanosec=2)
    objs = [NS(x=i % 640, y=i % 480, ts=ts, polarity=i & 1) for i in range(n)]
    t0 = time.perf_counter()
    ev = events_from_objects(objs)
    elapsed = time.perf_counter() - t0
    assert len(ev) == n and ev["p"].sum() == n // 2
    assert elapsed < 2.0, f"{elapsed:.2f} s"


def test_legacy_arrays_feed_the_sample_assembler(typestore):
    """recorder_node and the dataset builder cut samples through StreamIngest; legacy arrays
    (no encoding, no seq) were once dropped there as malformed and 0 samples came out."""
    from event_fm.dataset.sync import SampleAssembler, SyncConfig

    Image = typestore.types["sensor_msgs/msg/Image"]
    Header = typestore.types["std_msgs/msg/Header"]
    Time = typestore.types["builtin_interfaces/msg/Time"]
    config = SyncConfig(event_topic="/dvs/events", clean_image_topic=None, depth_topic=None,
                        semantic_topic=None, pose_topic=None, window_ms=20.0)
    assembler = SampleAssembler(config, {"image"}, "/dvs/events", "legacy")
    rng = np.random.default_rng(0)
    samples, sent = [], []
    for k in range(30):  # 10 ms arrays, a frame every 50 ms
        t0 = 10 * k * 1_000_000
        ts = np.sort(rng.integers(t0, t0 + 10_000_000, 50))
        rows = [(int(rng.integers(0, 64)), int(rng.integers(0, 48)), 1, int(t), 1) for t in ts]
        sent.append(_expected(rows))
        assembler.add_event_packet(_ros2_msg(typestore, "dvs_msgs", rows, 64, 48,
                                             stamp=(1, t0 + 10_000_000)))
        if k % 5 == 4:
            stamp = Time(sec=1, nanosec=t0 + 10_000_000)
            frame = Image(header=Header(stamp=stamp, frame_id="cam"), height=48, width=64,
                          encoding="mono8", is_bigendian=0, step=64,
                          data=np.zeros(64 * 48, np.uint8))
            assembler.add("image", frame)
        samples += list(assembler.ready())
    assert assembler.ingest.stats.dropped["malformed_message"] == 0
    assert len(samples) >= 4
    events = np.concatenate(sent)
    for sample in samples:
        lo = sample.t_end - 20_000_000
        expected = events[(events["t"] >= lo) & (events["t"] < sample.t_end)]
        np.testing.assert_array_equal(sample.events, expected)
        assert (sample.width, sample.height) == (64, 48)
