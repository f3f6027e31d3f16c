"""Live and offline sEMG processing: filter chain and contraction detector.

The hot path runs in the native core (``bridge._emg``); this module holds the
public API, parameter defaults, filter design (scipy) and input validation.

Pipeline per channel (all causal, streaming, block-split invariant)::

    raw -> band-pass (Butterworth, default 20-450 Hz) -> mains notch(es)
        -> |x| (or |TKEO|) -> envelope (low-pass or moving RMS)
        -> detector: baseline + k*SD onset held for a minimum time,
           lower offset threshold, short gaps merged, onset refined back
           to where the envelope left the baseline.

Two ways in:

* :class:`ContractionDetector` for live streams: ``process(block)`` returns
  :class:`Onset` / :class:`Offset` events as soon as they are decided.
* :func:`detect_contractions` for whole recordings: it feeds the same
  detector in blocks and returns :class:`Contraction` objects.

Non-finite samples: by default (``nonfinite="raise"``) a block holding NaN or
inf raises :class:`~bridge.errors.SignalError` *before* touching any state, so
the caller can drop or repair it and carry on.  With ``nonfinite="hold"`` such
samples are replaced by the channel's last finite value (zero-order hold: the
filters see a flat line, time stays aligned, nothing is poisoned) and counted
in :attr:`ContractionDetector.nonfinite`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import signal

from bridge.errors import ConfigError, SignalError

try:
    from bridge import _emg
except ImportError as exc:  # pragma: no cover - build problem, say how to fix
    raise ImportError(
        "bridge._emg is not built; run `python setup.py build_ext --inplace` "
        "(or pip install the package)"
    ) from exc

__all__ = [
    "Contraction",
    "ContractionDetector",
    "EmgFilter",
    "Offset",
    "Onset",
    "SosFilter",
    "contractions_from_events",
    "design_chain",
    "detect_contractions",
]

_F64 = np.dtype(np.float64)
_ENV_MODES = {"none": 0, "lowpass": 1, "rms": 2}


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Contraction:
    """One muscle contraction on one channel.

    ``onset``/``offset`` are seconds from the first sample (offset exclusive:
    the first sample back below the offset threshold); ``peak`` and ``mean``
    are envelope values in input units (mV in, mV out); ``pct_mvc`` is
    ``100 * mean / MVC`` when an MVC was calibrated, else None.
    ``truncated`` is True when the data ended before the muscle relaxed and
    the contraction was closed at the last sample.  ``censored_onset`` is
    True when the muscle was already contracting at the first sample (the
    recording started mid-contraction): ``onset`` is then 0, the start of
    the data, not a measured onset - leave it out of onset timing (firing
    order, latencies); duration and amplitude cover the recorded part only.
    """

    channel: int
    onset: float
    offset: float
    peak: float
    mean: float
    pct_mvc: float | None = None
    onset_sample: int = 0
    offset_sample: int = 0
    truncated: bool = False
    censored_onset: bool = False

    @property
    def duration(self) -> float:
        """Seconds from onset to offset."""
        return self.offset - self.onset

    @property
    def peak_pct_mvc(self) -> float | None:
        """Peak envelope as %MVC (None without MVC calibration)."""
        if self.pct_mvc is None or self.mean == 0:
            return None
        return self.pct_mvc * self.peak / self.mean


@dataclass(frozen=True, slots=True)
class Onset:
    """A contraction started on ``channel`` at ``sample`` (refined onset).

    It was decided ``latency`` seconds later, once the envelope had stayed
    above threshold long enough (``emitted_sample``).  ``peak``/``mean`` are
    the envelope so far.  ``censored_onset``: the contraction was already
    under way at the first sample; ``sample`` is 0 and ``latency`` is how
    late that was recognised (with the automatic noise floor: once the floor
    had learnt a rest level far enough below the start).
    """

    channel: int
    sample: int
    time: float
    latency: float
    emitted_sample: int
    peak: float
    mean: float
    kind: str = "onset"
    censored_onset: bool = False


@dataclass(frozen=True, slots=True)
class Offset:
    """A contraction ended on ``channel`` at ``sample`` (first relaxed sample).

    Decided ``latency`` seconds later (after the gap-merge wait).  Carries the
    whole contraction in ``contraction``.
    """

    channel: int
    sample: int
    time: float
    latency: float
    emitted_sample: int
    contraction: Contraction
    kind: str = "offset"


# what _emg.make_events builds: it sets every field, its values in the
# declared order of these dataclasses (the tests compare with the constructors)
_EVENT_TYPES = tuple(x for cls in (Onset, Offset, Contraction)
                     for x in (cls, tuple(f.name for f in dataclasses.fields(cls))))


# --------------------------------------------------------------------------
# Filter design and the stand-alone filter objects
# --------------------------------------------------------------------------
def _positive(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def design_chain(
    rate: float,
    band: tuple[float, float] | None = (20.0, 450.0),
    order: int = 4,
    notch: float | None = 50.0,
    notch_harmonics: int = 3,
    notch_q: float = 30.0,
) -> np.ndarray:
    """SOS (n, 6) of the pre-filter: Butterworth band-pass then mains notches.

    The upper band edge is clamped to 0.95 x Nyquist (e.g. 450 Hz at 500 Hz
    sampling becomes 237.5 Hz).  Notches are placed at ``notch`` and its
    harmonics up to ``notch_harmonics`` x ``notch`` that lie below the upper
    band edge; ``notch=None`` or 0 switches them off.
    """
    rate = _positive("rate", rate)
    nyq = rate / 2.0
    sections = []
    hi = 0.95 * nyq
    if band is not None:
        try:
            lo, hi_req = (float(band[0]), float(band[1]))
        except (TypeError, ValueError, IndexError):
            raise ConfigError(f"band must be (low_hz, high_hz), got {band!r}") from None
        hi = min(hi_req, 0.95 * nyq)
        if not (0 < lo < hi):
            raise ConfigError(
                f"band {band!r} is empty at rate {rate} Hz (upper edge clamped to "
                f"{0.95 * nyq:g} Hz); choose 0 < low < high < Nyquist"
            )
        if int(order) < 1:
            raise ConfigError(f"order must be >= 1, got {order!r}")
        sections.append(signal.butter(int(order), [lo, hi], btype="bandpass", fs=rate, output="sos"))
    if notch:
        f0 = _positive("notch", notch)
        q = _positive("notch_q", notch_q)
        if int(notch_harmonics) < 1:
            raise ConfigError(f"notch_harmonics must be >= 1, got {notch_harmonics!r}")
        for h in range(1, int(notch_harmonics) + 1):
            f = f0 * h
            if f >= min(hi, 0.95 * nyq):
                break
            b, a = signal.iirnotch(f, q, fs=rate)
            sections.append(signal.tf2sos(b, a))
    if not sections:
        return np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    sos = np.ascontiguousarray(np.vstack(sections), dtype=np.float64)
    return sos / sos[:, 3:4]


def _envelope_design(rate: float, envelope: str, cutoff: float, rms_window: float):
    if envelope not in _ENV_MODES:
        raise ConfigError(f"envelope must be one of {sorted(_ENV_MODES)}, got {envelope!r}")
    env_sos = np.zeros((1, 6))
    w = 1
    if envelope == "lowpass":
        cutoff = _positive("envelope_cutoff", cutoff)
        if cutoff >= rate / 2:
            raise ConfigError(f"envelope_cutoff {cutoff} Hz must be below Nyquist ({rate / 2} Hz)")
        env_sos = signal.butter(2, cutoff, btype="lowpass", fs=rate, output="sos")
    elif envelope == "rms":
        w = max(1, int(round(_positive("rms_window", rms_window) * rate)))
    return np.ascontiguousarray(env_sos, dtype=np.float64), w


def _as_block(block, channels: int, what: str = "block") -> np.ndarray:
    """Any float/int array-like (n, channels) -> C-contiguous float64."""
    if type(block) is np.ndarray and block.dtype == _F64 and block.ndim == 2 \
            and block.flags.c_contiguous and block.shape[1] == channels:
        return block
    try:
        arr = np.asarray(block)
    except Exception as exc:
        raise ConfigError(f"{what} is not array-like: {exc}") from exc
    if arr.dtype.kind not in "fiub":
        raise ConfigError(f"{what} dtype {arr.dtype} is not numeric; pass float or int samples")
    if arr.ndim == 1 and channels == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ConfigError(
            f"{what} must be 2-D (n_samples, channels={channels}), got shape {arr.shape}"
        )
    if arr.shape[1] != channels:
        raise ConfigError(
            f"{what} has {arr.shape[1]} channels, this object was made for {channels}; "
            f"samples go in rows, channels in columns (transpose if needed)"
        )
    return np.ascontiguousarray(arr, dtype=np.float64)


class SosFilter:
    """Stateful causal multichannel cascade of biquads (scipy ``sos`` format).

    Same recurrence as :func:`scipy.signal.sosfilt`, so with ``zi`` primed the
    same way the outputs agree to rounding; state carries across blocks.
    """

    def __init__(self, sos, channels: int, prime: bool = False):
        sos = np.ascontiguousarray(np.atleast_2d(np.asarray(sos, dtype=np.float64)))
        if sos.ndim != 2 or sos.shape[1] != 6 or not np.all(np.isfinite(sos)):
            raise ConfigError(f"sos must be finite with shape (n_sections, 6), got {sos.shape}")
        if np.any(sos[:, 3] == 0):
            raise ConfigError("sos a0 coefficients must be non-zero")
        self.channels = _channels(channels)
        self.sos = sos / sos[:, 3:4]
        zi = np.ascontiguousarray(signal.sosfilt_zi(self.sos)) if prime else np.zeros((len(sos), 2))
        self._chain = _emg._Chain(self.channels, self.sos, zi, int(prime), 0, 0, np.zeros((1, 6)), 1)

    def process(self, block) -> np.ndarray:
        """Filter ``block`` (n, channels); returns a new (n, channels) array."""
        x = _as_block(block, self.channels)
        out = np.empty_like(x)
        env = np.empty_like(x)
        self._chain.process_into(x, env, out)
        return out

    def reset(self) -> None:
        self._chain.reset()


def _to_samples(seconds: float, rate: float) -> int:
    return max(1, int(round(seconds * rate)))


def _channels(channels) -> int:
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
        raise ConfigError(f"channels must be an int >= 1, got {channels!r}")
    return int(channels)


class EmgFilter:
    """Stand-alone filter chain: band-pass + notch, rectifier, envelope.

    Causal and chunk-invariant.  The first sample after construction/reset
    primes the pre-filter to steady state (so a DC offset does not ring).
    ``process`` returns the envelope; ``process(block, filtered=True)``
    returns ``(filtered, envelope)``.  The envelope is in input units
    (|TKEO| is in units squared).
    """

    def __init__(
        self,
        channels: int,
        rate: float,
        *,
        band: tuple[float, float] | None = (20.0, 450.0),
        order: int = 4,
        notch: float | None = 50.0,
        notch_harmonics: int = 3,
        notch_q: float = 30.0,
        envelope: str = "lowpass",
        envelope_cutoff: float = 10.0,
        rms_window: float = 0.05,
        tkeo: bool = False,
        prime: bool = True,
    ):
        self.channels = _channels(channels)
        self.rate = _positive("rate", rate)
        self._config = dict(band=band, order=order, notch=notch, notch_harmonics=notch_harmonics,
                            notch_q=notch_q, envelope=envelope, envelope_cutoff=envelope_cutoff,
                            rms_window=rms_window, tkeo=tkeo, prime=prime)
        self.sos = design_chain(self.rate, band, order, notch, notch_harmonics, notch_q)
        self.envelope_sos, self.rms_samples = _envelope_design(
            self.rate, envelope, envelope_cutoff, rms_window)
        self.envelope = envelope
        self.tkeo = bool(tkeo)
        self._chain = self._new_chain()

    def _new_chain(self):
        zi = np.ascontiguousarray(signal.sosfilt_zi(self.sos))
        return _emg._Chain(
            self.channels, self.sos, zi, int(bool(self._config["prime"])), int(self.tkeo),
            _ENV_MODES[self.envelope], self.envelope_sos, self.rms_samples)

    def fresh(self) -> "EmgFilter":
        """A new filter with the same configuration and empty state."""
        return EmgFilter(self.channels, self.rate, **self._config)

    def process(self, block, filtered: bool = False):
        x = _as_block(block, self.channels)
        if x.size and not np.isfinite(x).all():
            raise SignalError("block holds NaN/inf samples; the filter state was not changed")
        env = np.empty_like(x)
        if filtered:
            filt = np.empty_like(x)
            self._chain.process_into(x, env, filt)
            return filt, env
        self._chain.process_into(x, env)
        return env

    def reset(self) -> None:
        self._chain.reset()


# --------------------------------------------------------------------------
# Detector
# --------------------------------------------------------------------------
class ContractionDetector:
    """Streaming per-channel contraction detector (causal, block-invariant).

    Parameters (seconds and multiples of the baseline SD):

    ``band``, ``order``, ``notch``, ``notch_harmonics``, ``notch_q``:
        pre-filter, see :func:`design_chain` (default 20-450 Hz, 4th order,
        50 Hz notch + 2 harmonics; pass ``notch=60`` in 60 Hz countries or
        ``notch=None``).
    ``envelope`` ("lowpass" | "rms"), ``envelope_cutoff`` (Hz),
    ``rms_window`` (s), ``tkeo`` (bool): envelope.
    ``k_on``: onset threshold = baseline mean + k_on * SD.
    ``k_off``: offset threshold (hysteresis, lower than ``k_on``).
    ``k_refine``: the onset is moved back to the last sample where the
        envelope was at or below mean + k_refine * SD.
    ``min_on``: time the envelope must spend above the onset threshold.
    ``min_length``: an onset is only confirmed once the contraction has
        lasted this long; shorter blips never produce events.
    ``min_gap``: dips below the offset threshold shorter than this are
        merged into the contraction (it is also the offset decision delay).
    ``baseline_window``, ``baseline_history``, ``baseline_quiet``:
        automatic noise floor = envelope statistics pooled over the quietest
        ``baseline_quiet`` fraction of the ``baseline_window``-long windows
        in the last ``baseline_history`` seconds; used until
        :meth:`calibrate_rest`.  Detection starts after the first window.
    ``off_fraction``: the offset threshold is raised to this fraction of
        the contraction's own mean envelope when that is higher than the
        baseline one (muscles rarely relax fully between fast reps).
    ``remerge_fraction``: a dip below the offset threshold is merged back
        only if the envelope returns above the onset threshold *and* above
        this fraction of the contraction's mean within ``min_gap`` (default
        1; 0 = the onset threshold alone).  After a contraction ends above
        the baseline offset threshold (no rest between reps) the next onset
        must reach this fraction of the previous contraction's mean, and is
        refined back to the dip, until the envelope is back at rest.
    ``rearm_rest``: seconds in a row below the offset threshold that count as
        "back at rest" after such a split (default 0.15, like ``min_gap``
        for an offset; 0 = a single sample).  Low tone between reps dips
        across the offset threshold for a few tens of ms: one sample of it
        is not rest.  Gait with :meth:`calibrate_rest` (a seated rest level,
        so nearly every stride ends "without rest") finds more strides
        with 0, see docs/emg.md.
    ``baseline_subwindows``, ``baseline_sub_keep``: each baseline window's
        variance is the mean of its ``baseline_sub_keep`` quietest of
        ``baseline_subwindows`` equal sub-window variances, each about its
        own sub-window mean (default 5 of 5: 0.1 s pieces).  Slow envelope
        drift and a burst edge inside a window no longer inflate the SD,
        which matters when rests are shorter than a window; 1 of 1 = the
        variance over the whole window.
    ``confirm_mean``: an onset is only confirmed when the envelope's mean
        since the refined onset has also reached ``confirm_mean`` x the
        onset threshold (default 0.85; 0 = off): low tone that flickers
        across the threshold is not a contraction.
    ``min_ratio``: the onset threshold is at least ``min_ratio`` x the
        baseline mean (default 2.5; 0 = off).  On very clean channels the
        SD is tiny and mean + k_on * SD alone would fire on slight tone.
    ``extrapolate``: move the refined onset further back along the secant
        from (last baseline sample, refine level) to (onset-threshold
        crossing, onset level) down to the baseline mean; 1 = the full
        secant (default), 0 = off.  Corrects the late bias of slow rises.
    ``delay_compensation``: move refined onsets back by the envelope
        smoother's DC group delay (default True).
    ``censor_window``: seconds (whole baseline windows) during which a
        recording that started mid-contraction is still recognised with the
        automatic floor (default 30; 0 = off).  Until a channel's first
        onset the envelope is kept (8 bytes per channel-sample, at most this
        long); when a later floor puts the start above its onset threshold
        and the ordinary rules confirm a contraction from the start, it is
        reported with ``censored_onset=True`` and onset 0, late.  With
        :meth:`calibrate_rest` a first onset whose envelope never sat at
        the baseline after the envelope's start-up is flagged the same way.
    ``nonfinite``: "raise" (default) or "hold", see the module docstring.

    The onset is only *confirmed* after ``min_on``/``min_length``, but it is
    reported at the refined (earlier) sample; ``Onset.latency`` is the
    difference.  Offsets are reported ``min_gap`` late.
    """

    def __init__(
        self,
        channels: int,
        rate: float,
        *,
        band: tuple[float, float] | None = (20.0, 450.0),
        order: int = 4,
        notch: float | None = 50.0,
        notch_harmonics: int = 3,
        notch_q: float = 30.0,
        envelope: str = "lowpass",
        envelope_cutoff: float = 10.0,
        rms_window: float = 0.05,
        tkeo: bool = False,
        k_on: float = 10.0,
        k_off: float = 2.0,
        k_refine: float = 1.5,
        min_on: float = 0.03,
        min_length: float = 0.15,
        min_gap: float = 0.15,
        baseline_window: float = 0.5,
        baseline_history: float = 30.0,
        baseline_quiet: float = 0.25,
        delay_compensation: bool = True,
        off_fraction: float = 0.4,
        min_ratio: float = 2.5,
        extrapolate: float = 1.0,
        baseline_subwindows: int = 5,
        baseline_sub_keep: int = 5,
        remerge_fraction: float = 1.0,
        confirm_mean: float = 0.85,
        censor_window: float = 30.0,
        rearm_rest: float = 0.15,
        nonfinite: str = "raise",
    ):
        self.filter = EmgFilter(
            channels, rate, band=band, order=order, notch=notch,
            notch_harmonics=notch_harmonics, notch_q=notch_q, envelope=envelope,
            envelope_cutoff=envelope_cutoff, rms_window=rms_window, tkeo=tkeo)
        self.channels = self.filter.channels
        self.rate = self.filter.rate
        for name, v in (("k_on", k_on), ("k_off", k_off), ("k_refine", k_refine)):
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"{name} must be a finite number, got {v!r}")
        if not (k_refine <= k_off <= k_on):
            raise ConfigError(
                f"need k_refine <= k_off <= k_on, got {k_refine}, {k_off}, {k_on}")
        if nonfinite not in ("raise", "hold"):
            raise ConfigError(f"nonfinite must be 'raise' or 'hold', got {nonfinite!r}")
        if not 0 < baseline_quiet <= 1:
            raise ConfigError(f"baseline_quiet must be in (0, 1], got {baseline_quiet!r}")
        if not (isinstance(min_gap, (int, float)) and math.isfinite(min_gap) and min_gap >= 0):
            raise ConfigError(f"min_gap must be a finite number >= 0 s, got {min_gap!r}")
        if not (isinstance(off_fraction, (int, float)) and 0 <= off_fraction < 1):
            raise ConfigError(f"off_fraction must be in [0, 1), got {off_fraction!r}")
        if not (isinstance(extrapolate, (int, float)) and 0 <= extrapolate <= 5):
            raise ConfigError(f"extrapolate must be in [0, 5], got {extrapolate!r}")
        if not (isinstance(remerge_fraction, (int, float)) and math.isfinite(remerge_fraction)
                and 0 <= remerge_fraction <= 5):
            raise ConfigError(f"remerge_fraction must be in [0, 5], got {remerge_fraction!r}")
        if not (isinstance(confirm_mean, (int, float)) and math.isfinite(confirm_mean)
                and 0 <= confirm_mean <= 5):
            raise ConfigError(f"confirm_mean must be in [0, 5], got {confirm_mean!r}")
        if not (isinstance(baseline_subwindows, int) and 1 <= baseline_subwindows <= 16):
            raise ConfigError(
                f"baseline_subwindows must be an int in [1, 16], got {baseline_subwindows!r}")
        if not (isinstance(baseline_sub_keep, int) and 1 <= baseline_sub_keep <= baseline_subwindows):
            raise ConfigError(f"baseline_sub_keep must be an int in [1, baseline_subwindows], "
                              f"got {baseline_sub_keep!r}")
        if not (isinstance(min_ratio, (int, float)) and math.isfinite(min_ratio) and min_ratio >= 0):
            raise ConfigError(f"min_ratio must be a finite number >= 0, got {min_ratio!r}")
        if not (isinstance(censor_window, (int, float)) and not isinstance(censor_window, bool)
                and math.isfinite(censor_window) and 0 <= censor_window <= 3600):
            raise ConfigError(f"censor_window must be in [0, 3600] s, got {censor_window!r}")
        if not (isinstance(rearm_rest, (int, float)) and not isinstance(rearm_rest, bool)
                and math.isfinite(rearm_rest) and 0 <= rearm_rest <= 60):
            raise ConfigError(f"rearm_rest must be in [0, 60] s, got {rearm_rest!r}")
        r = self.rate
        win = _to_samples(_positive("baseline_window", baseline_window), r)
        if win < baseline_subwindows:
            raise ConfigError(f"baseline_window ({win} samples) is shorter than "
                              f"baseline_subwindows ({baseline_subwindows})")
        hist = max(1, int(round(_positive("baseline_history", baseline_history) / (win / r))))
        self.params = dict(
            k_on=float(k_on), k_off=float(k_off), k_refine=float(k_refine),
            min_on=float(_positive("min_on", min_on)),
            min_length=float(_positive("min_length", min_length)),
            min_gap=float(min_gap), baseline_window=win / r, baseline_history=hist * win / r,
            baseline_quiet=float(baseline_quiet), off_fraction=float(off_fraction),
            min_ratio=float(min_ratio), delay_compensation=bool(delay_compensation),
            extrapolate=float(extrapolate), remerge_fraction=float(remerge_fraction),
            confirm_mean=float(confirm_mean), censor_window=float(censor_window),
            rearm_rest=float(rearm_rest), baseline_subwindows=int(baseline_subwindows),
            baseline_sub_keep=int(baseline_sub_keep),
            nonfinite=nonfinite)
        # DC group delay of the envelope smoother, in samples: the onset is
        # moved back by it (2nd-order Butterworth: sqrt(2) / (2 pi fc)).
        if self.filter.envelope == "lowpass":
            self.envelope_delay = int(round(math.sqrt(2) / (2 * math.pi * envelope_cutoff) * r))
        elif self.filter.envelope == "rms":
            self.envelope_delay = (self.filter.rms_samples - 1) // 2
        else:
            self.envelope_delay = 0
        self.settle_samples = self._settle()
        self.start_settle_samples = self.settle_samples + self._prefilter_settle()
        self._core = _emg._Detector(
            self.filter._new_chain(), self.channels, float(k_on), float(k_off), float(k_refine),
            _to_samples(min_on, r), _to_samples(min_length, r),
            int(round(min_gap * r)), win, hist, float(baseline_quiet),
            self.envelope_delay if delay_compensation else 0, float(off_fraction),
            float(min_ratio), float(extrapolate), nonfinite == "hold",
            int(baseline_subwindows), int(baseline_sub_keep), float(remerge_fraction),
            float(confirm_mean), self.settle_samples, self.start_settle_samples,
            int(math.ceil(censor_window * r - 1e-9)), max(1, int(round(rearm_rest * r))))
        self._mvc: np.ndarray | None = None
        if type(self)._convert is ContractionDetector._convert:
            # the native fast path builds the event objects as _convert would
            self._core.bind(functools.partial(_as_block, channels=self.channels),
                            self._convert, _EVENT_TYPES, self.rate)
        else:
            self._core.bind(functools.partial(_as_block, channels=self.channels), self._convert)
        if type(self).process is ContractionDetector.process:
            # the same steps as process() below in one native call: a Python
            # frame per block cost ~0.05-0.09 us of ~1 us (subclasses that
            # override process keep their own)
            self.process = self._core.process_events

    def _settle(self) -> int:
        """Samples until the envelope has risen from zero: its smoother's
        unit-step response first reaches 100 % (low-pass; 53 ms at 10 Hz),
        the RMS window is full, plus one for TKEO.  Before that a low
        envelope says nothing about whether the muscle was at rest."""
        f = self.filter
        if f.envelope == "lowpass":
            n = int(round(self.rate))
            step = signal.sosfilt(f.envelope_sos, np.ones(n))
            hit = np.flatnonzero(step >= 1.0)
            k = int(hit[0]) if len(hit) else n
        elif f.envelope == "rms":
            k = f.rms_samples
        else:
            k = 1
        return k + (1 if f.tkeo else 0)

    def _prefilter_settle(self) -> int:
        """Samples until the pre-filter's start-up transient has decayed by
        40 dB: its slowest pole (largest radius r) decays as r**n.  Priming
        removes the DC step but not, e.g., mains hum, which the notch only
        removes once its slow mode has rung down (0.88 s for Q 30 at 50 Hz;
        0.1 s for the band-pass alone)."""
        r = 0.0
        for sec in self.filter.sos:
            den = sec[3:]
            if abs(den[2]) > 0 or abs(den[1]) > 0:
                r = max(r, float(np.max(np.abs(np.roots(den)))))
        if not 0 < r < 1:
            return 0
        return int(math.ceil(math.log(100.0) / -math.log(r)))

    # -- calibration ---------------------------------------------------------
    def _calibration_envelope(self, block, what: str) -> np.ndarray:
        x = _as_block(block, self.channels, what)
        if not np.isfinite(x).all():
            raise SignalError(f"{what} holds NaN/inf samples; clean it before calibrating")
        env = self.filter.fresh().process(x)
        # Skip the envelope's start-up (it rises from 0) when there is room.
        skip = int(round(0.25 * self.rate))
        if len(env) >= 2 * skip + int(0.25 * self.rate):
            env = env[skip:]
        if len(env) < max(10, int(0.25 * self.rate)):
            raise SignalError(
                f"{what} is too short ({len(x)} samples); give at least 0.5 s "
                f"({int(0.5 * self.rate)} samples)")
        return env

    def calibrate_rest(self, block) -> tuple[np.ndarray, np.ndarray]:
        """Use ``block`` (n, channels), recorded at rest, as the baseline.

        The block runs through a fresh copy of the filter chain (the live
        stream state is untouched).  Automatic noise-floor tracking stops;
        :meth:`reset` keeps the calibration, :meth:`clear_rest` drops it.
        Returns the per-channel baseline (mean, SD) of the envelope.
        """
        env = self._calibration_envelope(block, "rest block")
        mu = np.ascontiguousarray(env.mean(axis=0))
        sd = np.ascontiguousarray(env.std(axis=0))
        self._core.set_baseline(mu, sd)
        return mu, sd

    def clear_rest(self) -> None:
        """Go back to automatic noise-floor tracking."""
        self._core.clear_baseline()

    def calibrate_mvc(self, block) -> np.ndarray:
        """Use ``block`` (n, channels), a maximal voluntary contraction, as 100 %.

        MVC = the highest 0.5 s moving average of the envelope per channel
        (fresh filter copy): the peak of a single envelope sample would ride
        on its ripple and bias every %MVC low.  After this every contraction
        carries ``pct_mvc`` (its mean envelope / MVC x 100; a contraction as
        strong as the MVC trial scores about 100).  Returns the MVC values.
        """
        env = self._calibration_envelope(block, "MVC block")
        w = min(len(env), max(1, int(round(0.5 * self.rate))))
        c = np.cumsum(np.vstack([np.zeros((1, self.channels)), env]), axis=0)
        mvc = ((c[w:] - c[:-w]) / w).max(axis=0)
        if np.any(mvc <= 0):
            bad = [int(i) for i in np.flatnonzero(mvc <= 0)]
            raise SignalError(f"MVC block is flat on channel(s) {bad}; no contraction to scale to")
        self._mvc = mvc
        self._core.set_mvc(mvc)
        return mvc.copy()

    @property
    def mvc(self) -> np.ndarray | None:
        return None if self._mvc is None else self._mvc.copy()

    # -- streaming -----------------------------------------------------------
    def reset(self) -> None:
        """Restart at sample 0 (filters, states, tracked noise floor); keeps
        the rest and MVC calibrations."""
        self._core.reset()

    @property
    def sample_count(self) -> int:
        """Samples processed since construction/reset."""
        return self._core.sample_count

    @property
    def nonfinite(self) -> int:
        """Non-finite samples held over (mode "hold") or blocks rejected ("raise")."""
        return self._core.nonfinite

    @property
    def rest_calibrated(self) -> bool:
        """True when the baseline is fixed by :meth:`calibrate_rest` (or a profile),
        False while the detector tracks the noise floor itself."""
        return not self._core.tracking

    def baseline(self) -> list[tuple[float, float, float, float]]:
        """Per channel (mean, SD, on threshold, off threshold); NaN before the
        first baseline window."""
        return self._core.baseline()

    def process(self, block) -> list[Onset | Offset]:
        """Feed a block (n_samples, channels); return the events it decided."""
        recs = self._core.process_fast(block)
        if recs is None:
            recs = self._core.process(_as_block(block, self.channels))
        return self._convert(recs, False) if recs else []

    def finish(self) -> list[Offset]:
        """End of data: close open contractions at the current sample
        (``Contraction.truncated`` is True) and return their offsets."""
        return self._convert(self._core.finish(), True)

    def _convert(self, recs, truncated: bool) -> list[Onset | Offset]:
        # native: the dataclasses' own __init__ cost ~2 us per event object
        return _emg.make_events(recs, self.rate, self._mvc, truncated, _EVENT_TYPES)


def detect_contractions(samples, rate: float, *, block: int = 256, rest=None, mvc=None,
                        **params) -> list[Contraction]:
    """Contractions in a whole recording, by the same streaming detector.

    ``samples`` is 1-D (one channel) or (n, channels).  It is fed through a
    :class:`ContractionDetector` in blocks of ``block`` samples; results do
    not depend on the block size.  A contraction still open at the end of the
    data is closed at the last sample and marked ``truncated=True``.
    ``rest`` / ``mvc``: optional calibration blocks (same channel layout).
    Other keyword arguments go to :class:`ContractionDetector`.  Returned in
    order of onset, then channel.
    """
    try:
        x = np.asarray(samples)
    except Exception as exc:
        raise ConfigError(f"samples are not array-like: {exc}") from exc
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ConfigError(f"samples must be 1-D or (n, channels), got shape {x.shape}")
    if x.shape[0] == 0:
        return []
    if int(block) < 1:
        raise ConfigError(f"block must be >= 1, got {block!r}")
    det = ContractionDetector(x.shape[1], rate, **params)
    if rest is not None:
        rest = np.asarray(rest)
        det.calibrate_rest(rest[:, None] if rest.ndim == 1 else rest)
    if mvc is not None:
        mvc = np.asarray(mvc)
        det.calibrate_mvc(mvc[:, None] if mvc.ndim == 1 else mvc)
    x = _as_block(x, x.shape[1], "samples")
    out: list[Contraction] = []
    for start in range(0, len(x), int(block)):
        for ev in det.process(x[start:start + int(block)]):
            if isinstance(ev, Offset):
                out.append(ev.contraction)
    out.extend(ev.contraction for ev in det.finish())
    out.sort(key=lambda c: (c.onset_sample, c.channel))
    return out


def contractions_from_events(events: Iterable[Onset | Offset]) -> list[Contraction]:
    """The contractions carried by the Offset events of an event stream."""
    return [e.contraction for e in events if isinstance(e, Offset)]
