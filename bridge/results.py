"""End-of-session results: the analytics of each protocol phase, as one JSON tree.

The live view's summary, ``glutebridge analyze`` and the HTML report all
render this one structure, so their numbers agree.
"""

from __future__ import annotations

from bridge.analytics import SegmentFrequency, summarize, trend_of_segments
from bridge.analytics.holds import hold_timing
from bridge.analytics.symmetry import (_side_of, _strip_side, compare_sides, find_side_pairs,
                                       side_verdict)

#: A hold counts as met within this many seconds of its target: onsets and offsets are
#: detected within ~0.1 s each (docs/emg.md), so 10.0 s held may measure 9.8 s.
HOLD_TOLERANCE = 0.25

#: How a rep seen only in part is counted (the terminal summary and the report say it).
CUT_NOTE = ("cut off: a rep seen only in part (the link dropped, the stream was stopped, or it "
            "was under way at the first sample) counts as a rep, but its duration is a lower "
            "bound: mean durations are over the complete reps")

#: Muscles that stand for each side in the firing order, in reference-first order.
_SIDE_ORDER = ("glute_max", "hamstring", "erector")


def _in_window(contractions, start: float, end: float | None):
    """Contractions whose midpoint lies in the phase (refined onsets may precede its marker)."""
    end = float("inf") if end is None else end
    return [c for c in contractions if start <= (c.onset + c.offset) / 2 < end]


def _side_names(names: dict[int, str], suffix: str) -> list[str]:
    have = set(names.values())
    return [m + suffix for m in _SIDE_ORDER if m + suffix in have]


def phase_results(session, device: str, age: float | None = None) -> list[dict]:
    """Analytics per phase of ``device``: reps, holds, stance; plain dicts.

    ``age`` (years) grades single-leg stance against age norms as well as the goal.
    """
    dev = session.devices[device]
    contractions = session.contractions(device)
    names = session.channel_names(device)
    out = []
    phases = dev.phases or []
    for ph in phases:
        entry: dict = {"phase": ph.name, "arg": ph.arg, "start": ph.start, "end": ph.end}
        cs = _in_window(contractions, ph.start, ph.end)
        if ph.name == "reps" and names:
            entry["summary"] = _reps_summary(cs, names, lambda c: session.spectrum(device, c))
        elif ph.name == "hold" and names:
            target = float(ph.arg or 10.0)
            entry["holds"] = {
                name: hold_timing(cs, target, ch, tolerance=HOLD_TOLERANCE, name=name).to_dict()
                for ch, name in names.items()
                if any(c.channel == ch for c in cs)}
        elif ph.name == "stance":
            leg = ph.arg or "left"
            res = [r for lg, r in dev.stance_results if lg == leg]
            entry["stance"] = [_stance_dict(r, age) for r in res]
        out.append(entry)
    return out


def _stance_dict(r, age: float | None = None) -> dict | None:
    if r is None:
        return None
    from bridge.balance import grade_stance

    d = r.to_dict()
    d["grade"] = _as_dict(grade_stance(r, age))
    return d


def stance_comparison(session, device: str, age: float | None = None) -> dict | None:
    """Left vs right single-leg stance (the last result of each leg), if both exist."""
    from bridge.balance import compare_legs

    last = {}
    for leg, r in session.devices[device].stance_results:
        if r is not None:
            last[leg] = r
    if "left" not in last or "right" not in last:
        return None
    return _as_dict(compare_legs(last["left"], last["right"], age=age))


def _reps_summary(cs, names: dict[int, str], spectrum=None) -> dict:
    out = {}
    for side, suffix in (("left", "_L"), ("right", "_R")):
        fire = _side_names(names, suffix)
        if len(fire) >= 2 and any(names[c.channel] in fire for c in cs):
            s = summarize(cs, names, firing_muscles=fire, reference=fire[0],
                          ratios=[(f"hamstring{suffix}", f"glute_max{suffix}")]
                          if f"hamstring{suffix}" in fire else ())
            out[side] = {"firing": s.firing.to_dict() if s.firing else None,
                         "ratios": [r.to_dict() for r in s.ratios]}
    full = summarize(cs, names)
    out["muscles"] = [_with_fatigue(m, cs, spectrum) for m in full.muscles if m.reps.n_reps]
    out["symmetry"] = [_sym_dict(s) for s in full.symmetry]
    return out


def _sym_dict(s) -> dict:
    """A SideComparison as JSON, with the verdict the terminal and the report print."""
    d = s.to_dict()
    d["verdict"] = side_verdict(d["metrics"])
    return d


def _phase_side(arg: str, cs, pairs) -> tuple[str | None, str, str]:
    """(side "l"/"r" or None, exercise, how the side was known) of a reps phase.

    A side named in the marker's argument (``reps:clamshell_left``, ``reps:clamshell:R``)
    decides; else the activity does: the phase is one side's when that side's paired
    muscles (``..._L``/``..._R``) contracted at least twice as often as the other side's
    (the clamshells scenario's markers say only ``reps:clamshell``; a bilateral exercise
    such as the bridge fires both sides alike and is not one-sided).
    """
    text = (arg or "").replace(":", "_")
    exercise = _strip_side(text) or text or "reps"
    named = _side_of(text) if text else None
    if named is not None:
        return named, exercise, "marker"
    left = {lc for _, lc, _ in pairs}
    right = {rc for _, _, rc in pairs}
    nl = sum(c.channel in left for c in cs)
    nr = sum(c.channel in right for c in cs)
    if nl and nl >= 2 * nr:
        return "l", exercise, "activity"
    if nr and nr >= 2 * nl:
        return "r", exercise, "activity"
    return None, exercise, ""


def cross_phase_symmetry(session, device: str) -> list[dict]:
    """Left vs right across phases: the same exercise done on one side, then the other.

    For one-sided reps phases of the same exercise (see :func:`_phase_side`), the k-th
    left phase is paired with the k-th right phase, and each left/right muscle pair is
    compared as :func:`~bridge.analytics.symmetry.compare_sides` compares sides within a
    phase: the left phase's left muscle against the right phase's right muscle.
    """
    dev = session.devices[device]
    names = session.channel_names(device)
    pairs = find_side_pairs(names) if names else []
    if not pairs or not dev.phases:
        return []
    contractions = session.contractions(device)
    by_ex: dict[str, dict[str, list]] = {}
    for i, ph in enumerate(dev.phases):
        if ph.name != "reps":
            continue
        cs = _in_window(contractions, ph.start, ph.end)
        side, exercise, how = _phase_side(ph.arg, cs, pairs)
        if side is not None:
            by_ex.setdefault(exercise, {"l": [], "r": []})[side].append((i, ph, cs, how))
    out = []
    for exercise, sides in by_ex.items():
        for (li, lph, lcs, lhow), (ri, rph, rcs, rhow) in zip(sides["l"], sides["r"]):
            sym = []
            for muscle, lc, rc in pairs:
                lk = [c for c in lcs if c.channel == lc]
                rk = [c for c in rcs if c.channel == rc]
                if lk and rk:
                    sym.append(_sym_dict(compare_sides(lk + rk, lc, rc, channel_names=names,
                                                       muscle=muscle)))
            if sym:
                out.append({"exercise": exercise, "left_phase": li, "right_phase": ri,
                            "left_start": lph.start, "right_start": rph.start,
                            "sides_from": [lhow, rhow], "symmetry": sym})
    return sorted(out, key=lambda x: x["left_phase"])


def _with_fatigue(m, cs, spectrum) -> dict:
    """A muscle's summary with its MDF/MNF trend over reps from the spectra kept live."""
    d = m.to_dict()
    if spectrum is None:
        return d
    by_onset = {c.onset: c for c in cs if c.channel == m.channel}
    segs, missing = [], 0
    for r in m.reps.reps:
        c = by_onset.get(r.onset)
        spec = spectrum(c) if c is not None else None
        if spec is None or spec.mdf is None:
            missing += 1
            continue
        segs.append(SegmentFrequency(r.index, spec.start, spec.end, spec.mnf, spec.mdf))
    if len(segs) >= 2:
        d["fatigue"] = trend_of_segments(segs).to_dict()
        d["fatigue"]["reps_without_spectrum"] = missing
    return d


def _as_dict(obj):
    if obj is None:
        return None
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict
        return asdict(obj)
    return obj


def session_results(session, age: float | None = None) -> dict:
    """Everything a report needs, per device: contractions, phases, link counters.

    ``age`` (years, optional) grades single-leg stance against age norms too.
    """
    out: dict = {"devices": {}}
    if age is not None:
        out["age"] = float(age)
    # What the session decided on its own that changes how to read the numbers
    # (e.g. a rest phase not used as the baseline); printed and in the report.
    out["notes"] = list(getattr(session, "notes", []))
    for name, dev in session.devices.items():
        out["devices"][name] = {
            "channels": session.channel_names(name),
            "contractions": [
                {"channel": c.channel, "muscle": session.channel_names(name).get(c.channel),
                 "onset": c.onset, "offset": c.offset, "peak": c.peak, "mean": c.mean,
                 "pct_mvc": c.pct_mvc, "truncated": c.truncated,
                 "censored_onset": c.censored_onset}
                for c in session.contractions(name)],
            # Without protocol phases the whole session is one set of reps; with phases the
            # reps are summarised per phase (a session-wide summary would count holds as reps).
            "summary": (_reps_summary(session.contractions(name), session.channel_names(name),
                                      lambda c, name=name: session.spectrum(name, c))
                        if session.contractions(name) and not dev.phases else None),
            "phases": phase_results(session, name, age),
            "cross_phase_symmetry": cross_phase_symmetry(session, name),
            "stance_comparison": stance_comparison(session, name, age),
            "gaps": [{"stream": g.stream, "first_sample": g.first_sample,
                      "n_samples": g.n_samples, "reason": g.reason} for g in dev.gaps],
            # The link was lost and had not come back when the data ended (device switched
            # off, then Ctrl-C or --give-up): no gap marks that hole, this does.
            "link_down_at_end": (dev.link_down.to_dict()
                                 if getattr(dev, "link_down", None) is not None else None),
        }
    return out
