"""Co-contraction of an agonist/antagonist pair (Winter 2009)::

    %COCON = 2 * common area / (area A + area B) * 100

where the common area is the integral of ``min(A, B)`` over time and A, B are
the two (non-negative) envelopes.  100 % = identical envelopes, 0 % = never
active together.  The areas are sums of samples times ``1/rate``; the rate
cancels in the ratio, so it is only needed to place windows given in seconds.

Compare only envelopes on a common scale (both %MVC, or the same gain and
electrode setup): the index is not amplitude-invariant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.analytics._base import Result, check_rate, check_signal, nan_to_none, to_windows
from bridge.errors import ConfigError

__all__ = ["CoContraction", "cocontraction", "cocontraction_index"]


def _pair(env_a: Any, env_b: Any) -> tuple[np.ndarray, np.ndarray]:
    a = check_signal(env_a, "env_a", nonneg=True)
    b = check_signal(env_b, "env_b", nonneg=True)
    if a.shape != b.shape:
        raise ConfigError(
            f"env_a has {a.shape[0]} samples but env_b has {b.shape[0]}; "
            "pass two envelopes of the same recording, sample-aligned"
        )
    return a, b


def _index(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2.0 * np.minimum(a, b).sum() / total * 100.0) if total > 0 else float("nan")


def cocontraction_index(
    env_a: Any,
    env_b: Any,
    rate: float | None = None,
    *,
    windows: Iterable[Any] | None = None,
) -> Any:
    """Winter's %COCON of two sample-aligned envelopes (shape (n,), non-negative).

    Without ``windows``: one float over the whole signal.  With ``windows``
    ((start, end) seconds or contraction-likes, which need ``rate``): an array
    with one value per window.  NaN where both envelopes are zero.
    """
    a, b = _pair(env_a, env_b)
    if windows is None:
        return _index(a, b)
    rate = check_rate(rate)
    spans = to_windows(windows, rate, a.shape[0])
    return np.array([_index(a[s:e], b[s:e]) for s, e in spans], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class CoContraction(Result):
    """%COCON for one muscle pair: whole recording and per window."""

    muscle_a: str
    muscle_b: str
    overall: float | None  # %
    per_window: tuple[float | None, ...]  # %, one per window
    median_per_window: float | None


def cocontraction(
    env_a: Any,
    env_b: Any,
    rate: float,
    windows: Iterable[Any] = (),
    *,
    muscle_a: str = "a",
    muscle_b: str = "b",
) -> CoContraction:
    """:func:`cocontraction_index` overall and per window, as a result object."""
    windows = list(windows)
    overall = cocontraction_index(env_a, env_b)
    per = cocontraction_index(env_a, env_b, rate, windows=windows) if windows else np.array([])
    finite = per[np.isfinite(per)]
    return CoContraction(
        muscle_a, muscle_b, nan_to_none(overall),
        tuple(nan_to_none(v) for v in per),
        float(np.median(finite)) if finite.size else None,
    )
