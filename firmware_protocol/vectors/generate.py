"""Golden vectors for the glutebridge wire protocol, written by the PYTHON encoder.

Run ``python -m firmware_protocol.vectors.generate`` (from the repository root)
to rewrite the ``.hex`` files next to this script.  Everything here is
deterministic (sample values come from a fixed LCG, not from ``random``), so
the output never changes unless the wire format does; ``tests/test_vectors.py``
checks that regenerating gives exactly the committed files, and the C program
``firmware_protocol/c/test_vectors.c`` rebuilds every packet with the C encoder
and compares byte for byte.  File format: see ``README.md`` here.

The vectors are ordered (the two-digit prefix) so that their concatenation is
a valid session: per-stream ``seq`` and ``first_sample`` continue from one
vector to the next (wrapping through 0xFFFF and 2**32), so a decoder fed all
of them reports no gaps, duplicates or restarts.
"""

from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum, IntFlag
from pathlib import Path

from firmware_protocol import handshake
from firmware_protocol.encoder import NotificationPacker, encode, encode_packet
from firmware_protocol.framing import crc16
from firmware_protocol.packets import (
    Ack,
    AckStatus,
    ChannelInfo,
    ChannelKind,
    DeviceInfo,
    Marker,
    PacketType,
    SampleBlock,
    SampleFormat,
    Status,
    StatusFlags,
    StreamInfo,
)

HERE = Path(__file__).resolve().parent
BYTES_PER_LINE = 32
NOTIFY_PAYLOADS = (20, 244)
#: Vectors whose frames, concatenated, make the stream of the notification vectors
#: (chosen so that per-stream seq and first_sample stay continuous).
NOTIFY_STREAM = ("emg_int16_extremes", "emg_int16_20x8", "imu_int16_10x6", "emg_all_zero")


def f32(x: float) -> float:
    """Round to IEEE-754 binary32, the precision of ``ChannelInfo.scale`` on the wire."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def lcg_samples(seed: int, count: int, bits: int) -> list[int]:
    """Deterministic pseudo-random signed samples (same LCG in test_vectors.c).

    x <- x * 1664525 + 1013904223 (mod 2**32); an int16 sample is the signed
    top 16 bits of x, an int32 sample is x read as signed.
    """
    out, x = [], seed
    for _ in range(count):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        v = x >> 16 if bits == 16 else x
        out.append(v - (1 << bits) if v >= 1 << (bits - 1) else v)
    return out


def block(ptype, stream, seq, t_us, first, n, nch, values, fmt=SampleFormat.INT16) -> SampleBlock:
    fmt_char = "h" if fmt == SampleFormat.INT16 else "i"
    data = struct.pack("<%d%s" % (len(values), fmt_char), *values)
    return SampleBlock(PacketType(ptype), stream, seq, t_us, first, n, nch, SampleFormat(fmt), data)


# Channel layouts, scales already rounded to binary32 so decoded packets compare equal.
EMG_LABELS = ("L glute max", "R glute max", "L glute med", "R glute med",
              "L biceps femoris", "R biceps femoris", "L vastus lateralis", "R vastus lateralis")
EMG_CHANNELS = tuple(ChannelInfo(ChannelKind.EMG, f32(0.195), "uV", lab) for lab in EMG_LABELS)
ACC_SCALE = f32(9.80665 / 4096)  # +-8 g at 16 bit, m/s^2 per count
GYRO_SCALE = f32(0.0010652644)  # +-2000 dps at 16 bit, rad/s per count
IMU_CHANNELS = tuple(
    [ChannelInfo(ChannelKind.ACC, ACC_SCALE, "m/s^2", "acc " + a) for a in "xyz"]
    + [ChannelInfo(ChannelKind.GYRO, GYRO_SCALE, "rad/s", "gyro " + a) for a in "xyz"])
# Odd scales: zero, negative, subnormal, largest finite, infinity; every kind.
ODD_CHANNELS = (
    ChannelInfo(ChannelKind.OTHER, 0.0, "", ""),
    ChannelInfo(ChannelKind.MAG, -1.5, "µT", "Gesäß-Magnet"),
    ChannelInfo(ChannelKind.EMG, f32(1e-40), "V", "subnormal"),
    ChannelInfo(ChannelKind.ACC, f32(3.4028234663852886e38), "x", "max"),
    ChannelInfo(ChannelKind.GYRO, float("inf"), "y", "inf"),
)

TEXT_255 = ("glute " * 43)[:255]  # exactly 255 bytes of UTF-8
EMG_ALL_ZERO_SAMPLES = 50


def cobs_run_marker(seq: int, run: int) -> Marker:
    """A MARKER whose frame ends in a run of exactly ``run`` non-zero bytes.

    The header's last 0x00 (the stream byte, or a zero seq byte) is followed
    by t_us, code, text length, text and CRC, all non-zero, so one COBS
    group covers them: runs of 253/254/255 bytes sit around the 254-byte
    group limit.  The text is sized to give the run; t_us is the first value
    from 0x01010101 up whose bytes and CRC bytes are all non-zero
    (test_vectors.c runs the same search).
    """
    last_zero = 3 if seq >> 8 == 0 else 2 if seq & 0xFF == 0 else 1
    # run = (packet length 11 + text_len) + 2 CRC bytes - (last_zero + 1)
    text_len = run - 12 + last_zero
    text = "".join(chr(ord("A") + i % 26) for i in range(text_len))
    t_us = 0x01010101
    while True:
        m = Marker(seq, t_us, 0x0101, text)
        crc = crc16(encode_packet(m))
        if 0 not in t_us.to_bytes(4, "little") and crc >> 8 and crc & 0xFF:
            return m
        t_us += 1


@dataclass(frozen=True)
class Vector:
    name: str
    about: str
    packets: tuple  # what a decoder must return, in order
    framed: bytes  # concatenated frames


def _vector(name, about, *packets) -> Vector:
    return Vector(name, about, tuple(packets), b"".join(encode(p) for p in packets))


def packet_vectors() -> list[Vector]:
    """Every packet vector, in session order (see module docstring)."""
    v = []
    ctl = 0xFFF0  # control-stream seq: runs through 0xFFFF and wraps to 0

    def nxt():
        nonlocal ctl
        s = ctl
        ctl = (ctl + 1) & 0xFFFF
        return s

    # Each DEVICE_INFO starts a session for the decoder, so they go first.
    v.append(_vector("device_info_emg8_imu6", "DEVICE_INFO, 2 streams: 8 EMG ch + 6 IMU ch",
                     DeviceInfo(nxt(), 1, (1, 2, 3), 244, "glutebridge-L", "GB-000123", (
                         StreamInfo(1, PacketType.EMG_BLOCK, 1_000_000, SampleFormat.INT16,
                                    EMG_CHANNELS),
                         StreamInfo(2, PacketType.IMU_BLOCK, 104_000, SampleFormat.INT16,
                                    IMU_CHANNELS)))))
    v.append(_vector("device_info_empty", "DEVICE_INFO, empty name and serial, no streams",
                     DeviceInfo(nxt(), 1, (0, 0, 0), 20, "", "", ())))
    v.append(_vector("device_info_odd", "DEVICE_INFO, INT32 stream, odd scales, UTF-8, max fields",
                     DeviceInfo(nxt(), 1, (255, 255, 255), 0xFFFF, "Gesäß-Sensor ✓", TEXT_255, (
                         StreamInfo(3, PacketType.EMG_BLOCK, 0xFFFFFFFF, SampleFormat.INT32,
                                    ODD_CHANNELS),
                         StreamInfo(255, PacketType.IMU_BLOCK, 0, SampleFormat.INT16, ())))))
    v.append(_vector("status_zero", "STATUS, all fields zero",
                     Status(nxt(), 0, 0, 0, StatusFlags.NONE, 0)))
    v.append(_vector("status_max", "STATUS, every field at its maximum, every flag",
                     Status(nxt(), 0xFFFFFFFF, 0xFFFF, 255, StatusFlags(0x3F), 0xFFFFFFFF)))
    v.append(_vector("status_typical", "STATUS, streaming and charging at 3.9 V / 80 %",
                     Status(nxt(), 12_345_678, 3900, 80,
                            StatusFlags.STREAMING | StatusFlags.CHARGING, 7)))
    v.append(_vector("marker_empty", "MARKER, empty text", Marker(nxt(), 0, 0, "")))
    v.append(_vector("marker_text_255", "MARKER, 255-byte text, max code",
                     Marker(nxt(), 0xFFFFFFFF, 0xFFFF, TEXT_255)))
    v.append(_vector("marker_utf8", "MARKER, non-ASCII UTF-8 text",
                     Marker(nxt(), 1_000_000, 42, "Gesäß links ✓ 🦵")))
    # One command per opcode (host -> device), built with the handshake helpers.
    v.append(_vector("command_hello", "COMMAND HELLO(version 1)", handshake.hello(nxt())))
    v.append(_vector("command_start_all", "COMMAND START, no args (all streams)",
                     handshake.start(nxt())))
    v.append(_vector("command_start_stream", "COMMAND START stream 1", handshake.start(nxt(), 1)))
    v.append(_vector("command_stop_all", "COMMAND STOP, no args", handshake.stop(nxt())))
    v.append(_vector("command_stop_stream", "COMMAND STOP stream 2", handshake.stop(nxt(), 2)))
    v.append(_vector("command_set_rate", "COMMAND SET_RATE stream 1 to 2000 Hz",
                     handshake.set_rate(nxt(), 1, 2000.0)))
    v.append(_vector("command_set_channel_mask", "COMMAND SET_CHANNEL_MASK stream 1 to 0x000000a5",
                     handshake.set_channel_mask(nxt(), 1, 0xA5)))
    v.append(_vector("command_get_status", "COMMAND GET_STATUS", handshake.get_status(nxt())))
    v.append(_vector("command_mark", "COMMAND MARK code 0xbeef", handshake.mark(nxt(), 0xBEEF)))
    # One ACK per status.  The control seq wraps 0xFFFF -> 0 around here.
    acks = [(AckStatus.OK, 0x01, ""),
            (AckStatus.UNKNOWN_COMMAND, 0x7F, "unknown opcode 0x7f"),
            (AckStatus.BAD_ARGUMENT, 0x04, "rate 0 Hz is not supported"),
            (AckStatus.BUSY, 0x02, "busy: calibrating"),
            (AckStatus.UNSUPPORTED, 0x05, "channel mask not supported"),
            (AckStatus.INTERNAL_ERROR, 0x06, "fuel gauge: I²C timeout")]
    for i, (status, opcode, msg) in enumerate(acks):
        v.append(_vector("ack_" + status.name.lower(),
                         f"ACK {status.name} to opcode 0x{opcode:02x}",
                         Ack(nxt(), 0xFFFF - i if i % 2 else i, opcode, status, msg)))
    # COBS group-limit edge cases (see cobs_run_marker).
    for run in (253, 254, 255):
        v.append(_vector(f"marker_cobs_run_{run}",
                         f"MARKER whose frame ends in a {run}-byte run without 0x00",
                         cobs_run_marker(nxt(), run)))

    # EMG stream 1: seq 0xFFFE, 0xFFFF, 0, 1, ...; first_sample wraps at 2**32.
    emg = [0xFFFE]

    def emg_seq():
        s = emg[0]
        emg[0] = (s + 1) & 0xFFFF
        return s

    extremes = [-32768, 32767, 0, -1, 1, -32767, 32766, 256] * 4
    v.append(_vector("emg_int16_extremes", "EMG block, 4 x 8 int16 extremes, t_us 0xffffffff",
                     block(0x10, 1, emg_seq(), 0xFFFFFFFF, 0xFFFFFFFC, 4, 8, extremes)))
    v.append(_vector("emg_int16_20x8", "EMG block, 20 x 8 int16 (frame > 254 bytes)",
                     block(0x10, 1, emg_seq(), 3000, 0, 20, 8, lcg_samples(1, 160, 16))))
    v.append(_vector("emg_all_zero", "EMG block, 50 x 8 zero samples (800 bytes of 0x00)",
                     block(0x10, 1, emg_seq(), 23_000, 20, EMG_ALL_ZERO_SAMPLES, 8,
                           [0] * (EMG_ALL_ZERO_SAMPLES * 8))))
    v.append(_vector("emg_empty", "EMG block with 0 samples",
                     block(0x10, 1, emg_seq(), 73_000, 70, 0, 8, [])))
    v.append(_vector("emg_max_packet", "EMG block, 127 x 8 int16: exactly MAX_PACKET_SIZE",
                     block(0x10, 1, emg_seq(), 73_000, 70, 127, 8, lcg_samples(2, 1016, 16))))
    # IMU stream 2.
    v.append(_vector("imu_int16_10x6", "IMU block, 10 x 6 int16 (acc xyz, gyro xyz)",
                     block(0x11, 2, 0, 0, 0, 10, 6, lcg_samples(3, 60, 16))))
    v.append(_vector("imu_int16_1x6", "IMU block, 1 x 6 int16 extremes",
                     block(0x11, 2, 1, 96_154, 10, 1, 6, [-32768, 32767, 0, 1, -1, 12345])))
    # INT32 stream 3.
    v.append(_vector("emg_int32_extremes", "EMG block, 3 x 5 int32 incl. INT32_MIN/MAX",
                     block(0x10, 3, 0xFFFF, 5, 0, 3, 5,
                           [-(1 << 31), (1 << 31) - 1, 0, -1, 1] + lcg_samples(4, 10, 32),
                           SampleFormat.INT32)))
    v.append(_vector("emg_int32_1x1", "EMG block, 1 x 1 int32",
                     block(0x10, 3, 0, 10, 3, 1, 1, [0x01020304], SampleFormat.INT32)))
    v.append(_vector("session_three_frames", "three frames back to back: STATUS, EMG, IMU",
                     Status(nxt(), 100_000, 3700, 55, StatusFlags.STREAMING, 0),
                     block(0x10, 1, emg_seq(), 200_000, 197, 2, 8, lcg_samples(5, 16, 16)),
                     block(0x11, 2, 2, 200_000, 11, 1, 6, lcg_samples(6, 6, 16))))
    return v


def notification_stream() -> bytes:
    """The framed stream that the notification vectors cut up."""
    vecs = {vec.name: vec for vec in packet_vectors()}
    return b"".join(vecs[name].framed for name in NOTIFY_STREAM)


def notifications(payload: int) -> list[bytes]:
    packer = NotificationPacker(payload)
    return packer.push(notification_stream(), flush=True)


# ---------------------------------------------------------------------------
# Text output.


def describe(value) -> str:
    """Compact, Python-version-independent description of packet fields."""
    if isinstance(value, IntFlag):
        return "0x%02x" % int(value)
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, (bytes, bytearray)):
        return value.hex() if value else "''"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "<%d-byte str>" % len(value.encode())
    if isinstance(value, tuple):
        return "(" + ", ".join(describe(x) for x in value) + ")"
    if is_dataclass(value):
        parts = []
        for f in fields(value):
            x = getattr(value, f.name)
            if f.name == "data":
                parts.append("data=<%d bytes>" % len(x))
            elif f.name in ("t_us", "first_sample") or (f.name == "seq" and x > 255):
                parts.append("%s=0x%x" % (f.name, x))
            else:
                parts.append("%s=%s" % (f.name, describe(x)))
        return "%s(%s)" % (type(value).__name__, ", ".join(parts))
    return repr(value)


def render_packets(vec: Vector) -> str:
    comment = "# %s: %s" % (vec.about, "; ".join(describe(p) for p in vec.packets))
    hexed = vec.framed.hex()
    step = 2 * BYTES_PER_LINE
    lines = [hexed[i:i + step] for i in range(0, len(hexed), step)]
    return "\n".join([comment] + lines) + "\n"


def render_notifications(payload: int) -> str:
    comment = ("# BLE notifications, payload %d (counter byte + %d stream bytes), from one "
               "NotificationPacker(%d).push(stream, flush=True); stream = frames of %s; "
               "one notification per line" % (payload, payload - 1, payload, ", ".join(NOTIFY_STREAM)))
    return "\n".join([comment] + [n.hex() for n in notifications(payload)]) + "\n"


def all_files() -> dict[str, str]:
    """File name -> content for every vector, in session order."""
    out = {}
    for i, vec in enumerate(packet_vectors(), start=1):
        out["%02d_%s.hex" % (i, vec.name)] = render_packets(vec)
    for payload in NOTIFY_PAYLOADS:
        out["notify_payload%d.hex" % payload] = render_notifications(payload)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="directory (default: next to script)")
    args = ap.parse_args(argv)
    files = all_files()
    for old in args.out.glob("*.hex"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
    print("wrote %d vectors to %s" % (len(files), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
