"""Per-stream ingest: decode a packet, check that its times fit the stream, append to the buffer.

This is all a subscription callback does, so it stays cheap: one vectorized decode and an
append. Everything that can go wrong with a packet is counted by reason.

A packet's times are trusted only when they fit the stream: a packet whose own events span more
than any real packet does (a random or corrupt payload decodes to times spread over minutes) is
quarantined, and the decoder's state is rolled back as if it had never arrived, so one bad packet
cannot move the clock. A packet that is plausible on its own but does not continue the stream
(sensor time jumps against the header stamps) is held until the next packet says which it was:
if that one continues the new timeline, the sensor was reset (driver restart, libcaer time
reset, time stepping back) — counted once in ``sensor_resets``, the buffer, clock and windows
start over; otherwise the held packet was a glitch and is quarantined.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from event_fm.common.throttle import ThrottledLog
from event_fm.io.events import EventBatch
from event_fm.io.legacy import legacy_to_batch
from event_fm.io.readers import PacketDecoder
from event_fm.pipeline.buffer import EventBuffer
from event_fm.pipeline.clock import ClockOffsetEstimator

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    messages: int = 0
    events: int = 0
    seq_gaps: int = 0  # packets missing by seq
    seq_backwards: int = 0  # seq went back (a driver restart or a second publisher)
    sensor_resets: int = 0
    quarantined: int = 0  # packets whose times did not fit the stream, dropped whole
    decode_ns: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count (words, events or msgs)


@dataclass
class _Held:
    """A plausible packet that breaks the timeline, waiting for the next one to decide."""

    batch: EventBatch
    decoder_before: tuple | None  # PacketDecoder.snapshot() before this packet
    msg: object = None  # the message, to decode again from a fresh state on a reset


@dataclass
class Decoded:
    """A decoded packet waiting to be admitted, with the decoder state to roll back to."""

    batch: EventBatch
    decoder_before: tuple | None
    msg: object


class StreamIngest:
    def __init__(self, topic: str, buffer: EventBuffer, clock: ClockOffsetEstimator,
                 reset_threshold_ns: int = 500_000_000,
                 max_packet_span_ns: int = 2_000_000_000, max_sensor_side: int = 4096):
        self.topic = topic
        self.buffer = buffer
        self.clock = clock
        self.decoder = PacketDecoder(topic, max_side=max_sensor_side)
        self.stats = IngestStats()
        self.reset_threshold_ns = int(reset_threshold_ns)
        self.max_packet_span_ns = int(max_packet_span_ns)
        self._last_seq: int | None = None
        self._last_t: int | None = None  # newest accepted sensor time
        self._last_stamp: int = 0  # header stamp of the newest accepted packet
        self._held: _Held | None = None
        self._warn = ThrottledLog(log)
        self.on_reset = None  # callback for the engine (e.g. reset the scheduler)

    # -- packets -----------------------------------------------------------------------------
    def add_packet(self, msg) -> EventBatch | None:
        """Decode and buffer one event message — an EventPacket-like packet, or a legacy
        per-event array (dvs_msgs, prophesee_event_msgs, dv_ros2 EventArray: no encoding, no
        seq) — returns what was accepted (None when nothing was). Never raises on bad data."""
        if not hasattr(msg, "encoding") and hasattr(msg, "events"):
            return self.add_legacy_array(msg)
        decoded = self.decode(msg)
        return None if decoded is None else self.admit(decoded)

    def decode(self, msg) -> Decoded | None:
        """The first half of :meth:`add_packet`: decode only. It touches the decoder and the
        stats, not the buffer or the clock, so a caller can run it outside the lock the
        window worker takes and :meth:`admit` the result under it."""
        started = time.perf_counter_ns()
        self.stats.messages += 1
        before = self.decoder.snapshot()
        try:
            batch = self.decoder.decode(msg)
        except Exception as exc:  # noqa: BLE001 - malformed messages are counted, not fatal
            self.decoder.restore(before)
            self.stats.dropped["malformed_message"] += 1
            self._warn.warning("malformed", "%s: dropping malformed packet: %s", self.topic, exc)
            return None
        self.stats.decode_ns += time.perf_counter_ns() - started
        self.stats.dropped.update(batch.dropped)
        for reason in batch.dropped:
            if reason in ("unknown_encoding", "implausible_geometry", "big_endian_payload"):
                self._warn.warning(reason, "%s: dropping packet: %s", self.topic, reason)
        self._check_seq(batch.seq)
        return Decoded(batch, before, msg)

    def admit(self, decoded: Decoded) -> EventBatch | None:
        """The second half of :meth:`add_packet`: the timing checks and the append."""
        return self._admit(decoded.batch, decoded.decoder_before, decoded.msg)

    def add_legacy_array(self, msg) -> EventBatch | None:
        """A legacy per-event array; its geometry becomes the stream's. Counted as malformed
        (not raised) when it cannot be read."""
        self.stats.messages += 1
        try:
            batch = legacy_to_batch(msg, topic=self.topic)
        except Exception as exc:  # noqa: BLE001 - malformed messages are counted, not fatal
            self.stats.dropped["malformed_message"] += 1
            self._warn.warning("malformed", "%s: dropping malformed event array: %s",
                               self.topic, exc)
            return None
        if max(batch.width, batch.height) > self.decoder.max_side:
            self.stats.dropped["implausible_geometry"] += 1
            self._warn.warning("implausible_geometry", "%s: dropping event array: "
                               "implausible geometry %dx%d", self.topic, batch.width,
                               batch.height)
            return None
        if batch.width and batch.height:
            self.decoder.width, self.decoder.height = batch.width, batch.height
        self.stats.dropped.update(batch.dropped)
        return self.add_batch(batch)

    def add_batch(self, batch: EventBatch) -> EventBatch | None:
        """Buffer already-decoded events (legacy per-event arrays): same timing checks."""
        return self._admit(batch, None, None)

    def _admit(self, batch: EventBatch, before: tuple | None, msg):
        batch = self._monotone(batch)
        if not len(batch):
            return batch
        if self._held is not None:
            held, self._held = self._held, None
            if self._plausible(batch) and self._continues(batch, held.batch):
                first, batch = self._decode_fresh(held, msg, batch)
                self._resync(first)
                return self._accept_many([first, batch])
            # the held packet was a glitch: forget it, and decode this one as if it never came
            self._quarantine(held.batch, "broke the timeline once")
            if held.decoder_before is not None and msg is not None:
                self.decoder.restore(held.decoder_before)
                before = self.decoder.snapshot()
                batch = self._monotone(self.decoder.decode(msg))
                if not len(batch):
                    return batch
        if not self._plausible(batch):
            if before is not None:
                self.decoder.restore(before)  # as if the packet never arrived
            self._quarantine(batch, f"its events span {self._span(batch) / 1e9:.1f} s")
            return None
        if self._last_t is None or self._continues_stream(batch):
            return self._accept_many([batch])
        self._held = _Held(batch, before, msg)
        return None

    def _decode_fresh(self, held: _Held, msg, batch: EventBatch):
        """A new timeline decoded from a fresh decoder state: a stateful decoder carried its old
        state (EVT3's time high bits and rollover count) into the restart and read it as a
        16.7 s rollover. Falls back to the packets as decoded when the fresh reading is worse."""
        if held.decoder_before is None or held.msg is None or msg is None:
            return held.batch, batch
        current = self.decoder.snapshot()
        self.decoder.restore(held.decoder_before)
        self.decoder.restore(self.decoder.snapshot())  # a copy: the held state stays intact
        self.decoder.reset()
        first = self._monotone(self.decoder.decode(held.msg))
        second = self._monotone(self.decoder.decode(msg))
        if (len(first) and len(second) and self._plausible(first) and self._plausible(second)
                and self._continues(second, first)):
            return first, second
        self.decoder.restore(current)
        return held.batch, batch

    # -- checks ------------------------------------------------------------------------------
    @staticmethod
    def _span(batch: EventBatch) -> int:
        t = batch.events["t"]
        return int(t[-1]) - int(t[0])

    def _plausible(self, batch: EventBatch) -> bool:
        return self._span(batch) <= self.max_packet_span_ns

    def _continues(self, batch: EventBatch, previous: EventBatch) -> bool:
        return self._fits(batch, int(previous.events["t"][-1]), previous.stamp_ns)

    def _continues_stream(self, batch: EventBatch) -> bool:
        return self._fits(batch, self._last_t, self._last_stamp)

    def _fits(self, batch: EventBatch, last_t: int, last_stamp: int) -> bool:
        """Sensor time advanced by what the header stamps say (within the threshold)."""
        step = int(batch.events["t"][0]) - last_t
        expected = batch.stamp_ns - last_stamp if batch.stamp_ns and last_stamp else 0
        return abs(step - expected) <= self.reset_threshold_ns

    def _monotone(self, batch: EventBatch) -> EventBatch:
        """Events that step back inside one packet are dropped (counted): windows are cut by
        binary search and need time order."""
        t = batch.events["t"]
        if len(t) > 1 and np.any(t[1:] < t[:-1]):
            keep = t >= np.maximum.accumulate(t)
            batch.dropped = {**batch.dropped,
                             "out_of_order": int(len(t) - np.count_nonzero(keep))}
            self.stats.dropped["out_of_order"] += int(len(t) - np.count_nonzero(keep))
            batch.events = batch.events[keep]
        return batch

    # -- outcomes ----------------------------------------------------------------------------
    def _quarantine(self, batch: EventBatch, why: str) -> None:
        self.stats.quarantined += 1
        self.stats.dropped["quarantined_events"] += len(batch)
        self._warn.warning("quarantine", "%s: quarantined a packet (seq %d, %d events): %s",
                           self.topic, batch.seq, len(batch), why)

    def _resync(self, first: EventBatch) -> None:
        self.stats.sensor_resets += 1
        jump = (int(first.events["t"][0]) - (self._last_t or 0)) / 1e9
        self._warn.warning("reset", "%s: sensor time jumped %+.3f s against the header stamps: "
                           "sensor reset, starting over", self.topic, jump)
        self.buffer.clear()
        self.clock.reset()
        if self.on_reset is not None:
            self.on_reset()

    def _accept_many(self, batches: list[EventBatch]) -> EventBatch:
        for batch in batches:
            self.clock.update(batch.stamp_ns, int(batch.events["t"][0]))
            self.buffer.append(batch.events)
            self._last_t = int(batch.events["t"][-1])
            self._last_stamp = batch.stamp_ns
            self.stats.events += len(batch)
        if len(batches) == 1:
            return batches[0]
        merged = copy.copy(batches[-1])
        merged.events = np.concatenate([b.events for b in batches])
        return merged

    def _check_seq(self, seq: int) -> None:
        if self._last_seq is not None:
            if seq > self._last_seq + 1:
                self.stats.seq_gaps += seq - self._last_seq - 1
            elif seq < self._last_seq:
                self.stats.seq_backwards += 1
        self._last_seq = seq
