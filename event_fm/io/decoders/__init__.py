"""Decoders for the payloads of ROS event-camera messages (``EventPacket.events``).

Pure numpy / numba, no rclpy: usable on live messages, on bags read with ``rosbags`` and in
tests. ``make_decoder(encoding, width, height)`` returns a stateful :class:`Decoder`; feed it
the packets of one stream in order.
"""

from __future__ import annotations

import numpy as np

from event_fm.io.decoders.base import REASONS, Decoder, as_bytes
from event_fm.io.decoders.evt2 import Evt2Decoder
from event_fm.io.decoders.evt3 import Evt3Decoder
from event_fm.io.decoders.libcaer import LibcaerDecoder
from event_fm.io.decoders.libcaer_cmp import LibcaerCmpDecoder
from event_fm.io.decoders.mono import MonoDecoder, TriggerDecoder

_DECODERS: dict[str, type[Decoder]] = {
    cls.encoding: cls
    for cls in (
        Evt3Decoder,
        Evt2Decoder,
        LibcaerCmpDecoder,
        LibcaerDecoder,
        MonoDecoder,
        TriggerDecoder,
    )
}

#: Encoding names as they appear in ``EventPacket.encoding``.
ENCODINGS: tuple[str, ...] = tuple(_DECODERS)


class UnknownEncodingError(ValueError):
    """The message's ``encoding`` string names no supported format."""


def make_decoder(encoding: str, width: int, height: int) -> Decoder:
    """A fresh decoder for one stream; width / height 0 means "unknown, do not bound-check"."""
    key = encoding.strip().lower() if isinstance(encoding, str) else encoding
    cls = _DECODERS.get(key)
    if cls is None:
        raise UnknownEncodingError(
            f"unknown event encoding {encoding!r}; valid encodings: {', '.join(ENCODINGS)}"
        )
    return cls(width, height)


def warm_up(encodings: tuple[str, ...] = ENCODINGS) -> None:
    """Compile every decoder kernel now (numba JIT) so that the first live packet does not stall
    a subscription callback for ~0.4 s while camera frames queue up and are lost."""
    rng = np.random.default_rng(0)
    payload = rng.integers(0, 256, 4096, dtype=np.uint8)
    for encoding in encodings:
        make_decoder(encoding, 64, 64).decode(payload, 0)


__all__ = [
    "ENCODINGS",
    "REASONS",
    "Decoder",
    "Evt2Decoder",
    "Evt3Decoder",
    "LibcaerCmpDecoder",
    "LibcaerDecoder",
    "MonoDecoder",
    "TriggerDecoder",
    "UnknownEncodingError",
    "as_bytes",
    "make_decoder",
    "warm_up",
]
