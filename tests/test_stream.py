"""StreamAssembler: physical units, explicit gaps, wrap-around, counters."""

from __future__ import annotations

import numpy as np
import pytest

import firmware_protocol as fp
from bridge.stream import DeviceEvent, Gap, SampleChunk, StreamAssembler

EMG, IMU = 1, 2


def _info():
    emg = fp.StreamInfo(EMG, fp.PacketType.EMG_BLOCK, 2_000_000, fp.SampleFormat.INT16,
                        (fp.ChannelInfo(fp.ChannelKind.EMG, 0.5, "mV", "a"),
                         fp.ChannelInfo(fp.ChannelKind.EMG, 0.25, "mV", "b")))
    imu = fp.StreamInfo(IMU, fp.PacketType.IMU_BLOCK, 200_000, fp.SampleFormat.INT16,
                        (fp.ChannelInfo(fp.ChannelKind.ACC, 1 / 4096, "g", "acc_z"),))
    return fp.DeviceInfo(0, 1, (1, 0, 0), 244, "pod", "SN", (emg, imu))


def _block(stream, seq, first, n=16, t_us=None, nch=2, value=4):
    rate = 2000 if stream == EMG else 200
    t = first * 1_000_000 // rate if t_us is None else t_us
    return fp.SampleBlock.from_counts(
        fp.PacketType.EMG_BLOCK if stream == EMG else fp.PacketType.IMU_BLOCK, stream, seq,
        t % 2**32, first % 2**32, np.full((n, nch), value))


def _feed(asm, packets, t0=100.0):
    out = []
    for i, p in enumerate(packets):
        out += asm.handle(p, t0 + i * 0.008)
    return out


def test_samples_are_scaled_to_physical_units_and_timed():
    asm = StreamAssembler("pod")
    items = _feed(asm, [_info(), _block(EMG, 0, 0), _block(EMG, 1, 16)])
    chunks = [i for i in items if isinstance(i, SampleChunk)]
    assert isinstance(items[0], DeviceEvent)
    assert chunks[0].samples.tolist()[0] == [2.0, 1.0]  # 4 counts x 0.5 / 0.25 mV
    assert chunks[0].labels == ("a", "b") and chunks[0].units == ("mV", "mV")
    assert chunks[1].first_sample == 16
    assert chunks[1].device_time - chunks[0].device_time == pytest.approx(16 / 2000)
    assert asm.counters[EMG].received == 32


def test_lost_blocks_become_explicit_gaps():
    asm = StreamAssembler("pod")
    items = _feed(asm, [_info(), _block(EMG, 0, 0), _block(EMG, 3, 48)])
    gaps = [i for i in items if isinstance(i, Gap)]
    assert len(gaps) == 1
    g = gaps[0]
    assert (g.first_sample, g.n_samples, g.reason) == (16, 32, "lost")
    assert asm.counters[EMG].lost == 32 and asm.counters[EMG].gaps == 1


def test_disconnect_marks_the_next_gap_of_every_stream():
    asm = StreamAssembler("pod")
    _feed(asm, [_info(), _block(EMG, 0, 0), _block(IMU, 0, 0, n=4, nch=1)])
    asm.disconnected(101.0)
    items = _feed(asm, [_block(EMG, 9, 160), _block(IMU, 9, 40, n=4, nch=1),
                        _block(EMG, 12, 208)], t0=102.0)
    reasons = [(g.stream, g.reason) for g in items if isinstance(g, Gap)]
    assert reasons == [(EMG, "disconnect"), (IMU, "disconnect"), (EMG, "lost")]


def test_sample_index_and_device_clock_wrap_around():
    asm = StreamAssembler("pod")
    first = 2**32 - 16
    t_us = 2**32 - 4000
    items = _feed(asm, [_info(), _block(EMG, 0, first, t_us=t_us),
                        _block(EMG, 1, first + 16, t_us=t_us + 8000)])
    chunks = [i for i in items if isinstance(i, SampleChunk)]
    assert [c.first_sample for c in chunks] == [first, first + 16]  # unwrapped, no gap
    assert chunks[1].device_time - chunks[0].device_time == pytest.approx(0.008)
    assert not [i for i in items if isinstance(i, Gap)]


def test_blocks_before_device_info_or_of_wrong_shape_are_counted_not_used():
    asm = StreamAssembler("pod")
    assert asm.handle(_block(EMG, 0, 0), 1.0) == []
    assert asm.unannounced == 1
    asm.handle(_info(), 1.0)
    assert asm.handle(_block(EMG, 1, 16, nch=3), 1.0) == []
    assert asm.counters[EMG].rejected == 1


def test_markers_carry_device_time():
    asm = StreamAssembler("pod")
    _feed(asm, [_info(), _block(EMG, 0, 0, t_us=5_000_000)])
    (ev,) = asm.handle(fp.Marker(1, 5_500_000, 3, "stance:left"), 100.6)
    assert ev.device_time == pytest.approx(0.5)
