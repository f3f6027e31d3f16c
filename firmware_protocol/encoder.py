"""Encoding: packets to framed bytes, and framed bytes to BLE notifications."""

from __future__ import annotations

from firmware_protocol.errors import EncodeError
from firmware_protocol.framing import frame
from firmware_protocol.packets import HEADER, MAX_PACKET_SIZE, Packet, pack_body


def encode_packet(packet: Packet) -> bytes:
    """The unframed packet: 4-byte header followed by the body."""
    ptype, body = pack_body(packet)
    if not 0 <= packet.stream < 256:
        raise EncodeError(f"stream={packet.stream} does not fit in u8")
    if not 0 <= packet.seq < 65536:
        raise EncodeError(f"seq={packet.seq} does not fit in u16 (wrap it modulo 65536)")
    raw = HEADER.pack(ptype, packet.stream, packet.seq) + body
    if len(raw) > MAX_PACKET_SIZE:
        raise EncodeError(
            f"packet is {len(raw)} bytes; at most {MAX_PACKET_SIZE} allowed (send smaller blocks)")
    return raw


def encode(packet: Packet) -> bytes:
    """Framed bytes ready for a byte stream (serial, TCP, BLE data stream)."""
    return frame(encode_packet(packet))


class NotificationPacker:
    """Split a framed byte stream into BLE notifications of at most ``payload`` bytes.

    Each notification is ``counter:u8`` followed by up to ``payload - 1``
    bytes of the stream; frames may span notifications and share them.
    ``payload`` is ATT_MTU - 3 for the connection (at least 20).
    """

    def __init__(self, payload: int = 20) -> None:
        if payload < 2:
            raise EncodeError("notification payload must be at least 2 bytes")
        self.payload = payload
        self.counter = 0
        self._buffer = bytearray()

    def push(self, framed: bytes, flush: bool = True) -> list[bytes]:
        """Queue framed bytes; return the notifications that are ready.

        With ``flush`` (default) a partly filled last notification is sent too,
        which keeps latency low; without it, bytes wait for a full notification.
        """
        self._buffer += framed
        chunk = self.payload - 1
        out = []
        while len(self._buffer) >= chunk or (flush and self._buffer):
            data = bytes(self._buffer[:chunk])
            del self._buffer[:chunk]
            out.append(bytes((self.counter,)) + data)
            self.counter = (self.counter + 1) % 256
        return out
