"""A session whose link is lost and never comes back says so at the end.

The wearable is switched off mid-session; the user then presses Ctrl-C (or --give-up fires).
The summary, the --json results and the --report page must say that the session ended with
the link down (since when, for how long) -- not "0 gaps, 0 samples lost" -- and a
contraction cut off by the loss counts as a rep, flagged, left out of mean durations; a
cut-off hold is neither met nor failed (docs/analytics.md, "Partial contractions").
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time

import pytest
from rich.console import Console

from bridge.commands.run import Outputs, run_session
from bridge.errors import TransportError
from bridge.runner import SourceEnded, virtual_items
from bridge.session import Session
from bridge.simulator import scenarios
from bridge.sources.base import LinkState
from bridge.stream import DeviceEvent, SampleChunk

REASON = "the device closed the connection"


async def _switched_off_at(cut: float, *, give_up: bool, hang: asyncio.Event | None = None):
    """The demo's items up to ``cut`` s, then the link is lost and never comes back: the
    connection's link items as a live Connection yields them, then its give-up error (or
    it waits for the user's Ctrl-C)."""
    async for item in virtual_items(scenarios.build("demo"), speed=0):
        if isinstance(item, SampleChunk) and item.first_sample / item.rate >= cut:
            break
        yield item
    t0 = time.monotonic()
    yield DeviceEvent("sim", t0, LinkState("sim", "lost", t0, REASON, 0, 0.05, 0.0, 0.3))
    for k in (1, 2):
        await asyncio.sleep(0.1)
        now = time.monotonic()
        yield DeviceEvent("sim", now, LinkState("sim", "retrying", now, "connection refused",
                                                k, 0.1, now - t0, 0.3))
    if give_up:
        await asyncio.sleep(0.15)
        now = time.monotonic()
        yield DeviceEvent("sim", now, LinkState("sim", "gave_up", now, "connection refused",
                                                3, None, now - t0, 0.3))
        raise TransportError("sim: link lost and not back after 0.3 s")
    hang.set()
    await asyncio.sleep(3600)  # reconnecting until Ctrl-C


def _outputs(tmp_path, buf) -> Outputs:
    return Outputs(view="lines", json_path=str(tmp_path / "r.json"),
                   report_path=str(tmp_path / "r.html"),
                   console=Console(file=buf, width=250, highlight=False))


async def test_ctrl_c_after_the_device_went_away_reports_the_link_down(tmp_path):
    buf = io.StringIO()
    hang = asyncio.Event()
    task = asyncio.create_task(run_session(_switched_off_at(17.0, give_up=False, hang=hang),
                                           Session(), _outputs(tmp_path, buf)))
    await asyncio.wait_for(hang.wait(), 60)
    await asyncio.sleep(0.3)  # 0.5 s or more without the link when the user stops
    task.cancel()  # what asyncio.run does on the first Ctrl-C
    results = await task
    assert results["interrupted"] is True
    (dev,) = results["devices"].values()
    down = dev["link_down_at_end"]
    assert down is not None and down["gave_up"] is False
    assert 16.9 < down["since"] <= 17.0 and 0.5 <= down["down_for"] < 10
    assert down["reason"] == REASON and down["reconnect_attempts"] == 2
    # Rep 4 of the bridge set (16.2-18.0 s) was under way on every muscle: cut off by the loss.
    assert down["cut_contractions"] == 6
    cut = [c for c in dev["contractions"] if c["truncated"]]
    assert len(cut) == 6 and all(c["offset"] == pytest.approx(down["since"], abs=0.01)
                                 for c in cut)

    (reps,) = [ph for ph in dev["phases"] if ph["phase"] == "reps"]
    muscles = {m["name"]: m["reps"] for m in reps["summary"]["muscles"]}
    glute = muscles["glute_max_R"]
    assert glute["n_reps"] == 4 and glute["n_partial"] == 1  # counted, flagged
    whole = [r["duration"] for st in glute["sets"] for r in st["reps"] if not r["partial"]]
    assert len(whole) == 3 and glute["mean_duration"] == pytest.approx(sum(whole) / 3)
    assert glute["mean_duration"] > 1.7  # the cut rep (~0.8 s) does not pull it down

    text = buf.getvalue()
    # the contractions closed by the loss are not said to relax
    assert len(re.findall(r"▼ \S+ +cut off after [\d.]+ s", text)) == 6
    assert "Link: 0 gaps, 0 samples lost before the last loss" in text
    line = next(x for x in text.splitlines() if "Link DOWN at the end" in x)
    assert f"lost at {down['since']:.1f} s ({REASON}) and not back after" in line
    assert "no data after" in line and "6 contractions cut off by it" in line
    assert "4 (1 cut off)" in text and "counts as a rep" in text  # the reps table says so

    # The files say the same as the terminal.
    saved = json.loads((tmp_path / "r.json").read_text())
    assert list(saved["devices"].values())[0]["link_down_at_end"] == down
    html = (tmp_path / "r.html").read_text()
    assert "The link was down at the end of the session" in html
    assert "No lost samples" not in html and "No gaps while the link was up" in html
    findings = html.split("Key findings", 1)[1].split("</ul>", 1)[0]
    assert "Link lost at" in findings and "not back" in findings
    assert "cut off" in html.split("Repetitions</h2>", 1)[1].split("<h2>", 1)[0]


async def test_give_up_in_a_hold_reports_the_link_down_and_a_hold_not_known(tmp_path):
    buf = io.StringIO()
    with pytest.raises(SourceEnded, match="not back after"):
        await run_session(_switched_off_at(28.0, give_up=True), Session(),
                          _outputs(tmp_path, buf))
    saved = json.loads((tmp_path / "r.json").read_text())
    assert "ended" in saved
    (dev,) = saved["devices"].values()
    down = dev["link_down_at_end"]
    assert down["gave_up"] is True and down["reconnect_attempts"] == 3
    assert down["down_for"] >= 0.3 and 27.9 < down["since"] <= 28.0
    # 4 s into the 10 s hold every muscle still held: nobody failed, nobody met it.
    (hold,) = [ph for ph in dev["phases"] if ph["phase"] == "hold"]
    glute = hold["holds"]["glute_max_R"]
    (h,) = glute["holds"]
    assert h["partial"] and h["met"] is None and h["shortfall"] is None
    assert glute["n_met"] == 0 and glute["n_partial"] == 1 and glute["mean_sustained"] is None
    text = buf.getvalue()
    assert "gave up)" in text and "Link DOWN at the end" in text
    assert "Hold ? glute_max_R: at least" in text and "not known if met" in text
    assert "Hold ✗" not in text
    html = (tmp_path / "r.html").read_text()
    assert "not known (cut off)" in html and "the stream gave up" in html
    findings = html.split("Key findings", 1)[1].split("</ul>", 1)[0]
    held = (r"glute max R: held at least <span[^>]*>4\.0</span> s of <span[^>]*>10</span> s "
            r"\(cut off\)")
    assert re.search(held, findings), findings


async def test_a_link_that_came_back_is_not_down_at_the_end():
    session = Session()
    t0 = time.monotonic()
    session.handle(DeviceEvent("pod", t0, LinkState("pod", "lost", t0, REASON)))
    session.handle(DeviceEvent("pod", t0 + 1, LinkState("pod", "reconnected", t0 + 1,
                                                        attempt=2, down_for=1.0)))
    session.finish(now=t0 + 5)
    from bridge.results import session_results
    assert session_results(session)["devices"]["pod"]["link_down_at_end"] is None


def test_partial_contractions_count_but_stay_out_of_mean_durations():
    from types import SimpleNamespace as C

    from bridge.analytics import compare_sides, count_reps, hold_timing

    def c(ch, on, off, truncated=False, censored=False):
        return C(channel=ch, onset=on, offset=off, peak=1.0, mean=0.5, pct_mvc=None,
                 truncated=truncated, censored_onset=censored)

    cs = [c(0, 0.0, 1.5, censored=True), c(0, 4.0, 6.0), c(0, 8.0, 10.0), c(0, 12.0, 12.8, True),
          c(1, 4.0, 6.0), c(1, 8.0, 9.0, True)]
    r = count_reps(cs, 0)
    assert r.n_reps == 4 and r.n_partial == 2 and [x.partial for x in r.reps] == \
        [True, False, False, True]
    assert r.mean_duration == pytest.approx(2.0) and r.sets[0].mean_duration == pytest.approx(2.0)
    assert r.sets[0].time_under_tension == pytest.approx(1.5 + 2 + 2 + 0.8)  # as measured
    assert count_reps([c(0, 0.0, 1.0, True)], 0).mean_duration is None

    h = hold_timing([c(0, 0.0, 10.2, True), c(0, 20.0, 24.0, True), c(0, 30.0, 36.0)], 10.0, 0,
                    tolerance=0.25)
    assert [x.met for x in h.holds] == [True, None, False]  # held 10 s; not known; failed
    assert [x.shortfall for x in h.holds] == [0.0, None, pytest.approx(4.0)]
    assert h.n_met == 1 and h.n_partial == 2 and h.n_holds == 3
    assert h.mean_sustained == pytest.approx(6.0) and h.best_sustained == pytest.approx(10.2)
    assert "at least 4.0 s" in h.holds[1].describe() and "2 cut off" in h.describe()

    s = compare_sides(cs, 0, 1)
    assert s.metrics["duration"].left == pytest.approx(2.0)  # complete contractions only
    assert s.metrics["duration"].right == pytest.approx(2.0)
    assert s.metrics["count"].left == 4 and s.metrics["count"].right == 2
