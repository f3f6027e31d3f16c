"""Sans-IO decoders: bytes in, packets out, every problem counted.

``StreamDecoder.feed(data)`` takes any chunk of a byte stream (serial, TCP,
a recording) and returns the packets that chunk completed.  It never raises
for bad input and never yields a packet whose CRC failed; memory is bounded
by :data:`MAX_PENDING`.  ``NotificationDecoder`` does the same for BLE
notifications, which carry a one-byte counter so that a lost notification is
seen and the frame it cut is discarded instead of being glued to the next.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import asdict, dataclass

from cobs import cobs

from firmware_protocol.framing import CRC_INIT, max_frame_size
from firmware_protocol.packets import (
    HEADER,
    MAX_PACKET_SIZE,
    PacketType,
    DeviceInfo,
    IncompatibleDevice,
    Packet,
    SampleBlock,
    SampleFormat,
    unpack_body,
)

#: Longest run of bytes without a delimiter that the decoder buffers.  Anything
#: longer cannot be a valid frame; it is dropped and counted.
MAX_PENDING = max_frame_size(MAX_PACKET_SIZE)

_SEQ_MOD = 1 << 16
_SAMPLE_MOD = 1 << 32
_KNOWN_TYPES = frozenset(int(t) for t in PacketType)
_BLOCK_PREFIX = struct.Struct("<BBHIIHBB")  # packet header + sample-block header
_BLOCK_TYPES = {int(PacketType.EMG_BLOCK): PacketType.EMG_BLOCK,
                int(PacketType.IMU_BLOCK): PacketType.IMU_BLOCK}
_SFORMATS = {int(f): f for f in SampleFormat}


@dataclass
class DecoderStats:
    """Counters kept by a decoder.  All only ever increase (until ``reset``)."""

    bytes: int = 0  #: bytes fed
    frames: int = 0  #: delimited, non-empty frames seen
    packets: int = 0  #: packets returned
    crc_errors: int = 0  #: frames whose CRC failed (dropped)
    framing_errors: int = 0  #: invalid COBS, frames too short or too long (dropped)
    resyncs: int = 0  #: times the decoder discarded bytes to find the next frame start
    bytes_discarded: int = 0  #: bytes thrown away while resynchronising / oversize
    malformed: int = 0  #: CRC-valid frames whose body did not parse (dropped)
    unknown_types: int = 0  #: CRC-valid frames of an unknown packet type (skipped)
    incompatible: int = 0  #: DEVICE_INFO packets of a newer protocol version
    seq_gaps: int = 0  #: packets missing according to per-stream sequence numbers
    samples_lost: int = 0  #: samples missing according to first_sample
    duplicates: int = 0  #: repeated packets (same seq as the previous one; dropped)
    restarts: int = 0  #: sequence jumped backwards (device restart); tracking reset
    notifications: int = 0  #: BLE notifications fed (NotificationDecoder only)
    notifications_lost: int = 0  #: BLE notifications missing by their counter

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def dropped_frames(self) -> int:
        """Frames received but not returned as packets because they were bad."""
        return self.crc_errors + self.framing_errors + self.malformed


class _SequenceTracker:
    """Per-stream packet and sample continuity.

    Exact duplicates (same seq as the last packet of that stream) are dropped.
    A forward jump counts the missing packets (and, for sample blocks, the
    missing samples).  A backward jump means the device restarted or the link
    reordered: it is counted as a restart and tracking starts afresh, so a
    rebooted device is never ignored until its counter catches up.
    """

    __slots__ = ("last_seq", "next_sample")

    def __init__(self) -> None:
        self.last_seq: dict[int, int] = {}
        self.next_sample: dict[int, int] = {}

    def accept(self, p: Packet, stats: DecoderStats) -> bool:
        stream = p.stream
        last = self.last_seq.get(stream)
        if last is not None:
            diff = (p.seq - last) % _SEQ_MOD
            if diff == 0:
                stats.duplicates += 1
                return False
            if diff >= _SEQ_MOD // 2:
                stats.restarts += 1
                self.next_sample.pop(stream, None)
            else:
                stats.seq_gaps += diff - 1
        self.last_seq[stream] = p.seq
        if isinstance(p, SampleBlock):
            expected = self.next_sample.get(stream)
            if expected is not None and p.first_sample != expected:
                gap = (p.first_sample - expected) % _SAMPLE_MOD
                if gap < _SAMPLE_MOD // 2:
                    stats.samples_lost += gap
            self.next_sample[stream] = (p.first_sample + p.n_samples) % _SAMPLE_MOD
        elif isinstance(p, (DeviceInfo, IncompatibleDevice)):
            # A handshake starts a new session: forget the old counters.
            self.last_seq = {stream: p.seq}
            self.next_sample = {}
        return True


class StreamDecoder:
    """Decode a 0x00-delimited COBS byte stream into packets.

    >>> dec = StreamDecoder()
    >>> packets = dec.feed(chunk)          # any chunking, bytes/bytearray/memoryview
    >>> dec.stats.crc_errors, dec.stats.samples_lost
    """

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self._pending = b""
        self._hunting = False  # discard bytes up to the next delimiter
        self._seq = _SequenceTracker()

    def reset(self) -> None:
        """Forget partial frames and sequence state (counters are kept)."""
        self._pending = b""
        self._hunting = False
        self._seq = _SequenceTracker()

    def resync(self) -> None:
        """Drop any partial frame and skip bytes up to the next delimiter."""
        self.stats.bytes_discarded += len(self._pending)
        self.stats.resyncs += 1
        self._pending = b""
        self._hunting = True

    def feed(self, data) -> list[Packet]:
        """Consume bytes; return the packets they completed (possibly none)."""
        data = bytes(data)
        self.stats.bytes += len(data)
        if b"\x00" not in data:
            self._pending += data
            if len(self._pending) > MAX_PENDING:
                self._overflow()
            return []
        parts = (self._pending + data).split(b"\x00")
        self._pending = parts.pop()
        if len(self._pending) > MAX_PENDING:
            self._overflow()
        out: list[Packet] = []
        if self._hunting:
            self._hunting = False
            self.stats.bytes_discarded += len(parts[0]) + 1
            parts[0] = b""
        for part in parts:
            if part:
                p = self._decode_frame(part)
                if p is not None:
                    out.append(p)
        return out

    def _overflow(self) -> None:
        # No delimiter for longer than any valid frame: this is garbage.
        self.stats.framing_errors += 1
        self.stats.resyncs += 1
        self.stats.bytes_discarded += len(self._pending)
        self._pending = b""
        self._hunting = True

    def _decode_frame(self, encoded: bytes):
        stats = self.stats
        stats.frames += 1
        if len(encoded) > MAX_PENDING:
            stats.framing_errors += 1
            return None
        try:
            raw = cobs.decode(encoded)
        except cobs.DecodeError:
            stats.framing_errors += 1
            return None
        if len(raw) < HEADER.size + 2:
            stats.framing_errors += 1
            return None
        if binascii.crc_hqx(raw, CRC_INIT) != 0:
            stats.crc_errors += 1
            return None
        if raw[0] >= 0x10 and len(raw) >= _BLOCK_PREFIX.size + 2:
            p = self._block(raw)
            if p is None:
                return None
        else:
            ptype, stream, seq = HEADER.unpack_from(raw, 0)
            if ptype not in _KNOWN_TYPES:
                stats.unknown_types += 1
                return None
            try:
                p = unpack_body(ptype, stream, seq, raw[HEADER.size:-2])
            except (ValueError, KeyError, IndexError, struct.error):
                stats.malformed += 1
                return None
            if isinstance(p, IncompatibleDevice):
                stats.incompatible += 1
        if not self._seq.accept(p, stats):
            return None
        stats.packets += 1
        return p

    def _block(self, raw: bytes):
        # Hot path: header and block header in one unpack, no body copy until valid.
        ptype, stream, seq, t_us, first, n, nch, fmt = _BLOCK_PREFIX.unpack_from(raw, 0)
        btype = _BLOCK_TYPES.get(ptype)
        if btype is None:
            self.stats.unknown_types += 1
            return None
        sformat = _SFORMATS.get(fmt)
        if sformat is None or len(raw) != _BLOCK_PREFIX.size + 2 + n * nch * sformat.size:
            self.stats.malformed += 1
            return None
        return SampleBlock(btype, stream, seq, t_us, first, n, nch, sformat,
                           raw[_BLOCK_PREFIX.size:-2])


class NotificationDecoder:
    """Decode BLE notifications: ``counter:u8`` then a slice of the framed stream.

    Frames may span notifications and several frames may share one.  When
    the counter skips, the partial frame is discarded (it lost its middle)
    and decoding resumes at the next delimiter, so one lost notification
    costs the frames it touched and nothing else.
    """

    def __init__(self) -> None:
        self._stream = StreamDecoder()
        self._expected: int | None = None

    @property
    def stats(self) -> DecoderStats:
        return self._stream.stats

    def reset(self) -> None:
        """Call after a reconnect: the counter and partial frame start afresh."""
        self._stream.reset()
        self._expected = None

    def feed(self, notification) -> list[Packet]:
        """Consume one notification's payload; return the packets it completed."""
        data = bytes(notification)
        stats = self._stream.stats
        stats.notifications += 1
        if not data:
            stats.framing_errors += 1
            return []
        counter = data[0]
        if self._expected is not None and counter != self._expected:
            stats.notifications_lost += (counter - self._expected) % 256
            self._stream.resync()
        self._expected = (counter + 1) % 256
        stats.bytes += 1  # the counter byte
        return self._stream.feed(data[1:])
