"""Whole-trial sway metrics (Prieto 1996; Mancini 2012; Santos & Duarte 2016).

These run offline on a whole trial with numpy/scipy.  The streaming and
sliding-window versions of the time-domain metrics live in the native core
(:class:`bridge.balance.SwayWindow`).

Conventions (chosen so that the defaults reproduce the per-trial values that
Santos & Duarte published with their balance data set, BDSinfoCOP.txt):

* the mean is removed from each axis; no filter and no detrend are applied
  (pass ``lowpass_hz`` if you want one);
* ``mean_velocity = path_length / (N / rate)`` (duration taken as N/rate, not
  (N-1)/rate);
* ``ellipse_area_95`` is the 95 % *prediction* ellipse built from the sample
  covariance (ddof=1) and the F distribution (Schubert & Kirchner 2014):
  ``pi * sqrt(det(C)) * 2 (n-1)(n+1) / (n (n-2)) * F_0.95(2, n-2)``.  The
  chi-square ellipse (``pi * det(C)^0.5 * chi2_0.95(2)``) is 0.999x of it at
  n = 6000 but smaller for short trials;
* spectra: Welch, periodic Hann window, ``nperseg = N//2``,
  ``noverlap = N//4``, ``nfft = N//2``, constant detrend per segment.
  ``mean_frequency_ap/ml`` are the trapezoid-integrated power-weighted mean
  frequencies of each axis; ``mean_frequency`` combines them weighted by the
  summed power of each axis (the Santos & Duarte COPmfreq convention; found
  by reproducing their numbers to 1e-14).  ``f50``/``f95`` are the
  frequencies below which 50 % / 95 % of the power of ``P_ap + P_ml`` lies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import signal as _sig
from scipy import stats as _stats
from scipy.integrate import cumulative_trapezoid, trapezoid

from bridge.errors import ConfigError, SignalError

__all__ = ["SwayMetrics", "sway_metrics", "prediction_ellipse_area", "MIN_SAMPLES"]

#: Fewest samples a trial needs: the spectrum uses N//2-sample segments and
#: the prediction ellipse needs n > 2; below 32 samples neither means much.
MIN_SAMPLES = 32
G = 9.80665


@dataclass(frozen=True, slots=True)
class SwayMetrics:
    """Sway metrics of one trial.

    Units: ``u`` is the unit of the input (cm for COP, m/s^2 for
    acceleration).  rms_*, range_*, mean_distance: u.  path_length: u.
    mean_velocity: u/s.  ellipse_area_95: u^2.  Frequencies: Hz.
    ``jerk`` (acceleration only, Mancini 2012): 1/2 * integral of
    (dAP/dt)^2 + (dML/dt)^2 dt, NOT normalised by duration, in u^2/s
    (m^2/s^5 for acceleration in m/s^2); ``jerk_per_s`` is jerk / duration.
    """

    signal: str
    rate: float
    n: int
    duration: float
    rms_ap: float
    rms_ml: float
    rms: float
    range_ap: float
    range_ml: float
    path_length: float
    mean_velocity: float
    mean_distance: float
    ellipse_area_95: float
    mean_frequency: float
    mean_frequency_ap: float
    mean_frequency_ml: float
    f50: float
    f95: float
    jerk: float | None = None
    jerk_per_s: float | None = None

    def to_dict(self) -> dict:
        """Plain dict (JSON-friendly) of every field."""
        return asdict(self)


def prediction_ellipse_area(ap: np.ndarray, ml: np.ndarray, p: float = 0.95) -> float:
    """Area of the ``p`` prediction ellipse of the points (ap, ml) (F distribution)."""
    n = ap.shape[0]
    if n < 3:
        raise SignalError(f"the prediction ellipse needs at least 3 samples, got {n}")
    cov = np.cov(np.vstack([ap, ml]), ddof=1)
    det = max(float(np.linalg.det(cov)), 0.0)
    k = _stats.f.ppf(p, 2, n - 2) * 2.0 * (n - 1) * (n + 1) / (n * (n - 2))
    return float(np.pi * np.sqrt(det) * k)


def _welch(x: np.ndarray, rate: float):
    n = x.shape[0]
    nper = n // 2
    return _sig.welch(x, fs=rate, window="hann", nperseg=nper, noverlap=n // 4,
                      nfft=nper, detrend="constant")


def _validate(ap, ml, rate, signal):
    if signal not in ("displacement", "acceleration"):
        raise ConfigError(f"signal must be 'displacement' or 'acceleration', got {signal!r}")
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"rate must be a number in Hz, got {rate!r}") from None
    if not np.isfinite(rate) or rate <= 0:
        raise ConfigError(f"rate must be a positive number of Hz, got {rate}")
    ap = np.asarray(ap, dtype=np.float64)
    ml = np.asarray(ml, dtype=np.float64)
    if ap.ndim != 1 or ml.ndim != 1:
        raise ConfigError(f"ap and ml must be 1-D arrays, got shapes {ap.shape} and {ml.shape}")
    if ap.shape != ml.shape:
        raise ConfigError(f"ap and ml must have the same length, got {ap.size} and {ml.size}")
    if ap.size < MIN_SAMPLES:
        raise SignalError(f"trial too short for sway metrics: {ap.size} samples, need at "
                          f"least {MIN_SAMPLES} (record longer)")
    if not (np.isfinite(ap).all() and np.isfinite(ml).all()):
        raise SignalError("ap/ml contain NaN or inf; drop or interpolate those samples first")
    return ap, ml, rate


def sway_metrics(ap, ml, rate: float, signal: str = "displacement", *,
                 lowpass_hz: float | None = None) -> SwayMetrics:
    """Compute sway metrics of one trial from AP and ML signals.

    Parameters
    ----------
    ap, ml : 1-D arrays of the anterior-posterior and medio-lateral signal
        (COP displacement, e.g. cm, or horizontal acceleration, e.g. m/s^2).
    rate : sampling rate in Hz.
    signal : ``"displacement"`` (COP or position) or ``"acceleration"``
        (adds ``jerk``).
    lowpass_hz : optional zero-phase 4th-order Butterworth low-pass applied
        first (e.g. 3.5 for trunk acceleration, Mancini 2012).  Default None:
        the raw signal, as Santos & Duarte did.

    Raises SignalError for NaN/inf or trials shorter than ``MIN_SAMPLES``;
    ConfigError for bad shapes/rates.
    """
    ap, ml, rate = _validate(ap, ml, rate, signal)
    if lowpass_hz is not None:
        if not 0 < lowpass_hz < rate / 2:
            raise ConfigError(f"lowpass_hz must be in (0, rate/2 = {rate / 2}), got {lowpass_hz}")
        sos = _sig.butter(4, lowpass_hz, fs=rate, output="sos")
        ap = _sig.sosfiltfilt(sos, ap)
        ml = _sig.sosfiltfilt(sos, ml)
    ap = ap - ap.mean()
    ml = ml - ml.mean()
    n = ap.size
    duration = n / rate
    dap = np.diff(ap)
    dml = np.diff(ml)
    path = float(np.sum(np.hypot(dap, dml)))
    f, p_ap = _welch(ap, rate)
    _, p_ml = _welch(ml, rate)
    w_ap, w_ml = float(np.sum(p_ap)), float(np.sum(p_ml))
    if not w_ap + w_ml > 0:
        # A sensor on a table or a frozen COP: no sway to describe.
        raise SignalError("the signal does not vary (no sway power): is the sensor "
                          "lying still or the recording frozen?")
    # An axis with no power has no mean frequency (nan) and weight 0.
    mf_ap = float(trapezoid(f * p_ap, f) / trapezoid(p_ap, f)) if w_ap > 0 else float("nan")
    mf_ml = float(trapezoid(f * p_ml, f) / trapezoid(p_ml, f)) if w_ml > 0 else float("nan")
    mf = (np.nan_to_num(mf_ap) * w_ap + np.nan_to_num(mf_ml) * w_ml) / (w_ap + w_ml)
    p_tot = p_ap + p_ml
    cum = cumulative_trapezoid(p_tot, f, initial=0.0)
    cum /= cum[-1]
    f50 = float(f[np.searchsorted(cum, 0.5)])
    f95 = float(f[np.searchsorted(cum, 0.95)])
    jerk = jerk_s = None
    if signal == "acceleration":
        jerk = float(0.5 * np.sum((dap * rate) ** 2 + (dml * rate) ** 2) / rate)
        jerk_s = jerk / duration
    return SwayMetrics(
        signal=signal, rate=rate, n=n, duration=duration,
        rms_ap=float(np.sqrt(np.mean(ap * ap))), rms_ml=float(np.sqrt(np.mean(ml * ml))),
        rms=float(np.sqrt(np.mean(ap * ap + ml * ml))),
        range_ap=float(np.ptp(ap)), range_ml=float(np.ptp(ml)),
        path_length=path, mean_velocity=path / duration,
        mean_distance=float(np.mean(np.hypot(ap, ml))),
        ellipse_area_95=prediction_ellipse_area(ap, ml),
        mean_frequency=float(mf), mean_frequency_ap=mf_ap, mean_frequency_ml=mf_ml,
        f50=f50, f95=f95, jerk=jerk, jerk_per_s=jerk_s,
    )
