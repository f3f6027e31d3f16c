"""Shared helpers for the transport tests: signals, collection, integrity checks."""

from __future__ import annotations

import sys

import numpy as np

from bridge.simulator.device import (ACC_SCALE_G, EMG_SCALE_MV, EMG_STREAM, GYRO_SCALE_DPS,
                                     Signals)
from bridge.stream import DeviceEvent, Gap, SampleChunk

if sys.version_info >= (3, 11):
    from asyncio import timeout as aio_timeout
else:  # the backport of asyncio.timeout (test extra on Python 3.10)
    from async_timeout import timeout as aio_timeout


def make_signals(seconds: float = 2.0, seed: int = 0, emg_rate: float = 2000.0,
                 imu_rate: float = 200.0, channels: int = 8) -> Signals:
    rng = np.random.default_rng(seed)
    n = int(seconds * emg_rate)
    t = np.arange(n) / emg_rate
    emg = 0.2 * np.sin(2 * np.pi * 7 * t)[:, None] + rng.normal(0, 0.05, (n, channels))
    m = int(seconds * imu_rate)
    imu = np.column_stack([rng.normal(0, 0.02, (m, 3)) + [0, 0, 1], rng.normal(0, 3, (m, 3))])
    return Signals(emg, emg_rate, tuple(f"ch{i}" for i in range(channels)), imu, imu_rate)


def expected_counts(wearable, stream: int) -> np.ndarray:
    return wearable._emg_counts if stream == EMG_STREAM else wearable._imu_counts


def _scales(stream: int, n_channels: int) -> np.ndarray:
    # Scales travel as IEEE float32 in DEVICE_INFO.
    if stream == EMG_STREAM:
        s = [EMG_SCALE_MV] * n_channels
    else:
        s = [ACC_SCALE_G] * 3 + [GYRO_SCALE_DPS] * 3
    return np.asarray(s, np.float32).astype(np.float64)


class Collected:
    """Everything a consumer saw, per stream."""

    def __init__(self) -> None:
        self.chunks: dict[int, list[SampleChunk]] = {}
        self.gaps: list[Gap] = []
        self.events: list[DeviceEvent] = []

    def add(self, item) -> None:
        if isinstance(item, SampleChunk):
            self.chunks.setdefault(item.stream, []).append(item)
        elif isinstance(item, Gap):
            self.gaps.append(item)
        elif isinstance(item, DeviceEvent):
            self.events.append(item)
        else:
            raise AssertionError(f"unexpected item {item!r}")

    def packets(self, cls):
        return [e.packet for e in self.events if isinstance(e.packet, cls)]

    def received(self, stream: int) -> int:
        return sum(c.n_samples for c in self.chunks.get(stream, []))


def check_integrity(col: Collected, wearable, stream: int, *, allow_loss: bool) -> dict:
    """Samples received equal what the device sent; every hole is a Gap.

    Returns counts: received, gap samples, unaccounted tail.
    """
    counts = expected_counts(wearable, stream)
    chunks = col.chunks.get(stream, [])
    assert chunks, f"no samples received on stream {stream}"
    scale = _scales(stream, counts.shape[1])
    seen = np.zeros(counts.shape[0], dtype=np.int64)
    for c in chunks:
        idx = np.arange(c.first_sample, c.end_sample)
        assert idx[-1] < counts.shape[0]
        np.testing.assert_allclose(c.samples, counts[idx] * scale, rtol=0, atol=1e-12)
        seen[idx] += 1
    assert seen.max() == 1, "a sample was delivered twice"
    gap_cover = np.zeros_like(seen)
    for g in col.gaps:
        if g.stream == stream:
            assert g.n_samples > 0
            gap_cover[g.first_sample:g.first_sample + g.n_samples] += 1
    end = max(c.end_sample for c in chunks)
    start = min(c.first_sample for c in chunks)
    # A stream starts at the first block that arrives (a lost leading block is
    # indistinguishable from a device that started later); after that, every
    # missing sample before the last received one must be inside a Gap.
    missing = start + np.nonzero(seen[start:end] == 0)[0]
    assert np.all(gap_cover[missing] >= 1), f"unmarked holes at {missing[gap_cover[missing] == 0][:5]}"
    assert np.all(gap_cover[seen == 1] == 0), "a Gap covers samples that did arrive"
    if not allow_loss:
        assert missing.size == 0
    return {"received": int(seen.sum()), "lost": int(missing.size), "start": int(start),
            "end": int(end)}
