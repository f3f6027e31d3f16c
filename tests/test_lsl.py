"""LSL sink received by a real pylsl inlet in the same process (raw channels and markers)."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from bridge.session import MuscleEvent, PhaseEvent
from bridge.stream import SampleChunk

try:
    from bridge.sinks.lsl import LslSink, load_pylsl
    pylsl = load_pylsl()
except ImportError as exc:  # LslUnavailable is an ImportError
    pytest.skip(f"pylsl cannot load liblsl here: {exc}", allow_module_level=True)

RATE = 2000.0
LABELS = ("glute_max_L", "glute_max_R", "hamstring_L")


def _chunks(rng, n_chunks=20, size=50, gap_after=10, gap=40):
    """Chunks on a simulated host clock starting at 0 with one lost run of samples."""
    first, out = 0, []
    for k in range(n_chunks):
        if k == gap_after:
            first += gap
        data = rng.normal(0, 0.1, (size, len(LABELS)))
        out.append(SampleChunk("pod", 1, "emg", LABELS, ("mV",) * 3, RATE, first, first / RATE,
                               data))
        first += size
    return out


def _resolve(prop, value):
    streams = pylsl.resolve_byprop(prop, value, timeout=10)
    assert streams, f"no LSL stream with {prop}={value} found within 10 s"
    inlet = pylsl.StreamInlet(streams[0], max_buflen=60)
    inlet.open_stream(timeout=10)
    return inlet


def _pull(inlet, n, timeout=10.0):
    data, stamps = [], []
    end = time.monotonic() + timeout
    while len(data) < n and time.monotonic() < end:
        d, t = inlet.pull_chunk(timeout=0.5)
        data += d
        stamps += t
    return data, stamps


def test_raw_channels_and_markers_reach_an_inlet():
    rng = np.random.default_rng(1)
    name = f"gbtest{time.monotonic_ns()}"  # unique: other tests may publish too
    sink = LslSink(name, host_clock=None)
    chunks = _chunks(rng)
    try:
        sink.on_chunk(chunks[0])  # declares the EMG outlet
        data_in = _resolve("source_id", f"{name}-pod-1")
        mark_in = _resolve("source_id", f"{name}-markers")
        assert sink.outlets[("pod", 1)].wait_for_consumers(10)
        assert sink.marker_outlet.wait_for_consumers(10)

        # the stream description carries labels, units, types and rate
        info = data_in.info(timeout=10)
        assert info.nominal_srate() == RATE and info.channel_count() == 3
        assert info.type() == "EMG"
        root = ET.fromstring(info.as_xml())
        chans = root.findall("./desc/channels/channel")
        assert [c.findtext("label") for c in chans] == list(LABELS)
        assert {c.findtext("unit") for c in chans} == {"mV"}
        assert {c.findtext("type") for c in chans} == {"EMG"}

        for c in chunks[1:]:
            sink.on_chunk(c)
        sink.on_chunk(SampleChunk("pod", 1, "emg", LABELS, ("mV",) * 3, RATE, 10**6, 500.0,
                                  np.empty((0, 3))))  # empty chunks are fine
        events = [PhaseEvent("pod", "reps", "bridge", 0.1, 0.1),
                  MuscleEvent("onset", "pod", 0, "glute_max_L", 0.2, 0.2, 0.03, 0.4, 0.3)]
        for ev in events:
            sink(ev)

        data, stamps = _pull(data_in, 19 * 50)
        sent = np.concatenate([c.samples for c in chunks[1:]])
        assert len(data) == sent.shape[0]
        np.testing.assert_allclose(np.array(data), sent.astype(np.float32), rtol=0, atol=0)
        # timestamps: host time of each sample on the local_clock base, gap kept as a jump
        host = np.concatenate([c.host_time + np.arange(50) / RATE for c in chunks[1:]])
        offset = sink.lsl_time(0.0)
        np.testing.assert_allclose(np.array(stamps) - offset, host, atol=1e-6)
        jump = np.diff(stamps)
        assert np.argmax(jump) == 9 * 50 - 1 and jump.max() == pytest.approx(41 / RATE, abs=1e-6)

        marks, mstamps = _pull(mark_in, 2)
        objs = [json.loads(m[0]) for m in marks]
        assert [o["type"] for o in objs] == ["phase", "onset"]
        assert objs[1]["muscle"] == "glute_max_L" and objs[1]["time"] == 0.2
        np.testing.assert_allclose(np.array(mstamps) - offset, [0.1, 0.2], atol=1e-6)
        assert sink.pushed_samples == 20 * 50 and sink.pushed_markers == 2
    finally:
        sink.close()


def test_imu_channel_types_and_monotonic_clock_mapping():
    name = f"gbimu{time.monotonic_ns()}"
    sink = LslSink(name, markers=False)  # host clock = time.monotonic, like live sources
    labels = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
    now = time.monotonic()
    chunk = SampleChunk("pod", 2, "imu", labels, ("g",) * 3 + ("deg/s",) * 3, 200.0, 0, now,
                        np.zeros((4, 6)))
    try:
        sink.on_chunk(chunk)
        inlet = _resolve("source_id", f"{name}-pod-2")
        info = inlet.info(timeout=10)
        assert info.type() == "IMU"
        chans = ET.fromstring(info.as_xml()).findall("./desc/channels/channel")
        assert [c.findtext("type") for c in chans] == ["Accelerometer"] * 3 + ["Gyroscope"] * 3
        # both clocks are the system's monotonic clock: the mapping is (nearly) the identity
        assert abs(sink.lsl_time(now) - now) < 0.05
        assert sink.marker_outlet is None
    finally:
        sink.close()


def test_channel_count_change_is_refused():
    sink = LslSink(f"gbbad{time.monotonic_ns()}", markers=False, host_clock=None)
    mk = lambda n: SampleChunk("pod", 1, "emg", LABELS[:n], ("mV",) * n, RATE, 0, 0.0,  # noqa: E731
                               np.zeros((3, n)))
    sink.on_chunk(mk(3))
    with pytest.raises(ValueError, match="changed from 3 to 2 channels"):
        sink.on_chunk(mk(2))
    sink.close()
