"""Per-stream ingest: decode a packet, watch seq and clock, append to the buffer.

This is all a subscription callback does, so it stays cheap: one vectorized decode and an
append. Everything that can go wrong with a packet is counted by reason.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from event_fm.io.events import EventBatch
from event_fm.io.readers import PacketDecoder
from event_fm.pipeline.buffer import EventBuffer
from event_fm.pipeline.clock import ClockOffsetEstimator

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    messages: int = 0
    events: int = 0
    seq_gaps: int = 0  # packets missing by seq
    sensor_resets: int = 0
    decode_ns: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count (words, events or msgs)


class StreamIngest:
    def __init__(self, topic: str, buffer: EventBuffer, clock: ClockOffsetEstimator,
                 reset_threshold_ns: int = 500_000_000):
        self.topic = topic
        self.buffer = buffer
        self.clock = clock
        self.decoder = PacketDecoder(topic)
        self.stats = IngestStats()
        self.reset_threshold_ns = reset_threshold_ns
        self._last_seq: int | None = None
        self._last_t: int | None = None
        self.on_reset = None  # callback for the engine (e.g. reset the scheduler)

    def add_packet(self, msg) -> EventBatch | None:
        """Decode and buffer one EventPacket-like message. Never raises on bad data."""
        started = time.perf_counter_ns()
        self.stats.messages += 1
        try:
            batch = self.decoder.decode(msg)
        except Exception as exc:  # noqa: BLE001 - malformed messages are counted, not fatal
            self.stats.dropped["malformed_message"] += 1
            log.warning("%s: dropping malformed packet: %s", self.topic, exc)
            return None
        self.stats.decode_ns += time.perf_counter_ns() - started
        self.stats.dropped.update(batch.dropped)
        self._check_seq(batch.seq)
        self.add_batch(batch)
        return batch

    def add_batch(self, batch: EventBatch) -> None:
        if not len(batch):
            return
        t_first = int(batch.events["t"][0])
        if self._last_t is not None and t_first < self._last_t - self.reset_threshold_ns:
            self.stats.sensor_resets += 1
            log.warning("%s: sensor time jumped back %.3f s: reset", self.topic,
                        (self._last_t - t_first) / 1e9)
            self.buffer.clear()
            self.clock.reset()
            self.decoder.reset()
            if self.on_reset is not None:
                self.on_reset()
        self.clock.update(batch.stamp_ns, t_first)
        self.buffer.append(batch.events)
        self._last_t = int(batch.events["t"][-1])
        self.stats.events += len(batch)

    def _check_seq(self, seq: int) -> None:
        if self._last_seq is not None and seq > self._last_seq + 1:
            self.stats.seq_gaps += seq - self._last_seq - 1
        self._last_seq = seq
