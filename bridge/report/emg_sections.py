"""Report sections on the EMG analytics: reps, firing order, symmetry, %MVC, fatigue, holds,
and the table of every contraction.  Each returns its HTML (and, where it has any, the key
findings it contributes)."""

from __future__ import annotations

from bridge.analytics.symmetry import BALANCED_LSI, side_verdict
from bridge.report.markup import _e, _metric, _muscle, _Node, _table
from bridge.report.svg import _bars_svg, _fatigue_svg, _latency_svg
from bridge.results import CUT_NOTE

def _side_word(side: str) -> str:
    return {"left": "Left", "right": "Right"}.get(side, side)


def _firing_section(reps: list[tuple[_Node, _Node]]) -> tuple[str, list[str]]:
    html, findings = [], []
    for ph, summ in reps:
        for side in ("left", "right"):
            sd = summ.get(side)
            if sd.value is None or sd.value.get("firing") is None:
                continue
            f = sd["firing"]
            ref = f.value["reference"]
            html.append(f"<h3>{_side_word(side)} side &#8212; {_e(ph.value.get('arg') or 'reps')} "
                        f"(reference: {_e(_muscle(ref))})</h3>")
            order = " &#8594; ".join(_e(_muscle(m)) for m in f.value.get("dominant_order") or [])
            html.append(f"<p>Usual firing order: <b>{order or 'n/a'}</b> in "
                        f"{f.get('dominant_count').num(0)} of {f.get('n_reps').num(0)} reps.</p>")
            rows = []
            for m, lat in f.get("latency").items():
                rows.append([_e(_muscle(m)), lat.get("n").num(0), lat.get("median").ms(True),
                             lat.get("mean").ms(True), lat.get("minimum").ms(True),
                             lat.get("maximum").ms(True), lat.get("n_before").num(0)])
                med = lat.value.get("median")
                if med is not None:
                    # latency = onset(muscle) - onset(reference): the reference is late by -med
                    word = "after" if med < 0 else "before"
                    findings.append(
                        f"{_side_word(side)}: {_e(_muscle(ref))} fires "
                        f"{lat.get('median').ms(scale=-1000.0 if med < 0 else 1000.0)} {word} "
                        f"{_e(_muscle(m))} (median of {lat.get('n').num(0)} reps)")
            html.append(_table(["muscle", "reps", f"median vs {_e(_muscle(ref))}", "mean",
                                "min", "max", "fired first"], rows))
            html.append(_latency_svg(f.value))
            per_rep = []
            for r in f.get("reps").list():
                per_rep.append([r.get("index").num(0)]
                               + [r.get("onsets").get(m).num(3) for m in f.value["muscles"]]
                               + [" &#8594; ".join(_e(_muscle(x)) for x in r.value["order"])])
            html.append("<details><summary>onsets per rep</summary>"
                        + _table(["rep"] + [f"{_e(_muscle(m))} (s)" for m in f.value["muscles"]]
                                 + ["order"], per_rep) + "</details>")
            for rt in sd.get("ratios").list():
                metric = _metric(rt.value["metric"])
                html.append(f"<p>Activation ratio {_e(_muscle(rt.value['numerator']))} / "
                            f"{_e(_muscle(rt.value['denominator']))} ({_e(metric)}): "
                            f"<b>{rt.get('ratio').num(2)}</b> (median per rep "
                            f"{rt.get('median_per_rep').num(2)}); above 1 the "
                            f"{_e(_muscle(rt.value['numerator']))} does more of the work.</p>")
    if not html:
        return ('<p class="note">No rep phase with at least two muscles per side: firing order '
                "not available.</p>", findings)
    return "".join(html), findings


def _lsi_verdict(lsi: float | None) -> str:
    """Judged against the usual clinical line (``BALANCED_LSI``)."""
    if lsi is None:
        return ""
    line = f"{BALANCED_LSI:.0f}%"
    return f"; LSI {lsi:.0f}%, " + (f"balanced (at least {line})" if lsi >= BALANCED_LSI
                                   else f"under {line}")


_BASIS_WORDS = {"pct_mvc": "%MVC", "mean": "mean activation", "peak": "peak activation"}


def _symmetry_finding(s: _Node, where: str = "") -> str | None:
    """One muscle's left/right finding, judged as the terminal judges it (``side_verdict``:
    %MVC when both sides have it, else the mean activation), naming the basis."""
    v = side_verdict(s.value.get("metrics") or {})
    if v is None:
        return None
    m = s.get("metrics").get(v["basis"])
    d, unit = (1, "") if v["basis"] == "pct_mvc" else (3, "mV")
    word = _BASIS_WORDS[v["basis"]]
    verdict = ("" if v["stronger"] is None else f"; {v['stronger']} stronger by {word}")
    return (f"{_e(s.value['muscle'].replace('_', ' '))}{where}: {word} left "
            f"{m.get('left').num(d, unit=unit)}, right {m.get('right').num(d, unit=unit)} "
            f"(symmetry index {m.get('si').num(1, sign=True)}%" + _lsi_verdict(v["lsi"])
            + verdict + ")")


def _symmetry_table(sym: list[_Node]) -> tuple[list[list[str]], list]:
    rows, bars = [], []
    for s in sym:
        for metric, mv in s.get("metrics").items():
            if mv.value.get("left") is None and mv.value.get("right") is None:
                continue
            unit = {"peak": "mV", "mean": "mV", "pct_mvc": "%MVC", "duration": "s",
                    "count": "", "time_under_tension": "s"}.get(metric, "")
            d = 0 if metric == "count" else 3 if unit == "mV" else 1
            rows.append([_e(s.value["muscle"].replace("_", " ")),
                         # "%MVC" is its own unit; others: "peak (mV)", "duration (s)"
                         _e(metric.replace("_", " ") if metric != "pct_mvc" else "%MVC")
                         + (f" ({unit})" if unit and metric != "pct_mvc" else ""),
                         mv.get("left").num(d), mv.get("right").num(d),
                         mv.get("si").num(1, sign=True), mv.get("lsi").num(0)])
        mean = s.get("metrics").get("mean")
        if mean.value:
            bars.append((s.value["muscle"].replace("_", " "),
                         [(mean.value.get("left"), "left"), (mean.value.get("right"), "right")]))
    return rows, bars


def _symmetry_section(reps, cross=()) -> tuple[str, list[str]]:
    """Left/right per reps phase, and ``cross`` (the device's ``cross_phase_symmetry``):
    the same exercise done on each side in its own phase, e.g. clamshells."""
    html, findings = [], []
    parts = [(f"<h3>{_e(ph.value.get('arg') or 'reps')}</h3>", summ.get("symmetry").list(), "")
             for ph, summ in reps]
    for x in cross:
        ex = x.value.get("exercise") or "reps"
        parts.append((f"<h3>{_e(ex)}: left side (set at {x.get('left_start').num(1)} s) vs "
                      f"right side (set at {x.get('right_start').num(1)} s)</h3>",
                      x.get("symmetry").list(), f" ({_e(ex)}, left set vs right set)"))
    for head, sym, where in parts:
        if not sym:
            continue
        rows, bars = _symmetry_table(sym)
        findings += [f for s in sym if (f := _symmetry_finding(s, where))]
        html.append(head)
        html.append(_table(["muscle", "metric", "left", "right", "SI (%)", "LSI (%)"], rows))
        if bars:
            html.append(_bars_svg(bars, "mV", "mean activation left vs right")
                        + '<p class="note">Blue: left, orange: right. SI = (L - R) / ((L + R) / 2)'
                          " x 100; LSI = weaker / stronger x 100. Which side is stronger is "
                          "judged on %MVC when both sides have an MVC (raw mV depend on each "
                          "electrode's placement and skin), else on the mean activation.</p>")
    if not html:
        return '<p class="note">No paired left/right muscles with reps.</p>', findings
    return "".join(html), findings


def _reps_section(reps) -> str:
    """Reps per muscle, as the terminal summary counts them (cut-off reps counted, flagged,
    left out of the mean duration)."""
    html, cut_any = [], False
    for ph, summ in reps:
        rows = []
        for m in summ.get("muscles").list():
            r = m.get("reps")
            cut = r.value.get("n_partial") or 0
            cut_any = cut_any or bool(cut)
            rows.append([_e(_muscle(m.value["name"])), r.get("n_reps").num(0),
                         r.get("n_partial").num(0),
                         r.get("n_sets").num(0), r.get("mean_duration").num(2)])
        if rows:
            html.append(f"<h3>{_e(ph.value.get('arg') or 'reps')}</h3>"
                        + _table(["muscle", "reps", "cut off", "sets", "mean duration (s)"],
                                 rows))
    if not html:
        return '<p class="note">No reps phase in this session.</p>'
    if cut_any:
        html.append(f'<p class="note">{_e(CUT_NOTE[0].upper() + CUT_NOTE[1:])}.</p>')
    return "".join(html)


def _mvc_section(dev: _Node, reps) -> str:
    rows = []
    for ph, summ in reps:
        for m in summ.get("muscles").list():
            sets = m.get("reps").get("sets").list()
            for st in sets:
                if st.value.get("mean_pct_mvc") is not None:
                    rows.append([_e(_muscle(m.value["name"])), st.get("index").num(0),
                                 st.get("mean_pct_mvc").num(1)])
    n_mvc = sum(1 for c in dev.value.get("contractions") or [] if c.get("pct_mvc") is not None)
    if not rows and not n_mvc:
        return ('<p class="note">No MVC calibration in this session: %MVC not available '
                "(run <code>glutebridge calibrate</code> first).</p>")
    html = ""
    if rows:
        html += _table(["muscle", "set", "mean %MVC"], rows)
    html += f'<p class="note">{n_mvc} contractions carry a %MVC value (table below).</p>'
    return html


def _fatigue_reading(trend: dict, change: float | None) -> str:
    """What the MDF trend says, in words: a falling MDF is the usual sign of fatigue, but a
    2 s rep's MDF is only good to ~5 %, so a weak fit or a small change is no trend."""
    slope, r2 = trend.get("slope"), trend.get("r2")
    if slope is None or change is None or r2 is None:
        return "Too few reps for a trend."
    if r2 < 0.5 or abs(change) < 5:
        return "No clear trend (a falling MDF with a good fit would suggest fatigue)."
    if slope < 0:
        return "MDF falls steadily over the set: consistent with muscle fatigue."
    return "MDF rises over the set: not a fatigue sign (often warm-up or a changing effort)."


def _fatigue_section(reps) -> str:
    html = []
    for ph, summ in reps:
        for m in summ.get("muscles").list():
            fat = m.get("fatigue")
            if not fat.value:
                continue
            tr = fat.get("mdf_per_index")
            html.append(f"<h3>{_e(_muscle(m.value['name']))}</h3><p>Median frequency trend "
                        f"{tr.get('slope').num(2, sign=True, unit='Hz per rep')} "
                        f"(r&#178; {tr.get('r2').num(2)}), change over the set "
                        f"{fat.get('mdf_change_pct').num(1, sign=True, unit='%')}. "
                        + _fatigue_reading(tr.value, fat.value.get("mdf_change_pct"))
                        + "</p>" + _fatigue_svg(fat.value))
    return "".join(html) or ('<p class="note">No fatigue trend: it needs at least two reps '
                             "of a muscle with a spectrum (each rep's MNF/MDF is taken as it "
                             "ends).</p>")


def _holds_section(holds: list[tuple[_Node, _Node]]) -> tuple[str, list[str]]:
    html, findings = [], []
    for ph, hs in holds:
        target = None
        rows, bars = [], []
        for name, h in hs.items():
            target = h.value.get("target", target)
            for one in h.get("holds").list():
                met = one.value.get("met")
                rows.append([_e(_muscle(name)), one.get("index").num(0), one.get("onset").num(2),
                             ("at least " if met is None else "") + one.get("sustained").num(2),
                             one.get("target").num(1), one.get("held_fraction").num(0, 100.0),
                             # cut off before the target: neither met nor failed
                             "not known (cut off)" if met is None else
                             '<span class="good">yes</span>' if met else '<span class="bad">no</span>'])
            best = h.value.get("best_sustained")
            bars.append((_muscle(name), [(best, "left" if name.endswith("_L") else "right")]))
            if best is not None:
                top = max(h.value.get("holds") or [{}], key=lambda x: x.get("sustained") or 0)
                cut = top.get("partial") and not top.get("met")  # cut off short of the target
                findings.append(f"{_e(_muscle(name))}: held {'at least ' if cut else ''}"
                                f"{h.get('best_sustained').num(1)} s of {h.get('target').num(0)} s"
                                + (" (cut off)" if cut else ""))
        html.append(f"<h3>hold {_e(ph.value.get('arg') or '')} s, from "
                    f"{ph.get('start').num(1)} s</h3>")
        html.append(_table(["muscle", "attempt", "onset (s)", "sustained (s)", "target (s)",
                            "held (%)", "met"], rows))
        html.append(_bars_svg(bars, "s", "hold time per muscle", target=target)
                    + '<p class="note">Bars: longest sustained contraction; red line: target.</p>')
    if not html:
        return '<p class="note">No hold phase in this session.</p>', findings
    return "".join(html), findings


def _contractions_table(dev: _Node) -> str:
    rows = []
    for c in dev.get("contractions").list():
        v = c.value
        rows.append([_e(_muscle(v.get("muscle") or v["channel"])), c.get("onset").num(3),
                     c.get("offset").num(3), f"{v['offset'] - v['onset']:.3f}",
                     c.get("peak").num(3), c.get("mean").num(3), c.get("pct_mvc").num(1),
                     ", ".join(w for w, f in (("before the recording", v.get("censored_onset")),
                                              ("cut", v.get("truncated"))) if f)])
    return (f"<details><summary>all {len(rows)} contractions</summary>"
            + _table(["muscle", "onset (s)", "offset (s)", "duration (s)", "peak (mV)",
                      "mean (mV)", "%MVC", "started / ended"], rows)
            + '<p class="note">"before the recording": the muscle was already contracting at '
              "the first sample (onset 0 is not a measured onset and is left out of firing "
              'order); "cut": closed by a link gap or the end of data.</p></details>')
