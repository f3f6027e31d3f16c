"""The glutebridge wire protocol, sans-IO.

Nothing here does I/O: feed bytes in, get packets out; encode packets to
bytes.  The byte-level specification is ``spec.md`` next to this file; a C
reference encoder for firmware is in ``c/``; golden vectors in ``vectors/``.

>>> from firmware_protocol import StreamDecoder, encode, Status, StatusFlags
>>> frame = encode(Status(seq=0, t_us=1000, battery_mv=3900, battery_pct=80,
...                       flags=StatusFlags.STREAMING, device_dropped=0))
>>> StreamDecoder().feed(frame)[0].battery_pct
80
"""

from firmware_protocol.decoder import DecoderStats, NotificationDecoder, StreamDecoder
from firmware_protocol.encoder import NotificationPacker, encode, encode_packet
from firmware_protocol.errors import (
    EncodeError,
    FirmwareProtocolError,
    HandshakeError,
    ProtocolVersionError,
)
from firmware_protocol.framing import CRC_CHECK_VALUE, crc16, frame, unframe
from firmware_protocol.handshake import check_device_info
from firmware_protocol.packets import (
    COMMAND_CHAR_UUID,
    CONTROL_STREAM,
    DATA_CHAR_UUID,
    MAX_PACKET_SIZE,
    PROTOCOL_VERSION,
    SERVICE_UUID,
    Ack,
    AckStatus,
    ChannelInfo,
    ChannelKind,
    Command,
    DeviceInfo,
    IncompatibleDevice,
    Marker,
    Opcode,
    Packet,
    PacketType,
    SampleBlock,
    SampleFormat,
    Status,
    StatusFlags,
    StreamInfo,
)

__all__ = [
    "Ack", "AckStatus", "COMMAND_CHAR_UUID", "CONTROL_STREAM", "CRC_CHECK_VALUE", "ChannelInfo",
    "ChannelKind", "Command", "DATA_CHAR_UUID", "DecoderStats", "DeviceInfo", "EncodeError",
    "FirmwareProtocolError", "HandshakeError", "IncompatibleDevice", "MAX_PACKET_SIZE", "Marker",
    "NotificationDecoder", "NotificationPacker", "Opcode", "PROTOCOL_VERSION", "Packet",
    "PacketType", "ProtocolVersionError", "SERVICE_UUID", "SampleBlock", "SampleFormat", "Status",
    "StatusFlags", "StreamDecoder", "StreamInfo", "check_device_info", "crc16", "encode",
    "encode_packet", "frame", "unframe",
]
