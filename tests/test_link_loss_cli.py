"""A live stream whose device goes away says so at once, keeps trying, and Ctrl-C ends it.

Real processes as a user runs them: ``glutebridge simulate --serve tcp://...`` in one,
``glutebridge stream tcp://...`` in another; plus the Connection's link items directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bridge.errors import TransportError
from bridge.simulator.serve import serve
from bridge.sources import open as bopen
from bridge.sources.base import LinkState, Transport
from bridge.stream import DeviceEvent
from transport_checks import aio_timeout, make_signals

REPO = Path(__file__).resolve().parent.parent


def _cmd(*args) -> list[str]:
    exe = shutil.which("glutebridge")
    return ([exe] if exe else [sys.executable, "-m", "bridge.cli"]) + [str(a) for a in args]


def _env() -> dict:
    return dict(os.environ, COLUMNS="200",
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Lines:
    """Read a process's stdout in a thread: (arrival time, line) pairs, waitable."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.q: queue.Queue = queue.Queue()
        self.seen: list[tuple[float, str]] = []
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, fh) -> None:
        for line in fh:
            self.q.put((time.monotonic(), line.rstrip("\n")))
        self.q.put(None)

    def wait_for(self, text: str, timeout: float) -> tuple[float, str]:
        for t, line in self.seen:
            if text in line:
                return t, line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line with {text!r} within {timeout} s; got:\n"
                                     + "\n".join(x for _, x in self.seen[-30:]))
            try:
                got = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if got is None:
                raise AssertionError(f"output ended without {text!r}:\n"
                                     + "\n".join(x for _, x in self.seen[-30:]))
            self.seen.append(got)
            if text in got[1]:
                return got

    def rest(self) -> str:
        while True:
            try:
                got = self.q.get(timeout=10)
            except queue.Empty:
                break
            if got is None:
                break
            self.seen.append(got)
        return "\n".join(x for _, x in self.seen)


def _listening(proc: subprocess.Popen, port: int) -> subprocess.Popen:
    """``proc`` once it accepts TCP connections on ``port`` (it must not exit first)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("simulator did not start listening")


def _simulator(port: int, speed: float, cwd) -> subprocess.Popen:
    proc = subprocess.Popen(_cmd("simulate", "--serve", f"tcp://127.0.0.1:{port}",
                                 "--scenario", "demo", "--speed", speed),
                            cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return _listening(proc, port)


def _stream(port: int, cwd, *args) -> subprocess.Popen:
    """``glutebridge stream tcp://127.0.0.1:PORT --view lines ARGS`` with text pipes."""
    return subprocess.Popen(_cmd("stream", f"tcp://127.0.0.1:{port}", "--view", "lines", *args),
                            cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_stream_reports_link_loss_reconnects_and_ctrl_c_summarises(tmp_path):
    port = _free_port()
    sim = _simulator(port, 40, tmp_path)  # the 93 s demo in ~2.3 s, then it ends
    stream = _stream(port, tmp_path, "--record", "r.gbrec", "--json", "r.json")
    try:
        lines = _Lines(stream)
        lines.wait_for("connected:", 30)
        # The scenario ends: the simulator says so and exits cleanly (no asyncio traceback).
        out, err = sim.communicate(timeout=60)
        ended = time.monotonic()
        assert sim.returncode == 0, err
        assert "scenario finished" in out and "clients disconnected" in out
        assert "Traceback" not in err and "CancelledError" not in err, err

        # The stream says so at once, and that it keeps trying.
        t_lost, lost = lines.wait_for("link lost:", 10)
        assert t_lost - ended < 2.0, (t_lost - ended, lost)
        assert "device closed the connection" in lost and "reconnecting in" in lost
        assert "keeps trying" in lost and "Ctrl-C" in lost
        _, retry = lines.wait_for("(attempt 2)", 5)
        assert "no link for" in retry and "connection refused" in retry

        # The device is back (a new simulator on the same port): reconnects, says so.
        sim = _simulator(port, 1, tmp_path)
        _, back = lines.wait_for("reconnected after", 10)
        assert "the gap is marked" in back

        # Ctrl-C on the simulator while the host is connected: a clean stop, said so.
        time.sleep(0.5)
        sim.send_signal(signal.SIGINT)
        out, err = sim.communicate(timeout=30)
        assert "simulator stopped (Ctrl-C)" in out, (out, err)
        assert "Traceback" not in err, err
        lines.wait_for("link lost:", 5)

        # Ctrl-C on the stream while it is reconnecting: it ends with the summary.
        stream.send_signal(signal.SIGINT)
        stream.wait(timeout=60)
        text = lines.rest()
        assert stream.returncode == 0, stream.stderr.read()
        assert "stopped (Ctrl-C)" in text and "Summary" in text
        res = json.loads((tmp_path / "r.json").read_text())
        assert res["interrupted"] is True
        # two losses (the scenario's end, the Ctrl-C'd simulator), one reconnect; on a
        # loaded machine a stall of the fast simulator can add a loss and its reconnect
        link = res["link"]
        assert link["link_losses"] >= 2 and link["link_losses"] == link["reconnects"] + 1, link
        assert link["link_losses"] - link["stalls"] == 2, link
        # It ended with the link down: the summary and the file say so (and since when).
        (dev,) = res["devices"].values()
        down = dev["link_down_at_end"]
        assert down is not None and not down["gave_up"] and down["down_for"] > 0
        assert "Link DOWN at the end: lost at" in text
    finally:
        for p in (sim, stream):
            if p.poll() is None:
                p.kill()
                p.wait()


# ------------------------------------------------------------ the Connection's items
def _changes(items) -> list[LinkState]:
    return [i.packet for i in items if isinstance(i, DeviceEvent)
            and isinstance(i.packet, LinkState)]


def _position(items, change: LinkState) -> int:
    """Index in ``items`` of the DeviceEvent carrying ``change``."""
    return next(k for k, i in enumerate(items) if getattr(i, "packet", None) is change)


def _consume_into(conn, items: list) -> asyncio.Task:
    """A task appending every item of ``conn`` to ``items`` (cancel it to stop)."""
    async def consume():
        async for item in conn:
            items.append(item)
    return asyncio.create_task(consume())


async def _served(stop: asyncio.Event, seconds: float, speed: float, port: int = 0):
    ready = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(f"tcp://127.0.0.1:{port}", make_signals(seconds),
                                     stop=stop, speed=speed, on_ready=ready.set_result))
    info = await asyncio.wait_for(ready, 5)
    return task, info["url"]


async def test_connection_reports_lost_retrying_and_gave_up_in_order():
    stop = asyncio.Event()
    task, url = await _served(stop, 1.0, 4)
    items: list = []
    async with bopen(url, backoff=(0.05, 0.2), reconnect_timeout=0.6) as conn:
        assert conn.link_events  # tcp: on by default
        with pytest.raises(TransportError, match="not back after"):
            async with aio_timeout(10):
                async for item in conn:
                    items.append(item)
    await task
    ch = _changes(items)
    assert [c.state for c in ch][0] == "lost" and ch[-1].state == "gave_up"
    assert {c.state for c in ch[1:-1]} == {"retrying"}
    assert ch[0].attempt == 0 and ch[0].retry_in == 0.05 and ch[0].give_up_after == 0.6
    assert [c.attempt for c in ch[1:]] == list(range(1, len(ch)))
    assert all(b.down_for >= a.down_for for a, b in zip(ch[1:], ch[2:]))
    assert ch[-1].down_for > 0.6 and "refused" in ch[-1].reason
    assert not ch[0].reason.startswith("tcp://")  # the URL is not repeated in the reason
    # The loss comes after the last sample the link delivered: in order with the data.
    assert _position(items, ch[0]) > 0


async def test_connection_reports_reconnected_before_the_gap():
    stop = asyncio.Event()
    port = _free_port()
    task, url = await _served(stop, 0.8, 4, port)
    items: list = []
    async with bopen(url, backoff=(0.05, 0.1)) as conn:
        consumer = _consume_into(conn, items)
        await task  # the device played everything and hung up
        await asyncio.sleep(0.3)  # a few failed attempts
        stop2 = asyncio.Event()
        task2, _ = await _served(stop2, 2.0, 4, port)  # back on the same port
        for _ in range(100):
            if any(c.state == "reconnected" for c in _changes(items)):
                break
            await asyncio.sleep(0.05)
        stop2.set()
        await task2
        consumer.cancel()
    ch = _changes(items)
    states = [c.state for c in ch]
    assert states[0] == "lost" and "retrying" in states and "reconnected" in states
    back = ch[states.index("reconnected")]
    assert back.attempt >= 2 and back.down_for >= 0.3
    from bridge.stream import SampleChunk
    # No sample between the loss and "reconnected": the new link's data come after it.
    i_lost, i_back = _position(items, ch[0]), _position(items, back)
    assert not any(isinstance(i, SampleChunk) for i in items[i_lost:i_back])
    assert any(isinstance(i, SampleChunk) for i in items[:i_lost])
    assert any(isinstance(i, SampleChunk) for i in items[i_back:])
    assert conn.stats["reconnects"] == 1


async def test_sim_and_replay_sources_do_not_report_link_items_by_default():
    from bridge.sources import make_transport
    from bridge.sources.base import Connection

    t = make_transport("sim://test", signals=make_signals(0.5))
    assert Connection(t).link_events is False
    assert Connection(t, link_events=True).link_events is True
    assert Connection(make_transport("tcp://127.0.0.1:9")).link_events is True


# ------------------------------------------------------------------ the views
def _link(state, attempt=0, down=0.0, reason="the device closed the connection", retry=0.05):
    return DeviceEvent("pod", 100.0 + down, LinkState("pod", state, 100.0 + down, reason,
                                                      attempt, retry, down))


def test_lines_view_prints_every_change_but_throttles_a_long_outage():
    import io

    from rich.console import Console

    from bridge.sinks.console import ConsoleSink

    buf = io.StringIO()
    sink = ConsoleSink(Console(file=buf, width=300, highlight=False))
    sink.on_item(_link("lost"))
    for k in range(1, 40):  # 39 failed attempts, 2 s apart: 78 s without the device
        sink.on_item(_link("retrying", k, 2.0 * k, "connection refused", 2.0))
    sink.on_item(_link("reconnected", 40, 79.0))
    lines = buf.getvalue().splitlines()
    assert "link lost: the device closed the connection; reconnecting in 0.1 s (attempt 1), " \
           "keeps trying until the device is back — Ctrl-C to stop" in lines[0]
    assert "no link for 2.0 s: connection refused; reconnecting in 2.0 s (attempt 2)" in lines[1]
    assert "no link for 4.0 s; reconnecting" in lines[2]  # the same reason is not repeated
    retries = [x for x in lines if "no link for" in x]
    assert 8 <= len(retries) <= 12  # first attempts, then about one line per 10 s
    assert "reconnected after 79.0 s (40 attempts); the gap is marked" in lines[-1]


def test_live_view_headline_shows_the_lost_link_until_it_is_back():
    from rich.console import Console

    import io

    from bridge.sinks.live import LiveView

    view = LiveView("t")
    console = Console(width=200, record=True, file=io.StringIO())

    def screen():
        console.print(view.render())
        return console.export_text(clear=True)

    assert "link LOST" not in screen()
    view.on_item(_link("lost"))
    view.on_item(_link("retrying", 3, 1.5, "connection refused", 0.4))
    text = screen()
    assert "link LOST for" in text and "reconnecting (attempt 4)" in text
    assert "link lost: the device closed the connection" in text  # in the events panel
    view.on_item(_link("reconnected", 4, 2.0))
    text = screen()
    assert "link LOST" not in text and "reconnected after 2.0 s" in text


def test_give_up_ends_the_session_with_its_summary_and_one_error_line(tmp_path):
    port = _free_port()
    sim = _simulator(port, 40, tmp_path)  # the 93 s demo in ~2.3 s, then it ends
    stream = _stream(port, tmp_path, "--give-up", "1.5", "--json", "r.json")
    try:
        sim.communicate(timeout=60)
        out, err = stream.communicate(timeout=30)
    finally:
        for p in (sim, stream):
            if p.poll() is None:
                p.kill()
    assert stream.returncode == 1
    assert "Repetitions" in out and "link lost:" in out  # the summary of what arrived
    assert "glutebridge: error:" in err and "Traceback" not in err, err
    res = json.loads((tmp_path / "r.json").read_text())
    assert "ended" in res
    (dev,) = res["devices"].values()
    assert len(dev["contractions"]) >= 20
    down = dev["link_down_at_end"]  # not "0 gaps, 0 samples lost" and nothing else
    assert down["gave_up"] and down["down_for"] > 1.5 and down["reconnect_attempts"] >= 1
    assert f"Link DOWN at the end: lost at {down['since']:.1f} s" in out


# ------------------------------------------------------- a link that goes quiet
def _hanging_simulator(port: int, after: float, stall_for: float, cwd) -> subprocess.Popen:
    """The demo served over TCP by a wearable that hangs ``after`` s after the host's first
    START, for ``stall_for`` s: the connection stays open, nothing arrives (``Faults.stall_at``
    on the device's clock, set at START so the host's start-up time does not matter)."""
    code = ("import asyncio\n"
            "import firmware_protocol as fp\n"
            "from bridge.simulator.device import Faults, VirtualWearable\n"
            "from bridge.simulator.scenarios import build\n"
            "from bridge.simulator.serve import serve\n"
            "class Hangs(VirtualWearable):\n"
            "    def handle(self, cmd):\n"
            "        if cmd.opcode == fp.Opcode.START and not self.faults.stall_at:\n"
            f"            self.faults = Faults(stall_at=(self.time + {after},),\n"
            f"                                 stall_for=float('{stall_for}'))\n"
            "        return super().handle(cmd)\n"
            f"asyncio.run(serve('tcp://127.0.0.1:{port}', None, wearable=Hangs(build('demo'))))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return _listening(proc, port)


def test_stream_says_a_stalled_link_is_lost_reconnects_and_marks_the_gap(tmp_path):
    port = _free_port()
    # A 1 s watchdog (not shorter): two processes plus pytest share the CI machine's
    # 2 cores, and a simulator descheduled for half a second is a real (false) stall.
    sim = _hanging_simulator(port, 1.0, 2.5, tmp_path)
    stream = _stream(port, tmp_path, "--stall", "1", "--json", "r.json")
    try:
        lines = _Lines(stream)
        lines.wait_for("connected:", 30)
        t_lost, lost = lines.wait_for("link lost:", 10)
        assert "link lost: no data for 1.0 s (link stalled); reconnecting in 0.1 s" in lost
        assert "keeps trying" in lost
        t_back, back = lines.wait_for("reconnected after", 10)
        assert "the gap is marked" in back
        # the hang (2.5 s) less the 1 s watchdog, plus a HELLO round (1 s), plus slack
        assert t_back - t_lost < 2.5 - 1.0 + 1.0 + 1.5
        lines.wait_for("(while disconnected; stream 1), marked as a gap", 5)
        stream.send_signal(signal.SIGINT)
        stream.wait(timeout=60)
        text = lines.rest()
        assert stream.returncode == 0, stream.stderr.read()
        assert "Summary" in text
    finally:
        for p in (sim, stream):
            if p.poll() is None:
                p.kill()
                p.wait()
    link = json.loads((tmp_path / "r.json").read_text())["link"]
    assert link["stalls"] == 1 and link["link_losses"] == 1 and link["reconnects"] == 1
    assert link["stall_timeout"] == 1.0


def test_stream_gives_up_on_a_device_that_stays_hung(tmp_path):
    port = _free_port()
    sim = _hanging_simulator(port, 1.0, float("inf"), tmp_path)
    stream = _stream(port, tmp_path, "--stall", "0.5", "--give-up", "1", "--json", "r.json")
    try:
        out, err = stream.communicate(timeout=30)
    finally:
        for p in (sim, stream):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert stream.returncode == 1, err
    assert "link lost: no data for 0.5 s (link stalled)" in out
    assert "gives up after 1 s without it" in out
    assert "gave up: no link for" in out and "Summary" in out
    assert "glutebridge: error:" in err and "not back after 1 s" in err
    assert "Traceback" not in err, err
    res = json.loads((tmp_path / "r.json").read_text())
    assert "ended" in res and res["link"]["stalls"] == 1


# ------------------------------------------------- BlueZ itself goes away (BLE)
@pytest.mark.skipif(shutil.which("dbus-daemon") is None,
                    reason="dbus-daemon not installed (apt-get install dbus-daemon)")
def test_ble_stream_whose_bus_dies_ends_with_one_error_line(tmp_path):
    """The wearable is served on a private D-Bus (fake BlueZ); the simulator, and with it the
    bus, goes away mid-stream.  The stream gives up with its summary and one error line: no
    'Future exception was never retrieved' traceback from the client's dead D-Bus connection."""
    sim = subprocess.Popen(_cmd("simulate", "--serve", "ble", "--scenario", "demo",
                                "--speed", "4"),
                           cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    stream = None
    try:
        lines = _Lines(sim)
        _, export = lines.wait_for("export DBUS_SYSTEM_BUS_ADDRESS=", 30)
        _, url = lines.wait_for("url: ble://", 10)
        env = dict(_env(), DBUS_SYSTEM_BUS_ADDRESS=export.split("=", 1)[1].strip())
        stream = subprocess.Popen(_cmd("stream", url.split("url:", 1)[1].strip(), "--view",
                                       "lines", "--give-up", "1"),
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        out_lines = _Lines(stream)
        out_lines.wait_for("fires", 30)  # data arrives over BLE and is analysed
        sim.send_signal(signal.SIGINT)   # the simulator stops its dbus-daemon on the way out
        sim.communicate(timeout=30)
        stream.wait(timeout=60)
        err = stream.stderr.read()
        out = out_lines.rest()
    finally:
        for p in (sim, stream):
            if p is not None and p.poll() is None:
                p.kill()
    assert stream.returncode == 1, (out, err)
    assert "glutebridge: error:" in err and "not back after 1 s" in err, err
    assert "Traceback" not in err and "never retrieved" not in err, err
    assert err.strip().count("\n") == 0, err  # one line


class _BackWithData(Transport):
    """A transport whose device, after a link loss, answers the reconnect's HELLO and
    sends samples right behind the DEVICE_INFO in the same read (a wearable that kept
    streaming): the case where the samples could overtake the "reconnected" item."""

    url = "scripted://back-with-data"

    @property
    def reports_link(self) -> bool:
        return True

    def __init__(self) -> None:
        from bridge.simulator.device import VirtualWearable
        self.wearable = VirtualWearable(make_signals(3.0, seed=2))
        self.sink = None
        self.opens = 0

    async def open(self, sink) -> None:
        self.sink = sink
        self.opens += 1

    async def write(self, data: bytes) -> None:
        reply = self.wearable.receive(data)
        if self.opens > 1:
            reply += self.wearable.advance(0.2)  # in the same read as DEVICE_INFO
        loop = asyncio.get_running_loop()
        loop.call_soon(self.sink.data_received, reply, time.monotonic())

    async def close(self) -> None:
        pass


async def test_reconnected_comes_before_samples_that_arrive_with_the_device_info():
    from bridge.sources import Connection
    from bridge.stream import Gap, SampleChunk

    t = _BackWithData()
    items: list = []
    async with Connection(t, backoff=(0.01, 0.05)) as conn:
        consumer = _consume_into(conn, items)
        t.sink.data_received(t.wearable.advance(0.3), time.monotonic())
        await asyncio.sleep(0.05)
        t.sink.link_lost(ConnectionResetError("gone"))
        for _ in range(100):
            if any(c.state == "reconnected" for c in _changes(items)) and \
                    sum(isinstance(i, SampleChunk) for i in items) > 2:
                break
            await asyncio.sleep(0.02)
        consumer.cancel()
    ch = _changes(items)
    assert [c.state for c in ch] == ["lost", "reconnected"], ch
    i_lost, i_back = _position(items, ch[0]), _position(items, ch[1])
    assert any(isinstance(i, SampleChunk) for i in items[:i_lost])
    assert not any(isinstance(i, (SampleChunk, Gap)) for i in items[i_lost:i_back])
    assert any(isinstance(i, SampleChunk) for i in items[i_back:])  # they were not dropped
    assert conn.stats["reconnects"] == 1
