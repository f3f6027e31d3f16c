"""The terminal live view: activation bars, events, counters, balance, link quality.

Fed with stream items (``on_item``) and session events (``on_event``); both
are cheap (aggregate only).  :meth:`LiveView.render` builds the screen; the
runner redraws at most ``fps`` times per second, so the view stays
responsive at any data rate.
"""

from __future__ import annotations

import collections
import time

import numpy as np
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bridge.emg import EmgFilter
from bridge.session import BalanceEvent, LinkEvent, MuscleEvent, PhaseEvent
from bridge.sinks.console import balance_text, link_state_text, mv
from bridge.sources.base import LinkState
from bridge.stream import DeviceEvent, Gap, SampleChunk

_SPARK = "▁▂▃▄▅▆▇█"


class _Muscle:
    __slots__ = ("name", "level", "peak_seen", "active", "since", "reps", "last_duration",
                 "onset", "last_pct")

    def __init__(self, name: str) -> None:
        self.name = name
        self.level = 0.0
        self.peak_seen = 1e-9
        self.active = False
        self.since = 0.0
        self.reps = 0
        self.last_duration: float | None = None
        self.onset: float | None = None
        self.last_pct: float | None = None


class LiveView:
    """State behind the live screen of one session (several devices allowed)."""

    def __init__(self, title: str = "glutebridge", max_events: int = 8) -> None:
        self.title = title
        self.muscles: dict[tuple[str, int], _Muscle] = {}
        self._filters: dict[tuple[str, int], EmgFilter] = {}
        self._sway: dict[str, object] = {}
        self.sway_trace: collections.deque = collections.deque(maxlen=60)
        self.events: collections.deque = collections.deque(maxlen=max_events)
        self.phase = "—"
        self._phase_name: str | None = None  # protocol phase now (None: no marker yet)
        self.phase_start = 0.0
        self.now = 0.0
        self.lost = 0
        self.received = 0
        self.status = None
        self.info = {}
        self.stance: dict | None = None
        self.stance_results: list[str] = []
        self.firing: dict[str, list[tuple[str, float]]] = {}  # side -> recent onsets
        self.link: dict[str, LinkState] = {}  # device -> its latest link change (while down)
        self._started = time.monotonic()

    # -------------------------------------------------------------- intake
    def on_item(self, item) -> None:
        if isinstance(item, SampleChunk):
            self.received += item.n_samples
            self.now = max(self.now, item.end_sample / item.rate)
            if item.kind == "emg":
                self._emg(item)
            else:
                self._imu(item)
        elif isinstance(item, Gap):
            self.lost += item.n_samples
        elif isinstance(item, DeviceEvent) and isinstance(item.packet, LinkState):
            item = item.packet
            if item.state == "reconnected":
                self.link.pop(item.device, None)
            else:
                self.link[item.device] = item
            style = "green" if item.state == "reconnected" else "bold red"
            self._log(self.now, f"[{style}]{escape(link_state_text(item))}[/]")

    def _emg(self, c: SampleChunk) -> None:
        key = (c.device, c.stream)
        f = self._filters.get(key)
        if f is None:
            f = self._filters[key] = EmgFilter(c.samples.shape[1], c.rate)
            for i, name in enumerate(c.labels):
                self.muscles.setdefault((c.device, i), _Muscle(name))
        env = f.process(c.samples)
        if env.shape[0]:
            last = env[-1]
            for i, v in enumerate(last):
                m = self.muscles[(c.device, i)]
                m.level = float(v)
                m.peak_seen = max(m.peak_seen, float(v))

    def _imu(self, c: SampleChunk) -> None:
        from bridge.balance import ImuSway

        s = self._sway.get(c.device)
        if s is None:
            s = self._sway[c.device] = ImuSway(c.rate)
        out = s.process(c.samples)
        if out.shape[0]:
            # One trace point per chunk: the ML sway acceleration (m/s^2).
            self.sway_trace.append(float(out[-1, 1]))

    def on_event(self, ev) -> None:
        if isinstance(ev, MuscleEvent):
            m = self.muscles.setdefault((ev.device, ev.channel), _Muscle(ev.muscle))
            if ev.kind == "onset":
                m.active, m.onset = True, ev.time
                side = "L" if ev.muscle.endswith("_L") else "R" if ev.muscle.endswith("_R") else ""
                rec = self.firing.setdefault(side, [])
                if rec and ev.time - max(t for _, t in rec) > 1.0:
                    rec.clear()  # a new rep: start a new firing sequence
                # Onsets are decided ~0.17 s after they happen, not always in the order they
                # happened (two muscles a few ms apart): keep the sequence in onset order,
                # or the screen showed the later muscle first and the earlier one "+-5 ms".
                rec.append((ev.muscle, ev.time))
                rec.sort(key=lambda mt: mt[1])
                self._log(ev.time, f"[green]▲ {ev.muscle}[/] fires")
            else:
                m.active = False
                # Reps as the summary counts them: contractions of a reps phase (all of
                # them when the session has no protocol phases), not holds or MVCs.
                if self._phase_name in (None, "reps"):
                    m.reps += 1
                k = ev.contraction
                m.last_duration = k.duration if k is not None else None
                m.last_pct = k.pct_mvc if k is not None else None
                self._log(ev.time, f"[red]▼ {ev.muscle}[/] {m.last_duration or 0:.2f} s")
        elif isinstance(ev, PhaseEvent):
            self.phase = ev.name + (f" {ev.arg}" if ev.arg else "")
            self._phase_name = ev.name
            self.phase_start = ev.time
            if ev.name == "stance":
                self.stance = {"leg": ev.arg, "start": None, "touchdowns": 0}
            self._log(ev.time, f"[bold]— {self.phase}[/]")
        elif isinstance(ev, BalanceEvent):
            name = type(ev.event).__name__
            if self.stance is not None:
                if name == "StanceStarted":
                    self.stance["start"] = ev.time
                elif name == "Touchdown":
                    self.stance["touchdowns"] += 1
                elif name == "TrialCompleted":
                    r = ev.event.result
                    self.stance_results.append(f"{r.leg} leg {r.time_achieved:.1f} s of "
                                               f"{r.goal:g} s")
                    self.stance = None
            text = balance_text(ev.event)
            if text:
                self._log(ev.time, f"[cyan]◆ {ev.leg}[/] {text}")
        elif isinstance(ev, LinkEvent):
            if ev.kind == "status":
                self.status = ev.detail
            elif ev.kind == "info" and hasattr(ev.detail, "name"):
                self.info[ev.device] = ev.detail

    def _log(self, t: float, text: str) -> None:
        self.events.append(f"{t:7.2f} s  {text}")

    # -------------------------------------------------------------- screen
    def render(self):
        head = Text.from_markup(
            f"[bold]{self.title}[/]  t = {self.now:6.1f} s   phase: [bold]{self.phase}[/]   "
            + self._link_text())
        table = Table(show_edge=False, pad_edge=False, expand=False)
        for col, kw in (("muscle", {}), ("activation", {"min_width": 26}),
                        ("mV", {"justify": "right"}),
                        ("state", {}), ("%MVC", {"justify": "right"}),
                        ("reps", {"justify": "right"}), ("last", {"justify": "right"})):
            table.add_column(col, **kw)
        # One scale for all muscles (the strongest envelope seen): an idle muscle's noise
        # must not fill its bar the way a per-channel scale would.
        scale = max((m.peak_seen for m in self.muscles.values()), default=1e-9)
        for m in self.muscles.values():
            frac = min(1.0, m.level / scale) if scale > 0 else 0.0
            n = int(round(frac * 24))
            bar = Text("█" * n + "░" * (24 - n), style="green" if m.active else "grey50")
            table.add_row(m.name, bar, mv(m.level),
                          "[bold green]ON[/]" if m.active else "off",
                          f"{m.last_pct:.0f}" if m.last_pct else "",
                          str(m.reps), f"{m.last_duration:.1f} s" if m.last_duration else "")
        parts = [head, table, self._firing_text(), self._balance_text(),
                 Panel("\n".join(self.events) or "waiting for events…", title="events",
                       title_align="left")]
        return Group(*[p for p in parts if p is not None])

    def _link_text(self) -> str:
        down = [s for s in self.link.values()]
        if down:
            # The link is down: that is the headline, with how long and what happens next.
            now = time.monotonic()
            parts = []
            for s in down:
                gone = s.down_for + max(0.0, now - s.host_time)
                who = f"{s.device}: " if len(self.info) > 1 else ""
                if s.state == "gave_up":
                    parts.append(f"{who}link LOST for {gone:.0f} s — gave up")
                else:
                    parts.append(f"{who}link LOST for {gone:.0f} s — reconnecting "
                                 f"(attempt {s.attempt + 1}), Ctrl-C to stop")
            return "[bold red]" + escape("; ".join(parts)) + "[/]"
        total = self.received + self.lost
        loss = 100.0 * self.lost / total if total else 0.0
        text = f"link: {loss:.2f} % lost"
        if self.status is not None:
            pct = getattr(self.status, "battery_pct", 255)
            if pct != 255:
                text += f", battery {pct} %"
        return text

    def _firing_text(self):
        lines = []
        for side in ("L", "R"):
            seq = self.firing.get(side)
            if seq and len(seq) >= 2:
                t0 = seq[0][1]
                lines.append(f"{side}: " + " > ".join(
                    f"{m} (+{(t - t0) * 1000:.0f} ms)" if i else m
                    for i, (m, t) in enumerate(seq)))
        return Text("firing order (last rep)  " + "   ".join(lines)) if lines else None

    def _balance_text(self):
        parts = []
        if self.stance is not None:
            start = self.stance.get("start")
            if start is None:
                parts.append(f"{self.stance['leg']} leg: waiting for the foot to lift…")
            else:
                parts.append(f"{self.stance['leg']} leg: {self.now - start:5.1f} s, "
                             f"{self.stance['touchdowns']} touchdown(s)")
        parts += self.stance_results
        if self.sway_trace:
            v = np.abs(np.asarray(self.sway_trace))
            top = max(float(v.max()), 1e-6)
            spark = "".join(_SPARK[min(7, int(x / top * 7.999))] for x in v)
            parts.append(f"sway (ML) {spark}")
        return Text("balance: " + " | ".join(parts)) if parts else None
