"""The whole report page: header, key findings, notes, and each device's sections."""

from __future__ import annotations

import datetime as _dt
from importlib import resources
from pathlib import Path

from bridge.errors import ConfigError
from bridge.report.emg_sections import (_contractions_table, _fatigue_section, _firing_section,
                                        _holds_section, _mvc_section, _reps_section,
                                        _symmetry_section)
from bridge.report.link_section import _link_down, _link_section
from bridge.report.markup import _e, _Node
from bridge.report.stance_section import _stance_section
from bridge.report.svg import _timeline_svg
from bridge.report.traces import ReportTraces

def _device_html(dev: _Node, traces: ReportTraces | None, age: float | None,
                 multi: bool) -> tuple[str, list[str]]:
    name = dev.path[-1]
    phases = dev.get("phases").list()
    reps = [(p, p.get("summary")) for p in phases if p.value.get("summary")]
    if dev.value.get("summary"):
        # No protocol phases: the results summarise the reps of the whole session at once
        # (as the terminal summary and analyze show them); without this the report said
        # "No reps phase" and left out the reps, firing order, symmetry and fatigue.
        reps.append((_Node({"phase": "reps", "arg": "whole session"}), dev.get("summary")))
    holds = [(p, p.get("holds")) for p in phases if p.value.get("holds")]
    stances = [(p, r) for p in phases if p.value.get("phase") == "stance"
               for r in p.get("stance").list()]
    sway = (traces.sway.get(name, []) if traces else [])
    emg = traces.emg.get(name) if traces else None
    fire_html, f1 = _firing_section(reps)
    sym_html, f2 = _symmetry_section(reps, dev.get("cross_phase_symmetry").list())
    hold_html, f3 = _holds_section(holds)
    st_html, f4 = _stance_section(stances, sway, age)
    prefix = f"{_e(name)}: " if multi else ""
    out = [f"<h2>{prefix}Activation timeline</h2>",
           _timeline_svg(dev, emg, traces.rates if traces else {}), _contractions_table(dev),
           f"<h2>{prefix}Repetitions</h2>", _reps_section(reps),
           f"<h2>{prefix}Firing order and onset latencies</h2>", fire_html,
           f"<h2>{prefix}Left / right symmetry</h2>", sym_html,
           f"<h2>{prefix}%MVC</h2>", _mvc_section(dev, reps),
           f"<h2>{prefix}Fatigue trend</h2>", _fatigue_section(reps),
           f"<h2>{prefix}Holds</h2>", hold_html,
           f"<h2>{prefix}Single-leg balance</h2>", st_html,
           f"<h2>{prefix}Link quality</h2>", _link_section(dev, traces)]
    _, down = _link_down(dev)  # the first thing to know: the data end where the link did
    return "".join(out), [prefix + x for x in ([down] if down else []) + f1 + f3 + f2 + f4]


def _css() -> str:
    return resources.files("bridge").joinpath("report_assets/report.css").read_text("utf-8")


def render_report(results: dict, traces: ReportTraces | None = None, *,
                  title: str = "glutebridge session report", age: float | None = None,
                  subtitle: str = "") -> str:
    """Render the results tree (:func:`bridge.results.session_results`) as one HTML page.

    ``traces`` adds the envelope and sway curves (see :class:`ReportTraces`);
    ``age`` (years) grades the single-leg stance against age norms.  The page
    has no external resources: CSS and SVG plots are inline.
    """
    if not isinstance(results, dict) or not isinstance(results.get("devices"), dict):
        raise ConfigError("results must be the dict of bridge.results.session_results() "
                          "(with a 'devices' mapping); got " + type(results).__name__)
    if traces is not None and not isinstance(traces, ReportTraces):
        raise ConfigError("traces must be a ReportTraces (ReportTraces.from_streams(...)) or None")
    root = _Node(results)
    devices = root.get("devices").items()
    body, findings = [], []
    for _, dev in devices:
        h, f = _device_html(dev, traces, age, len(devices) > 1)
        body.append(h)
        findings += f
    n_c = sum(len(d.value.get("contractions") or []) for _, d in devices)
    ends = [p.get("end") or p.get("start") or 0.0 for _, d in devices
            for p in d.value.get("phases") or []]
    ends += [c["offset"] for _, d in devices for c in d.value.get("contractions") or []]
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (f'<header class="top"><h1>{_e(title)}</h1><div class="meta">'
            + (f"{_e(subtitle)} &#183; " if subtitle else "")
            + f"device{'s' if len(devices) != 1 else ''}: "
            + ", ".join(_e(n) for n, _ in devices)
            + f" &#183; {max(ends + [0.0]):.0f} s &#183; {n_c} contractions &#183; "
              f"generated {now}</div></header>")
    summary = ("<h2>Key findings</h2><ul class=\"findings\">"
               + "".join(f"<li>{x}</li>" for x in findings) + "</ul>" if findings else
               '<h2>Key findings</h2><p class="note">Nothing to summarise: no reps, holds or '
               "stance tests in this session.</p>")
    notes = [n for n in results.get("notes") or () if isinstance(n, str)]
    if notes:
        summary += ('<h2>Notes on this session</h2><ul class="notes">'
                    + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_css()}</style></head><body><main>"
            + head + summary + "".join(body)
            + "<footer>glutebridge &#183; numbers are those of <code>glutebridge analyze</code> "
              "(the session results JSON); hover a number's path with developer tools "
              "(data-path) to trace it.</footer></main></body></html>\n")


def write_report(path, results: dict, traces: ReportTraces | None = None, **kw) -> Path:
    """Render (see :func:`render_report`) and write the report to ``path``; return the path."""
    path = Path(path)
    html = render_report(results, traces, **kw)
    path.write_text(html, encoding="utf-8")
    return path
