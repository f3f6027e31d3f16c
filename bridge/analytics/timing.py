"""Firing order and onset latency between muscles.

Contractions of different channels that overlap in time belong to the same
repetition ("firing rep"): all contractions are sorted by onset and chained
while the next onset falls before the running end of the group (plus
``join_gap`` seconds).  Within a firing rep each muscle's onset is its first
onset there; the *order* lists muscles by onset (ties broken by name).

Latency of muscle M = onset(M) - onset(reference), in seconds, per firing rep
where both fired: positive means M fired *after* the reference.  With the
glute as reference, a negative lumbar-erector latency is the pattern reported
in low-back-pain patients (erectors before glute max).

Limitation: a muscle that stays on (tonic activity) across several reps
chains them into one firing rep; cut such recordings per rep, or raise the
detector's thresholds, before reading the order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.analytics._base import (
    Result,
    check_contractions,
    check_names,
    check_positive,
    resolve_channel,
)

__all__ = ["FiringOrder", "FiringRep", "LatencyStats", "firing_order", "group_firing"]

ORDER_SEP = " > "


def group_firing(items: list[Any], join_gap: float = 0.0) -> list[list[Any]]:
    """Chain onset-sorted contractions that overlap (or are < join_gap s apart)."""
    groups: list[list[Any]] = []
    end = -np.inf
    for c in sorted(items, key=lambda c: (c.onset, c.channel)):
        if groups and float(c.onset) <= end + join_gap:
            groups[-1].append(c)
            end = max(end, float(c.offset))
        else:
            groups.append([c])
            end = float(c.offset)
    return groups


@dataclass(frozen=True, slots=True)
class FiringRep(Result):
    """Muscles that fired together in one repetition."""

    index: int  # 1-based
    start: float  # first onset, s
    end: float  # last offset, s
    onsets: dict[str, float]  # muscle -> first onset, s
    order: tuple[str, ...]  # muscles by onset
    latencies: dict[str, float]  # muscle -> onset - reference onset, s (reference present only)


@dataclass(frozen=True, slots=True)
class LatencyStats(Result):
    """Onset latency of one muscle relative to the reference over the firing reps."""

    muscle: str
    n: int  # reps where both fired
    median: float | None  # s, positive = after the reference
    mean: float | None
    minimum: float | None
    maximum: float | None
    n_before: int  # reps where the muscle fired strictly before the reference


@dataclass(frozen=True, slots=True)
class FiringOrder(Result):
    """Firing order over a session."""

    reference: str
    muscles: tuple[str, ...]
    n_reps: int
    reps: tuple[FiringRep, ...]
    dominant_order: tuple[str, ...]  # most frequent order (ties: the earliest seen)
    dominant_count: int
    order_counts: dict[str, int]  # "a > b > c" -> number of reps
    first_counts: dict[str, int]  # muscle -> reps in which it fired first
    missing: dict[str, int]  # muscle -> reps in which it did not fire
    latency: dict[str, LatencyStats]  # muscle -> latency vs reference
    pairwise_median: dict[str, dict[str, float | None]]  # [a][b] = median(onset b - onset a)

    def describe(self) -> str:
        if not self.reps:
            return "no firing reps"
        return (f"usual order {ORDER_SEP.join(self.dominant_order)} "
                f"({self.dominant_count} of {self.n_reps} reps)")


def _stats(muscle: str, values: list[float]) -> LatencyStats:
    if not values:
        return LatencyStats(muscle, 0, None, None, None, None, 0)
    v = np.asarray(values)
    return LatencyStats(muscle, int(v.size), float(np.median(v)), float(v.mean()),
                        float(v.min()), float(v.max()), int(np.count_nonzero(v < 0)))


def firing_order(
    contractions: Iterable[Any],
    channel_names: Mapping[int, str],
    *,
    reference: int | str | None = None,
    join_gap: float = 0.0,
) -> FiringOrder:
    """Firing order per repetition, the dominant order and onset latencies.

    Args:
        contractions: contraction-likes of any channels; channels not in
            ``channel_names`` are ignored.
        channel_names: ``{channel index: muscle name}``, e.g.
            ``{0: "glute_max", 1: "hamstrings", 2: "lumbar_erectors"}``.
        reference: muscle (index or name) latencies are measured from;
            default the first entry of ``channel_names``.
        join_gap: contractions less than this many seconds apart still count
            as the same repetition (0 = they must overlap).
    """
    names = check_names(channel_names)
    items = [c for c in check_contractions(contractions) if int(c.channel) in names]
    join_gap = check_positive("join_gap", join_gap, allow_zero=True)
    ref_ch = next(iter(names)) if reference is None else resolve_channel(names, reference, "reference")
    ref = names[ref_ch]
    muscles = tuple(names.values())

    reps: list[FiringRep] = []
    for i, g in enumerate(group_firing(items, join_gap), start=1):
        onsets: dict[str, float] = {}
        for c in g:  # onset-sorted: the first per channel is its first onset
            if getattr(c, "censored_onset", False):
                continue  # already contracting at the first sample: no measured onset
            onsets.setdefault(names[int(c.channel)], float(c.onset))
        order = tuple(sorted(onsets, key=lambda m: (onsets[m], m)))
        lat = ({m: t - onsets[ref] for m, t in onsets.items() if m != ref}
               if ref in onsets else {})
        reps.append(FiringRep(i, float(g[0].onset), max(float(c.offset) for c in g),
                              onsets, order, lat))

    counts = Counter(r.order for r in reps)
    if reps:
        best = max(counts.values())
        dominant = next(r.order for r in reps if counts[r.order] == best)
    else:
        best, dominant = 0, ()
    pairwise: dict[str, dict[str, float | None]] = {}
    for a in muscles:
        pairwise[a] = {}
        for b in muscles:
            if a == b:
                continue
            d = [r.onsets[b] - r.onsets[a] for r in reps if a in r.onsets and b in r.onsets]
            pairwise[a][b] = float(np.median(d)) if d else None
    return FiringOrder(
        reference=ref,
        muscles=muscles,
        n_reps=len(reps),
        reps=tuple(reps),
        dominant_order=dominant,
        dominant_count=best,
        order_counts={ORDER_SEP.join(o): n for o, n in counts.most_common()},
        first_counts={m: sum(1 for r in reps if r.order and r.order[0] == m) for m in muscles},
        missing={m: sum(1 for r in reps if m not in r.onsets) for m in muscles},
        latency={m: _stats(m, [r.latencies[m] for r in reps if m in r.latencies])
                 for m in muscles if m != ref},
        pairwise_median=pairwise,
    )
