"""Self-contained HTML report of a session: the results tree, plotted and tabled.

The report renders :func:`bridge.results.session_results` -- the same tree
``glutebridge analyze`` prints as JSON -- and never recomputes the
analytics, so its numbers are the analyze numbers.  Every number taken from
the tree is written as ``<span class="num" data-path='[...]' data-scale=..>``
(its JSON path and the unit scale used for display), so tests and curious
users can trace each figure back to the JSON.  The only figures not from the
tree are the norm grades (``bridge.balance.grade_stance`` applied to the
stance results) and the plot geometry.

Plots are inline SVG (no matplotlib, no JavaScript, no network):
activation timeline per muscle (envelope, contraction shading, onsets and
offsets, phases, gaps), onset latencies, left/right bars, hold bars, fatigue
trend, and the sway path with its 95 % prediction ellipse per leg.  The
envelope and sway curves need the raw streams: pass :class:`ReportTraces`
(built from a :class:`bridge.export.Collector`); without them the timeline
shows the detected contractions only.

    results = session_results(session)
    traces = ReportTraces.from_streams(collector.streams(), results)
    write_report("report.html", results, traces, title="Client 12, week 3")

Modules: ``traces`` (the curves, from raw streams), ``markup`` (traceable numbers, words
for JSON keys, tables), ``svg`` (the plots), ``emg_sections``, ``stance_section`` and
``link_section`` (one report section each, with its key findings) and ``page`` (the page
around them, :func:`render_report` and :func:`write_report`).  Import from
``bridge.report``: the split is internal.  The stylesheet stays in
``bridge/report_assets`` (package data of ``bridge``).
"""

from __future__ import annotations

from bridge.report.page import render_report, write_report
from bridge.report.svg import _ellipse_axes  # noqa: F401  (tests check the ellipse maths here)
from bridge.report.traces import EmgTrace, ReportTraces, SwayTrace

__all__ = ["ReportTraces", "EmgTrace", "SwayTrace", "render_report", "write_report"]
