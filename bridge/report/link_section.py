"""Report section on link quality: lost samples per stream, and a link still down at the end."""

from __future__ import annotations

from bridge.report.markup import _e, _Node, _table
from bridge.report.traces import ReportTraces

def _link_down(dev: _Node) -> tuple[str, str]:
    """The session ended with the link down: (paragraph for Link quality, key finding)."""
    down = dev.get("link_down_at_end")
    if not down.value:
        return "", ""
    v = down.value
    tries = v.get("reconnect_attempts") or 0
    n = v.get("cut_contractions") or 0
    para = (f'<p class="bad">The link was down at the end of the session: lost at '
            f"{down.get('since').num(1)} s ({_e(v.get('reason') or '')}) and not back after "
            f"{down.get('down_for').num(1)} s ({down.get('reconnect_attempts').num(0)} reconnect "
            f"attempt{'s' if tries != 1 else ''}" + ("; the stream gave up" if v.get("gave_up")
                                                      else "") + f"). No data after "
            f"{down.get('since').num(1)} s"
            + (f"; {down.get('cut_contractions').num(0)} contraction{'s' if n != 1 else ''} "
               "cut off by it (marked &quot;cut&quot;: counted as reps, left out of mean "
               "durations; a cut-off hold is neither met nor failed)" if n else "") + ".</p>")
    finding = (f'<span class="bad">Link lost at {down.get("since").num(1)} s and not back '
               f"({down.get('down_for').num(1)} s without it when the session ended)</span>: "
               f"the data end there")
    return para, finding


def _link_section(dev: _Node, traces: ReportTraces | None) -> str:
    gaps = dev.get("gaps").list()
    per: dict = {}
    for g in gaps:
        per.setdefault((g.value["stream"], g.value["reason"]), []).append(g)
    down, _ = _link_down(dev)
    if not gaps:
        return down + ("<p>No gaps while the link was up.</p>" if down else
                       "<p>No lost samples: every block arrived.</p>")
    rows = []
    name = dev.path[-1]
    for (stream, reason), gs in sorted(per.items()):
        lost = sum(g.value["n_samples"] for g in gs)
        got = traces.samples.get((name, stream)) if traces else None
        rate = traces.rates.get((name, stream)) if traces else None
        pct = f"{100.0 * lost / (lost + got):.2f}" if got is not None else "n/a"
        ms = f"{1000.0 * lost / rate:.0f}" if rate else "n/a"
        rows.append([str(stream), _e(reason), str(len(gs)), str(lost), ms, pct])
    detail = _table(["stream", "first sample", "samples", "reason"],
                    [[g.get("stream").num(0), g.get("first_sample").num(0),
                      g.get("n_samples").num(0), _e(g.value["reason"])] for g in gaps])
    return (down + _table(["stream", "reason", "gaps", "samples lost", "lost (ms)", "lost (%)"],
                          rows)
            + f"<details><summary>every gap ({len(gaps)})</summary>{detail}</details>"
            + '<p class="note">Lost samples are never bridged: contractions across a long gap '
              "are closed and marked truncated.</p>")
