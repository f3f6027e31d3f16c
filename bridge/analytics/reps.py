"""Repetitions and sets from one muscle's contractions.

Every contraction (at least ``min_duration`` long) of the chosen channel is one
repetition.  A contraction seen only in part (cut off by a link loss or the end of the
data, or already under way at the first sample: ``truncated``/``censored_onset``) still
counts as a rep -- the client did it -- but is flagged ``partial``: its duration is only a
lower bound, so it is left out of the set's mean duration (it stays in the time under
tension, as measured).  Reps are grouped into sets: a rest longer than ``set_gap`` seconds
(from one rep's offset to the next rep's onset) starts a new set.  Typical
strength work (10 reps x 3 sets) rests 1-3 min between sets and a few seconds
between reps, hence the 20 s default.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.analytics._base import (
    Result,
    check_contractions,
    check_positive,
    duration_of,
    is_partial,
)
from bridge.errors import ConfigError

__all__ = ["ChannelReps", "Rep", "RepSet", "count_reps", "mean_or_none"]


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    v = [float(x) for x in values if x is not None]
    return float(np.mean(v)) if v else None


@dataclass(frozen=True, slots=True)
class Rep(Result):
    """One repetition (times in s; peak/mean in envelope units; pct_mvc None if no MVC)."""

    index: int  # 1-based over the channel
    set_index: int  # 1-based
    channel: int
    onset: float
    offset: float
    duration: float
    peak: float
    mean: float
    pct_mvc: float | None
    rest_before: float | None  # s from the previous rep's offset; None for the first rep
    partial: bool = False  # seen only in part (truncated, censored onset): duration a lower bound


@dataclass(frozen=True, slots=True)
class RepSet(Result):
    """Consecutive reps without a rest longer than the set gap."""

    index: int  # 1-based
    start: float  # first onset
    end: float  # last offset
    n_reps: int
    reps: tuple[Rep, ...]
    time_under_tension: float  # sum of rep durations, s (partial reps as measured)
    mean_duration: float | None  # over the complete reps; None when every rep is partial
    mean_peak: float
    mean_mean: float
    mean_pct_mvc: float | None  # over reps with a %MVC
    mean_rest: float | None  # mean rest between reps inside the set
    rest_before: float | None  # rest since the previous set, s
    n_partial: int = 0  # reps seen only in part (counted in n_reps, not in mean_duration)


@dataclass(frozen=True, slots=True)
class ChannelReps(Result):
    """Reps and sets of one channel."""

    channel: int
    name: str
    n_reps: int
    n_sets: int
    sets: tuple[RepSet, ...]
    set_gap: float
    n_partial: int = 0  # reps seen only in part (in n_reps, not in mean_duration)
    mean_duration: float | None = None  # over every complete rep of the channel

    @property
    def reps(self) -> tuple[Rep, ...]:
        return tuple(r for s in self.sets for r in s.reps)

    @property
    def reps_per_set(self) -> tuple[int, ...]:
        return tuple(s.n_reps for s in self.sets)


def count_reps(
    contractions: Iterable[Any],
    channel: int | None = None,
    *,
    set_gap: float = 20.0,
    min_duration: float = 0.0,
    name: str | None = None,
) -> ChannelReps:
    """Count repetitions of one channel and group them into sets.

    Args:
        contractions: contraction-like objects (see :class:`ContractionLike`).
        channel: which channel to count; may be omitted when all contractions
            share one channel.
        set_gap: a rest longer than this (s) starts a new set.
        min_duration: ignore contractions shorter than this (s), e.g. twitches.
        name: muscle name for reports (default ``"ch<channel>"``).

    Raises:
        ConfigError: several channels and no ``channel``; bad gap/duration.
        SignalError: a contraction with NaN times or offset < onset.
    """
    items = check_contractions(contractions)
    set_gap = check_positive("set_gap", set_gap)
    min_duration = check_positive("min_duration", min_duration, allow_zero=True)
    if channel is None:
        chans = sorted({int(c.channel) for c in items})
        if len(chans) > 1:
            raise ConfigError(
                f"contractions come from channels {chans}; pass channel= to count one of them"
            )
        channel = chans[0] if chans else 0
    channel = int(channel)
    mine = [c for c in items if int(c.channel) == channel and duration_of(c) >= min_duration]

    groups: list[list[Any]] = []
    for c in mine:
        if groups and float(c.onset) - float(groups[-1][-1].offset) <= set_gap:
            groups[-1].append(c)
        else:
            groups.append([c])

    sets: list[RepSet] = []
    k = 0
    prev_offset: float | None = None
    for si, g in enumerate(groups, start=1):
        reps = []
        for c in g:
            k += 1
            rest = None if prev_offset is None else float(c.onset) - prev_offset
            reps.append(Rep(
                index=k, set_index=si, channel=channel,
                onset=float(c.onset), offset=float(c.offset), duration=duration_of(c),
                peak=float(c.peak), mean=float(c.mean),
                pct_mvc=None if c.pct_mvc is None else float(c.pct_mvc),
                rest_before=rest, partial=is_partial(c),
            ))
            prev_offset = float(c.offset)
        inner_rests = [r.rest_before for r in reps[1:]]
        sets.append(RepSet(
            index=si, start=reps[0].onset, end=reps[-1].offset, n_reps=len(reps),
            reps=tuple(reps),
            time_under_tension=float(sum(r.duration for r in reps)),
            mean_duration=mean_or_none(r.duration for r in reps if not r.partial),
            mean_peak=float(np.mean([r.peak for r in reps])),
            mean_mean=float(np.mean([r.mean for r in reps])),
            mean_pct_mvc=mean_or_none(r.pct_mvc for r in reps),
            mean_rest=mean_or_none(inner_rests),
            rest_before=reps[0].rest_before,
            n_partial=sum(r.partial for r in reps),
        ))
    return ChannelReps(
        channel=channel, name=name if name is not None else f"ch{channel}",
        n_reps=k, n_sets=len(sets), sets=tuple(sets), set_gap=set_gap,
        n_partial=sum(st.n_partial for st in sets),
        mean_duration=mean_or_none(r.duration for st in sets for r in st.reps if not r.partial),
    )
