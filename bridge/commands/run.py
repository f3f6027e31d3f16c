"""Run one session from a source to its outputs: the engine behind demo/stream/replay.

A source is any async iterator of stream items: a :class:`Connection`
(live wearable or ``replay://``) or the in-process virtual wearable.  Outputs
are chosen by :class:`Outputs`: the terminal (live screen or one line per
event), JSON Lines on stdout, the dashboard, LSL, a JSON results file and an
HTML report.  The session and its events are the same whatever the outputs.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live

from bridge import _compat
from bridge.commands.outfiles import check_new
from bridge.errors import ConfigError
from bridge.export import Collector
from bridge.results import session_results
from bridge.runner import SourceEnded, run_items
from bridge.session import Session
from bridge.sinks.console import ConsoleSink
from bridge.sources.replay import damage_note


@dataclass
class Outputs:
    """What a run shows and writes."""

    view: str = "auto"  # "live" (full screen), "lines" (one line per event), "jsonl", "quiet"
    json_path: str | None = None
    report_path: str | None = None
    dashboard: bool = False
    age: float | None = None  #: client's age in years: single-leg stance graded by age norms
    dashboard_port: int = 8765
    lsl: bool = False
    title: str = "glutebridge"
    console: Console = field(default_factory=lambda: Console(highlight=False))
    force: bool = False  #: overwrite existing json/report files

    def check_files(self) -> None:
        """Refuse (before anything runs) to overwrite the JSON and report files unless
        ``force``: a session's outputs must not silently replace earlier results."""
        check_new(self.json_path, force=self.force)
        check_new(self.report_path, force=self.force)

    def check_services(self) -> None:
        """Fail now, with one line, if an output cannot run: pylsl missing for ``lsl``, the
        dashboard's port taken.  Commands check before they connect (a BLE link takes
        seconds) and before they create a ``--record`` file, which would then exist and
        block the same command, run again once the cause is fixed."""
        if self.lsl:
            from bridge.sinks.lsl import load_pylsl
            load_pylsl()
        if self.dashboard:
            from bridge.sinks.dashboard import check_port
            check_port(port=self.dashboard_port)


async def run_session(items, session: Session, out: Outputs, *, stats=None,
                      keep_traces: bool = True, extra_sinks=(),
                      live_clock: bool | None = None) -> dict:
    """Drive ``session`` from ``items`` with the outputs of ``out``; return the results.

    ``extra_sinks`` get the events too (e.g. a guided protocol waiting for one).
    ``live_clock``: the items' host times are this process's ``time.monotonic()`` as
    they arrive (live sources).  Not so for a replay (the times recorded, minutes or
    days ago) or the in-process wearable at ``--speed 0`` (a simulated clock from 0):
    there LSL stamps are anchored to now instead.  None: False for a ``replay://``
    connection, else True.
    """
    if live_clock is None:
        from bridge.sources.replay import ReplayTransport
        t = getattr(items, "transport", None)
        t = getattr(t, "inner", t)  # a RecordingTransport records what it wraps
        live_clock = not isinstance(t, ReplayTransport)
    console = out.console
    view = out.view
    if view == "auto":
        view = "live" if console.is_terminal else "lines"
    if view not in ("live", "lines", "jsonl", "quiet"):
        raise ConfigError(f"unknown view {view!r}: choose live, lines, jsonl or quiet")
    sinks: list = list(extra_sinks)
    collector = Collector() if (keep_traces and out.report_path) else None
    if collector is not None:
        sinks.append(_ItemSink(collector.add))
    line_sink = ConsoleSink(console)
    if view == "lines":
        sinks.append(line_sink)
    elif view == "jsonl":
        from bridge.sinks.jsonl import JsonlSink
        sinks.append(JsonlSink(sys.stdout))
    live_view = None
    if view == "live":
        from bridge.sinks.live import LiveView
        live_view = LiveView(out.title)
        sinks.append(live_view)
    ended: SourceEnded | None = None
    async with contextlib.AsyncExitStack() as stack:
        if out.dashboard:
            from bridge.sinks.dashboard import Dashboard
            # the balance timer counts down to the session's goal (--stance-duration)
            dash = Dashboard(port=out.dashboard_port, stance_goal=session.stance_duration)
            await dash.start()
            stack.push_async_callback(dash.stop)
            console.print(f"dashboard: {dash.url}", style="bold")
            sinks.append(dash)
        if out.lsl:
            from bridge.sinks.lsl import LslSink
            lsl = LslSink(host_clock=time.monotonic if live_clock else None)
            stack.callback(getattr(lsl, "close", lambda: None))
            sinks.append(lsl)
        on_tick = None
        if live_view is not None:
            live = stack.enter_context(Live(live_view.render(), console=console,
                                            auto_refresh=False, transient=False))
            on_tick = lambda: live.update(live_view.render(), refresh=True)  # noqa: E731
        try:
            interrupted = await run_items(items, session, sinks, on_tick=on_tick,
                                          stop_on_cancel=True)
        except SourceEnded as exc:
            ended, interrupted = exc, False
    results = session_results(session, age=out.age)
    if ended is not None:
        # The device is gone for good: summarise and save what arrived, then say why.
        results["ended"] = str(ended)
    if interrupted:
        # Ctrl-C (or SIGTERM) ends a live stream: what was received is summarised and saved.
        results["interrupted"] = True
        how = _compat.stopped_by or "Ctrl-C"
        again = "press Ctrl-C again" if how == "Ctrl-C" else f"another {how}"
        _note(console, view, f"stopped ({how}): the results cover the data received so far; "
              f"{again} to quit without them")
    if stats is not None:
        results["link"] = _jsonable(stats() if callable(stats) else stats)
        damage = damage_note(results["link"])
        if damage:  # a replayed file that lost records: the summary, JSON and report say so
            results.setdefault("notes", []).append(damage)
            if view == "jsonl":
                _note(console, view, f"Note: {damage}")
    if view in ("live", "lines"):
        line_sink.summary(results)
    if out.json_path:
        Path(out.json_path).write_text(json.dumps(results, indent=1, default=str))
        _note(console, view, f"results written to {out.json_path}")
    if out.report_path:
        from bridge.report import ReportTraces, write_report
        traces = ReportTraces.from_streams(collector.streams(), results) if collector else None
        write_report(out.report_path, results, traces, title=out.title, age=out.age)
        _note(console, view, f"report written to {out.report_path}")
    if ended is not None:
        raise ended  # one line from the CLI (exit 1), after the summary and files
    return results


class _ItemSink:
    def __init__(self, fn) -> None:
        self.on_item = fn


def _note(console: Console, view: str, text: str) -> None:
    # Keep stdout pure JSON Lines in jsonl mode: notes go to stderr.
    if view == "jsonl":
        print(text, file=sys.stderr)
    elif view != "quiet":
        console.print(text)


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: getattr(o, "__dict__", str(o))))
