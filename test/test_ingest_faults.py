"""Faults a live stream meets, fed through the ingest the nodes use (issue 17, case 1 and 4-5):
a corrupt packet must not move the clock, a driver restart or time stepping back is one counted
reset, and a flood of bad headers is counted and logged once per interval."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from event_fm.io.events import EVENT_DTYPE
from event_fm.io.evt3_encoder import Evt3Encoder
from event_fm.pipeline.buffer import EventBuffer
from event_fm.pipeline.clock import ClockOffsetEstimator
from event_fm.pipeline.ingest import StreamIngest
from event_fm.pipeline.scheduler import WindowScheduler

EPOCH = 1_700_000_000_000_000_000
PACKET_NS = 1_000_000
TRANSPORT_NS = 300_000  # header stamp = sensor time + offset + a small delay


def _events(t0_ns: int, n: int, rng) -> np.ndarray:
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.sort(t0_ns + (rng.random(n) * PACKET_NS).astype(np.int64)) // 1000 * 1000
    ev["x"], ev["y"] = rng.integers(0, 640, n), rng.integers(0, 480, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def _packet(payload: bytes, stamp_ns: int, seq: int, width=640, height=480,
            encoding="evt3"):
    stamp = SimpleNamespace(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id="cam"), height=height,
                           width=width, seq=seq, time_base=0, encoding=encoding,
                           is_bigendian=False, events=payload)


class Stream:
    """An EVT3 stream as metavision_driver publishes it: 1 ms packets, stamps on host time."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.encoder = Evt3Encoder()
        self.sensor_ns = 5_000_000_000
        self.host_ns = EPOCH
        self.seq = 0
        self.sent: list[np.ndarray] = []

    def next(self) -> SimpleNamespace:
        ev = _events(self.sensor_ns, 200, self.rng)
        msg = _packet(self.encoder.encode(ev), self.host_ns + TRANSPORT_NS, self.seq)
        self.sent.append(ev)
        self.sensor_ns += PACKET_NS
        self.host_ns += PACKET_NS
        self.seq += 1
        return msg

    def restart(self, sensor_ns: int) -> None:
        """The driver restarts (or time steps back): a new encoder, sensor time from here."""
        self.encoder = Evt3Encoder()
        self.sensor_ns = sensor_ns


def _ingest() -> StreamIngest:
    return StreamIngest("/event_camera/events", EventBuffer(), ClockOffsetEstimator())


def test_a_random_payload_is_quarantined_and_moves_nothing():
    clean, faulty = _ingest(), _ingest()
    stream, rng = Stream(), np.random.default_rng(1)
    for i in range(400):
        msg = stream.next()
        clean.add_packet(msg)
        faulty.add_packet(msg)
        if i in (100, 250):  # a packet of garbage between two good ones, plausible stamps
            junk = _packet(rng.integers(0, 256, 8000, dtype=np.uint8).tobytes(),
                           stream.host_ns + TRANSPORT_NS, 10_000 + i)
            faulty.add_packet(junk)
    assert faulty.stats.quarantined == 2
    assert faulty.stats.sensor_resets == 0
    assert faulty.clock.offset_ns == clean.clock.offset_ns
    assert faulty.clock.resets == 0
    window = (5_000_000_000, 5_400_000_000)
    np.testing.assert_array_equal(faulty.buffer.window(*window), clean.buffer.window(*window))
    np.testing.assert_array_equal(clean.buffer.window(*window),
                                  np.concatenate(stream.sent))


@pytest.mark.parametrize("restart_at_ns", [0, 5_000_000_000 + 150_000_000 - 200_000_000],
                         ids=["driver_restart", "time_back_200ms"])
def test_a_restart_or_a_step_back_is_one_counted_reset(restart_at_ns):
    ingest = _ingest()
    stream = Stream()
    for _ in range(150):
        ingest.add_packet(stream.next())
    offset_before = ingest.clock.offset_ns
    stream.restart(restart_at_ns)
    after = [stream.next() for _ in range(50)]
    for msg in after:
        ingest.add_packet(msg)
    assert ingest.stats.sensor_resets == 1
    assert ingest.stats.quarantined == 0
    # the new timeline is read as the driver sends it, relative to the header stamps: the
    # offset moves by the sensor jump only, not by a 16.7 s EVT3 rollover
    jump = restart_at_ns - (5_000_000_000 + 150 * PACKET_NS)
    assert abs(ingest.clock.offset_ns - (offset_before - jump)) < 2 * TRANSPORT_NS + 10**6
    held = ingest.buffer.window(0, 10**12)
    assert len(held) == sum(len(e) for e in stream.sent[150:])


def test_seq_going_back_is_counted():
    ingest = _ingest()
    stream = Stream()
    for _ in range(20):
        ingest.add_packet(stream.next())
    stream.seq = 3
    for _ in range(5):
        ingest.add_packet(stream.next())
    assert ingest.stats.seq_backwards == 1
    assert ingest.stats.seq_gaps == 0


def test_a_huge_geometry_is_dropped_without_allocating(caplog):
    ingest = _ingest()
    stream = Stream()
    ingest.add_packet(stream.next())
    with caplog.at_level(logging.WARNING):
        for _ in range(300):
            msg = stream.next()
            msg.width = msg.height = 100_000
            ingest.add_packet(msg)
    assert ingest.stats.dropped["implausible_geometry"] == 300
    assert ingest.decoder.width == 640
    lines = [r for r in caplog.records if "implausible_geometry" in r.getMessage()]
    assert 1 <= len(lines) <= 2


def test_unknown_encoding_warnings_are_throttled(caplog):
    ingest = _ingest()
    stream = Stream()
    with caplog.at_level(logging.WARNING):
        for _ in range(300):
            msg = stream.next()
            msg.encoding = "evt9"
            ingest.add_packet(msg)
    assert ingest.stats.dropped["unknown_encoding"] == 300
    assert len([r for r in caplog.records if "unknown_encoding" in r.getMessage()]) == 1


def test_a_gap_in_time_makes_a_bounded_number_of_windows():
    class Clock:
        offset_ns = 0

        @staticmethod
        def to_ros(t):
            return t

    scheduler = WindowScheduler("rate", duration_ns=50_000_000, rate_hz=20.0)
    assert len(scheduler.due(0, 100_000_000, Clock)) == 1
    # 1000 s later (a jump the clock believed): a few windows, the rest skipped and counted once
    due = scheduler.due(0, 1000 * 10**9, Clock)
    assert 1 <= len(due) <= scheduler.max_catch_up
    assert due[-1].t_end > 1000 * 10**9 - 2 * scheduler.period_ns
    # grid ends 100 ms .. 1000 s: 20,000 - 1 windows were due, one made before, 8 now
    assert len(due) + scheduler.windows_skipped == 20_000 - 2
    assert scheduler.skips == 1
    assert [w.t_end for w in due] == [1000 * 10**9 - k * scheduler.period_ns
                                      for k in range(len(due), 0, -1)]
