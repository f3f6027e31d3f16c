"""JSON Lines sink: one flushed JSON object per event, numbers equal the session's."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bridge.balance import SingleLegStanceTest
from bridge.runner import run_items, virtual_items
from bridge.session import BalanceEvent, LinkEvent, MuscleEvent, PhaseEvent, Session
from bridge.simulator.device import Faults, Signals
from bridge.simulator.emg_model import Burst, simulate_emg
from bridge.simulator.sway_model import simulate_stance
from bridge.sinks.jsonl import JsonlSink, event_to_dict


@pytest.fixture(scope="module")
def streamed():
    emg, _ = simulate_emg(2000, 10, [Burst(0, 3, 4.5, 0.4), Burst(1, 3.1, 4.6, 0.3),
                                     Burst(0, 6, 7.5, 0.4)], channels=2, snr_db=18, seed=5)
    sig = Signals(emg, 2000.0, ("glute_max_L", "glute_max_R"), np.empty((0, 6)), 200.0,
                  markers=((0.0, 1, "rest"), (2.5, 1, "reps:bridge")))
    session, out, events = Session(), io.StringIO(), []
    sink = JsonlSink(out)
    asyncio.run(run_items(virtual_items(sig, speed=0, faults=Faults(drop_rate=0.01, seed=4)),
                          session, [sink, events.append]))
    lines = out.getvalue().splitlines()
    return session, events, [json.loads(x) for x in lines], lines


def test_one_valid_object_per_event(streamed):
    session, events, objs, lines = streamed
    assert len(objs) == len(events) == len(lines)
    assert all(isinstance(o["type"], str) and "device" in o and "time" in o for o in objs)
    kinds = [o["type"] for o in objs]
    assert kinds.count("phase") == len(session.devices["sim"].phases) >= 1
    assert kinds.count("gap") >= 1
    assert kinds.count("onset") == kinds.count("offset") == len(session.contractions()) >= 3


def test_offsets_carry_the_sessions_contractions(streamed):
    session, _, objs, _ = streamed
    offs = sorted((o for o in objs if o["type"] == "offset"),
                  key=lambda o: (o["contraction"]["onset"], o["channel"]))
    for o, c in zip(offs, session.contractions(), strict=True):
        k = o["contraction"]
        assert (o["channel"], k["onset"], k["offset"], k["peak"], k["mean"]) == \
            (c.channel, c.onset, c.offset, c.peak, c.mean)
        assert k["duration"] == pytest.approx(c.offset - c.onset)
        assert o["muscle"] == ("glute_max_L", "glute_max_R")[c.channel]
        assert o["time"] == c.offset and o["latency"] >= 0


def test_gap_and_phase_fields(streamed):
    session, events, objs, _ = streamed
    gaps = [o for o in objs if o["type"] == "gap"]
    dev_gaps = session.devices["sim"].gaps
    assert [(g["stream"], g["first_sample"], g["n_samples"], g["reason"]) for g in gaps] == \
        [(g.stream, g.first_sample, g.n_samples, g.reason) for g in dev_gaps]
    phases = [o for o in objs if o["type"] == "phase"]
    assert [(p["phase"], p["arg"], p["time"]) for p in phases] == \
        [(p.name, p.arg, p.start) for p in session.devices["sim"].phases]


def test_types_filter():
    out = io.StringIO()
    sink = JsonlSink(out, types={"phase"})
    sink(PhaseEvent("d", "hold", "10", 1.0, 2.0))
    sink(LinkEvent("d", "info", 1.0, "no IMU stream"))
    assert [json.loads(x)["type"] for x in out.getvalue().splitlines()] == ["phase"]
    assert sink.written == 1


def test_nan_becomes_null_and_output_is_strict_json():
    out = io.StringIO()
    JsonlSink(out)(MuscleEvent("onset", "d", 0, "glute_max_L", 1.0, float("nan"), 0.01,
                               float("inf"), 0.2))
    line = out.getvalue()
    assert "NaN" not in line and "Infinity" not in line
    obj = json.loads(line)
    assert obj["host_time"] is None and obj["peak"] is None and obj["mean"] == 0.2


def test_balance_events_from_the_real_stance_core():
    imu, truth = simulate_stance(200.0, 20.0, leg="left", touchdowns=(12.0,), seed=3,
                                 relift_after=1e9)
    test = SingleLegStanceTest(200.0, duration=10.0, leg="left")
    evs = test.process(imu)
    out = io.StringIO()
    sink = JsonlSink(out)
    t0 = 50.0  # the stance phase starts 50 s into the session
    # ... and its test 25 ms later: the phase marker came after the IMU block holding its
    # time (as over the sim transport), so the core's sample 0 is the next block's first
    lag = 0.025
    sink(PhaseEvent("d", "stance", "left", t0, 1000.0))
    for ev in evs:  # the times Session gives them: (test's first sample + sample) / rate
        s = t0 + lag + ev.sample / 200.0
        sink(BalanceEvent("d", "left", s, ev, s + 950.0005))
    objs = [json.loads(x) for x in out.getvalue().splitlines()][1:]
    kinds = [o["type"] for o in objs]
    assert kinds[0] == "stance_baseline" and "stance_start" in kinds and "touchdown" in kinds
    for o, ev in zip(objs, evs):
        # time is the session's (what the terminal prints), not phase start + the core's t
        assert o["time"] == pytest.approx(t0 + lag + ev.sample / 200.0, abs=1e-9)
        assert o["host_time"] == pytest.approx(o["time"] + 950.0005, abs=1e-9)
        assert o["phase_time"] == ev.t and ev.t == pytest.approx(ev.sample / 200.0)
        assert o["leg"] == "left"
    td = objs[kinds.index("touchdown")]
    assert td["time"] == pytest.approx(t0 + truth.touchdowns[0], abs=0.5)
    if "stance_result" in kinds:  # the 10 s countdown ends before the touchdown at 12 s
        res = objs[kinds.index("stance_result")]
        assert res["time_achieved"] == test.result.time_achieved
        assert res["sway"]["rms"] == test.result.sway.rms
        # every field docs/events.md lists, the sample index and the touchdown count included
        assert res["sample"] == next(e.sample for e in evs if type(e).__name__ == "TrialCompleted")
        assert res["n_touchdowns"] == test.result.n_touchdowns == len(res["touchdowns"])


def test_not_an_event():
    assert event_to_dict(object()) is None


def test_each_line_is_flushed_before_the_writer_finishes():
    """A reader on a pipe sees the event while the writer is still running."""
    code = textwrap.dedent("""
        import sys
        from bridge.session import PhaseEvent
        from bridge.sinks.jsonl import JsonlSink
        JsonlSink()(PhaseEvent("d", "rest", "", 0.0, 0.0))
        sys.stdin.readline()  # block until the parent has read the line
        JsonlSink()(PhaseEvent("d", "reps", "bridge", 4.0, 4.0))
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        first = json.loads(p.stdout.readline())
        assert first["phase"] == "rest" and p.poll() is None
        p.stdin.write("\n")
        p.stdin.flush()
        second = json.loads(p.stdout.readline())
        assert second["phase"] == "reps"
    finally:
        p.stdin.close()
        p.wait(timeout=30)
    assert p.returncode == 0


def test_link_changes_are_json_lines_too():
    """A Connection's LinkState items reach scripts as {"type": "link", ...} lines."""
    from bridge.sources.base import LinkState
    from bridge.stream import DeviceEvent

    session = Session()
    buf = io.StringIO()
    sink = JsonlSink(buf)
    for st in (LinkState("pod", "lost", 10.0, "the device closed the connection", 0, 0.1),
               LinkState("pod", "reconnected", 12.5, "", 2, None)):
        for ev in session.handle(DeviceEvent("pod", st.host_time, st)):
            sink.on_event(ev)
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [(d["type"], d["state"]) for d in lines] == [("link", "lost"), ("link", "reconnected")]
    assert lines[0]["reason"] == "the device closed the connection" and lines[0]["retry_in"] == 0.1
    assert lines[1]["attempt"] == 2
