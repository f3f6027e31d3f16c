"""Activation ratios between muscles, e.g. hamstrings/glute or erectors/glute.

Synergistic dominance (hamstrings and lumbar erectors doing the glute's work)
shows as a ratio well above the athlete's usual or the other side's.  Ratios
of raw amplitudes depend on electrode placement and skin, so prefer
``metric="pct_mvc"`` (each muscle normalised to its own MVC) when MVC trials
exist; raw ratios are still fine for tracking one person within a session.

Two sources:

* :func:`activation_ratio` from contractions: the overall ratio is
  ``mean(metric of numerator contractions) / mean(metric of denominator
  contractions)``; per repetition (contractions that overlap in time, see
  :func:`bridge.analytics.timing.group_firing`) it is the ratio of the two
  muscles' mean metric within the rep, for reps where both fired.
* :func:`envelope_ratio` from envelopes over windows (e.g. the contractions):
  ``stat(numerator) / stat(denominator)`` per window with stat mean or peak;
  overall = mean over windows of the numerator stat / same of the denominator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.analytics._base import (
    Result,
    check_contractions,
    check_names,
    check_positive,
    check_rate,
    check_signal,
    nan_to_none,
    resolve_channel,
    to_windows,
)
from bridge.analytics.timing import group_firing
from bridge.errors import ConfigError

__all__ = ["ActivationRatio", "activation_ratio", "envelope_ratio"]

_METRICS = ("mean", "peak", "pct_mvc")


@dataclass(frozen=True, slots=True)
class ActivationRatio(Result):
    """numerator / denominator activation."""

    numerator: str
    denominator: str
    metric: str  # "mean", "peak" or "pct_mvc"
    ratio: float | None  # overall
    per_rep: tuple[float | None, ...]
    median_per_rep: float | None
    n_numerator: int
    n_denominator: int

    def describe(self) -> str:
        if self.ratio is None:
            return f"{self.numerator}/{self.denominator}: undefined"
        return f"{self.numerator}/{self.denominator} ({self.metric}) = {self.ratio:.2f}"


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _median(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.median(v)) if v else None


def activation_ratio(
    contractions: Iterable[Any],
    numerator: int | str,
    denominator: int | str,
    *,
    metric: str = "mean",
    channel_names: Mapping[int, str] | None = None,
    join_gap: float = 0.0,
) -> ActivationRatio:
    """Ratio of two muscles' activation from their contractions (see module doc)."""
    if metric not in _METRICS:
        raise ConfigError(f"metric must be one of {', '.join(_METRICS)}, got {metric!r}")
    items = check_contractions(contractions)
    names = check_names(channel_names) if channel_names is not None else {}
    nc = resolve_channel(names, numerator, "numerator")
    dc = resolve_channel(names, denominator, "denominator")
    if nc == dc:
        raise ConfigError(f"numerator and denominator are the same channel ({nc})")
    join_gap = check_positive("join_gap", join_gap, allow_zero=True)
    mine = [c for c in items if int(c.channel) in (nc, dc)]
    if metric == "pct_mvc":
        lacking = sorted({int(c.channel) for c in mine if c.pct_mvc is None})
        if lacking:
            raise ConfigError(
                f"channels {lacking} have contractions without pct_mvc; calibrate MVC "
                "(or use metric='mean' / 'peak')"
            )

    def val(cs: list[Any]) -> float:
        return float(np.mean([float(getattr(c, metric)) for c in cs]))

    num = [c for c in mine if int(c.channel) == nc]
    den = [c for c in mine if int(c.channel) == dc]
    overall = _ratio(val(num), val(den)) if num and den else None
    per_rep = []
    for g in group_firing(mine, join_gap):
        gn = [c for c in g if int(c.channel) == nc]
        gd = [c for c in g if int(c.channel) == dc]
        if gn and gd:
            per_rep.append(_ratio(val(gn), val(gd)))
    return ActivationRatio(
        names.get(nc, f"ch{nc}"), names.get(dc, f"ch{dc}"), metric, overall,
        tuple(per_rep), _median(per_rep), len(num), len(den),
    )


def envelope_ratio(
    num_env: Any,
    den_env: Any,
    rate: float,
    windows: Iterable[Any],
    *,
    stat: str = "mean",
    numerator: str = "numerator",
    denominator: str = "denominator",
    mvc: tuple[float, float] | None = None,
) -> ActivationRatio:
    """Ratio of two envelopes' mean or peak within each window (see module doc).

    ``mvc=(numerator MVC, denominator MVC)`` first expresses each envelope in
    %MVC (envelope / MVC * 100), which makes the ratio comparable across
    muscles; the metric is then reported as ``"pct_mvc_<stat>"``.
    """
    if stat not in ("mean", "peak"):
        raise ConfigError(f"stat must be 'mean' or 'peak', got {stat!r}")
    a = check_signal(num_env, "num_env", nonneg=True)
    b = check_signal(den_env, "den_env", nonneg=True)
    if a.shape != b.shape:
        raise ConfigError(f"num_env has {a.shape[0]} samples but den_env has {b.shape[0]}")
    rate = check_rate(rate)
    metric = stat
    if mvc is not None:
        if not isinstance(mvc, (tuple, list)) or len(mvc) != 2:
            raise ConfigError(f"mvc must be a pair (numerator MVC, denominator MVC), got {mvc!r}")
        ma, mb = check_positive("mvc[0]", mvc[0]), check_positive("mvc[1]", mvc[1])
        a, b = a / ma * 100.0, b / mb * 100.0
        metric = f"pct_mvc_{stat}"
    spans = to_windows(windows, rate, a.shape[0])
    if not spans:
        raise ConfigError("windows is empty; pass (start, end) seconds or contractions")
    f = np.mean if stat == "mean" else np.max
    sa = np.array([f(a[s:e]) for s, e in spans])
    sb = np.array([f(b[s:e]) for s, e in spans])
    per = tuple(_ratio(x, y) for x, y in zip(sa, sb, strict=True))
    return ActivationRatio(
        numerator, denominator, metric, nan_to_none(_ratio(sa.mean(), sb.mean())),
        per, _median(per), len(spans), len(spans),
    )
