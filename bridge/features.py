"""Sliding-window sEMG features: RMS, MAV, IAV, WL, ZC, SSC, WAMP, MNF, MDF.

Definitions follow Phinyomark et al. (2012) "Feature reduction and selection for
EMG signal classification", Expert Syst. Appl. 39:7420.  For a window
``x[0..N-1]`` of one channel:

=====  ==========================================================================
RMS    ``sqrt(mean(x**2))``
MAV    ``mean(|x|)``
IAV    ``sum(|x|)``  (integrated absolute value, a.k.a. IEMG; in signal units x samples)
WL     ``sum(|x[i+1] - x[i]|)``  (waveform length)
ZC     count of ``i`` with ``x[i]*x[i+1] < 0`` and ``|x[i] - x[i+1]| >= zc_threshold``
SSC    count of ``i`` in 1..N-2 with ``(x[i]-x[i-1])*(x[i]-x[i+1]) >= ssc_threshold``
WAMP   count of ``i`` with ``|x[i+1] - x[i]| > wamp_threshold``
MNF    ``sum(f*P) / sum(P)`` over the one-sided power spectrum ``P``
MDF    the first frequency whose cumulative power exceeds half the total
=====  ==========================================================================

The spectrum of a window is its FFT zero-padded to ``nfft`` points (default: the
next power of two >= window), of which the first ``nfft // 2`` bins are used
(DC up to, not including, Nyquist).  ``freq_axis="bins"`` (default) gives bin
``k`` its true frequency ``k * rate / nfft``; ``freq_axis="toolbox"`` uses
``linspace(0, rate/2, nfft//2)`` instead, the axis of the MATLAB toolbox behind
libemg's reference values (tests/data/libemg), which stretches every frequency
by ``nfft/(nfft-2)`` (0.8 % at nfft = 256).  Use it only to reproduce those
numbers.

A window with no power (all zeros) has no MNF/MDF: those entries are NaN.

Window ``j`` covers samples ``[j*step, j*step + window)``; trailing samples that
do not fill a window are not used (:func:`window_starts` tells where each window
starts).  The offline function :func:`window_features` and the streaming
:class:`SlidingWindowFeatures` give identical numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bridge.errors import ConfigError, SignalError

__all__ = [
    "FEATURES",
    "SlidingWindowFeatures",
    "mean_frequency",
    "median_frequency",
    "n_windows",
    "window_features",
    "window_starts",
]

FEATURES: tuple[str, ...] = ("RMS", "MAV", "IAV", "WL", "ZC", "SSC", "WAMP", "MNF", "MDF")
_SPECTRAL = frozenset({"MNF", "MDF"})
FreqAxis = Literal["bins", "toolbox"]

# Spectral features FFT each window; they run in batches of windows so memory
# stays bounded for hour-long recordings.
_BATCH_ELEMENTS = 1 << 22


# ----------------------------------------------------------------------------
# validation helpers


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer number of samples, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum} samples, got {value}")
    return int(value)


def _check_threshold(name: str, value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0:
        raise ConfigError(f"{name} must be finite and >= 0 (signal units), got {value!r}")
    return v


def _check_rate(rate: object) -> float:
    try:
        r = float(rate)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"rate must be a number in Hz, got {rate!r}") from None
    if not np.isfinite(r) or r <= 0:
        raise ConfigError(f"rate must be a finite sampling rate > 0 Hz, got {rate!r}")
    return r


def _check_features(features: Iterable[str]) -> tuple[str, ...]:
    if isinstance(features, str):
        features = (features,)
    out = []
    for f in features:
        name = str(f).upper()
        if name not in FEATURES:
            raise ConfigError(f"unknown feature {f!r}; choose from {', '.join(FEATURES)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"features is empty; choose from {', '.join(FEATURES)}")
    return tuple(out)


def _as_samples(x: object, what: str = "samples") -> np.ndarray:
    """(n,) or (n, channels) real finite samples -> float64 (n, channels) C-contiguous."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ConfigError(f"{what} must be real numbers, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a[:, None]
    elif a.ndim != 2:
        raise ConfigError(
            f"{what} must have shape (n,) or (n, channels), got shape {a.shape}; "
            "put time on the first axis"
        )
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.size and not np.isfinite(a).all():
        bad = int(np.argwhere(~np.isfinite(a))[0, 0])
        raise SignalError(
            f"{what} contain NaN or infinity (first at sample {bad}); "
            "cut the gap out or fill it before computing features"
        )
    return a


def n_windows(n: int, window: int, step: int) -> int:
    """Number of complete windows of ``window`` samples every ``step`` in ``n`` samples."""
    return 0 if n < window else (n - window) // step + 1


def window_starts(n: int, window: int, step: int) -> np.ndarray:
    """First sample index of every complete window (divide by rate for seconds)."""
    return np.arange(n_windows(n, window, step), dtype=np.int64) * step


# ----------------------------------------------------------------------------
# spectral helpers (also used by bridge.analytics.fatigue)


def mean_frequency(power: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """MNF = sum(f * P) / sum(P) along the last axis; NaN where there is no power."""
    total = power.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (power * freqs).sum(axis=-1) / total
    return np.where(total > 0, out, np.nan)


def median_frequency(
    power: np.ndarray, freqs: np.ndarray, *, interpolate: bool = False
) -> np.ndarray:
    """MDF along the last axis; NaN where there is no power.

    Without ``interpolate``: the frequency of the first bin at which the
    cumulative power exceeds half the total (the toolbox convention; resolution
    one bin, biased up by up to one bin).  With ``interpolate``: each bin's
    power is spread evenly over its cell (from midway to the previous bin to
    midway to the next), and the MDF is where that cumulative power reaches half
    (sub-bin resolution, unbiased for a symmetric peak; better for fatigue
    slopes).  ``freqs`` must be increasing.
    """
    cum = np.cumsum(power, axis=-1)
    total = cum[..., -1:]
    half = total / 2.0
    k = np.argmax(cum > half, axis=-1)
    fk = freqs[k]
    if interpolate and freqs.size > 1:
        mids = (freqs[1:] + freqs[:-1]) / 2.0
        edges = np.concatenate(([2 * freqs[0] - mids[0]], mids, [2 * freqs[-1] - mids[-1]]))
        below = np.where(k > 0, np.take_along_axis(cum, np.maximum(k - 1, 0)[..., None], -1)[..., 0], 0.0)
        pk = np.take_along_axis(power, k[..., None], axis=-1)[..., 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.clip((half[..., 0] - below) / pk, 0.0, 1.0)
        fk = edges[k] + frac * (edges[k + 1] - edges[k])
    return np.where(total[..., 0] > 0, fk, np.nan)


def _freq_axis(rate: float, nfft: int, freq_axis: str) -> np.ndarray:
    half = nfft // 2
    if freq_axis == "bins":
        return np.arange(half) * (rate / nfft)
    if freq_axis == "toolbox":
        return np.linspace(0.0, rate / 2.0, half)
    raise ConfigError(f"freq_axis must be 'bins' or 'toolbox', got {freq_axis!r}")


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


# ----------------------------------------------------------------------------
# the kernel: complete windows of one contiguous signal


class _Params:
    """Validated parameters shared by the offline function and the streaming class."""

    __slots__ = ("window", "step", "features", "rate", "zc", "ssc", "wamp", "nfft", "freqs")

    def __init__(self, window, step, features, rate, zc_threshold, ssc_threshold,
                 wamp_threshold, nfft, freq_axis):
        self.window = _check_int("window", window, 2)
        self.step = _check_int("step", step, 1)
        self.features = _check_features(features)
        self.rate = _check_rate(rate)
        self.zc = _check_threshold("zc_threshold", zc_threshold)
        self.ssc = _check_threshold("ssc_threshold", ssc_threshold)
        self.wamp = _check_threshold("wamp_threshold", wamp_threshold)
        if nfft is None:
            nfft = _next_pow2(self.window)
        self.nfft = _check_int("nfft", nfft, self.window)
        self.freqs = _freq_axis(self.rate, self.nfft, freq_axis)


def _window_sums(q: np.ndarray, w: int, s: int, nw: int) -> np.ndarray:
    """Sum of q (n, ch) over each window [j*s, j*s + w) -> (nw, ch).

    Sums blocks of gcd(w, s) samples first, so a window costs w/gcd additions
    of nearby partial sums (8 for window 200, step 25) instead of w, and no
    long running sum loses precision.
    """
    g = math.gcd(w, s)
    m = ((nw - 1) * s + w) // g
    blocks = q[: m * g]
    if g > 1:
        blocks = blocks.reshape(m, g, q.shape[1]).sum(axis=1)
    return sliding_window_view(blocks, w // g, axis=0)[:: s // g].sum(axis=-1)


def _window_counts(ind: np.ndarray, lo: int, hi: int, w: int, s: int, nw: int) -> np.ndarray:
    """Per window j, count of True in ind[j*s + lo : j*s + w - hi] (exact, via an int cumsum)."""
    c = np.zeros((ind.shape[0] + 1, ind.shape[1]), dtype=np.int64)
    np.cumsum(ind, axis=0, out=c[1:])
    starts = np.arange(nw) * s
    return (c[starts + w - hi] - c[starts + lo]).astype(np.float64)


def _compute(x: np.ndarray, p: _Params) -> dict[str, np.ndarray]:
    """Features of every complete window of ``x`` (n, ch) -> {name: (n_windows, ch)}."""
    n, ch = x.shape
    w, s = p.window, p.step
    nw = n_windows(n, w, s)
    out = {f: np.empty((nw, ch), dtype=np.float64) for f in p.features}
    if nw == 0:
        return out
    want = set(p.features)
    x = x[: (nw - 1) * s + w]  # samples after the last window are never used

    # Time domain: per-sample quantities once, then sums per window.
    if want & {"MAV", "IAV"}:
        iav = _window_sums(np.abs(x), w, s, nw)
        if "IAV" in want:
            out["IAV"] = iav
        if "MAV" in want:
            out["MAV"] = iav / w
    if "RMS" in want:
        out["RMS"] = np.sqrt(_window_sums(x * x, w, s, nw) / w)
    if want & {"WL", "WAMP", "ZC"}:
        d = np.diff(x, axis=0)  # d[i] = x[i+1] - x[i]: pair i lies in window j if j*s <= i < j*s + w - 1
        ad = np.abs(d)
        if "WL" in want:
            # the w - 1 pairs of window j are ad[j*s : j*s + w - 1]; summed directly (a sum
            # over w pairs minus the one leaving the window cancelled: relative errors of
            # 5e-12 on quiet windows, and streaming != one pass)
            out["WL"] = (_window_sums(ad, w - 1, s, nw) if w > 1 else np.zeros((nw, ch)))
        if "WAMP" in want:
            out["WAMP"] = _window_counts(ad > p.wamp, 0, 1, w, s, nw)
        if "ZC" in want:
            cross = (x[:-1] * x[1:] < 0) & (ad >= p.zc)
            out["ZC"] = _window_counts(cross, 0, 1, w, s, nw)
    if "SSC" in want:
        # sample i (1..n-2) is a turn if (x[i]-x[i-1])*(x[i]-x[i+1]) >= thr; index it by i-1
        d = np.diff(x, axis=0)
        turn = -d[:-1] * d[1:] >= p.ssc
        out["SSC"] = _window_counts(turn, 0, 2, w, s, nw)

    # Frequency domain: FFT of each window, in batches to bound memory.
    if want & _SPECTRAL:
        batch = max(1, _BATCH_ELEMENTS // max(1, ch * p.nfft))
        for b0 in range(0, nw, batch):
            b1 = min(nw, b0 + batch)
            win = sliding_window_view(x[b0 * s : (b1 - 1) * s + w], w, axis=0)[::s]
            spec = np.fft.rfft(win, n=p.nfft, axis=-1)[..., : p.nfft // 2]
            power = spec.real**2 + spec.imag**2
            if "MNF" in want:
                out["MNF"][b0:b1] = mean_frequency(power, p.freqs)
            if "MDF" in want:
                out["MDF"][b0:b1] = median_frequency(power, p.freqs)
    return out


def _squeeze(res: dict[str, np.ndarray], one_d: bool) -> dict[str, np.ndarray]:
    return {k: v[:, 0] for k, v in res.items()} if one_d else res


def window_features(
    samples: object,
    window: int,
    step: int,
    *,
    features: Iterable[str] = FEATURES,
    rate: float = 1000.0,
    zc_threshold: float = 0.0,
    ssc_threshold: float = 0.0,
    wamp_threshold: float = 0.0,
    nfft: int | None = None,
    freq_axis: FreqAxis = "bins",
) -> dict[str, np.ndarray]:
    """Compute features over sliding windows of raw (band-passed, not rectified) sEMG.

    Args:
        samples: shape (n,) or (n, channels), time on the first axis.
        window, step: window length and hop, in samples.
        features: names from :data:`FEATURES` (case-insensitive), default all.
        rate: sampling rate in Hz (only MNF/MDF use it).
        zc_threshold, ssc_threshold, wamp_threshold: noise thresholds in signal
            units (SSC's is in squared units), see the module docstring.
        nfft: FFT length for MNF/MDF, >= window; default next power of two.
        freq_axis: "bins" (true bin frequencies) or "toolbox" (MATLAB toolbox axis).

    Returns:
        ``{name: array}`` with shape (n_windows,) for 1-D input or
        (n_windows, channels) for 2-D input; counts are returned as floats.

    Raises:
        ConfigError: bad parameters, shape or dtype.
        SignalError: NaN/inf samples, or fewer samples than one window.
    """
    p = _Params(window, step, features, rate, zc_threshold, ssc_threshold,
                wamp_threshold, nfft, freq_axis)
    one_d = np.ndim(samples) == 1
    x = _as_samples(samples)
    if x.shape[0] < p.window:
        raise SignalError(
            f"signal has {x.shape[0]} samples, fewer than one window of {p.window}; "
            "use a shorter window or a longer recording"
        )
    return _squeeze(_compute(x, p), one_d)


class SlidingWindowFeatures:
    """Streaming :func:`window_features`: feed blocks, get the windows they complete.

    Keeps only the samples a future window still needs.  Whatever the block
    sizes (including empty and 1-sample blocks), the concatenated outputs equal
    :func:`window_features` over the whole signal.
    """

    def __init__(
        self,
        channels: int,
        window: int,
        step: int,
        *,
        features: Iterable[str] = FEATURES,
        rate: float = 1000.0,
        zc_threshold: float = 0.0,
        ssc_threshold: float = 0.0,
        wamp_threshold: float = 0.0,
        nfft: int | None = None,
        freq_axis: FreqAxis = "bins",
    ) -> None:
        self.channels = _check_int("channels", channels, 1)
        self._p = _Params(window, step, features, rate, zc_threshold, ssc_threshold,
                          wamp_threshold, nfft, freq_axis)
        self.reset()

    @property
    def features(self) -> tuple[str, ...]:
        return self._p.features

    def reset(self) -> None:
        """Forget buffered samples; the next sample starts window 0 again."""
        self._buf = np.empty((0, self.channels), dtype=np.float64)
        self._next_start = 0  # absolute index of the next window's first sample
        self._buf_start = 0  # absolute index of self._buf[0]
        self.windows_emitted = 0

    def process(self, block: object) -> dict[str, np.ndarray]:
        """Add samples (n, channels) (or (n,) for one channel); return new windows' features.

        Each value has shape (new_windows, channels).  Use ``windows_emitted``
        (before the call) times ``step`` for the first new window's start sample.
        """
        b = _as_samples(block, "block")
        if b.shape[1] != self.channels:
            raise ConfigError(
                f"block has {b.shape[1]} channels but this extractor was made for "
                f"{self.channels}; make one extractor per channel layout"
            )
        if b.shape[0]:
            self._buf = np.concatenate((self._buf, b)) if self._buf.shape[0] else b.copy()
        p = self._p
        offset = self._next_start - self._buf_start
        avail = self._buf[offset:] if offset < self._buf.shape[0] else self._buf[:0]
        nw = n_windows(avail.shape[0], p.window, p.step)
        res = _compute(avail, p) if nw else {f: np.empty((0, self.channels)) for f in p.features}
        self._next_start += nw * p.step
        self.windows_emitted += nw
        # drop samples before the next window start (it may lie beyond the buffer)
        drop = min(self._next_start - self._buf_start, self._buf.shape[0])
        if drop:
            self._buf = self._buf[drop:].copy()
            self._buf_start += drop
        return res

    def __repr__(self) -> str:
        p = self._p
        return (f"SlidingWindowFeatures(channels={self.channels}, window={p.window}, "
                f"step={p.step}, features={p.features!r})")

