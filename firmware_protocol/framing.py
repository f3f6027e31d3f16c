"""Framing on byte streams: CRC-16/CCITT-FALSE + COBS, 0x00-delimited.

A frame on the wire is ``COBS(packet || crc16_be(packet)) || 0x00``.
The CRC is sent most significant byte first so that the CRC computed over
``packet || crc`` is zero, a one-call check.  COBS removes every 0x00 from
the frame body, so a receiver resynchronises at the next 0x00 after any
corruption, with at most one byte of overhead per 254.
"""

from __future__ import annotations

import binascii

from cobs import cobs

CRC_INIT = 0xFFFF
#: CRC-16/CCITT-FALSE of b"123456789".
CRC_CHECK_VALUE = 0x29B1
DELIMITER = b"\x00"


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout)."""
    return binascii.crc_hqx(data, CRC_INIT)


def frame(packet_bytes: bytes) -> bytes:
    """Append the CRC, COBS-encode and add the 0x00 delimiter."""
    crc = crc16(packet_bytes)
    return cobs.encode(packet_bytes + bytes((crc >> 8, crc & 0xFF))) + DELIMITER


def max_frame_size(packet_size: int) -> int:
    """Largest encoded frame (delimiter included) for a packet of ``packet_size`` bytes."""
    n = packet_size + 2
    return n + n // 254 + 1 + 1


class FrameError(ValueError):
    """Internal: a frame failed COBS decoding or its CRC."""


def unframe(encoded: bytes) -> bytes:
    """Decode one frame body (without delimiter); return the packet bytes.

    Raises :class:`FrameError` with ``kind`` "cobs", "short" or "crc".
    """
    try:
        raw = cobs.decode(encoded)
    except cobs.DecodeError as exc:
        raise FrameError("cobs") from exc
    if len(raw) < 6:  # 4-byte header + 2-byte CRC
        raise FrameError("short")
    if binascii.crc_hqx(raw, CRC_INIT) != 0:
        raise FrameError("crc")
    return raw[:-2]
