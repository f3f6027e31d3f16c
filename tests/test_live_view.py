"""The terminal live view keeps up with a session and shows what the coach needs."""

from __future__ import annotations

import asyncio

from rich.console import Console

from bridge.runner import virtual_items
from bridge.session import Session
from bridge.simulator import scenarios
from bridge.sinks.live import LiveView


def _render(view) -> str:
    c = Console(width=120, record=True, force_terminal=False, file=open("/dev/null", "w"))
    c.print(view.render())
    return c.export_text()


def test_live_view_during_reps_and_stance():
    sig = scenarios.build("demo")
    view, session = LiveView("t"), Session()
    screens = {}

    async def go():
        async for item in virtual_items(sig, speed=0):
            view.on_item(item)
            for ev in session.handle(item):
                view.on_event(ev)
            t = view.now
            if "reps" not in screens and t > 13.0:
                screens["reps"] = _render(view)
                screens["glute_max_L"] = next(m.level for m in view.muscles.values()
                                              if m.name == "glute_max_L")
            if "stance" not in screens and t > 85.0:
                screens["stance"] = _render(view)

    asyncio.run(go())
    reps = screens["reps"]
    assert "phase: reps bridge" in reps
    assert "glute_max_L" in reps and "ON" in reps
    assert "firing order (last rep)" in reps and "glute_max_L (+" in reps
    # amplitudes in mV, as in the report and the CSV/JSON files (not µV)
    assert " mV " in reps.splitlines()[1] and "µV" not in reps
    row = next(line for line in reps.splitlines() if line.lstrip().startswith("glute_max_L"))
    assert f"{screens['glute_max_L']:.3f}" in row
    stance = screens["stance"]
    assert "left leg:" in stance and "right leg 30.0 s of 30 s" in stance
    assert "sway (ML)" in stance


def test_reps_column_counts_the_reps_the_summary_counts():
    """The hold after 5 bridges showed 'reps 6' on screen and 5 in the summary."""
    from bridge.results import session_results

    sig = scenarios.build("demo")
    view, session = LiveView("t"), Session()

    async def go():
        async for item in virtual_items(sig, speed=0):
            view.on_item(item)
            for ev in session.handle(item):
                view.on_event(ev)
        for ev in session.finish():
            view.on_event(ev)

    asyncio.run(go())
    (dev,) = session_results(session)["devices"].values()
    reps = next(p for p in dev["phases"] if p["phase"] == "reps")["summary"]
    counted = {m["name"]: sum(len(s["reps"]) for s in m["reps"]["sets"])
               for m in reps["muscles"]}
    shown = {m.name: m.reps for m in view.muscles.values() if m.name in counted}
    assert shown == counted and set(counted.values()) == {5}


def test_live_firing_order_is_the_onset_order_whatever_order_the_onsets_are_decided_in():
    """Onset events come when decided; a muscle that fired 5 ms earlier may be decided
    later (bridge-reps seed 0 at 24 s): the screen showed it second, '(+-5 ms)'."""
    from bridge.session import MuscleEvent

    view = LiveView("t")

    def onset(muscle, t):
        view.on_event(MuscleEvent("onset", "d", 0, muscle, t, t + 0.17, 0.17, 0.1, 0.1))

    onset("hamstring_R", 23.995)
    onset("glute_max_R", 23.990)  # decided after the hamstring, fired 5 ms before it
    onset("erector_R", 24.020)
    text = _render(view)
    assert "R: glute_max_R > hamstring_R (+5 ms) > erector_R (+30 ms)" in text
    assert "+-" not in text
    onset("hamstring_R", 28.0)  # the next rep starts a new sequence
    assert "R: glute_max_R" not in _render(view)
