"""Terminal output: one line per event as it happens, and the session summary."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bridge.analytics.symmetry import BALANCED_LSI, VERDICT_BASES, side_verdict
from bridge.results import CUT_NOTE
from bridge.session import BalanceEvent, LinkEvent, MuscleEvent, PhaseEvent
from bridge.sources.base import LinkState
from bridge.stream import DeviceEvent, SampleChunk

_PHASE_TEXT = {
    "rest": "rest: relax every muscle (baseline)",
    "reps": "repetitions",
    "hold": "isometric hold",
    "stance": "single-leg stance",
}


class ConsoleSink:
    """Prints events to a rich console (plain text when not a terminal)."""

    def __init__(self, console: Console | None = None, show_gaps: bool = True) -> None:
        self.console = console or Console(highlight=False)
        self.show_gaps = show_gaps
        self.lost_samples = 0
        self._now = 0.0  # session time of the newest sample (for link lines)
        self._retry_shown: tuple[float, str] | None = None  # (down_for, reason) last printed

    def on_item(self, item) -> None:
        """Link changes come as stream items: print them the moment they happen."""
        if isinstance(item, SampleChunk):
            self._now = max(self._now, item.end_sample / item.rate)
        elif isinstance(item, DeviceEvent) and isinstance(item.packet, LinkState):
            item = item.packet
            with_reason = True
            if item.state == "retrying":
                # Every attempt while it is fresh, then one line per 10 s (or a new reason):
                # a pod with a dead battery must not flood the terminal overnight.
                last = self._retry_shown
                same = last is not None and last[1] == item.reason
                if item.attempt > 3 and same and item.down_for - last[0] < 10.0:
                    return
                with_reason = not same
                self._retry_shown = (item.down_for, item.reason)
            else:
                self._retry_shown = None
            style = "green" if item.state == "reconnected" else "bold red"
            self.console.print(f"{self._now:8.3f} s  [{style}]"
                               f"{escape(link_state_text(item, with_reason))}[/]")

    def on_event(self, ev) -> None:
        c = self.console
        if isinstance(ev, MuscleEvent):
            if ev.kind == "onset":
                c.print(f"{ev.time:8.3f} s  [green]▲ {ev.muscle:<12}[/] fires"
                        f"  (decided {ev.latency * 1000:.0f} ms later)")
            else:
                k = ev.contraction
                extra = f", {k.pct_mvc:.0f} %MVC" if k is not None and k.pct_mvc else ""
                dur = f"{k.duration:.2f} s" if k is not None else ""
                # closed by a link gap or the end of data, not relaxed: say so
                what = "cut off after" if k is not None and k.truncated else "relaxes after"
                c.print(f"{ev.time:8.3f} s  [red]▼ {ev.muscle:<12}[/] {what} {dur}"
                        f"  (peak {mv(ev.peak)} mV{extra})")
        elif isinstance(ev, PhaseEvent):
            text = _PHASE_TEXT.get(ev.name, ev.name)
            c.rule(f"{ev.time:.1f} s — {text} {ev.arg}".rstrip())
        elif isinstance(ev, BalanceEvent):
            text = balance_text(ev.event)
            if text:
                c.print(f"{ev.time:8.3f} s  [cyan]◆ {ev.leg} leg[/] {text}")
        elif isinstance(ev, LinkEvent) and ev.kind == "gap":
            self.lost_samples += ev.detail.n_samples
            if self.show_gaps:
                why = _GAP_WHY.get(ev.detail.reason, ev.detail.reason)
                c.print(f"{ev.time:8.3f} s  [yellow]! {ev.detail.n_samples} samples lost "
                        f"({why}; stream {ev.detail.stream}), marked as a gap[/]")

    def summary(self, results: dict) -> None:
        """Print the per-phase analytics of :func:`bridge.results.session_results`."""
        c = self.console
        for device, d in results["devices"].items():
            c.rule(f"Summary — {device}")
            if d.get("summary") and not any(ph["phase"] == "reps" for ph in d["phases"]):
                self._reps(d["summary"])  # no protocol phases: the whole session at once
            for ph in d["phases"]:
                if ph["phase"] == "reps" and "summary" in ph:
                    self._reps(ph["summary"])
                elif ph["phase"] == "hold" and ph.get("holds"):
                    self._holds(ph["holds"])
                elif ph["phase"] == "stance" and ph.get("stance"):
                    for r in ph["stance"]:
                        c.print(f"Single-leg stance, {ph['arg']} leg: {_stance_text(r)}")
            for x in d.get("cross_phase_symmetry") or ():
                # the same exercise on each side in its own phase (clamshells): left vs right
                c.print(f"Left vs right {x['exercise']}: the left-side set at "
                        f"{x['left_start']:.1f} s vs the right-side set at "
                        f"{x['right_start']:.1f} s", markup=False)
                for sym in x["symmetry"]:
                    line = symmetry_line(sym)
                    if line:
                        c.print(line, markup=False)
            cmp_ = d.get("stance_comparison")
            if cmp_:
                weaker = cmp_["weaker_leg"]
                c.print(f"Left vs right stance: {cmp_['time_asymmetry_pct']:.0f} % time "
                        f"asymmetry" + (f", {weaker} leg weaker" if weaker else ""))
            lost = sum(g["n_samples"] for g in d["gaps"])
            down = d.get("link_down_at_end")
            c.print(f"Link: {len(d['gaps'])} gaps, {lost} samples lost"
                    + (" before the last loss" if down else ""))
            if down:
                c.print(f"[bold red]{escape(link_down_text(down))}[/]")
        for note in results.get("notes") or ():
            c.print(f"Note: {note}", markup=False)

    def _reps(self, s: dict) -> None:
        t = Table(title="Repetitions", show_edge=False)
        # %MVC (how hard, relative to the client's calibrated maximum) when a profile gave it
        pct = any(r.get("pct_mvc") is not None for m in s["muscles"]
                  for st in m["reps"]["sets"] for r in st["reps"])
        # Sets when a muscle's reps fell into more than one (a rest longer than the set gap:
        # a session without phase markers, or one reps phase for all sets), as the report
        # and the JSON count them: "3 (10/10/10)".
        sets = any(len(m["reps"]["sets"]) > 1 for m in s["muscles"])
        for col in ("muscle", "reps") + (("sets",) if sets else ()) + (
                "mean duration s", "mean peak mV") + (
                ("mean %MVC",) if pct else ()) + ("MDF over reps" if sets else "MDF over set",):
            t.add_column(col)
        cut_any = False
        for m in s["muscles"]:
            reps = m["reps"]["sets"]
            all_reps = [r for st in reps for r in st["reps"]]
            if not all_reps:
                continue
            # A rep cut off (link lost, data ended, already under way at the start) counts,
            # but its duration is a lower bound: the mean is over the complete reps.
            cut = m["reps"].get("n_partial") or 0
            cut_any = cut_any or bool(cut)
            mean_dur = m["reps"].get("mean_duration")
            dur = "–" if mean_dur is None else f"{mean_dur:.2f}"
            peak = sum(r["peak"] for r in all_reps) / len(all_reps)
            # median-frequency change over the set (fitted last vs first rep; see docs/analytics.md)
            fat = m.get("fatigue") or {}
            mdf = fat.get("mdf_change_pct")
            row = [m["name"], f"{len(all_reps)} ({cut} cut off)" if cut else str(len(all_reps))]
            if sets:
                per = [str(st["n_reps"]) for st in reps]
                row.append(f"{len(per)} ({'/'.join(per)})" if len(per) > 1 else "1")
            row += [dur, mv(peak)]
            if pct:
                vals = [r["pct_mvc"] for r in all_reps if r.get("pct_mvc") is not None]
                row.append(f"{sum(vals) / len(vals):.0f}" if vals else "–")
            t.add_row(*row, "–" if mdf is None else f"{signed(mdf)} %")
        self.console.print(t)
        if cut_any:
            self.console.print(CUT_NOTE)
        for side in ("left", "right"):
            f = (s.get(side) or {}).get("firing")
            if not f:
                continue
            ref = f["reference"]
            parts = []
            for muscle, lat in f["latency"].items():
                if muscle != ref and lat["median"] is not None:
                    parts.append(f"{ref} fires {_rel(lat['median'])} {muscle}")
            order = " > ".join(f["dominant_order"])
            self.console.print(f"{side:>5} side: usual order {order}; " + "; ".join(parts))
        for sym in s["symmetry"]:
            line = symmetry_line(sym)
            if line:
                self.console.print(line, markup=False)

    def _holds(self, holds: dict) -> None:
        for name, h in holds.items():
            for hold in h["holds"]:
                if hold["met"] is None:  # cut off before the target: neither met nor failed
                    self.console.print(f"Hold ? {name}: at least {hold['sustained']:.1f} s of "
                                       f"{hold['target']:g} s (cut off: not known if met)")
                    continue
                mark = "✓" if hold["met"] else "✗"
                self.console.print(f"Hold {mark} {name}: {hold['sustained']:.1f} s of "
                                   f"{hold['target']:g} s")


#: The verdict's basis in words (docs/analytics.md, "Left/right symmetry").
_BASIS_TEXT = {"pct_mvc": "%MVC", "mean": "mean mV", "peak": "peak mV"}
_SI_TEXT = {"pct_mvc": "%MVC", "mean": "mean", "peak": "peak"}


def symmetry_line(sym: dict) -> str | None:
    """'Symmetry glute_max: SI %MVC +29 %, mean -22 %, peak -20 %; LSI 75 % (left stronger
    by %MVC)' for one muscle of the results' ``symmetry`` (None if undefined).

    The verdict and the SI/LSI shown first come from :func:`side_verdict`: %MVC when both
    sides have it (raw mV between sides depend on each electrode's placement and skin),
    else the mean activation; the raw-mV SIs follow.
    """
    v = side_verdict(sym["metrics"])
    if v is None:
        return None
    order = [v["basis"]] + [k for k in VERDICT_BASES if k != v["basis"]]
    parts = [(k, m["si"]) for k in order
             if (m := sym["metrics"].get(k)) and m.get("si") is not None]
    lsi = v["lsi"]
    basis = _BASIS_TEXT[v["basis"]]
    # calling a 2 % difference "right stronger" would overstate it
    verdict = (f"balanced by {basis}: LSI >= {BALANCED_LSI:.0f} %" if v["stronger"] is None
               else f"{v['stronger']} stronger by {basis}")
    return (f"Symmetry {sym['muscle']}: SI "
            + ", ".join(f"{_SI_TEXT[k]} {signed(x)} %" for k, x in parts)
            + (f"; LSI {lsi:.0f} %" if lsi is not None else "") + f" ({verdict})")


def mv(value: float) -> str:
    """An EMG amplitude (envelope, mV) as the report and the CSV/JSON files give it:
    mV with 3 decimals (0.050, 0.348, 1.250), so screen and report read alike."""
    return f"{value:.3f}"


def signed(value: float, decimals: int = 0) -> str:
    """A signed percentage rounded to ``decimals``, never '-0' (a change that rounds to
    nothing has no direction): +4, -12, +0."""
    r = round(value, decimals) + 0.0  # -0.0 + 0.0 == +0.0
    return f"{r:+.{decimals}f}"


def _rel(latency: float) -> str:
    """'180 ms after' reads better than '-180 ms' (latency is other - reference)."""
    ms = abs(latency) * 1000
    return f"{ms:.0f} ms before" if latency > 0 else f"{ms:.0f} ms after"


#: Gap reasons (bridge.stream.Gap) in words.
_GAP_WHY = {"lost": "packets lost on the link", "disconnect": "while disconnected",
            "restart": "the device restarted"}


def _stance_text(r) -> str:
    if r is None:
        # as the report says it: the foot never left the floor before the phase or the data
        # ended (a stream stopped early, --duration), or there was no IMU
        return "no result: the trial did not finish (data ended before the countdown or no IMU)"
    text = (f"{r['time_achieved']:.1f} s of {r['goal']:g} s"
            + (" — goal met" if r["completed"] else
               f", touchdown at {r['touchdowns'][0]:.1f} s" if r["touchdowns"] else ""))
    sway = r.get("sway")
    if sway:
        # jerk per second, as the report gives it: the total grows with the time stood, so
        # a leg that touched down early would look steadier by it
        text += (f"; sway RMS {sway['rms']:.3f} m/s², jerk {sway['jerk_per_s']:.2f} m²/s⁵ "
                 f"per s, ellipse {sway['ellipse_area_95']:.3f} (m/s²)²")
    grade = r.get("grade")
    if grade:  # (not in [brackets]: rich would read them as markup and print nothing)
        text += f"; grade: {grade['grade']}"
        if grade.get("norm_s"):
            text += f" (age norm {grade['norm_s']:.1f} s, {grade['source']})"
    if r.get("quality"):
        text += f" (flags: {', '.join(r['quality'])})"
    return text


def link_down_text(down: dict) -> str:
    """The session ended with the link down (``link_down_at_end`` of the results)."""
    n = down.get("cut_contractions") or 0
    tries = down.get("reconnect_attempts") or 0
    return (f"Link DOWN at the end: lost at {down['since']:.1f} s ({down['reason']}) and not "
            f"back after {down['down_for']:.1f} s"
            + (f" ({tries} reconnect attempt{'s' if tries != 1 else ''}"
               + ("; gave up)" if down.get("gave_up") else ")") if tries or down.get("gave_up")
               else "")
            + f"; no data after {down['since']:.1f} s"
            + (f"; {n} contraction{'s' if n != 1 else ''} cut off by it" if n else ""))


def link_state_text(s: LinkState, with_reason: bool = True) -> str:
    """One line for a link change (``Connection`` reports them as LinkState items).

    ``with_reason=False`` leaves out a retry's reason (already shown for an earlier attempt).
    """
    policy = ("keeps trying until the device is back" if s.give_up_after is None
              else f"gives up after {s.give_up_after:g} s without it")
    if s.state == "lost":
        return (f"link lost: {s.reason}; reconnecting in {s.retry_in:.1f} s (attempt 1), "
                f"{policy} — Ctrl-C to stop")
    if s.state == "retrying":
        why = f": {s.reason}" if with_reason else ""
        return (f"no link for {s.down_for:.1f} s{why}; reconnecting in "
                f"{s.retry_in:.1f} s (attempt {s.attempt + 1}) — Ctrl-C to stop")
    if s.state == "reconnected":
        return (f"reconnected after {s.down_for:.1f} s ({s.attempt} attempt"
                f"{'s' if s.attempt != 1 else ''}); the gap is marked")
    if s.state == "gave_up":
        return (f"gave up: no link for {s.down_for:.1f} s (last error: {s.reason}); "
                "the stream ends here")
    return f"link {s.state}: {s.reason}"


def balance_text(ev) -> str:
    """One line for a single-leg stance event (empty for internal ones)."""
    name = type(ev).__name__
    if name == "StanceStarted":
        return "foot lifted: countdown starts"
    if name == "Touchdown":
        return "touchdown!"
    if name == "Jolt":
        return "jolt (no touchdown)"
    if name == "TrialCompleted":
        r = ev.result
        return (f"trial over: {r.time_achieved:.1f} s of {r.goal:g} s, "
                f"{r.n_touchdowns} touchdown(s)")
    return ""
