"""Decode throughput of the wire protocol on a realistic stream.

Stream: 8 EMG channels at 2 kHz in blocks of 16 samples (int16) plus a
6-axis IMU at 200 Hz in blocks of 4 samples and a status packet per second,
framed with CRC + COBS exactly as a wearable sends them over serial/TCP.
Prints MB/s for StreamDecoder (fed in 4 KiB reads, as a serial port
delivers them) and NotificationDecoder (244-byte BLE notifications), each on
one core.  Target: >= 50 MB/s (a saturated BLE link carries ~0.2 MB/s).

    python benchmarks/protocol_decode.py [--seconds 600]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import firmware_protocol as fp  # noqa: E402


def build_stream(seconds: float, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    out = []
    emg_seq = imu_seq = ctl_seq = 0
    emg_block, imu_block = 16, 4
    n_emg_blocks = int(seconds * 2000 / emg_block)
    for i in range(n_emg_blocks):
        t_us = i * emg_block * 500
        counts = rng.integers(-3000, 3000, size=(emg_block, 8))
        out.append(fp.encode(fp.SampleBlock.from_counts(
            fp.PacketType.EMG_BLOCK, 1, emg_seq % 65536, t_us % 2**32, i * emg_block, counts)))
        emg_seq += 1
        if i % 10 == 0:  # 200 Hz / 4 = 50 IMU blocks per s, EMG gives 125 blocks per s
            counts = rng.integers(-2000, 2000, size=(imu_block, 6))
            out.append(fp.encode(fp.SampleBlock.from_counts(
                fp.PacketType.IMU_BLOCK, 2, imu_seq % 65536, t_us % 2**32, imu_seq * imu_block,
                counts)))
            imu_seq += 1
        if i % 125 == 0:
            out.append(fp.encode(fp.Status(ctl_seq % 65536, t_us % 2**32, 3900, 80,
                                           fp.StatusFlags.STREAMING, 0)))
            ctl_seq += 1
    return b"".join(out)


def bench_stream(data: bytes, chunk: int) -> tuple[float, int, fp.DecoderStats]:
    dec = fp.StreamDecoder()
    n = 0
    t0 = time.perf_counter()
    for i in range(0, len(data), chunk):
        n += len(dec.feed(data[i:i + chunk]))
    return time.perf_counter() - t0, n, dec.stats


def bench_notifications(data: bytes, payload: int) -> tuple[float, int, fp.DecoderStats]:
    notes = fp.NotificationPacker(payload).push(data)
    dec = fp.NotificationDecoder()
    n = 0
    t0 = time.perf_counter()
    for note in notes:
        n += len(dec.feed(note))
    return time.perf_counter() - t0, n, dec.stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="stream length to simulate")
    args = ap.parse_args()
    data = build_stream(args.seconds)
    mb = len(data) / 1e6
    print(f"stream: {args.seconds:.0f} s of 8ch EMG @2 kHz + IMU @200 Hz = {mb:.1f} MB")
    print(f"{'decoder':<34}{'MB/s':>8}{'packets/s':>12}{'x real time':>13}")
    for label, fn in (("StreamDecoder, 4096-byte reads", lambda: bench_stream(data, 4096)),
                      ("StreamDecoder, 64-byte reads", lambda: bench_stream(data, 64)),
                      ("NotificationDecoder, 244 B", lambda: bench_notifications(data, 244))):
        best = min((fn() for _ in range(3)), key=lambda r: r[0])
        dt, n, stats = best
        assert stats.crc_errors == stats.framing_errors == stats.samples_lost == 0
        print(f"{label:<34}{mb / dt:>8.1f}{n / dt:>12,.0f}{args.seconds / dt:>13,.0f}")


if __name__ == "__main__":
    main()
