"""Left/right symmetry.

Symmetry index (Robinson et al. 1987, J Manipulative Physiol Ther 10:172)::

    SI = (L - R) / ((L + R) / 2) * 100      [%]

0 is perfect symmetry; positive means the left side is larger; the range is
-200..200 for non-negative inputs.  It is undefined (NaN / None) when L + R = 0.
The ratio form is ``L / R`` (1 = symmetric), undefined when R = 0.  Clinics
often quote a limb symmetry index ``weaker / stronger * 100``; that is
``min(L, R) / max(L, R) * 100`` and is given as ``lsi``.

:func:`compare_sides` applies these to the means over each side's
contractions of peak, mean, %MVC and duration, and to the contraction count
and total time under tension.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.analytics._base import (
    Result,
    check_contractions,
    check_names,
    duration_of,
    is_partial,
    nan_to_none,
    resolve_channel,
)
from bridge.analytics.reps import mean_or_none
from bridge.errors import ConfigError, SignalError

__all__ = [
    "BALANCED_LSI",
    "MetricSymmetry",
    "SideComparison",
    "compare_sides",
    "find_side_pairs",
    "limb_symmetry_index",
    "side_verdict",
    "symmetry_index",
    "symmetry_ratio",
]

METRICS = ("peak", "mean", "pct_mvc", "duration", "count", "time_under_tension")

#: Limb symmetry index (%) at or above which the sides count as balanced: the line
#: clinics usually use for "symmetric enough" (SI within about +-10 %).  The terminal
#: summary and the report judge "stronger" against it.
BALANCED_LSI = 90.0


#: What a side verdict is judged on, in order of preference: %MVC when both sides have it
#: (raw mV depend on electrode placement, skin and fat under each electrode, so they compare
#: sides only with the same setup), else the mean activation, else the peak.
VERDICT_BASES = ("pct_mvc", "mean", "peak")


def side_verdict(metrics: Mapping[str, Any]) -> dict | None:
    """Which side is stronger, from the first metric of :data:`VERDICT_BASES` with an SI.

    ``metrics``: a :class:`SideComparison`'s metrics as dicts (``to_dict()``) or
    :class:`MetricSymmetry` objects.  Returns ``{"basis", "si", "lsi", "stronger"}``
    (``stronger`` is "left", "right", or None when balanced: LSI >= :data:`BALANCED_LSI`),
    or None when no basis has a defined SI.  The terminal summary, the results JSON and the
    report all judge by this one function.
    """
    for basis in VERDICT_BASES:
        m = metrics.get(basis)
        if m is None:
            continue
        si = m.get("si") if isinstance(m, Mapping) else m.si
        lsi = m.get("lsi") if isinstance(m, Mapping) else m.lsi
        if si is None:
            continue
        balanced = lsi is not None and lsi >= BALANCED_LSI
        stronger = None if balanced or si == 0 else ("left" if si > 0 else "right")
        return {"basis": basis, "si": si, "lsi": lsi, "stronger": stronger}
    return None


def _pair(left: Any, right: Any) -> tuple[np.ndarray, np.ndarray]:
    l_, r_ = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    if l_.shape != r_.shape and l_.ndim and r_.ndim:
        raise ConfigError(f"left has shape {l_.shape} but right has {r_.shape}")
    if np.isnan(l_).any() or np.isnan(r_).any():
        raise SignalError("left/right values contain NaN")
    return l_, r_


def _ret(x: np.ndarray) -> Any:
    return float(x) if x.ndim == 0 else x


def symmetry_index(left: Any, right: Any) -> Any:
    """SI = (L - R) / ((L + R)/2) * 100 in %, elementwise; NaN where L + R == 0."""
    l_, r_ = _pair(left, right)
    s = l_ + r_
    with np.errstate(invalid="ignore", divide="ignore"):
        # 2 * diff / sum, not diff / (sum / 2): the half of a subnormal sum underflows to 0
        out = np.where(s != 0, 2.0 * (l_ - r_) / s * 100.0, np.nan)
    return _ret(out)


def symmetry_ratio(left: Any, right: Any) -> Any:
    """L / R, elementwise; NaN where R == 0."""
    l_, r_ = _pair(left, right)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(r_ != 0, l_ / r_, np.nan)
    return _ret(out)


def limb_symmetry_index(left: Any, right: Any) -> Any:
    """min(L, R) / max(L, R) * 100 in % (100 = symmetric); NaN where both are 0."""
    l_, r_ = _pair(left, right)
    hi = np.maximum(l_, r_)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(hi != 0, np.minimum(l_, r_) / hi * 100.0, np.nan)
    return _ret(out)


@dataclass(frozen=True, slots=True)
class MetricSymmetry(Result):
    """One metric on both sides and how they compare (None = undefined / unavailable)."""

    metric: str
    left: float | None
    right: float | None
    si: float | None  # %, (L-R)/((L+R)/2)*100
    ratio: float | None  # L/R
    lsi: float | None  # %, min/max*100


@dataclass(frozen=True, slots=True)
class SideComparison(Result):
    """Left vs right for one muscle."""

    muscle: str
    left_channel: int
    right_channel: int
    left_name: str
    right_name: str
    metrics: dict[str, MetricSymmetry]

    def describe(self, metric: str = "peak") -> str:
        """E.g. ``'glute_max peak: SI +35 % (left larger)'``."""
        m = self.metrics[metric]
        if m.si is None:
            return f"{self.muscle} {metric}: symmetry undefined"
        if m.si == 0:
            return f"{self.muscle} {metric}: symmetric"
        side = "left" if m.si > 0 else "right"
        return f"{self.muscle} {metric}: SI {m.si:+.0f} % ({side} larger)"


def _metric(name: str, left: float | None, right: float | None) -> MetricSymmetry:
    if left is None or right is None:
        return MetricSymmetry(name, left, right, None, None, None)
    return MetricSymmetry(
        name, left, right,
        nan_to_none(symmetry_index(left, right)),
        nan_to_none(symmetry_ratio(left, right)),
        nan_to_none(limb_symmetry_index(left, right)),
    )


def compare_sides(
    contractions: Iterable[Any],
    left: int | str,
    right: int | str,
    *,
    channel_names: Mapping[int, str] | None = None,
    muscle: str | None = None,
) -> SideComparison:
    """Compare the contractions of a left and a right channel (by index or name).

    Per side: mean peak, mean of means, mean %MVC (None unless both sides have
    %MVC), mean duration (of the contractions seen whole: a partial one's duration is a
    lower bound), count and total time under tension.  A side without
    contractions has count 0 and time 0, and None for the per-contraction means.
    """
    items = check_contractions(contractions)
    names = check_names(channel_names) if channel_names is not None else {}
    lc = resolve_channel(names, left, "left")
    rc = resolve_channel(names, right, "right")
    if lc == rc:
        raise ConfigError(f"left and right are the same channel ({lc})")
    side = {lc: [c for c in items if int(c.channel) == lc],
            rc: [c for c in items if int(c.channel) == rc]}

    def mean_attr(cs: list[Any], attr: str) -> float | None:
        if attr == "duration":  # a partial contraction's duration is only a lower bound
            return mean_or_none(duration_of(c) for c in cs if not is_partial(c))
        if attr == "pct_mvc" and any(c.pct_mvc is None for c in cs):
            return None
        return mean_or_none(getattr(c, attr) for c in cs)

    metrics: dict[str, MetricSymmetry] = {}
    for m in ("peak", "mean", "pct_mvc", "duration"):
        metrics[m] = _metric(m, mean_attr(side[lc], m), mean_attr(side[rc], m))
    metrics["count"] = _metric("count", float(len(side[lc])), float(len(side[rc])))
    metrics["time_under_tension"] = _metric(
        "time_under_tension",
        float(sum(duration_of(c) for c in side[lc])),
        float(sum(duration_of(c) for c in side[rc])),
    )
    ln, rn = names.get(lc, f"ch{lc}"), names.get(rc, f"ch{rc}")
    if muscle is None:
        muscle = _strip_side(ln) or ln
    return SideComparison(muscle, lc, rc, ln, rn, metrics)


_SIDE = re.compile(r"(?:^|(?<=[\s_\-(.]))(left|right|l|r)(?=$|[\s_\-).])", re.IGNORECASE)


def _side_of(name: str) -> str | None:
    hits = {m.group(1).lower()[0] for m in _SIDE.finditer(name)}
    return hits.pop() if len(hits) == 1 else None


def _strip_side(name: str) -> str:
    base = _SIDE.sub("", name)
    return re.sub(r"[\s_\-().]+", "_", base).strip("_").lower()


def find_side_pairs(channel_names: Mapping[int, str]) -> list[tuple[str, int, int]]:
    """Find (muscle, left channel, right channel) from names like ``glute_max_L``/``glute_max_R``.

    A side is a separate token ``L``/``R``/``left``/``right`` (any case, split
    by space, ``_``, ``-``, ``.`` or parentheses).  Names whose remaining part
    matches form a pair; anything ambiguous is left out, so pass pairs
    explicitly when your names differ.
    """
    names = check_names(channel_names)
    by_base: dict[str, dict[str, list[int]]] = {}
    for ch, n in names.items():
        s = _side_of(n)
        if s is None:
            continue
        by_base.setdefault(_strip_side(n), {}).setdefault(s, []).append(ch)
    out = []
    for base, sides in by_base.items():
        if len(sides.get("l", [])) == 1 and len(sides.get("r", [])) == 1 and base:
            out.append((base, sides["l"][0], sides["r"][0]))
    return sorted(out, key=lambda t: t[1])
