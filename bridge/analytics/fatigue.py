"""Fatigue: the fall of median and mean frequency (MDF/MNF) over reps or within a hold.

As motor units fatigue, conduction velocity drops and the sEMG power spectrum
compresses toward low frequencies; MDF and MNF fall (De Luca 1984; Cifrek et
al. 2009, Clin Biomech 24:327).  For each segment of *raw* (band-passed, not
rectified) EMG we estimate the power spectrum with Welch's method (Hann
window, ``segment`` seconds per FFT, 50 % overlap, constant detrend), keep
``band`` (default 20-450 Hz, capped at Nyquist, to drop motion artefact and
out-of-band noise), and compute

* MNF = sum(f * P) / sum(P)
* MDF = the frequency splitting the band's power in half, linearly
  interpolated between bins (a 4 Hz-resolution MDF would hide slopes of a
  fraction of a Hz per rep).

A least-squares line through the values against rep number gives Hz per rep;
against segment mid-time, Hz per second; both with their r^2.  A clearly
negative slope with a decent r^2 over a set is the fatigue sign; a few noisy
reps are not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.signal import get_window

from bridge.analytics._base import (
    Result,
    check_positive,
    check_rate,
    check_signal,
    nan_to_none,
    to_windows,
)
from bridge.errors import ConfigError, SignalError
from bridge.features import mean_frequency, median_frequency

__all__ = [
    "FatigueTrend",
    "SegmentFrequency",
    "Trend",
    "fatigue_trend",
    "linear_trend",
    "pieces_frequencies",
    "segment_frequencies",
    "trend_of_segments",
    "welch_psd",
    "within_hold_fatigue",
]

MIN_SEGMENT_SAMPLES = 64


@dataclass(frozen=True, slots=True)
class Trend(Result):
    """Least-squares line y = slope * x + intercept; None when undefined."""

    slope: float | None
    intercept: float | None
    r2: float | None
    n: int


def linear_trend(x: Any, y: Any) -> Trend:
    """Ordinary least squares of y on x, ignoring pairs with NaN y.

    Needs at least two distinct x; r^2 is None when y is constant.
    """
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ConfigError(f"x and y must be 1-D of equal length, got {xa.shape} and {ya.shape}")
    keep = np.isfinite(ya) & np.isfinite(xa)
    xa, ya = xa[keep], ya[keep]
    n = int(xa.size)
    if n < 2 or np.ptp(xa) == 0:
        return Trend(None, None, None, n)
    xm, ym = xa.mean(), ya.mean()
    sxx = float(((xa - xm) ** 2).sum())
    sxy = float(((xa - xm) * (ya - ym)).sum())
    syy = float(((ya - ym) ** 2).sum())
    slope = sxy / sxx
    r2 = sxy * sxy / (sxx * syy) if syy > 0 else None
    return Trend(slope, float(ym - slope * xm), r2, n)


@dataclass(frozen=True, slots=True)
class SegmentFrequency(Result):
    """MNF/MDF of one segment."""

    index: int  # 1-based
    start: float  # s
    end: float  # s
    mnf: float | None  # Hz
    mdf: float | None  # Hz


@dataclass(frozen=True, slots=True)
class FatigueTrend(Result):
    """MNF/MDF per segment and their linear trends."""

    segments: tuple[SegmentFrequency, ...]
    mdf_per_index: Trend  # Hz per rep (or per window within a hold)
    mnf_per_index: Trend
    mdf_per_second: Trend  # Hz per second of segment mid-time
    mnf_per_second: Trend
    mdf_change_pct: float | None  # fitted last vs fitted first, % of fitted first

    def describe(self) -> str:
        t = self.mdf_per_index
        if t.slope is None:
            return "fatigue: too few segments"
        return (f"MDF {t.slope:+.2f} Hz/rep (r^2 {t.r2 or 0:.2f}), "
                f"{self.mdf_change_pct or 0:+.0f} % over {t.n} reps")


def _spectrum_params(rate: float, band: tuple[float, float] | None, segment: float):
    segment = check_positive("segment", segment)
    nyq = rate / 2.0
    if band is None:
        lo, hi = 0.0, nyq
    else:
        try:
            lo, hi = (float(v) for v in band)
        except (TypeError, ValueError):
            raise ConfigError(f"band must be (low Hz, high Hz) or None, got {band!r}") from None
        if not (0 <= lo < hi):
            raise ConfigError(f"band {band!r} must satisfy 0 <= low < high")
        hi = min(hi, nyq)
        if lo >= hi:
            raise ConfigError(f"band {band!r} lies above Nyquist ({nyq} Hz)")
    return segment, lo, hi


@lru_cache(maxsize=32)
def _hann(nper: int) -> tuple[np.ndarray, float]:
    w = get_window("hann", nper)  # periodic, as scipy.signal.welch uses
    w.setflags(write=False)
    return w, float((w * w).sum())


def welch_psd(x: np.ndarray, rate: float, nper: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One-sided Welch PSD: Hann windows of ``nper``, 50 % overlap, mean removed per window.

    The same numbers as ``scipy.signal.welch(x, rate, "hann", nper, nper // 2,
    detrend="constant")`` (tests hold it to 1e-12), computed in one vectorised
    FFT: scipy's loops over windows in Python and a live session takes a
    spectrum of every contraction.  Returns (freqs, psd, number of windows).
    """
    step = nper - nper // 2
    k = 1 + (x.size - nper) // step
    frames = np.lib.stride_tricks.sliding_window_view(x, nper)[::step][:k]
    w, ss = _hann(nper)
    spec = np.fft.rfft((frames - frames.mean(axis=1, keepdims=True)) * w, axis=1)
    p = (spec.real ** 2 + spec.imag ** 2).mean(axis=0) / (rate * ss)
    p[1:-1 if nper % 2 == 0 else None] *= 2.0  # one-sided: fold negative frequencies
    return np.fft.rfftfreq(nper, 1.0 / rate), p, k


def _frequencies(x: np.ndarray, rate: float, lo: float, hi: float, segment: float):
    nper = min(x.size, max(16, int(round(segment * rate))))
    f, p, _ = welch_psd(x, rate, nper)
    return _band_frequencies(f, p, lo, hi, segment)


def _band_frequencies(f: np.ndarray, p: np.ndarray, lo: float, hi: float, segment: float):
    keep = (f >= lo) & (f <= hi)
    f, p = f[keep], p[keep]
    if f.size < 2:
        raise ConfigError(
            f"band {lo}-{hi} Hz holds fewer than 2 spectral bins at segment {segment} s; "
            "widen the band or lengthen the segment"
        )
    return nan_to_none(mean_frequency(p, f)), nan_to_none(median_frequency(p, f, interpolate=True))


def pieces_frequencies(
    pieces: Iterable[Any],
    rate: float,
    *,
    band: tuple[float, float] | None = (20.0, 450.0),
    segment: float = 0.25,
) -> tuple[float | None, float | None] | None:
    """MNF and MDF of one segment given as gap-free pieces (a segment a link gap cut).

    Welch PSDs of the pieces are averaged, weighted by their Welch segment
    counts, so that no spectral window straddles a hole.  Pieces shorter than
    one Welch segment are left out; None when none is long enough.
    """
    rate = check_rate(rate)
    segment, lo, hi = _spectrum_params(rate, band, segment)
    nper = max(16, int(round(segment * rate)))
    acc, weight, f = None, 0, None
    for piece in pieces:
        x = check_signal(piece, "piece", ndim=(1,))
        if x.size < nper:
            continue
        f, p, k = welch_psd(x, rate, nper)
        acc = p * k if acc is None else acc + p * k
        weight += k
    if acc is None:
        return None
    return _band_frequencies(f, acc / weight, lo, hi, segment)


def _one_channel(raw: Any, channel: int | None) -> np.ndarray:
    x = check_signal(raw, "raw", ndim=(1, 2))
    if x.ndim == 2:
        if channel is None:
            if x.shape[1] != 1:
                raise ConfigError(f"raw has {x.shape[1]} channels; pass channel=")
            channel = 0
        if not 0 <= channel < x.shape[1]:
            raise ConfigError(f"channel {channel} is not in raw ({x.shape[1]} channels)")
        x = np.ascontiguousarray(x[:, channel])
    return x


def segment_frequencies(
    raw: Any,
    rate: float,
    segments: Iterable[Any],
    *,
    channel: int | None = None,
    band: tuple[float, float] | None = (20.0, 450.0),
    segment: float = 0.25,
) -> tuple[SegmentFrequency, ...]:
    """MNF and MDF of raw EMG in each segment ((start, end) s or contraction-likes)."""
    rate = check_rate(rate)
    x = _one_channel(raw, channel)
    segment, lo, hi = _spectrum_params(rate, band, segment)
    out = []
    for i, (s, e) in enumerate(to_windows(segments, rate, x.size, "segments"), start=1):
        if e - s < MIN_SEGMENT_SAMPLES:
            raise SignalError(
                f"segment {i} ({s / rate:.3f}-{e / rate:.3f} s) has {e - s} samples; "
                f"a spectrum needs at least {MIN_SEGMENT_SAMPLES}"
            )
        mnf, mdf = _frequencies(x[s:e], rate, lo, hi, segment)
        out.append(SegmentFrequency(i, s / rate, e / rate, mnf, mdf))
    return tuple(out)


def _trend_of(segs: tuple[SegmentFrequency, ...]) -> FatigueTrend:
    idx = np.array([s.index for s in segs], dtype=np.float64)
    mid = np.array([(s.start + s.end) / 2 for s in segs], dtype=np.float64)
    mdf = np.array([np.nan if s.mdf is None else s.mdf for s in segs], dtype=np.float64)
    mnf = np.array([np.nan if s.mnf is None else s.mnf for s in segs], dtype=np.float64)
    t_mdf = linear_trend(idx, mdf)
    change = None
    if t_mdf.slope is not None:
        first = t_mdf.intercept + t_mdf.slope * idx[0]
        last = t_mdf.intercept + t_mdf.slope * idx[-1]
        change = (last - first) / first * 100.0 if first > 0 else None
    return FatigueTrend(segs, t_mdf, linear_trend(idx, mnf), linear_trend(mid, mdf),
                        linear_trend(mid, mnf), change)


def trend_of_segments(segments: Iterable[SegmentFrequency]) -> FatigueTrend:
    """Trends of already computed segment spectra (e.g. one per rep, kept as each ended).

    The per-index trends use each segment's ``index`` (its rep number), so a rep
    without a spectrum leaves a hole instead of shifting the later reps.
    """
    segs = tuple(sorted(segments, key=lambda s: s.index))
    if not all(isinstance(s, SegmentFrequency) for s in segs):
        raise ConfigError("segments must be SegmentFrequency objects")
    return _trend_of(segs)


def fatigue_trend(
    raw: Any,
    rate: float,
    segments: Iterable[Any],
    *,
    channel: int | None = None,
    band: tuple[float, float] | None = (20.0, 450.0),
    segment: float = 0.25,
) -> FatigueTrend:
    """MNF/MDF per rep or hold (``segments``: (start, end) s or contractions) and their slopes.

    ``raw`` is one channel (n,) or (n, channels) with ``channel=``.  Segments
    are taken in the order given (sort them by time for a slope per rep).
    """
    return _trend_of(segment_frequencies(raw, rate, segments, channel=channel,
                                         band=band, segment=segment))


def within_hold_fatigue(
    raw: Any,
    rate: float,
    start: float,
    end: float,
    *,
    window: float = 1.0,
    step: float = 0.5,
    channel: int | None = None,
    band: tuple[float, float] | None = (20.0, 450.0),
    segment: float = 0.25,
) -> FatigueTrend:
    """MNF/MDF over sliding windows (``window``, ``step`` in s) inside one hold [start, end).

    ``mdf_per_second`` is the within-hold slope (Hz/s); ``mdf_per_index`` is
    per window step.
    """
    rate = check_rate(rate)
    window = check_positive("window", window)
    step = check_positive("step", step)
    start = check_positive("start", start, allow_zero=True)
    end = check_positive("end", end)
    if end - start < window:
        raise ConfigError(f"the hold ({end - start:.2f} s) is shorter than one window ({window} s)")
    k = int(np.floor((end - start - window) / step + 1e-9)) + 1
    spans = [(start + i * step, start + i * step + window) for i in range(k)]
    return fatigue_trend(raw, rate, spans, channel=channel, band=band, segment=segment)
