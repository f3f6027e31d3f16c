"""One session in one object: reps/sets/holds per muscle, symmetry, firing order, ratios.

:func:`summarize` runs the individual analytics with sensible defaults and
returns a :class:`SessionSummary` tree of frozen dataclasses that reports and
dashboards can render, or dump with ``to_dict()`` / ``to_json()``.  Parts that
need inputs that were not given (envelopes for co-contraction, raw EMG for
fatigue, a hold target) are left out and a note says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.analytics._base import (
    Result,
    check_contractions,
    check_names,
    check_positive,
    check_rate,
    check_signal,
    duration_of,
    resolve_channel,
)
from bridge.analytics.cocontraction import CoContraction, cocontraction
from bridge.analytics.fatigue import MIN_SEGMENT_SAMPLES, FatigueTrend, fatigue_trend
from bridge.analytics.holds import HoldSummary, hold_timing
from bridge.analytics.ratios import ActivationRatio, activation_ratio
from bridge.analytics.reps import ChannelReps, count_reps
from bridge.analytics.symmetry import SideComparison, compare_sides, find_side_pairs
from bridge.analytics.timing import FiringOrder, firing_order, group_firing
from bridge.errors import ConfigError

__all__ = ["MuscleSummary", "SessionSummary", "summarize"]

Pair = tuple[int | str, int | str]


@dataclass(frozen=True, slots=True)
class MuscleSummary(Result):
    """Everything about one channel."""

    channel: int
    name: str
    reps: ChannelReps
    holds: HoldSummary | None
    fatigue: FatigueTrend | None


@dataclass(frozen=True, slots=True)
class SessionSummary(Result):
    """A session's analytics; ``to_dict()``/``to_json()`` give plain JSON."""

    channel_names: dict[int, str]
    n_contractions: int
    start: float | None  # first onset, s
    end: float | None  # last offset, s
    muscles: tuple[MuscleSummary, ...]
    symmetry: tuple[SideComparison, ...]
    firing: FiringOrder | None
    ratios: tuple[ActivationRatio, ...]
    cocontraction: tuple[CoContraction, ...]
    notes: tuple[str, ...]

    def to_json(self, **kwargs: Any) -> str:
        """``json.dumps(self.to_dict(), **kwargs)`` (strict JSON: NaN became null)."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def muscle(self, name: str) -> MuscleSummary:
        for m in self.muscles:
            if m.name == name:
                return m
        raise KeyError(name)


def _pairs(names: dict[int, str], pairs: Sequence[Pair] | None, what: str) -> list[tuple[int, int]]:
    out = []
    for p in pairs or ():
        try:
            a, b = p
        except (TypeError, ValueError):
            raise ConfigError(f"each of {what} must be a pair (a, b), got {p!r}") from None
        out.append((resolve_channel(names, a, what), resolve_channel(names, b, what)))
    return out


def summarize(
    contractions: Iterable[Any],
    channel_names: Mapping[int, str],
    rate: float | None = None,
    *,
    raw: Any = None,
    envelopes: Any = None,
    pairs: Sequence[Pair] | None = None,
    antagonists: Sequence[Pair] = (),
    ratios: Sequence[Pair] = (),
    ratio_metric: str | None = None,
    reference: int | str | None = None,
    firing_muscles: Sequence[int | str] | None = None,
    hold_target: float | None = None,
    hold_tolerance: float = 0.0,
    set_gap: float = 20.0,
    min_duration: float = 0.0,
    join_gap: float = 0.0,
) -> SessionSummary:
    """Summarise a session's contractions.

    Args:
        contractions: contraction-likes (channel, onset, offset, peak, mean, pct_mvc).
        channel_names: ``{channel: muscle name}``; only these channels are analysed.
        rate: sampling rate (Hz) of ``raw``/``envelopes``; needed only with them.
        raw: raw EMG (n, channels), column = channel index -> fatigue per muscle
            (MDF/MNF per rep).
        envelopes: envelopes (n, channels), column = channel index ->
            co-contraction of ``antagonists``.
        pairs: (left, right) channels for symmetry; default: found from names
            (``..._L``/``..._R``, ``left ...``/``right ...``).
        antagonists: (a, b) pairs for %COCON (needs ``envelopes``).
        ratios: (numerator, denominator) pairs, e.g. ``[("hamstrings", "glute_max")]``.
        ratio_metric: "mean", "peak" or "pct_mvc"; default pct_mvc when every
            contraction has it, else mean.
        reference: firing-order reference muscle (default the first name).
        firing_muscles: muscles for the firing order (default all, which mixes
            sides on a bilateral setup: pass one side's muscles then).
        hold_target: seconds; when given each muscle's contractions are timed as holds.
        hold_tolerance, set_gap, min_duration, join_gap: passed to the analytics.
    """
    names = check_names(channel_names)
    items = [c for c in check_contractions(contractions) if int(c.channel) in names]
    min_duration = check_positive("min_duration", min_duration, allow_zero=True)
    kept = [c for c in items if duration_of(c) >= min_duration]
    notes: list[str] = []
    if rate is not None:
        rate = check_rate(rate)

    raw_a = None
    if raw is not None:
        raw_a = check_signal(raw, "raw", ndim=(2,))
        if rate is None:
            raise ConfigError("raw was given without rate; pass rate= (Hz)")
        if raw_a.shape[1] <= max(names):
            raise ConfigError(f"raw has {raw_a.shape[1]} columns; channel {max(names)} needs more")

    muscles = []
    for ch, name in names.items():
        reps = count_reps(kept, ch, set_gap=set_gap, name=name)
        holds = None
        if hold_target is not None:
            holds = hold_timing(kept, hold_target, ch, tolerance=hold_tolerance, name=name)
        fat = None
        if raw_a is not None:
            segs = [r for r in reps.reps
                    if round(r.offset * rate) - round(r.onset * rate) >= MIN_SEGMENT_SAMPLES]
            if len(segs) < len(reps.reps):
                notes.append(f"{name}: {len(reps.reps) - len(segs)} reps too short for a spectrum")
            if len(segs) >= 2:
                fat = fatigue_trend(raw_a, rate, segs, channel=ch)
        muscles.append(MuscleSummary(ch, name, reps, holds, fat))
    if hold_target is None:
        notes.append("no hold_target: holds not timed")
    if raw_a is None:
        notes.append("no raw EMG: fatigue (MDF/MNF) not computed")

    if pairs is not None:
        side_pairs = _pairs(names, pairs, "pairs")
    else:
        side_pairs = [(l_, r_) for _, l_, r_ in find_side_pairs(names)]
    symmetry = tuple(compare_sides(kept, l_, r_, channel_names=names) for l_, r_ in side_pairs)

    firing = None
    fire_names = names
    if firing_muscles is not None:
        chans = [resolve_channel(names, m, "firing_muscles") for m in firing_muscles]
        fire_names = {c: names[c] for c in chans}
    ref_ch = None if reference is None else resolve_channel(names, reference, "reference")
    if ref_ch is not None and ref_ch not in fire_names:
        raise ConfigError(f"reference {reference!r} is not among firing_muscles")
    if len(fire_names) >= 2:
        firing = firing_order(kept, fire_names, reference=ref_ch, join_gap=join_gap)
    else:
        notes.append("fewer than two muscles: no firing order")

    if ratio_metric is None:
        ratio_metric = "pct_mvc" if kept and all(c.pct_mvc is not None for c in kept) else "mean"
    ratio_results = tuple(
        activation_ratio(kept, a, b, metric=ratio_metric, channel_names=names, join_gap=join_gap)
        for a, b in _pairs(names, ratios, "ratios")
    )

    cocon = []
    anta = _pairs(names, antagonists, "antagonists")
    if anta and envelopes is None:
        notes.append("antagonists given without envelopes: co-contraction not computed")
    elif anta:
        env = check_signal(envelopes, "envelopes", ndim=(2,), nonneg=True)
        if rate is None:
            raise ConfigError("envelopes were given without rate; pass rate= (Hz)")
        for a, b in anta:
            if max(a, b) >= env.shape[1]:
                raise ConfigError(f"envelopes have {env.shape[1]} columns; channel {max(a, b)} needs more")
            groups = group_firing([c for c in kept if int(c.channel) in (a, b)], join_gap)
            wins = [(float(g[0].onset), max(float(c.offset) for c in g)) for g in groups]
            wins = [w for w in wins if int(round(w[1] * rate)) > int(round(w[0] * rate))]
            cocon.append(cocontraction(env[:, a], env[:, b], rate, wins,
                                       muscle_a=names[a], muscle_b=names[b]))

    return SessionSummary(
        channel_names=dict(names),
        n_contractions=len(kept),
        start=float(min(c.onset for c in kept)) if kept else None,
        end=float(max(c.offset for c in kept)) if kept else None,
        muscles=tuple(muscles),
        symmetry=symmetry,
        firing=firing,
        ratios=ratio_results,
        cocontraction=tuple(cocon),
        notes=tuple(notes),
    )
