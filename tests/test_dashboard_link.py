"""The web dashboard says when the link to the wearable is down, and when the session ended so.

A real link loss: the virtual wearable served over TCP hangs (``Faults.stall_at``), the
connection's no-data watchdog calls the link lost, reconnects once the device answers
again, and when the scenario ends (the server goes away) gives up.  The dashboard runs as
the CLI runs it (a sink of the session, stopped at its end); its state is read over HTTP
and the websocket, and the page in headless Chromium.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import sys

import pytest
from rich.console import Console

from bridge.commands.run import Outputs, run_session
from bridge.results import session_results
from bridge.runner import SourceEnded, run_items
from bridge.session import Session
from bridge.simulator.device import Faults
from bridge.sinks.console import link_down_text, link_state_text
from bridge.sinks.dashboard import Dashboard
from bridge.sources import open as bopen
from bridge.sources.base import LinkState
from bridge.stream import DeviceEvent
from test_dashboard import _close_page, _http, _open_page
from test_link_loss_cli import _env
from test_transport_stream import Served
from transport_checks import make_signals

websockets = pytest.importorskip("websockets", reason="the dashboard needs websockets")
from websockets.asyncio.client import connect  # noqa: E402

STALL = 0.4  # the watchdog's limit (s)
STALL_AT, STALL_FOR = 0.8, 1.0  # the wearable hangs 0.8 s into its 4 s of data
GIVE_UP = 4.0  # s without a link before the connection gives up
STALLED = f"no data for {STALL:.1f} s (link stalled)"


def _served():
    return Served("tcp://127.0.0.1:0", make_signals(4.0, seed=7),
                  Faults(stall_at=(STALL_AT,), stall_for=STALL_FOR), speed=1)


def _open(srv):
    # gives up GIVE_UP s after the server went away at the end of the scenario
    return bopen(srv.info["url"], stall_timeout=STALL, backoff=(0.05, 0.2),
                 reconnect_timeout=GIVE_UP)


async def _noting(conn, changes: list):
    """The connection's items unchanged; its link changes noted (ground truth)."""
    async for item in conn:
        if isinstance(item, DeviceEvent) and isinstance(item.packet, LinkState):
            changes.append(item.packet)
        yield item


def _same_down(page: dict, truth: dict) -> None:
    """The page's link_down_at_end is the results' (down_for up to the ms between them)."""
    assert page.keys() == truth.keys()
    assert {k: v for k, v in page.items() if k != "down_for"} == \
        {k: v for k, v in truth.items() if k != "down_for"}
    assert page["down_for"] == pytest.approx(truth["down_for"], abs=0.3)


async def test_state_over_http_follows_the_link_down_back_and_down_at_the_end():
    changes: list[LinkState] = []
    out = io.StringIO()
    async with _served() as srv:
        async with _open(srv) as conn:
            session = Session()
            run = asyncio.create_task(run_session(
                _noting(conn, changes), session,
                Outputs(view="quiet", dashboard=True, dashboard_port=0,
                        console=Console(file=out, width=200))))
            while not (m := re.search(r"dashboard: http://127\.0\.0\.1:(\d+)/", out.getvalue())):
                assert not run.done(), out.getvalue()
                await asyncio.sleep(0.01)
            port = int(m[1])
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                states, msgs = [], []

                async def reader():
                    async for raw in ws:
                        msgs.append(json.loads(raw))
                rt = asyncio.create_task(reader())
                while not run.done():
                    try:
                        head, body = await _http(port, "/state.json")
                    except ConnectionRefusedError:
                        if run.done():
                            break  # the session ended (and its server with it) meanwhile
                        raise
                    if run.done() and not body:
                        break  # the session ended while asking
                    assert " 200 " in head.splitlines()[0] and "application/json" in head
                    states.append(json.loads(body))
                    await asyncio.sleep(0.05)
                with pytest.raises(SourceEnded):
                    await run
                await asyncio.wait_for(rt, 10)  # the server closed the websocket
    device = conn.device
    results = session_results(session)
    truth = results["devices"][device]["link_down_at_end"]
    assert truth is not None and truth["gave_up"]

    # the stall: the state says the link is down, which device, since when, why
    kinds = [c.state for c in changes]
    assert kinds[0] == "lost" and changes[0].reason == STALLED, kinds
    down = [s for s in states if s["link_down"] and s["link_down"]["reason"] == STALLED]
    assert down, [s["link_down"] for s in states]
    first = down[0]["link_down"]
    assert first["device"] == device and first["state"] in ("lost", "retrying")
    assert STALL_AT - 0.1 < first["since"] < STALL_AT + 0.1
    assert first["text"] in [link_state_text(c) for c in changes]  # the terminal's line
    assert first["give_up_after"] == GIVE_UP and first["age"] >= 0
    assert not down[0]["ended"]
    # ... and clears once it is back, with the hole counted as a gap
    i_back = states.index(down[-1]) + 1
    up = []  # the states while the link is back, up to the scenario's end
    for s in states[i_back:]:
        if s["link_down"] is not None and up:
            break
        if s["link_down"] is None:
            up.append(s)
    assert up
    # the hole is counted once the stream has marked it (a moment after the reconnect)
    back = up[-1]
    assert back["link"]["gaps"] >= 1 and back["link"]["lost"] > 0.5 * 2000
    assert back["t"] > STALL_AT + STALL_FOR
    texts = [e.get("text") for e in back["events"] if e["type"] == "link"]
    assert texts[0].startswith(f"link lost: {STALLED}; reconnecting in")
    assert any(t.startswith("reconnected after") for t in texts), texts
    assert not any(e.get("state") == "retrying" for e in back["events"])

    # the end of the scenario: down again; the session ends with it down (gave up)
    end = [s for s in states[i_back:] if s["link_down"]]
    assert end and end[-1]["link_down"]["reason"] != STALLED
    assert msgs and msgs[0]["type"] == "snapshot"
    last = msgs[-1]
    assert last["ended"] is not None and last["link_down"]["state"] == "gave_up"
    _same_down(last["ended"]["link_down_at_end"], truth)
    assert last["ended"]["text"].startswith("Link DOWN at the end: lost at ")
    assert "; gave up)" in last["ended"]["text"]
    assert all(m["ended"] is None for m in msgs[:-1])


async def test_a_session_that_ends_with_the_link_up_says_nothing_about_it():
    dash = Dashboard(port=0)
    await dash.start()
    try:
        async with connect(f"ws://127.0.0.1:{dash.port}/ws") as ws:
            assert json.loads(await ws.recv())["link_down"] is None
            await dash.stop()
            msgs = [json.loads(m) async for m in ws]
    finally:
        await dash.stop()
    assert msgs[-1]["ended"] == {"time": 0.0, "link_down_at_end": None, "text": None}


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed (apt-get install chromium)")
async def test_page_banner_while_the_link_is_down_and_at_the_end(tmp_path):
    changes: list[LinkState] = []
    dash = Dashboard(port=0)
    await dash.start()
    proc = ws = None
    try:
        proc, ws, page = await _open_page(dash.url, tmp_path / "profile")
        await page.wait_for("window.gb && window.gb.connected", 30)
        assert await page.eval("document.getElementById('linkbanner').hidden") is True
        async with _served() as srv:
            async with _open(srv) as conn:
                session = Session()
                run = asyncio.create_task(run_items(_noting(conn, changes), session, [dash]))
                seen = []  # (banner text, banner hidden) as the page showed them
                while not run.done():
                    seen.append((await page.eval("window.gb.banner"),
                                 await page.eval("document.getElementById('linkbanner').hidden")))
                    await asyncio.sleep(0.1)
                with pytest.raises(SourceEnded):
                    await run
                await dash.stop()  # as run_session does at the end of the session
        device = conn.device
        # the server is gone: the page says so and keeps the end's link state
        await page.wait_for("document.getElementById('conn').textContent === 'session ended'",
                            10)
        final = await page.eval("window.gb.banner")
        assert await page.eval("document.getElementById('linkbanner').hidden") is False
        assert await page.eval("window.gb.error") is None
    finally:
        await _close_page(ws, proc)
        await dash.stop()

    # during the stall: a banner with the device, since when, and the terminal's line
    stalled = [(b, h) for b, h in seen if STALLED in b]
    assert stalled and not any(h for _, h in stalled), seen
    head, detail = stalled[0][0].split("\n")
    m = re.fullmatch(rf"Link LOST: {re.escape(device)} \u2014 no data since (\d+\.\d) s "
                     r"\(session time\), for (\d+) s", head)
    assert m and abs(float(m[1]) - STALL_AT) <= 0.15, head
    assert detail in [link_state_text(c) for c in changes]
    assert detail.startswith(f"link lost: {STALLED}") or detail.startswith("no link for")
    # it counts on while no update comes
    fors = [int(re.search(r"for (\d+) s\n", b)[1]) for b, _ in stalled]
    assert fors == sorted(fors)
    # ... and goes away when the link is back (before the end's loss)
    k = seen.index(stalled[-1]) + 1
    assert ("", True) in seen[k:], seen[k:]
    # the end: the session ended with the link down; the page keeps saying so
    truth = session_results(session)["devices"][device]["link_down_at_end"]
    head, detail = final.split("\n")
    assert head == "Session ended with the link down"
    assert detail.startswith("Link DOWN at the end: lost at ") and "; gave up)" in detail
    # the summary's line (down_for to the ms between session end and server stop)
    same = re.sub(r"after \d+\.\d s", "after X s", detail)
    assert same == re.sub(r"after \d+\.\d s", "after X s", link_down_text(truth))


_DYING = r"""
import asyncio, time
from bridge.session import LinkEvent
from bridge.sinks.dashboard import Dashboard
from bridge.sources.base import LinkState

async def main():
    dash = Dashboard(port=0)
    await dash.start()
    dash.on_event(LinkEvent("pod", "link", 12.5, LinkState(
        "pod", "lost", time.monotonic(), "the device closed the connection", retry_in=0.5)))
    print(dash.url, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed (apt-get install chromium)")
async def test_page_keeps_the_link_down_when_the_dashboard_process_dies(tmp_path):
    """No end message (the process was killed): the page still says the link was down."""

    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DYING, env=_env(), stdout=asyncio.subprocess.PIPE)
    proc = ws = None
    try:
        url = (await asyncio.wait_for(server.stdout.readline(), 30)).decode().strip()
        proc, ws, page = await _open_page(url, tmp_path / "profile")
        await page.wait_for("window.gb && window.gb.connected && window.gb.banner", 30)
        head = (await page.eval("window.gb.banner")).split("\n")[0]
        assert head.startswith("Link LOST: pod \u2014 no data since 12.5 s (session time), for ")
        server.kill()
        await server.wait()
        await page.wait_for("document.getElementById('conn').textContent === 'disconnected'",
                            10)
        await asyncio.sleep(0.6)
        head, detail = (await page.eval("window.gb.banner")).split("\n")
        assert head.startswith("Dashboard disconnected while the link was down. Link LOST: "
                               "pod \u2014 no data since 12.5 s (session time), for ")
        assert detail.startswith("link lost: the device closed the connection; reconnecting")
        assert await page.eval("document.getElementById('linkbanner').className") == "ended"
        # the count stopped with the server
        await asyncio.sleep(1.2)
        assert (await page.eval("window.gb.banner")).split("\n")[0] == head
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
        await _close_page(ws, proc)
