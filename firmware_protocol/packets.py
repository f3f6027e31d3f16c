"""Packet types and their byte layout: the one place the wire format is defined.

Every packet is ``header || body``.  The header is 4 bytes, little-endian:
``type:u8, stream:u8, seq:u16``.  Bodies are described next to each packet
class below and in ``spec.md``.  ``pack_body``/``unpack_body`` convert between
the frozen dataclasses and body bytes; framing (CRC + COBS) lives in
``framing.py``.  The C header ``c/gbp.h`` mirrors these constants and a test
checks that it does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Union

from firmware_protocol.errors import EncodeError

#: Highest protocol version this implementation speaks.
PROTOCOL_VERSION = 1

#: Largest unframed packet (header + body) a conforming device may send.
MAX_PACKET_SIZE = 2048

#: GATT layout for BLE (see spec.md, "BLE").
SERVICE_UUID = "8f3c0001-5a7b-4c1e-9d2a-3b6e1f0a2c47"
DATA_CHAR_UUID = "8f3c0002-5a7b-4c1e-9d2a-3b6e1f0a2c47"
COMMAND_CHAR_UUID = "8f3c0003-5a7b-4c1e-9d2a-3b6e1f0a2c47"

#: Stream id of control packets (device info, status, marker, command, ack).
CONTROL_STREAM = 0

HEADER = struct.Struct("<BBH")
HEADER_SIZE = HEADER.size


class PacketType(IntEnum):
    DEVICE_INFO = 0x01
    STATUS = 0x02
    MARKER = 0x03
    COMMAND = 0x04
    ACK = 0x05
    EMG_BLOCK = 0x10
    IMU_BLOCK = 0x11


class ChannelKind(IntEnum):
    OTHER = 0
    EMG = 1
    ACC = 2
    GYRO = 3
    MAG = 4


class SampleFormat(IntEnum):
    """Sample encoding in a block: two's complement little-endian integers."""

    INT16 = 1
    INT32 = 2

    @property
    def size(self) -> int:
        return 2 if self is SampleFormat.INT16 else 4

    @property
    def numpy_dtype(self) -> str:
        return "<i2" if self is SampleFormat.INT16 else "<i4"


class Opcode(IntEnum):
    HELLO = 0x01  # args: u8 highest protocol version the host speaks
    START = 0x02  # args: none (all streams) or u8 stream id
    STOP = 0x03  # args: none (all streams) or u8 stream id
    SET_RATE = 0x04  # args: u8 stream, u32 rate in mHz
    SET_CHANNEL_MASK = 0x05  # args: u8 stream, u32 bit mask of enabled channels
    GET_STATUS = 0x06  # args: none; device answers ACK then STATUS
    MARK = 0x07  # args: u16 code; device echoes a MARKER with its own timestamp


class AckStatus(IntEnum):
    OK = 0
    UNKNOWN_COMMAND = 1
    BAD_ARGUMENT = 2
    BUSY = 3
    UNSUPPORTED = 4
    INTERNAL_ERROR = 5


class StatusFlags(IntFlag):
    NONE = 0
    CHARGING = 0x01
    STREAMING = 0x02
    LOW_BATTERY = 0x04
    SENSOR_FAULT = 0x08
    CLIPPING = 0x10
    OVERFLOW = 0x20  # the device dropped samples internally (see Status.device_dropped)


# ---------------------------------------------------------------------------
# Packet dataclasses.  ``stream`` and ``seq`` come from the header.


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """One channel of a stream: physical value = raw count * ``scale`` in ``unit``."""

    kind: ChannelKind
    scale: float
    unit: str
    label: str


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A sample stream the device can send (EMG or IMU blocks)."""

    stream_id: int
    block_type: PacketType
    rate_mhz: int  # sample rate in millihertz, an integer so C and Python agree exactly
    sample_format: SampleFormat
    channels: tuple[ChannelInfo, ...]

    @property
    def rate(self) -> float:
        """Sample rate in Hz."""
        return self.rate_mhz / 1000.0


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Capability handshake: the device's answer to HELLO."""

    seq: int
    protocol_version: int
    firmware: tuple[int, int, int]
    max_payload: int  # largest BLE notification / serial chunk the device sends
    name: str
    serial: str
    streams: tuple[StreamInfo, ...]
    stream: int = CONTROL_STREAM

    @property
    def firmware_version(self) -> str:
        return "%d.%d.%d" % self.firmware


@dataclass(frozen=True, slots=True)
class IncompatibleDevice:
    """A DEVICE_INFO whose protocol version is newer than this host speaks.

    Only the frozen prefix (version, firmware) can be read; see
    :func:`firmware_protocol.check_device_info`.
    """

    seq: int
    protocol_version: int
    firmware: tuple[int, int, int]
    stream: int = CONTROL_STREAM


@dataclass(frozen=True, slots=True)
class SampleBlock:
    """Consecutive samples of one stream, interleaved by channel.

    ``data`` holds ``n_samples * n_channels`` little-endian integers in
    ``sample_format``; ``counts()`` views them as an (n_samples, n_channels)
    array.  ``t_us`` is the device clock (microseconds, wraps at 2**32) at the
    first sample; ``first_sample`` the index of the first sample in the stream
    (wraps at 2**32).  Gaps in ``first_sample`` are lost samples.
    """

    type: PacketType
    stream: int
    seq: int
    t_us: int
    first_sample: int
    n_samples: int
    n_channels: int
    sample_format: SampleFormat
    data: bytes = field(repr=False)

    def counts(self):
        """Raw integer samples, shape (n_samples, n_channels) (needs numpy)."""
        import numpy as np

        return np.frombuffer(self.data, dtype=self.sample_format.numpy_dtype).reshape(
            self.n_samples, self.n_channels
        )

    @classmethod
    def from_counts(cls, type, stream, seq, t_us, first_sample, counts,
                    sample_format=SampleFormat.INT16):
        """Build a block from an (n_samples, n_channels) integer array."""
        import numpy as np

        arr = np.asarray(counts)
        if arr.ndim != 2:
            raise EncodeError(f"counts must be 2-D (n_samples, n_channels), got shape {arr.shape}")
        info = np.iinfo(np.dtype(SampleFormat(sample_format).numpy_dtype))
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise EncodeError(f"sample counts out of range for {SampleFormat(sample_format).name}")
        data = np.ascontiguousarray(arr, dtype=SampleFormat(sample_format).numpy_dtype).tobytes()
        return cls(PacketType(type), stream, seq, t_us, first_sample, arr.shape[0], arr.shape[1],
                   SampleFormat(sample_format), data)


@dataclass(frozen=True, slots=True)
class Status:
    """Battery and health, sent periodically and on GET_STATUS."""

    seq: int
    t_us: int
    battery_mv: int
    battery_pct: int  # 0-100, 255 = unknown
    flags: StatusFlags
    device_dropped: int  # samples the firmware itself dropped since start (u32, wraps)
    stream: int = CONTROL_STREAM


@dataclass(frozen=True, slots=True)
class Marker:
    """An event on the device timeline (button press, MARK echo, trigger)."""

    seq: int
    t_us: int
    code: int
    text: str
    stream: int = CONTROL_STREAM


@dataclass(frozen=True, slots=True)
class Command:
    """Host -> device request; the device answers with an :class:`Ack` echoing ``seq``."""

    seq: int
    opcode: Opcode
    args: bytes = b""
    stream: int = CONTROL_STREAM


@dataclass(frozen=True, slots=True)
class Ack:
    """Device -> host answer to a command (``cmd_seq`` is the command's seq)."""

    seq: int
    cmd_seq: int
    opcode: int
    status: AckStatus
    message: str = ""
    stream: int = CONTROL_STREAM


Packet = Union[DeviceInfo, IncompatibleDevice, SampleBlock, Status, Marker, Command, Ack]

# ---------------------------------------------------------------------------
# Body layouts (little-endian).

_INFO_PREFIX = struct.Struct("<BBBBH")  # version, fw major, minor, patch, max_payload
_STREAM = struct.Struct("<BBIBB")  # id, block type, rate mHz, format, n_channels
_CHANNEL = struct.Struct("<Bf")  # kind, scale (IEEE-754 binary32)
_BLOCK = struct.Struct("<IIHBB")  # t_us, first_sample, n_samples, n_channels, format
_STATUS = struct.Struct("<IHBHI")  # t_us, battery_mv, battery_pct, flags, device_dropped
_MARKER = struct.Struct("<IH")  # t_us, code (+ str8 text)
_ACK = struct.Struct("<HBB")  # cmd_seq, opcode, status (+ str8 message)
BLOCK_HEADER_SIZE = _BLOCK.size


class BodyError(ValueError):
    """Internal: a body does not parse (counted as malformed by decoders)."""


def _str8(text: str, what: str) -> bytes:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"{what} is not encodable as UTF-8: {exc.reason}") from None
    if len(raw) > 255:
        raise EncodeError(f"{what} is {len(raw)} bytes of UTF-8; at most 255 fit")
    return bytes((len(raw),)) + raw


def _read_str8(body: bytes, pos: int) -> tuple[str, int]:
    if pos >= len(body):
        raise BodyError("string length past end of body")
    n = body[pos]
    end = pos + 1 + n
    if end > len(body):
        raise BodyError("string runs past end of body")
    try:
        return body[pos + 1:end].decode("utf-8"), end
    except UnicodeDecodeError as exc:
        raise BodyError("string is not UTF-8") from exc


def _known(value: int, enum, what: str) -> None:
    """Refuse codes the decoder would drop: the encoder and decoder agree."""
    if int(value) not in enum._value2member_map_:
        raise EncodeError(f"{what}={int(value)} is not a known {enum.__name__}")


def _check(value: int, bits: int, what: str) -> int:
    if not 0 <= value < (1 << bits):
        raise EncodeError(f"{what}={value} does not fit in u{bits}")
    return value


def pack_body(p: Packet) -> tuple[int, bytes]:
    """Return ``(type, body)`` for a packet."""
    try:
        if isinstance(p, SampleBlock):
            expected = p.n_samples * p.n_channels * p.sample_format.size
            if len(p.data) != expected:
                raise EncodeError(f"block data is {len(p.data)} bytes, expected {expected}")
            return p.type, _BLOCK.pack(
                _check(p.t_us, 32, "t_us"), _check(p.first_sample, 32, "first_sample"),
                _check(p.n_samples, 16, "n_samples"), _check(p.n_channels, 8, "n_channels"),
                p.sample_format) + p.data
        if isinstance(p, DeviceInfo):
            parts = [_INFO_PREFIX.pack(_check(p.protocol_version, 8, "protocol_version"),
                                       *(_check(v, 8, "firmware") for v in p.firmware),
                                       _check(p.max_payload, 16, "max_payload")),
                     _str8(p.name, "name"), _str8(p.serial, "serial"),
                     bytes((_check(len(p.streams), 8, "number of streams"),))]
            for s in p.streams:
                if s.block_type not in (PacketType.EMG_BLOCK, PacketType.IMU_BLOCK):
                    raise EncodeError(f"stream {s.stream_id}: block_type must be EMG_BLOCK or "
                                      f"IMU_BLOCK, got {s.block_type!r}")
                _known(s.sample_format, SampleFormat, "sample_format")
                parts.append(_STREAM.pack(_check(s.stream_id, 8, "stream_id"), s.block_type,
                                          _check(s.rate_mhz, 32, "rate_mhz"), s.sample_format,
                                          _check(len(s.channels), 8, "number of channels")))
                for c in s.channels:
                    parts += [_CHANNEL.pack(c.kind, c.scale), _str8(c.unit, "unit"),
                              _str8(c.label, "label")]
            return PacketType.DEVICE_INFO, b"".join(parts)
        if isinstance(p, Status):
            return PacketType.STATUS, _STATUS.pack(
                _check(p.t_us, 32, "t_us"), _check(p.battery_mv, 16, "battery_mv"),
                _check(p.battery_pct, 8, "battery_pct"), _check(int(p.flags), 16, "flags"),
                _check(p.device_dropped, 32, "device_dropped"))
        if isinstance(p, Marker):
            return PacketType.MARKER, _MARKER.pack(
                _check(p.t_us, 32, "t_us"), _check(p.code, 16, "code")) + _str8(p.text, "text")
        if isinstance(p, Command):
            _known(p.opcode, Opcode, "opcode")
            return PacketType.COMMAND, bytes((_check(p.opcode, 8, "opcode"),)) + bytes(p.args)
        if isinstance(p, Ack):
            _known(p.status, AckStatus, "ack status")
            return PacketType.ACK, _ACK.pack(
                _check(p.cmd_seq, 16, "cmd_seq"), _check(p.opcode, 8, "opcode"),
                _check(p.status, 8, "status")) + _str8(p.message, "message")
    except (struct.error, OverflowError) as exc:
        raise EncodeError(f"cannot encode {type(p).__name__}: {exc}") from exc
    raise EncodeError(f"not a packet: {p!r}")


def _unpack_device_info(stream: int, seq: int, body: bytes) -> Packet:
    version, major, minor, patch, max_payload = _INFO_PREFIX.unpack_from(body, 0)
    if version > PROTOCOL_VERSION:
        # Only the prefix is frozen across versions; the rest may differ.
        return IncompatibleDevice(seq, version, (major, minor, patch), stream)
    pos = _INFO_PREFIX.size
    name, pos = _read_str8(body, pos)
    serial, pos = _read_str8(body, pos)
    if pos >= len(body):
        raise BodyError("stream count missing")
    n_streams = body[pos]
    pos += 1
    streams = []
    for _ in range(n_streams):
        sid, btype, rate, fmt, nch = _STREAM.unpack_from(body, pos)
        pos += _STREAM.size
        if btype not in (PacketType.EMG_BLOCK, PacketType.IMU_BLOCK):
            raise BodyError(f"stream {sid} has unknown block type {btype}")
        channels = []
        for _ in range(nch):
            kind, scale = _CHANNEL.unpack_from(body, pos)
            pos += _CHANNEL.size
            unit, pos = _read_str8(body, pos)
            label, pos = _read_str8(body, pos)
            channels.append(ChannelInfo(ChannelKind(kind) if kind in _KINDS else ChannelKind.OTHER,
                                        scale, unit, label))
        streams.append(StreamInfo(sid, PacketType(btype), rate, SampleFormat(fmt), tuple(channels)))
    if pos != len(body):
        raise BodyError("trailing bytes after DEVICE_INFO")
    return DeviceInfo(seq, version, (major, minor, patch), max_payload, name, serial,
                      tuple(streams), stream)


_KINDS = frozenset(int(k) for k in ChannelKind)
_FORMAT_SIZE = {int(SampleFormat.INT16): 2, int(SampleFormat.INT32): 4}


def unpack_block(ptype: int, stream: int, seq: int, body: bytes) -> SampleBlock:
    """Parse an EMG/IMU block body (the hot path: keep it lean)."""
    t_us, first, n, nch, fmt = _BLOCK.unpack_from(body, 0)
    size = _FORMAT_SIZE.get(fmt)
    if size is None:
        raise BodyError(f"unknown sample format {fmt}")
    if len(body) != _BLOCK.size + n * nch * size:
        raise BodyError("block length does not match n_samples * n_channels")
    return SampleBlock(_PTYPES[ptype], stream, seq, t_us, first, n, nch, _SFORMATS[fmt],
                       body[_BLOCK.size:])


_PTYPES = {int(t): t for t in PacketType}
_SFORMATS = {int(f): f for f in SampleFormat}


def unpack_body(ptype: int, stream: int, seq: int, body: bytes) -> Packet:
    """Parse a body; raises BodyError (or struct.error/ValueError) if malformed."""
    if ptype == PacketType.EMG_BLOCK or ptype == PacketType.IMU_BLOCK:
        return unpack_block(ptype, stream, seq, body)
    if ptype == PacketType.DEVICE_INFO:
        return _unpack_device_info(stream, seq, body)
    if ptype == PacketType.STATUS:
        if len(body) != _STATUS.size:
            raise BodyError("STATUS body has the wrong length")
        t_us, mv, pct, flags, dropped = _STATUS.unpack(body)
        return Status(seq, t_us, mv, pct, StatusFlags(flags), dropped, stream)
    if ptype == PacketType.MARKER:
        t_us, code = _MARKER.unpack_from(body, 0)
        text, end = _read_str8(body, _MARKER.size)
        if end != len(body):
            raise BodyError("trailing bytes after MARKER")
        return Marker(seq, t_us, code, text, stream)
    if ptype == PacketType.COMMAND:
        if not body:
            raise BodyError("COMMAND without opcode")
        return Command(seq, Opcode(body[0]), bytes(body[1:]), stream)
    if ptype == PacketType.ACK:
        cmd_seq, opcode, status = _ACK.unpack_from(body, 0)
        message, end = _read_str8(body, _ACK.size)
        if end != len(body):
            raise BodyError("trailing bytes after ACK")
        return Ack(seq, cmd_seq, opcode, AckStatus(status), message, stream)
    raise KeyError(ptype)
