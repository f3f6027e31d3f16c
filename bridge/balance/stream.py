"""Streaming IMU sway: mounting, tilt correction, causal low-pass, sliding window.

Thin validated wrappers over the native core :mod:`bridge._sway`.  IMU blocks
are ``(n, 6)`` float arrays: acc x, y, z in g (specific force, gravity
included, i.e. +1 g on the up axis at rest) then gyro x, y, z in deg/s, in
the *sensor* frame; ``(n, 9)`` blocks (magnetometer in the last three
columns) are accepted and the magnetometer is ignored (tilt needs no heading).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as _sig

from bridge import _sway
from bridge.errors import ConfigError, SignalError

__all__ = ["Mounting", "ImuSway", "SwayWindow", "validate_imu_block", "G"]

G = 9.80665
_AXES = {"+x": (0, 1.0), "-x": (0, -1.0), "+y": (1, 1.0), "-y": (1, -1.0),
         "+z": (2, 1.0), "-z": (2, -1.0)}


@dataclass(frozen=True, slots=True)
class Mounting:
    """Which sensor axis points forward, left and up on the standing subject.

    Default: sensor x forward, y left, z up.  A sensor clipped on the belt
    with its y axis up and x to the right would be
    ``Mounting(forward="-z", left="-x", up="+y")``.  Static tilt of the
    sensor on the body (lumbar curve, loose strap) needs no setting: the
    tilt filter finds gravity itself, and the heading frame is the sensor's
    forward axis projected on the horizontal plane.  Placement (L5/sacrum or
    pelvis belt) only scales the acceleration; sway metrics assume L5.
    """

    forward: str = "+x"
    left: str = "+y"
    up: str = "+z"

    def matrix(self) -> np.ndarray:
        """3x3 M with v_body = M @ v_sensor (rows: forward, left, up)."""
        m = np.zeros((3, 3))
        for row, name in enumerate((self.forward, self.left, self.up)):
            if name not in _AXES:
                raise ConfigError(f"mounting axis {name!r} must be one of {sorted(_AXES)}")
            col, sign = _AXES[name]
            m[row, col] = sign
        det = np.linalg.det(m)
        if abs(det) < 0.5:
            raise ConfigError(f"mounting uses a sensor axis twice: forward={self.forward}, "
                              f"left={self.left}, up={self.up}")
        if det < 0:
            raise ConfigError(f"mounting forward={self.forward}, left={self.left}, up={self.up} "
                              "is a mirror image (left-handed); flip the sign of one axis")
        return m


_F64 = np.dtype(np.float64)


def validate_imu_block(block, check_finite: bool = True) -> np.ndarray:
    """Return a C-contiguous float64 (n, 6|9) array or raise ConfigError/SignalError.

    ``check_finite=False`` leaves the NaN/inf check to the caller (the stance
    core does it in the same native call: see :func:`imu_nonfinite_error`).
    """
    a = block
    if type(a) is np.ndarray and a.dtype is _F64 and a.flags.c_contiguous:
        if a.ndim != 2 or (a.shape[1] != 6 and a.shape[1] != 9):
            raise ConfigError(f"IMU block must be (n, 6) acc g + gyro deg/s, or (n, 9) with "
                              f"mag; got shape {a.shape}")
    else:
        a = np.asarray(block)
        if a.ndim == 2 and (not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a)):
            raise ConfigError(f"IMU block must be real numbers, got dtype {a.dtype}")
        if a.ndim != 2 or a.shape[1] not in (6, 9):
            raise ConfigError(f"IMU block must be (n, 6) acc g + gyro deg/s, or (n, 9) with "
                              f"mag; got shape {a.shape}")
        a = np.ascontiguousarray(a, dtype=np.float64)
    if check_finite:
        bad = _sway.first_nonfinite(a, 6)
        if bad >= 0:
            raise imu_nonfinite_error(bad)
    return a


def imu_nonfinite_error(row: int) -> SignalError:
    return SignalError(f"IMU block has NaN/inf (first at row {row}); drop or repair "
                       "those samples (a gap in the stream) before feeding them")


def _check_rate(rate) -> float:
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"rate must be a number in Hz, got {rate!r}") from None
    if not np.isfinite(rate) or rate <= 0:
        raise ConfigError(f"rate must be > 0 Hz, got {rate}")
    if not 20.0 <= rate <= 5000.0:
        raise ConfigError(f"rate {rate} Hz is outside the supported 20-5000 Hz "
                          "(IMUs for balance run at 100-1000 Hz)")
    return rate


def design_lowpass(rate: float, cutoff_hz: float, order: int = 4):
    """Butterworth low-pass SOS and its unit-step steady state (for the native cascade)."""
    if not 0 < cutoff_hz < rate / 2:
        raise ConfigError(f"low-pass cutoff must be in (0, rate/2 = {rate / 2}) Hz, "
                          f"got {cutoff_hz}")
    sos = _sig.butter(order, cutoff_hz, fs=rate, output="sos")
    return sos, _sig.sosfilt_zi(sos)


def tilt_gain(rate: float, tau_s: float) -> float:
    if not tau_s > 0:
        raise ConfigError(f"tilt_tau_s must be > 0 s, got {tau_s}")
    dt = 1.0 / rate
    return dt / (tau_s + dt)


class ImuSway:
    """Per-sample AP/ML sway from a pelvis IMU, block by block.

    ``process(block)`` returns an ``(n, 5)`` array with columns
    ``COLUMNS = ("acc_ap", "acc_ml", "acc_up", "tilt_ap_deg", "tilt_ml_deg")``:
    horizontal accelerations along the heading (forward) and to the left,
    gravity removed, low-passed (causal 4th-order Butterworth, ``lowpass_hz``)
    in m/s^2; vertical acceleration (not filtered) in m/s^2; forward and left
    lean of the sensor in degrees (including any static mounting tilt).

    Orientation: a complementary filter on the gravity direction (gyro
    integration corrected toward the accelerometer with time constant
    ``tilt_tau_s``, only while |a| is within ``gate_g`` of 1 g).
    """

    COLUMNS = ("acc_ap", "acc_ml", "acc_up", "tilt_ap_deg", "tilt_ml_deg")

    def __init__(self, rate: float, mounting: Mounting = Mounting(), lowpass_hz: float = 3.5,
                 tilt_tau_s: float = 2.0, gate_g: float = 0.15):
        self.rate = _check_rate(rate)
        m = mounting.matrix()
        if not 0 < gate_g < 1:
            raise ConfigError(f"gate_g must be in (0, 1) g, got {gate_g}")
        self._tilt = _sway.TiltFilter(m.ravel(), self.rate, tilt_gain(self.rate, tilt_tau_s),
                                      1.0 - gate_g, 1.0 + gate_g)
        sos, zi = design_lowpass(self.rate, lowpass_hz)
        self._lp = _sway.SosFilter2(sos.tolist(), zi.tolist())

    def reset(self) -> None:
        """Forget all state (start of a new recording)."""
        self._tilt.reset()
        self._lp.reset()

    def process(self, block) -> np.ndarray:
        imu = validate_imu_block(block)
        n = imu.shape[0]
        raw = np.empty((n, 7))
        self._tilt.process(imu, raw)
        out = np.empty((n, 5))
        hor = np.ascontiguousarray(raw[:, :2] * G)
        filt = np.empty((n, 2))
        self._lp.process(hor, filt)
        out[:, :2] = filt
        out[:, 2] = raw[:, 2] * G
        out[:, 3] = np.degrees(np.arcsin(np.clip(raw[:, 4], -1, 1)))
        out[:, 4] = np.degrees(np.arcsin(np.clip(raw[:, 5], -1, 1)))
        return out

    @property
    def up_vector(self) -> tuple[float, float, float]:
        """Current estimate of world-up in the body (mounting) frame."""
        return self._tilt.up


class SwayWindow:
    """Running sway metrics (native, chunk-invariant), one row per sample.

    ``process(ap, ml)`` returns ``(n, 5)`` with ``COLUMNS = ("rms_ap",
    "rms_ml", "mean_velocity", "ellipse_area_95", "jerk_per_s")`` over the
    last ``window_s`` seconds (fewer at the start), or with
    ``window_s=None`` over everything since the start/reset (whole-trial
    metrics, live).  NaN for the first 2 samples.  Same definitions as
    :func:`bridge.balance.sway_metrics` (RMS about the mean; mean velocity =
    path / (N/rate); 95 % prediction ellipse with the F distribution; jerk =
    1/2 sum (d/dt)^2 dt divided by the duration N/rate).
    """

    COLUMNS = ("rms_ap", "rms_ml", "mean_velocity", "ellipse_area_95", "jerk_per_s")

    def __init__(self, rate: float, window_s: float | None = 10.0):
        self.rate = _check_rate(rate)
        if window_s is None:
            self.window = None
            self._core = _sway.SwayWindow(0, self.rate)
            return
        n = int(round(window_s * self.rate))
        if n < 32:
            raise ConfigError(f"window_s={window_s} gives {n} samples; need at least 32 "
                              "(or None for the whole trial)")
        self.window = n
        self._core = _sway.SwayWindow(n, self.rate)

    def reset(self) -> None:
        self._core.reset()

    def process(self, ap, ml) -> np.ndarray:
        ap = np.asarray(ap, dtype=np.float64)
        ml = np.asarray(ml, dtype=np.float64)
        if ap.ndim != 1 or ap.shape != ml.shape:
            raise ConfigError(f"ap and ml must be 1-D of equal length, got {ap.shape}, {ml.shape}")
        if not (np.isfinite(ap).all() and np.isfinite(ml).all()):
            raise SignalError("ap/ml contain NaN or inf; repair the gap before streaming")
        x = np.ascontiguousarray(np.column_stack([ap, ml]))
        out = np.empty((x.shape[0], 5))
        self._core.process(x, out)
        return out
