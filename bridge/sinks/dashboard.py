"""Live web dashboard: a local page with EMG envelopes, events, sway and balance timer.

:class:`Dashboard` serves ``index.html`` and ``app.js`` (package data in
``bridge/dashboard_assets``) and a websocket (``/ws``) on 127.0.0.1 from the
stream's own event loop.  The page draws on plain canvases; no external
library and no network beyond this machine.

The stream calls the sink methods, which only aggregate (cheap, never await):

* ``on_chunk(chunk)`` - EMG chunks go through :class:`bridge.emg.EmgFilter`
  (the envelope) and are reduced to ``emg_points_per_s`` points per second
  (the maximum of each bin, so short bursts stay visible); IMU chunks go
  through :class:`bridge.balance.ImuSway` (tilt-corrected AP/ML acceleration)
  and are averaged down to ``imu_points_per_s``.
* ``on_event(event)`` (or calling the sink) - session events, as the JSON
  objects of ``docs/events.md``; they also drive the activation shading,
  the phase label and the balance timer.  Link changes (the session's ``link``
  events, i.e. the connection's :class:`~bridge.sources.base.LinkState` items)
  keep ``link_down`` in the state while the link is down: the page shows a
  banner until the link is back.  :meth:`stop` (the end of the session) sends
  ``ended``, with ``link_down_at_end`` as the results give it when the link was
  still down, so the page's last state says so after the server is gone.

``GET /state.json`` returns the same state as the websocket's snapshot.

A broadcaster task sends what is new at most ``update_hz`` times per second
(30 by default) whatever the data rate, so a fast replay or a 4 kHz device
costs the browser the same.  Slow browsers are skipped, never waited for.
A browser that connects later first gets a snapshot of the last
``window_s`` seconds.

    dash = Dashboard(port=8765)
    await dash.start()
    print("open", dash.url)
    await run_items(dash.tap(items), session, [dash.on_event])
    await dash.stop()
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import deque
from http import HTTPStatus
from importlib import resources
from typing import AsyncIterator

import numpy as np

from bridge.errors import ConfigError, TransportError
from bridge.session import LinkEvent, MuscleEvent, PhaseEvent
from bridge.sinks.console import link_down_text, link_state_text
from bridge.sinks.jsonl import event_to_dict
from bridge.sources.base import LinkState
from bridge.stream import Gap, SampleChunk

__all__ = ["Dashboard", "DashboardError", "check_port"]

_ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
           "/index.html": ("index.html", "text/html; charset=utf-8"),
           "/app.js": ("app.js", "text/javascript; charset=utf-8")}
_MAX_EVENTS = 200  # kept for late joiners


class DashboardError(TransportError):
    """The dashboard server could not start (port taken, websockets missing...)."""


def _ws():
    try:
        from websockets.asyncio.server import broadcast, serve
        from websockets.datastructures import Headers
        from websockets.http11 import Response
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DashboardError("the dashboard needs the 'websockets' package (>= 13): "
                             "pip install websockets") from exc
    return serve, broadcast, Headers, Response


def check_port(host: str = "127.0.0.1", port: int = 8765) -> None:
    """Raise :class:`DashboardError` now if ``port`` cannot be served (another program
    listens there): commands check before they connect to a wearable or create a
    recording, so the error does not come after those.  Binds and releases the port as
    the server will (SO_REUSEADDR, like asyncio's servers on POSIX)."""
    import socket

    if port == 0:
        return
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            if os.name == "posix":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise DashboardError(f"cannot serve the dashboard on {host}:{port} "
                             f"({exc.strerror or exc}); choose another --port "
                             "(0 picks a free one)") from exc


def _r(x: float, nd: int = 4):
    return round(float(x), nd) if math.isfinite(x) else None


class _EmgAgg:
    """Envelope + max-per-bin reduction of one EMG stream (chunk-invariant)."""

    def __init__(self, c: SampleChunk, points_per_s: float) -> None:
        from bridge.emg import EmgFilter

        self.labels = list(c.labels)
        self.rate = c.rate
        self.filter = EmgFilter(c.samples.shape[1], c.rate)
        self.bin = max(1, int(round(c.rate / points_per_s)))
        self.next_sample: int | None = None
        self.acc = np.zeros(c.samples.shape[1])  # running max of the open bin
        self.in_bin = 0
        self.bin_start = 0

    def add(self, c: SampleChunk, out: list) -> None:
        x = c.samples
        if self.next_sample is not None and c.first_sample != self.next_sample:
            # lost samples: restart the bins at the new position (the filter runs on)
            self.in_bin = 0
        self.next_sample = c.end_sample
        if x.shape[0] == 0:
            return
        if not np.isfinite(x).all():
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        env = self.filter.process(x)
        i = 0
        n = env.shape[0]
        while i < n:
            if self.in_bin == 0:
                self.bin_start = c.first_sample + i
                self.acc[:] = 0.0
            take = min(self.bin - self.in_bin, n - i)
            np.maximum(self.acc, env[i:i + take].max(axis=0), out=self.acc)
            self.in_bin += take
            i += take
            if self.in_bin == self.bin:
                t = (self.bin_start + self.bin / 2) / self.rate
                out.append([_r(t, 3)] + [_r(v, 4) for v in self.acc])
                self.in_bin = 0


class _ImuAgg:
    """Tilt-corrected AP/ML acceleration averaged into bins."""

    def __init__(self, c: SampleChunk, points_per_s: float) -> None:
        from bridge.balance import ImuSway

        self.rate = c.rate
        self.sway = ImuSway(c.rate)
        self.bin = max(1, int(round(c.rate / points_per_s)))
        self.acc = np.zeros(2)
        self.in_bin = 0
        self.bin_start = 0

    def add(self, c: SampleChunk, out: list) -> None:
        x = c.samples
        if x.shape[0] == 0 or x.shape[1] < 6 or not np.isfinite(x).all():
            return  # the sway filter needs whole samples; a lost block is skipped
        apml = self.sway.process(x[:, :6])[:, :2]
        for i in range(apml.shape[0]):  # <= a few dozen samples per chunk at IMU rates
            if self.in_bin == 0:
                self.bin_start = c.first_sample + i
                self.acc[:] = 0.0
            self.acc += apml[i]
            self.in_bin += 1
            if self.in_bin == self.bin:
                m = self.acc / self.bin
                out.append([_r((self.bin_start + self.bin / 2) / self.rate, 3), _r(m[0]),
                            _r(m[1])])
                self.in_bin = 0


class Dashboard:
    """A local live dashboard; see the module docstring.

    ``host`` defaults to 127.0.0.1 (local only); ``port`` 8765, 0 = any free
    port (read :attr:`url` after :meth:`start`).  ``device``: show only this
    device (default: the first one seen).  ``stance_goal``: the single-leg
    countdown shown by the balance timer (the session's ``stance_duration``).
    Call the sink methods from the event loop's thread.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, *, update_hz: float = 30.0,
                 window_s: float = 10.0, emg_points_per_s: float = 60.0,
                 imu_points_per_s: float = 50.0, device: str | None = None,
                 stance_goal: float = 30.0) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be 0-65535 (0 = any free port), got {port!r}")
        for name, v in (("update_hz", update_hz), ("window_s", window_s),
                        ("emg_points_per_s", emg_points_per_s),
                        ("imu_points_per_s", imu_points_per_s)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be a positive number, got {v!r}")
        if update_hz > 120:
            raise ConfigError(f"update_hz must be <= 120 (browsers draw at ~60), got {update_hz}")
        self.host, self.port = host, port
        self.update_hz = float(update_hz)
        self.window_s = float(window_s)
        self.emg_pps, self.imu_pps = float(emg_points_per_s), float(imu_points_per_s)
        self.device = device
        self.stance_goal = float(stance_goal)
        self._server = None
        self._task: asyncio.Task | None = None
        self._clients: set = set()
        self._emg: _EmgAgg | None = None
        self._imu: _ImuAgg | None = None
        # what is new since the last broadcast, and the window kept for late joiners
        self._new_emg: list = []
        self._new_imu: list = []
        self._new_events: list = []
        self._hist_emg: deque = deque()
        self._hist_imu: deque = deque()
        self._hist_events: deque = deque(maxlen=_MAX_EVENTS)
        self._t = 0.0
        self._phase: dict | None = None
        self._stance: dict | None = None
        self._lost = 0
        self._gaps = 0
        self._down: dict | None = None  # the link is down: what the page's banner says
        self._down_rx = 0.0  # time.monotonic() when the latest link change arrived here
        self._lost_at = 0.0  # the loss's host time (as the session's LinkDown.lost_at)
        self._ended: dict | None = None  # set by stop(): the session is over
        self._dirty = False
        self.updates_sent = 0
        self.chunks_seen = 0

    # ---------------------------------------------------------------- server
    @property
    def url(self) -> str:
        """The page's address (valid after :meth:`start`)."""
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        """Start serving the page and the websocket, and the broadcaster."""
        if self._server is not None:
            return
        serve, broadcast, Headers, Response = _ws()
        self._broadcast = broadcast
        self._pages = {}
        for path, (name, ctype) in _ASSETS.items():
            body = resources.files("bridge").joinpath("dashboard_assets", name).read_bytes()
            self._pages[path] = (body, ctype)

        def process_request(connection, request):
            path = request.path.split("?", 1)[0]
            if path == "/ws":
                return None  # the websocket handshake goes on
            page = self._pages.get(path)
            if path == "/state.json":
                page = (json.dumps(self._snapshot(), allow_nan=False).encode(),
                        "application/json")
            status = HTTPStatus.OK if page else HTTPStatus.NOT_FOUND
            body, ctype = page or (b"not found\n", "text/plain; charset=utf-8")
            headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))),
                               ("Cache-Control", "no-store"), ("Connection", "close")])
            return Response(status.value, status.phrase, headers, body)

        try:
            self._server = await serve(self._client, self.host, self.port,
                                       process_request=process_request,
                                       max_size=2 ** 16, ping_interval=20)
        except OSError as exc:
            raise DashboardError(f"cannot serve the dashboard on {self.host}:{self.port} "
                                 f"({exc.strerror or exc}); choose another --port "
                                 "(0 picks a free one)") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        self._task = asyncio.create_task(self._broadcaster(), name="dashboard-broadcaster")

    async def stop(self) -> None:
        """Send what is pending, close the browsers' connections and the server."""
        if self._server is None:
            return
        self._end()
        self._flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> "Dashboard":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _client(self, ws) -> None:
        await ws.send(json.dumps(self._snapshot(), allow_nan=False))
        self._clients.add(ws)
        try:
            async for _ in ws:  # the page sends nothing; wait for it to go away
                pass
        except Exception:  # noqa: BLE001 - a browser closing abruptly is normal
            pass
        finally:
            self._clients.discard(ws)

    async def _broadcaster(self) -> None:
        period = 1.0 / self.update_hz
        while True:
            await asyncio.sleep(period)
            self._flush()

    def _flush(self) -> None:
        if not self._dirty:
            return
        msg = self._message("update", self._new_emg, self._new_imu, self._new_events)
        self._new_emg, self._new_imu, self._new_events = [], [], []
        self._dirty = False
        if self._clients:
            self._broadcast(list(self._clients), json.dumps(msg, allow_nan=False))
        self.updates_sent += 1

    def _message(self, kind: str, emg, imu, events) -> dict:
        return {"type": kind, "t": _r(self._t, 3), "window": self.window_s,
                "labels": self._emg.labels if self._emg else [],
                "emg": emg, "imu": imu, "events": events, "phase": self._phase,
                "stance": self._stance, "link": {"lost": self._lost, "gaps": self._gaps},
                "link_down": self._link_down(), "ended": self._ended}

    def _link_down(self) -> dict | None:
        if self._down is None:
            return None
        # age: s since that change arrived (the page counts on from there)
        return {**self._down, "age": _r(time.monotonic() - self._down_rx, 3)}

    def _end(self) -> None:
        """The session is over: say so, and whether the link was down at the end."""
        down = None
        if self._down is not None:
            d = self._down
            # as the session's LinkDown (the summary's "Link DOWN at the end" line)
            down = {"since": d["since"], "reason": d["reason"],
                    "down_for": max(d["down_for"], time.monotonic() - self._lost_at),
                    "reconnect_attempts": d["attempts"], "gave_up": d["state"] == "gave_up",
                    "cut_contractions": d["cut"]}
        self._ended = {"time": _r(self._t, 3), "link_down_at_end": down,
                       "text": link_down_text(down) if down else None}
        self._dirty = True

    def _snapshot(self) -> dict:
        return self._message("snapshot", list(self._hist_emg), list(self._hist_imu),
                             list(self._hist_events))

    # ----------------------------------------------------------------- sinks
    def _mine(self, device: str) -> bool:
        if self.device is None:
            self.device = device
        return device == self.device

    def on_chunk(self, chunk) -> None:
        """Aggregate one stream item (SampleChunk; Gap counts lost samples)."""
        if isinstance(chunk, Gap):
            if self._mine(chunk.device):
                self._lost += chunk.n_samples
                self._gaps += 1
                self._dirty = True
            return
        if not isinstance(chunk, SampleChunk) or not self._mine(chunk.device):
            return
        self.chunks_seen += 1
        if chunk.kind == "emg":
            if self._emg is None:
                self._emg = _EmgAgg(chunk, self.emg_pps)
            if chunk.samples.shape[1] != len(self._emg.labels):
                return
            n0 = len(self._new_emg)
            self._emg.add(chunk, self._new_emg)
            self._hist_emg.extend(self._new_emg[n0:])
            self._t = max(self._t, chunk.end_sample / chunk.rate)
        elif chunk.kind == "imu":
            if self._imu is None:
                self._imu = _ImuAgg(chunk, self.imu_pps)
            n0 = len(self._new_imu)
            self._imu.add(chunk, self._new_imu)
            self._hist_imu.extend(self._new_imu[n0:])
        self._trim()
        self._dirty = True

    def _trim(self) -> None:
        lo = self._t - self.window_s
        while self._hist_emg and self._hist_emg[0][0] < lo:
            self._hist_emg.popleft()
        while self._hist_imu and self._hist_imu[0][0] < lo:
            self._hist_imu.popleft()
        # runaway guards if time stalls (e.g. only one kind of stream)
        cap = int(self.window_s * max(self.emg_pps, self.imu_pps) * 2) + 10
        while len(self._new_emg) > cap:
            self._new_emg.pop(0)
        while len(self._new_imu) > cap:
            self._new_imu.pop(0)

    def on_event(self, event) -> None:
        """Aggregate one session event (queued for the next update)."""
        device = getattr(event, "device", None)
        if device is None or not self._mine(device):
            return
        if isinstance(event, LinkEvent) and isinstance(event.detail, LinkState):
            self._link_change(event)
        elif (isinstance(event, MuscleEvent) and event.kind == "offset"
              and self._down is not None):
            self._down["cut"] += 1  # closed by the end of data while the link is down
        if isinstance(event, PhaseEvent):
            self._phase = {"name": event.name, "arg": event.arg, "start": _r(event.time, 3)}
            if event.name == "stance":
                self._stance = {"leg": event.arg or "left", "phase_start": event.time,
                                "start": None, "touchdowns": [], "result": None,
                                "goal": self.stance_goal}
            elif self._stance is not None and self._stance.get("result") is None:
                self._stance["ended"] = True
        start = self._stance["phase_start"] if self._stance else None
        d = event_to_dict(event, start)
        if d is None:
            return
        kind = d["type"]
        if self._stance is not None:
            if kind == "stance_start" and self._stance["start"] is None:
                self._stance["start"] = d["time"]
            elif kind == "touchdown":
                self._stance["touchdowns"].append(d["time"])
            elif kind == "stance_result":
                self._stance["result"] = {"time_achieved": d.get("time_achieved"),
                                          "goal": d.get("goal"),
                                          "completed": d.get("completed")}
        if kind == "link":
            d["text"] = link_state_text(event.detail)
        if kind in ("status", "ack") or d.get("state") == "retrying":
            # frequent and not worth a line on the page (a retry updates the banner)
            self._dirty = True
            return
        self._new_events.append(d)
        self._hist_events.append(d)
        if len(self._new_events) > _MAX_EVENTS:
            del self._new_events[0]
        self._dirty = True

    def _link_change(self, event: LinkEvent) -> None:
        s: LinkState = event.detail
        if s.state == "reconnected":
            self._down = None  # the hole follows as a Gap, counted in ``link``
            return
        prev = self._down if s.state != "lost" else None
        if prev is None:
            # ``since``: the newest sample's session time when the link dropped
            since = event.time if math.isfinite(event.time) else 0.0
            prev = {"since": since, "reason": s.reason, "attempts": 0, "cut": 0}
            self._lost_at = s.host_time
        self._down = {"device": s.device, "state": s.state, "since": prev["since"],
                      "reason": prev["reason"], "attempt": s.attempt,
                      "attempts": max(prev["attempts"], s.attempt),
                      "retry_in": None if s.retry_in is None else _r(s.retry_in, 3),
                      "down_for": _r(s.down_for, 3), "give_up_after": s.give_up_after,
                      "cut": prev["cut"], "text": link_state_text(s)}
        self._down_rx = time.monotonic()

    __call__ = on_event
    #: As a sink of ``run_items`` the dashboard takes every stream item: gaps count the lost
    #: samples in the page's header (``on_chunk`` alone is handed sample chunks only).
    on_item = on_chunk

    async def tap(self, items: AsyncIterator) -> AsyncIterator:
        """Pass stream items through unchanged, showing each chunk and gap on the way."""
        async for item in items:
            self.on_chunk(item)
            yield item
