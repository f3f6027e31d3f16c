"""The capability handshake and command helpers (still sans-IO).

Host sends ``COMMAND HELLO(version)``; the device answers ``DEVICE_INFO`` in the
highest version both speak.  The first four bytes of DEVICE_INFO's body
(protocol version, firmware major/minor/patch) never change across versions,
so a host can always tell *which* version it failed to understand.
"""

from __future__ import annotations

import struct

from firmware_protocol.errors import HandshakeError, ProtocolVersionError
from firmware_protocol.packets import (
    PROTOCOL_VERSION,
    Command,
    DeviceInfo,
    IncompatibleDevice,
    Opcode,
)


def check_device_info(packet) -> DeviceInfo:
    """Return ``packet`` if it is a DeviceInfo this host understands.

    Raises :class:`ProtocolVersionError` for a newer protocol (with the
    device's version and firmware in the message) and :class:`HandshakeError`
    for anything that is not a DEVICE_INFO.
    """
    if isinstance(packet, IncompatibleDevice):
        raise ProtocolVersionError(packet.protocol_version, PROTOCOL_VERSION,
                                   "%d.%d.%d" % packet.firmware)
    if not isinstance(packet, DeviceInfo):
        raise HandshakeError(f"expected DEVICE_INFO in answer to HELLO, got {type(packet).__name__}")
    if packet.protocol_version < 1:
        raise HandshakeError(f"device reports invalid protocol version {packet.protocol_version}")
    return packet


def hello(seq: int, version: int = PROTOCOL_VERSION) -> Command:
    return Command(seq, Opcode.HELLO, bytes((version,)))


def start(seq: int, stream: int | None = None) -> Command:
    return Command(seq, Opcode.START, b"" if stream is None else bytes((stream,)))


def stop(seq: int, stream: int | None = None) -> Command:
    return Command(seq, Opcode.STOP, b"" if stream is None else bytes((stream,)))


def set_rate(seq: int, stream: int, rate_hz: float) -> Command:
    return Command(seq, Opcode.SET_RATE, struct.pack("<BI", stream, round(rate_hz * 1000)))


def set_channel_mask(seq: int, stream: int, mask: int) -> Command:
    return Command(seq, Opcode.SET_CHANNEL_MASK, struct.pack("<BI", stream, mask))


def get_status(seq: int) -> Command:
    return Command(seq, Opcode.GET_STATUS)


def mark(seq: int, code: int) -> Command:
    return Command(seq, Opcode.MARK, struct.pack("<H", code))
