"""Shared pieces of the analytics: the contraction protocol, validation, JSON export.

Analytics never import :mod:`bridge.emg`; they work on any object that has the
attributes of :class:`ContractionLike` (the detector's ``Contraction``
dataclass, a row read back from a JSONL file, a test double...).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bridge.errors import ConfigError, SignalError

__all__ = ["ContractionLike", "Result"]

_REQUIRED = ("channel", "onset", "offset", "peak", "mean", "pct_mvc")


@runtime_checkable
class ContractionLike(Protocol):
    """What the analytics need from one detected contraction (times in seconds)."""

    @property
    def channel(self) -> int: ...
    @property
    def onset(self) -> float: ...
    @property
    def offset(self) -> float: ...
    @property
    def peak(self) -> float: ...
    @property
    def mean(self) -> float: ...
    @property
    def pct_mvc(self) -> float | None: ...
    @property
    def duration(self) -> float: ...


class Result:
    """Mixin for the frozen result dataclasses: plain-JSON export."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """A tree of dicts/lists/str/int/float/None (NaN becomes None), ready for ``json.dumps``."""
        return _plain(self)


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def nan_to_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# ----------------------------------------------------------------------------
# validation


def check_contractions(contractions: Iterable[Any]) -> list[Any]:
    """Materialise and check a contraction list; return it sorted by (onset, channel)."""
    if contractions is None:
        raise ConfigError("contractions is None; pass a list (possibly empty) of contractions")
    items = list(contractions)
    for i, c in enumerate(items):
        missing = [a for a in _REQUIRED if not hasattr(c, a)]
        if missing:
            raise ConfigError(
                f"contraction {i} ({type(c).__name__}) lacks {', '.join(missing)}; "
                "analytics need channel, onset, offset, peak, mean and pct_mvc"
            )
        if isinstance(c.channel, bool) or not isinstance(c.channel, (int, np.integer)):
            raise ConfigError(f"contraction {i} has channel {c.channel!r}; it must be an int")
        for a in ("onset", "offset", "peak", "mean"):
            v = getattr(c, a)
            if v is None or not math.isfinite(float(v)):
                raise SignalError(f"contraction {i} has {a} = {v!r}; it must be a finite number")
        if c.offset < c.onset:
            raise SignalError(
                f"contraction {i} ends ({c.offset}) before it starts ({c.onset}); "
                "onset and offset are in seconds, offset >= onset"
            )
        if c.pct_mvc is not None and not math.isfinite(float(c.pct_mvc)):
            raise SignalError(f"contraction {i} has pct_mvc = {c.pct_mvc!r}; use None when unknown")
    items.sort(key=lambda c: (c.onset, c.channel))
    return items


def duration_of(c: Any) -> float:
    return float(c.offset) - float(c.onset)


def is_partial(c: Any) -> bool:
    """Whether only part of contraction ``c`` was seen, so its duration is a lower bound.

    ``truncated``: closed by a link gap, a link lost for good or the end of the data (Ctrl-C)
    while the muscle was still contracting; ``censored_onset``: already contracting at the
    first sample.  Both attributes are optional (False when absent).
    """
    return bool(getattr(c, "truncated", False) or getattr(c, "censored_onset", False))


def check_names(channel_names: Mapping[int, str]) -> dict[int, str]:
    """Channel-index -> muscle-name mapping with unique names."""
    if not isinstance(channel_names, Mapping) or not channel_names:
        raise ConfigError(
            "channel_names must be a non-empty mapping {channel index: muscle name}, "
            "e.g. {0: 'glute_max_L', 1: 'hamstrings_L'}"
        )
    out: dict[int, str] = {}
    for k, v in channel_names.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ConfigError(f"channel_names key {k!r} must be a channel index (int)")
        out[int(k)] = str(v)
    names = list(out.values())
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"channel_names repeats {sorted(dup)}; give each channel its own name")
    return out


def resolve_channel(names: Mapping[int, str], key: int | str, what: str = "channel") -> int:
    """A channel given by index or by name -> its index."""
    if isinstance(key, str):
        for ch, n in names.items():
            if n == key:
                return ch
        raise ConfigError(f"{what} {key!r} is not in channel_names ({', '.join(names.values())})")
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise ConfigError(f"{what} must be a channel index or name, got {key!r}")
    if names and int(key) not in names:
        raise ConfigError(f"{what} {key} is not in channel_names (channels {sorted(names)})")
    return int(key)


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def check_rate(rate: Any) -> float:
    if rate is None:
        raise ConfigError("rate (Hz) is needed to turn seconds into samples; pass rate=")
    return check_positive("rate", rate)


def check_signal(x: Any, what: str, *, ndim: Sequence[int] = (1,), nonneg: bool = False) -> np.ndarray:
    """Real, finite float64 array of an allowed rank; optionally non-negative."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ConfigError(f"{what} must be real numbers, got dtype {a.dtype}")
    if a.ndim not in ndim:
        want = " or ".join({1: "(n,)", 2: "(n, channels)"}[d] for d in ndim)
        raise ConfigError(f"{what} must have shape {want}, got {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.shape[0] == 0:
        raise SignalError(f"{what} is empty")
    if not np.isfinite(a).all():
        bad = int(np.argwhere(~np.isfinite(a))[0, 0])
        raise SignalError(f"{what} contains NaN or infinity (first at sample {bad}); fill or cut the gap")
    if nonneg and (a < 0).any():
        raise SignalError(
            f"{what} has negative values; pass a rectified envelope (e.g. RMS or "
            "low-passed |EMG|), not raw EMG"
        )
    return a


def to_windows(windows: Iterable[Any], rate: float, n: int, what: str = "windows") -> list[tuple[int, int]]:
    """(start, end) seconds or contraction-likes -> sample slices within [0, n)."""
    out = []
    for i, w in enumerate(windows):
        if hasattr(w, "onset") and hasattr(w, "offset"):
            s, e = float(w.onset), float(w.offset)
        else:
            try:
                s, e = (float(v) for v in w)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{what}[{i}] = {w!r}; give (start, end) in seconds or contractions"
                ) from None
        if not (math.isfinite(s) and math.isfinite(e)) or e <= s:
            raise ConfigError(f"{what}[{i}] = ({s}, {e}) s; end must be after start")
        a, b = int(round(s * rate)), int(round(e * rate))
        if a < 0 or b > n:
            raise ConfigError(
                f"{what}[{i}] = ({s:.3f}, {e:.3f}) s lies outside the signal (0 to {n / rate:.3f} s); "
                "times are seconds from the first sample"
            )
        if b <= a:
            raise ConfigError(f"{what}[{i}] = ({s}, {e}) s is shorter than one sample")
        out.append((a, b))
    return out
