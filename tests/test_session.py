"""End to end against ground truth: scenario -> bytes -> decoder -> session -> results."""

from __future__ import annotations

import asyncio
import json
import os

import numpy as np
import pytest

from bridge.profiles import Profile, apply_profile, load_profile, save_profile
from bridge.results import session_results
from bridge.runner import run_items, virtual_items
from bridge.session import BalanceEvent, MuscleEvent, PhaseEvent, Session
from bridge.simulator import scenarios
from bridge.simulator.device import Faults


def _run(name, seed=0, faults=None, session=None):
    sig = scenarios.build(name, seed=seed)
    session = session or Session()
    events = []
    asyncio.run(run_items(virtual_items(sig, speed=0, faults=faults), session, [events.append]))
    return sig, session, events, session_results(session)


@pytest.fixture(scope="module")
def demo():
    return _run("demo", faults=Faults(drop_rate=0.005, bit_error_rate=1e-5, seed=1))


def _phase(results, name):
    return next(p for p in results["devices"]["sim"]["phases"] if p["phase"] == name)


def test_demo_firing_order_and_latencies_match_the_script(demo):
    sig, session, events, results = demo
    reps = _phase(results, "reps")["summary"]
    left = reps["left"]["firing"]
    right = reps["right"]["firing"]
    # Scripted: left glute 180 ms after the hamstrings, right 40 ms.
    assert left["dominant_order"][0] == "hamstring_L" and left["dominant_order"][-1] == "glute_max_L"
    assert left["latency"]["hamstring_L"]["median"] == pytest.approx(-0.18, abs=0.03)
    assert right["latency"]["hamstring_R"]["median"] == pytest.approx(-0.04, abs=0.03)
    sym = {s["muscle"]: s for s in reps["symmetry"]}
    assert sym["glute_max"]["metrics"]["peak"]["si"] < -40  # right glute clearly stronger
    assert abs(sym["hamstring"]["metrics"]["peak"]["si"]) < 15


def test_demo_holds_and_stance_match_the_script(demo):
    _, _, events, results = demo
    holds = _phase(results, "hold")["holds"]
    left = holds["glute_max_L"]["holds"][0]
    right = holds["glute_max_R"]["holds"][0]
    assert left["sustained"] == pytest.approx(6.0, abs=0.3) and not left["met"]
    assert right["met"]
    stances = [p for p in results["devices"]["sim"]["phases"] if p["phase"] == "stance"]
    by_leg = {p["arg"]: p["stance"][0] for p in stances}
    assert by_leg["right"]["completed"] and by_leg["right"]["time_achieved"] == 30.0
    assert by_leg["left"]["time_achieved"] == pytest.approx(14.0, abs=0.1)
    assert results["devices"]["sim"]["stance_comparison"]["weaker_leg"] == "left"
    kinds = {type(e).__name__ for e in events}
    assert {"MuscleEvent", "PhaseEvent", "BalanceEvent", "LinkEvent"} <= kinds


def test_every_scripted_contraction_is_found_once(demo):
    sig, session, _, _ = demo
    found = session.contractions()
    truth = sig.truth["contractions"]
    for ch, on, off, _level in truth:
        hits = [c for c in found if c.channel == ch and c.onset < off and c.offset > on]
        assert len(hits) == 1, (ch, on, off, hits)
        assert abs(hits[0].onset - on) < 0.1
    assert len(found) == len(truth)  # no false activations on the idle glute medius


def test_events_are_time_ordered_per_muscle_and_decided_causally(demo):
    _, _, events, _ = demo
    per = {}
    for e in events:
        if isinstance(e, MuscleEvent):
            per.setdefault(e.muscle, []).append(e)
    for evs in per.values():
        kinds = [e.kind for e in evs]
        assert kinds == ["onset", "offset"] * (len(kinds) // 2)  # strictly alternating
        assert all(e.latency >= 0 for e in evs)


def test_phases_are_on_the_device_timeline(demo):
    sig, _, events, _ = demo
    phases = [e for e in events if isinstance(e, PhaseEvent)]
    assert [round(p.time, 2) for p in phases] == [m[0] for m in sig.markers]


def test_late_glute_scenario(tmp_path):
    _, _, _, results = _run("late-glute", seed=3)
    sets = [p for p in results["devices"]["sim"]["phases"] if p["phase"] == "reps"]
    assert len(sets) == 3
    for ph in sets:
        for side, suffix in (("left", "_L"), ("right", "_R")):
            lat = ph["summary"][side]["firing"]["latency"][f"hamstring{suffix}"]
            assert lat["median"] == pytest.approx(-0.25, abs=0.04)
            assert lat["n"] == 10


def test_profile_calibration_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUTEBRIDGE_HOME", str(tmp_path))
    sig = scenarios.build("holds", seed=0)
    rest = sig.emg[: int(3.5 * 2000)]
    mvc = sig.emg[int(4.5 * 2000): int(8 * 2000)]
    save_profile(Profile("client-a", sig.emg_labels, 2000.0, rest, mvc))
    prof = load_profile("client-a")
    assert prof.labels == sig.emg_labels and prof.mvc.shape == mvc.shape
    session = Session()
    session.profile = prof
    _, session, _, results = _run("holds", session=session)
    cs = session.contractions()
    assert cs and all(c.pct_mvc is not None for c in cs)
    glute_l = [c for c in cs if c.channel == 0]
    assert all(0 < c.pct_mvc <= 110 for c in glute_l)
    from bridge.emg import ContractionDetector
    notes = apply_profile(ContractionDetector(2, 2000.0), ("a", "b"), 2000.0, prof)
    assert notes and "differ" in notes[0]


def test_missing_profile_is_a_clear_error(tmp_path, monkeypatch):
    from bridge.errors import ConfigError
    monkeypatch.setenv("GLUTEBRIDGE_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="glutebridge calibrate"):
        load_profile("nobody")


async def test_operator_led_single_leg_test_marks_phases_on_the_wearable():
    """The host leads (prompts + MARK commands echoed by the device): no scripted markers."""
    import dataclasses

    from rich.console import Console

    from bridge.commands.guided import single_leg
    from bridge.commands.run import Outputs

    # A client who lifts the foot 8 s after each phase starts, with no markers of its own:
    # the guide's MARKs (echoed by the wearable on its clock) are the only phases.
    tl = scenarios._Timeline(scenarios.Profile())
    tl.rest(2.0)
    tl.stance("right", 30.0, lift_off=8.0)
    tl.stance("left", 30.0, touchdown=14.0, lift_off=8.0)
    sig = dataclasses.replace(scenarios._render(tl, seed=0), markers=())
    out = Outputs(view="quiet", console=Console(file=open(os.devnull, "w")))
    results = await single_leg("sim://custom", out=out, countdown=0.3, operator=True,
                               transport_options={"signals": sig, "speed": 10})
    (dev,) = results["devices"].values()
    stances = {p["arg"]: p["stance"][0] for p in dev["phases"] if p["phase"] == "stance"}
    assert stances["right"]["completed"] and stances["right"]["time_achieved"] == 30.0
    assert stances["left"]["time_achieved"] == pytest.approx(14.0, abs=0.1)
    assert dev["stance_comparison"]["weaker_leg"] == "left"


def test_the_last_phase_runs_to_the_end_of_the_data(demo):
    sig, _, _, results = demo
    last = results["devices"]["sim"]["phases"][-1]
    assert last["phase"] == "stance" and last["arg"] == "left"
    # not to its own start (nothing but the IMU runs in a stance phase), nor to a last offset
    assert last["end"] == pytest.approx(sig.duration, abs=0.05)


@pytest.fixture(scope="module")
def stalled():
    """The demo with a hang from 0.5 to 17.5 s that swallows the 'reps' marker."""
    return _run("demo", faults=Faults(stall_at=(0.5,), stall_for=17.0))


def test_a_rest_phase_that_ran_into_reps_is_not_the_baseline(stalled):
    """A hang swallows the wearable's 'reps' marker (0.5-17.5 s): the session's
    rest phase then runs on into the last reps.  Calibrating on it lifted the
    onset threshold above every hold (none found); it must be refused with a
    note, and the detector's own noise floor then finds the holds."""
    sig, session, _, results = stalled
    dev = results["devices"]["sim"]
    assert [p["phase"] for p in dev["phases"]][:2] == ["rest", "hold"]   # 'reps' was lost
    assert len(results["notes"]) == 1
    note = results["notes"][0]
    assert "rest phase was not at rest" in note and "link gap" in note
    hold = _phase(results, "hold")
    t0, t1 = hold["start"], hold["end"]
    scripted = {ch for ch, on, _, _ in sig.truth["contractions"] if t0 <= on < t1}
    found = {c["channel"] for c in dev["contractions"] if t0 - 0.5 <= c["onset"] < t1}
    assert scripted and found == scripted
    assert all(h["n_holds"] == 1 for h in hold["holds"].values())
    assert not any(st.detector.rest_calibrated for st in session.devices["sim"].emg.values())


def test_a_rest_phase_at_rest_is_the_baseline(demo):
    _, session, _, results = demo
    assert results["notes"] == []
    assert all(st.detector.rest_calibrated for st in session.devices["sim"].emg.values())


def test_session_notes_reach_the_terminal_and_the_report(stalled):
    """A note (here: the refused rest) is printed after the summary and listed in
    the report, escaped; a session without notes shows neither."""
    import io

    from rich.console import Console

    from bridge.report import render_report
    from bridge.sinks.console import ConsoleSink

    results = json.loads(json.dumps(stalled[3]))   # a copy: the fixture is shared
    results["notes"].append("<b>odd</b> & note")
    buf = io.StringIO()
    ConsoleSink(Console(file=buf, width=400, highlight=False)).summary(results)
    text = buf.getvalue()
    assert "Note: sim: the rest phase was not at rest" in text
    assert "Note: <b>odd</b> & note" in text
    page = render_report(results)
    assert "Notes on this session" in page and "&lt;b&gt;odd&lt;/b&gt; &amp; note" in page
    results["notes"] = []
    assert "Notes on this session" not in render_report(results)
