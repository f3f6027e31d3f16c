"""A session without protocol phases: the report shows the whole-session summary that the
terminal summary and `analyze` show (it used to say "No reps phase in this session")."""

from __future__ import annotations

import asyncio
import json
import re
from html import unescape

from bridge.report import render_report
from bridge.results import session_results
from bridge.runner import run_items, virtual_items
from bridge.session import Session
from bridge.simulator.device import Faults, Signals
from bridge.simulator.emg_model import Burst, simulate_emg

LABELS = ("glute_max_L", "glute_max_R", "hamstring_L", "hamstring_R")


def _results(onsets=tuple(1.0 + 3.0 * k for k in range(6)), duration=20.0) -> dict:
    bursts = []
    for t in onsets:
        bursts += [Burst(2, t, t + 2.0, 0.3), Burst(3, t, t + 2.0, 0.3),
                   Burst(0, t + 0.12, t + 2.0, 0.25), Burst(1, t + 0.05, t + 2.0, 0.4)]
    emg, _ = simulate_emg(2000, duration, bursts, channels=4, snr_db=15, seed=4)
    import numpy as np
    sig = Signals(emg, 2000.0, LABELS, np.empty((0, 6)), 200.0)  # no markers: no phases

    async def go():
        s = Session()
        await run_items(virtual_items(sig, speed=0, faults=Faults(seed=1), device="pod"), s, [])
        return session_results(s)
    return asyncio.run(go())


def _numbers(page: str) -> list[tuple[list, float, str]]:
    return [(json.loads(unescape(p)), float(s), t) for p, s, t in re.findall(
        r'<span class="num" data-path="([^"]*)" data-scale="([^"]*)">([^<]*)</span>', page)]


def test_report_of_a_session_without_phases_shows_its_reps_firing_and_symmetry():
    res = _results()
    dev = res["devices"]["pod"]
    assert dev["phases"] == [] and dev["summary"] is not None
    page = render_report(res)
    assert "No reps phase in this session" not in page
    assert "firing order not available" not in page
    assert "No paired left/right muscles" not in page
    assert "Nothing to summarise" not in page
    # the summary's numbers are on the page, traceable to devices.pod.summary
    paths = [p for p, _, _ in _numbers(page)]
    summ = [p for p in paths if p[:3] == ["devices", "pod", "summary"]]
    for key in ("muscles", "left", "right", "symmetry"):
        assert any(p[3] == key for p in summ), key
    # and they are the results' numbers (reps counted, latency of the glute shown as the JSON)
    for path, scale, text in _numbers(page):
        v = res
        for k in path:
            v = v[k]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            digits = len(text.split(".")[1]) if "." in text else 0
            assert abs(float(text) - v * scale) <= 0.5 * 10 ** -digits + 1e-9, (path, text)
    reps = {m["name"]: m["reps"]["n_reps"] for m in dev["summary"]["muscles"]}
    assert reps == dict.fromkeys(LABELS, 6)
    lat = dev["summary"]["left"]["firing"]["latency"]["hamstring_L"]["median"]
    assert -0.17 < lat < -0.07  # glute_max_L fires 120 ms after hamstring_L
    assert re.search(r"glute max L fires <span[^>]*>\d+</span>&#8201;ms after hamstring L",
                     page)


def test_a_signed_number_that_rounds_to_zero_has_no_minus():
    from bridge.report.markup import _Node

    assert ">+0.0<" in _Node(-0.0004, ("x",)).num(1, sign=True)
    assert ">-0.1<" in _Node(-0.06, ("x",)).num(1, sign=True)
    assert ">+0<" in _Node(-0.0004, ("x",)).ms(sign=True)


def test_terminal_summary_shows_the_sets_the_report_and_json_count():
    """Two sets of 3 reps 25 s apart: the JSON and the report had 2 sets, the terminal
    showed '6' reps and nothing about sets."""
    from rich.console import Console

    from bridge.sinks.console import ConsoleSink

    onsets = (1.0, 4.0, 7.0, 34.0, 37.0, 40.0)  # 25 s rest after the third rep
    res = _results(onsets, duration=44.0)
    muscles = res["devices"]["pod"]["summary"]["muscles"]
    assert {m["name"]: [s["n_reps"] for s in m["reps"]["sets"]] for m in muscles} == \
        dict.fromkeys(LABELS, [3, 3])
    console = Console(width=120, record=True, file=open("/dev/null", "w"))
    ConsoleSink(console).summary(res)
    text = console.export_text()
    header = next(line for line in text.splitlines() if "muscle" in line)
    assert "sets" in header and "MDF over reps" in header
    for name in LABELS:
        row = next(line for line in text.splitlines() if line.lstrip().startswith(name + " "))
        assert "2 (3/3)" in row, row
    # one set: no sets column (the table reads as before)
    one = _results()
    console = Console(width=120, record=True, file=open("/dev/null", "w"))
    ConsoleSink(console).summary(one)
    assert "sets" not in console.export_text()
