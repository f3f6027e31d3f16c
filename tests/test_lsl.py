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


def _old_recording(path, device, seconds=4.0, age=3600.0):
    """A recording of the virtual wearable made ``age`` s ago (its host times are this
    process's monotonic clock then), written without waiting for it."""
    import firmware_protocol as fp
    from bridge.recording import Kind, RecordingWriter
    from bridge.simulator import scenarios
    from bridge.simulator.device import VirtualWearable

    sig = scenarios.build("demo", seed=0)
    n = int(seconds * sig.emg_rate)
    sig = type(sig)(sig.emg[:n], sig.emg_rate, sig.emg_labels, sig.imu[:n // 10], sig.imu_rate)
    w = VirtualWearable(sig)
    t0 = time.monotonic() - age
    with RecordingWriter(path, {"url": "sim://demo", "transport": "stream",
                                "device": device}) as rec:
        for seq, cmd in enumerate((fp.handshake.hello, fp.handshake.start)):
            rec.write(Kind.DATA_OUT, fp.encode(cmd(seq)), t0)
            rec.data_in(w.receive(fp.encode(cmd(seq))), t0 + 0.001)
        t = 0.0
        while not w.finished:
            t += 0.02
            rec.data_in(w.advance(0.02), t0 + t + 0.002)
    return t0


async def test_replayed_recording_is_stamped_now_not_when_it_was_recorded(tmp_path):
    """`replay FILE --lsl`: LSL stamps follow the replay (local_clock now), in order and
    1/rate apart.  They were the recorded host times: an hour-old recording's samples
    arrived stamped an hour ago, far from every other stream of a LabRecorder session."""
    import asyncio

    from bridge.commands.run import Outputs
    from bridge.commands.streaming import replay

    device = f"gbreplay{time.monotonic_ns()}"
    path = tmp_path / "old.gbrec"
    recorded_at = _old_recording(path, device)
    start = pylsl.local_clock()
    task = asyncio.create_task(replay(str(path), speed=1.0, out=Outputs(view="quiet", lsl=True)))
    inlet = await asyncio.to_thread(_resolve, "source_id", f"glutebridge-{device}-1")
    data, stamps = [], []
    while not task.done() or not data:
        d, t = await asyncio.to_thread(inlet.pull_chunk, 0.2)
        data += d
        stamps += t
        assert time.monotonic() - start < 30
    await task
    d, t = await asyncio.to_thread(inlet.pull_chunk, 0.5)
    data, stamps = data + d, stamps + t
    end = pylsl.local_clock()
    assert inlet.info().channel_count() == len(data[0]) == 8
    assert len(data) > 2000  # more than a second of the 4 s played at 1x
    stamps = np.array(stamps)
    assert start - 0.5 < stamps[0] and stamps[-1] < end + 0.5, (start, stamps[[0, -1]], end)
    assert abs(stamps[0] - recorded_at) > 3000
    steps = np.diff(stamps)
    assert steps.min() > 0 and np.median(steps) == pytest.approx(1 / 2000.0, rel=1e-3)


async def test_demo_as_fast_as_possible_is_stamped_from_now(monkeypatch):
    """`demo --speed 0 --lsl`: the in-process wearable's host clock starts at 0, so the
    stamps start at local_clock() now (they were 0.0 .. 49 s: hours before now)."""
    import bridge.sinks.lsl as lsl_mod
    from bridge.commands.run import Outputs
    from bridge.commands.streaming import demo

    sinks = []

    class Spy(lsl_mod.LslSink):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            sinks.append(self)

    monkeypatch.setattr(lsl_mod, "LslSink", Spy)
    start = pylsl.local_clock()
    await demo(scenario="holds", speed=0, out=Outputs(view="quiet", lsl=True))
    (sink,) = sinks
    assert sink.pushed_samples > 40 * 2000  # 49 s played (a few packets lost on purpose)
    assert start <= sink.lsl_time(0.0) <= pylsl.local_clock()


async def test_balance_markers_are_stamped_at_their_imu_sample():
    """Stance markers carry the host time of their IMU sample, as muscle markers carry
    theirs: they were stamped local_clock() at the push, i.e. when decided (lift-off
    0.4 s late live) or, racing through a replay or demo --speed 0, at wall-clock time
    that has nothing to do with the samples'."""
    from bridge.runner import virtual_items
    from bridge.session import BalanceEvent, Session
    from bridge.simulator import scenarios

    name = f"gbstance{time.monotonic_ns()}"
    sink = LslSink(name, host_clock=None)
    try:
        marks_in = _resolve("source_id", f"{name}-markers")
        assert sink.marker_outlet.wait_for_consumers(10)
        session, balance = Session(), []
        async for item in virtual_items(scenarios.build("single-leg", seed=0), speed=0,
                                        device="pod"):
            if isinstance(item, SampleChunk):
                sink.on_chunk(item)
            for ev in session.handle(item):
                sink(ev)
                if isinstance(ev, BalanceEvent):
                    balance.append(ev)
        assert len(balance) >= 6  # baseline, start, result per leg; a touchdown
        marks, stamps = _pull(marks_in, sink.pushed_markers)
        got = [(json.loads(m[0]), t) for m, t in zip(marks, stamps)]
        got = [(o, t) for o, t in got if "leg" in o]
        assert [o["time"] for o, _ in got] == pytest.approx([e.time for e in balance])
        origin = sink.lsl_time(0.0)  # the simulated host clock runs with session time
        for (o, t), ev in zip(got, balance):
            assert o["host_time"] == pytest.approx(ev.host_time)
            # (the simulated host clock advances in 20 ms steps: the clock fit is that close)
            assert t - origin == pytest.approx(ev.time, abs=0.02), o["type"]
    finally:
        sink.close()
