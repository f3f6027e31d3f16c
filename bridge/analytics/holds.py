"""Isometric hold timing: how long each hold was actually sustained.

Two sources of the same answer:

* :func:`hold_timing` takes the detector's contractions; a contraction's
  duration *is* the time the muscle stayed above the detector's (hysteresis)
  threshold, so each contraction of the channel is one hold attempt.
* :func:`sustained_above` works on an envelope and a threshold of your choice
  (e.g. 30 % MVC), bridging dips shorter than ``max_dip`` seconds.

A hold *meets* its target when ``sustained >= target - tolerance``; the held
fraction is ``min(sustained / target, 1)``.  A hold seen only in part (cut off by a
link loss or the end of the data, or already under way at the first sample) that did
not reach the target has ``met = None``: how long it would have lasted is unknown, so it
is neither met nor failed, and it is left out of the mean sustained time and held
fraction (``partial``; it still counts as an attempt and for the best time).
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
    check_rate,
    check_signal,
    duration_of,
    is_partial,
)
from bridge.analytics.reps import mean_or_none
from bridge.errors import ConfigError

__all__ = ["Hold", "HoldSummary", "SustainedRun", "hold_timing", "sustained_above"]


@dataclass(frozen=True, slots=True)
class Hold(Result):
    """One hold attempt."""

    index: int  # 1-based
    channel: int
    name: str
    onset: float
    offset: float
    target: float  # s
    sustained: float  # s actually held
    held_fraction: float  # min(sustained / target, 1)
    met: bool | None  # None: cut off before the target (partial), so not known
    shortfall: float | None  # s missing to the target (0 when met, None when not known)
    peak: float
    mean: float
    pct_mvc: float | None
    partial: bool = False  # seen only in part: ``sustained`` is a lower bound

    def describe(self) -> str:
        """Short text for a live view, e.g. ``'glute_L holds 6.0 s of 10 s'``."""
        if self.met is None:
            return (f"{self.name} holds at least {self.sustained:.1f} s of {self.target:g} s "
                    "(cut off)")
        return f"{self.name} holds {self.sustained:.1f} s of {self.target:g} s"


@dataclass(frozen=True, slots=True)
class HoldSummary(Result):
    """All hold attempts of one channel."""

    channel: int
    name: str
    target: float
    tolerance: float
    n_holds: int
    n_met: int
    holds: tuple[Hold, ...]
    mean_sustained: float | None  # over the complete holds
    best_sustained: float | None
    mean_held_fraction: float | None  # over the complete holds
    n_partial: int = 0  # holds seen only in part (see Hold.partial)

    def describe(self) -> str:
        if not self.holds:
            return f"{self.name}: no holds"
        mean = "" if self.mean_sustained is None else f", mean {self.mean_sustained:.1f} s"
        cut = f"; {self.n_partial} cut off" if self.n_partial else ""
        return (f"{self.name}: {self.n_met} of {self.n_holds} holds reached {self.target:g} s "
                f"(best {self.best_sustained:.1f} s{mean}){cut}")


def hold_timing(
    contractions: Iterable[Any],
    target: float,
    channel: int | None = None,
    *,
    tolerance: float = 0.0,
    min_duration: float = 0.0,
    name: str | None = None,
) -> HoldSummary:
    """Time each hold attempt of one channel against a target duration (s).

    ``min_duration`` drops short blips that are not hold attempts.  ``tolerance``
    (s) lets a hold of e.g. 9.9 s count for a 10 s target.
    """
    items = check_contractions(contractions)
    target = check_positive("target", target)
    tolerance = check_positive("tolerance", tolerance, allow_zero=True)
    min_duration = check_positive("min_duration", min_duration, allow_zero=True)
    if tolerance >= target:
        raise ConfigError(f"tolerance ({tolerance} s) must be smaller than the target ({target} s)")
    if channel is None:
        chans = sorted({int(c.channel) for c in items})
        if len(chans) > 1:
            raise ConfigError(f"contractions come from channels {chans}; pass channel=")
        channel = chans[0] if chans else 0
    channel = int(channel)
    label = name if name is not None else f"ch{channel}"
    holds = []
    for c in items:
        d = duration_of(c)
        if int(c.channel) != channel or d < min_duration:
            continue
        # 1 ns slack: onset/offset are floats, 10.1 - 0.1 must meet a 10 s target
        partial = is_partial(c)
        met = d >= target - tolerance - 1e-9
        holds.append(Hold(
            index=len(holds) + 1, channel=channel, name=label,
            onset=float(c.onset), offset=float(c.offset), target=target, sustained=d,
            held_fraction=min(d / target, 1.0), met=True if met else None if partial else False,
            shortfall=0.0 if met else None if partial else target - d,
            peak=float(c.peak), mean=float(c.mean),
            pct_mvc=None if c.pct_mvc is None else float(c.pct_mvc), partial=partial,
        ))
    sustained = [h.sustained for h in holds]
    complete = [h for h in holds if not h.partial]
    return HoldSummary(
        channel=channel, name=label, target=target, tolerance=tolerance,
        n_holds=len(holds), n_met=sum(h.met is True for h in holds), holds=tuple(holds),
        mean_sustained=mean_or_none(h.sustained for h in complete),
        best_sustained=max(sustained) if sustained else None,
        mean_held_fraction=mean_or_none(h.held_fraction for h in complete),
        n_partial=len(holds) - len(complete),
    )


@dataclass(frozen=True, slots=True)
class SustainedRun(Result):
    """The longest stretch above threshold (times in s from the envelope's first sample)."""

    onset: float | None
    offset: float | None
    duration: float
    time_above: float  # total time above threshold in the span, dips included or not


def sustained_above(
    envelope: Any,
    rate: float,
    threshold: float,
    *,
    start: float = 0.0,
    end: float | None = None,
    max_dip: float = 0.0,
) -> SustainedRun:
    """Longest run with ``envelope >= threshold`` in [start, end), dips < ``max_dip`` s bridged.

    A dip is bridged only between two above-threshold stretches, so a hold
    that fades out is not lengthened.  ``time_above`` counts samples above
    threshold (without bridging).
    """
    env = check_signal(envelope, "envelope", nonneg=True)
    rate = check_rate(rate)
    threshold = check_positive("threshold", threshold)
    max_dip = check_positive("max_dip", max_dip, allow_zero=True)
    n = env.shape[0]
    a = int(round(check_positive("start", start, allow_zero=True) * rate))
    b = n if end is None else int(round(check_positive("end", end) * rate))
    if not 0 <= a < b <= n:
        raise ConfigError(
            f"span ({start}, {end}) s is empty or outside the envelope (0 to {n / rate:.3f} s)"
        )
    above = env[a:b] >= threshold
    time_above = float(np.count_nonzero(above)) / rate
    if not above.any():
        return SustainedRun(None, None, 0.0, 0.0)
    # run-length encode: boundaries where the mask changes
    edges = np.flatnonzero(np.diff(above.astype(np.int8))) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [above.size]))
    vals = above[starts]
    max_gap = int(round(max_dip * rate))
    runs: list[list[int]] = []  # merged [start, end) of above-threshold runs
    for s, e, v in zip(starts, ends, vals, strict=True):
        if not v:
            continue
        if runs and s - runs[-1][1] < max_gap:
            runs[-1][1] = int(e)
        else:
            runs.append([int(s), int(e)])
    s, e = max(runs, key=lambda r: r[1] - r[0])
    return SustainedRun(onset=(a + s) / rate, offset=(a + e) / rate,
                        duration=(e - s) / rate, time_above=time_above)
