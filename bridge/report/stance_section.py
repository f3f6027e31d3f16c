"""Report section on the single-leg stance tests: time vs goal, norm grade, sway, legs compared."""

from __future__ import annotations

from bridge.report.markup import _e, _table
from bridge.report.svg import _sway_limit, _sway_svg
from bridge.report.traces import SwayTrace

def _stance_objects(d: dict):
    """Rebuild a StanceResult from its dict so the balance module grades it."""
    from bridge.balance import StanceResult, SwayMetrics

    sway = SwayMetrics(**d["sway"]) if d.get("sway") else None
    return StanceResult(d["leg"], d["goal"], d["time_achieved"], d["completed"],
                        tuple(d["touchdowns"]), tuple(map(tuple, d["stance_segments"])),
                        d["total_stance"], d["start_t"], sway, tuple(d["quality"]))


_SWAY_ROWS = (("rms", "RMS sway", "m/s&#178;", 3), ("rms_ap", "RMS AP", "m/s&#178;", 3),
              ("rms_ml", "RMS ML", "m/s&#178;", 3),
              ("ellipse_area_95", "95% ellipse area", "(m/s&#178;)&#178;", 3),
              ("mean_velocity", "mean velocity (path/time)", "m/s&#179;", 2),
              ("jerk_per_s", "jerk per s", "m&#178;/s&#8309; per s", 2),
              ("mean_frequency", "mean frequency", "Hz", 2), ("f95", "95% power frequency", "Hz", 2))


def _stance_section(stances, traces: list[SwayTrace], age: float | None) -> tuple[str, list[str]]:
    from bridge.balance import compare_legs, grade_stance

    html, findings, by_leg, cards = [], [], {}, []
    lim = max((_sway_limit(t) for t in traces), default=None)  # one scale for every leg
    for ph, r in stances:
        leg = ph.value.get("arg") or "?"
        if r.value is None:
            cards.append(f'<div class="card"><h3>{_e(leg.capitalize())} leg stance</h3><p class="note">No result: '
                         "the trial did not finish (data ended before the countdown or no IMU)."
                         "</p></div>")
            continue
        res = _stance_objects(r.value)
        by_leg[res.leg] = res
        g = grade_stance(res, age)
        tds = r.get("touchdowns").list()
        td = (f"first touchdown at {tds[0].num(1)} s" if tds else "no touchdown")
        ok = "good" if g.met_goal else "bad"
        rows = [[lab, r.get("sway").get(k).num(d) + f" {u}"] for k, lab, u, d in _SWAY_ROWS
                if r.value.get("sway")]
        tr = next((t for t in traces if t.leg == res.leg
                   and abs(t.start - (ph.value["start"] + res.start_t)) < 0.01), None)
        cards.append(
            f'<div class="card"><h3>{_e(res.leg.capitalize())} leg stance</h3>'
            f"<p>Stood <b>{r.get('time_achieved').num(1)} s</b> of {r.get('goal').num(0)} s "
            f"({td}); touchdowns: {r.get('n_touchdowns').num(0)}.<br>"
            f'Grade: <span class="{ok}">{_e(g.grade)}</span>'
            + (f" (norm {g.norm_s:.1f} s for age {age:g}, {_e(g.source)})" if g.norm_s else "")
            + "</p>" + (_table(["sway metric", "value"], rows) if rows else
                        '<p class="note">Stance too short for sway metrics.</p>')
            + (f'<p class="note">quality flags: {_e(", ".join(res.quality))}</p>'
               if res.quality else "")
            + (_sway_svg(tr, lim) if tr is not None else "") + "</div>")
        # With an age, the grade against its norm (the card's "Grade: below norm ...").
        graded = (f"; {_e(g.grade)} (norm {g.norm_s:.1f} s for age {age:g})"
                  if g.norm_s is not None and not g.met_goal else "")
        findings.append(f"{_e(res.leg.capitalize())}-leg stance: {r.get('time_achieved').num(1)} s "
                        f"of {r.get('goal').num(0)} s" + (f", touchdown at {tds[0].num(1)} s"
                                                          if tds else " (goal met)"
                                                          if g.met_goal else "") + graded)
    if not cards:
        return '<p class="note">No single-leg stance test in this session.</p>', findings
    html.append(f'<div class="cards">{"".join(cards)}</div>')
    if "left" in by_leg and "right" in by_leg:
        c = compare_legs(by_leg["left"], by_leg["right"], age)
        html.append(f"<p>Left vs right: weaker leg <b>{_e(c.weaker_leg or 'none')}</b>, time "
                    f"asymmetry {c.time_asymmetry_pct:.0f}%"
                    + (f", sway asymmetry {c.sway_asymmetry_pct:.0f}%"
                       if c.sway_asymmetry_pct is not None else "")
                    + (' <span class="bad">(asymmetric)</span>' if c.asymmetric else "") + ".</p>")
    html.append('<p class="note">Sway: low-passed horizontal pelvis acceleration over the first '
                "single-leg segment; ellipse: 95% prediction ellipse (F distribution). Norms: "
                "30 s is the screening goal; age norms from Springer et al. 2007 (best of 3) when "
                "an age is given; below 10 s is a warning sign.</p>")
    return "".join(html), findings
