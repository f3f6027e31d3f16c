"""Device clock -> host clock mapping.

Every sample block carries the device's monotonic timestamp; the host logs
when the bytes arrived.  Arrival = true time + a positive, jittery delay (BLE
connection intervals of 7.5-50 ms bunch notifications; the OS adds
scheduling jitter; a missed connection event adds a whole interval), so the
map is fitted to the *lower envelope* of (device time, arrival time): the
packets that were delayed least.  Stamping samples with arrival time instead
(BrainFlow's habit) gives bunched, drifting timestamps.

Algorithm (online, O(1) per update, O(bins) per half second):

1. Bin updates by device time (``bin_s``, default 0.5 s) and keep the
   smallest ``host - device`` offset in each bin: the least delayed packet.
2. Fit ``offset = a + c * device`` through the bin minima by least squares
   with exponential forgetting (``half_life_s``, default 90 s, as LSL's
   dejittering RLS).  ``c`` absorbs the clock drift (any ppm, also a
   simulator running ``speed`` times faster than real time).  A small ridge
   term (``slope_prior``, in s^2 of bin weight: (1 ms / 200 ppm)^2) keeps the
   first seconds from extrapolating a wild slope out of a few noisy bins.
3. Shift the line down onto the lower envelope: by the smallest residual of
   the recent bins (least squares through the minima is biased by their
   average delay; the envelope is not).
4. Robustness: a bin whose minimum lies more than ``outlier_s`` above the
   envelope (a stall: every packet of the bin was late) is left out of the
   fit; ``reset_after`` such bins in a row, or one more than ``jump_s``
   below it, mean the clock jumped (device restart, host suspend): the fit
   starts afresh.

Before two bins have closed, the mapping is ``host = device + min offset``
(slope 1), which is already right within the jitter's minimum.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["DeviceClock"]


class DeviceClock:
    """Online lower-envelope fit of host time as a linear function of device time.

    >>> clock = DeviceClock()
    >>> clock.update(device_s, host_s)   # the sample at device_s arrived at host_s
    >>> clock.to_host(device_s)          # host time (time.monotonic base) of a device time
    """

    def __init__(self, bin_s: float = 0.5, half_life_s: float = 90.0,
                 envelope_bins: int = 120, outlier_s: float = 0.010,
                 reset_after: int = 20, jump_s: float = 0.25,
                 slope_prior: float = 25.0) -> None:
        if not (bin_s > 0 and half_life_s > 0 and envelope_bins >= 1 and outlier_s > 0
                and reset_after >= 1 and jump_s > 0):
            from bridge.errors import ConfigError
            raise ConfigError("DeviceClock: bin_s, half_life_s, outlier_s, jump_s must be > 0; "
                              "envelope_bins and reset_after >= 1")
        self.bin_s = float(bin_s)
        self.half_life_s = float(half_life_s)
        self.envelope_bins = int(envelope_bins)
        self.outlier_s = float(outlier_s)
        self.reset_after = int(reset_after)
        self.jump_s = float(jump_s)
        self.slope_prior = float(slope_prior)
        self.outliers = 0  #: bins left out of the fit
        self.resets = 0  #: times the fit started afresh after a clock jump
        self.updates = 0
        self.reset()

    def reset(self) -> None:
        """Forget everything (the counters ``outliers``/``resets`` are kept)."""
        self._d0: float | None = None  # device-time origin (keeps sums well conditioned)
        self._r0 = 0.0  # offset origin
        self._bin: int | None = None
        self._bin_min: tuple[float, float] | None = None  # (x, y) of the open bin's minimum
        self._recent: deque[tuple[float, float]] = deque(maxlen=self.envelope_bins)
        self._s = [0.0] * 5  # forgetting sums: w, wx, wy, wxx, wxy
        self._n_bins = 0
        self._run_out = 0  # consecutive outlier bins
        self._a = 0.0  # offset line y = a + c*x, already on the envelope
        self._c = 0.0
        self._fitted = False
        self._min_y = math.inf

    # ------------------------------------------------------------------ API
    def update(self, device_s: float, host_s: float) -> None:
        """Record that the sample at device time ``device_s`` arrived at host time ``host_s``."""
        self.updates += 1
        if self._d0 is None:
            self._d0 = device_s
            self._r0 = host_s - device_s
        x = device_s - self._d0
        y = host_s - device_s - self._r0
        key = math.floor(x / self.bin_s)
        if key != self._bin:
            if self._bin_min is not None:
                self._close_bin(*self._bin_min)
            self._bin = key
            self._bin_min = (x, y)
        elif y < self._bin_min[1]:
            self._bin_min = (x, y)
        if not self._fitted and y < self._min_y:
            self._min_y = y

    def to_host(self, device_s: float) -> float:
        """Host time of an event at device time ``device_s``."""
        if self._d0 is None:
            raise RuntimeError("DeviceClock.to_host called before any update")
        x = device_s - self._d0
        if not self._fitted:
            return device_s + self._r0 + self._min_y
        return device_s + self._r0 + self._a + self._c * x

    @property
    def drift_ppm(self) -> float:
        """Estimated rate of the host clock relative to the device clock, minus 1, in ppm."""
        return self._c * 1e6 if self._fitted else 0.0

    # ------------------------------------------------------------ internals
    def _close_bin(self, x: float, y: float) -> None:
        if self._fitted and self._n_bins >= 4:
            resid = y - (self._a + self._c * x)
            if resid > self.outlier_s or resid < -self.jump_s:
                self.outliers += 1
                self._run_out += 1
                if resid < -self.jump_s or self._run_out >= self.reset_after:
                    self._restart_from(x, y)
                return
        self._run_out = 0
        lam = 0.5 ** (self.bin_s / self.half_life_s)
        s = self._s
        s[0] = s[0] * lam + 1.0
        s[1] = s[1] * lam + x
        s[2] = s[2] * lam + y
        s[3] = s[3] * lam + x * x
        s[4] = s[4] * lam + x * y
        self._n_bins += 1
        self._recent.append((x, y))
        self._refit()

    def _restart_from(self, x: float, y: float) -> None:
        # The clock jumped: keep only the newest evidence.
        self.resets += 1
        d0, r0 = self._d0, self._r0
        self.reset()
        self._d0, self._r0 = d0, r0
        self._min_y = y
        self._close_bin(x, y)

    def _refit(self) -> None:
        w, wx, wy, wxx, wxy = self._s
        if self._n_bins < 2:
            self._min_y = min(self._min_y, self._recent[-1][1])
            return
        mx, my = wx / w, wy / w
        var = wxx / w - mx * mx
        if var <= 1e-12:
            return
        # Ridge towards zero drift: crystals are within a few hundred ppm, so
        # a short, noisy start must not extrapolate a wild slope.
        c = (wxy - w * mx * my) / (w * var + self.slope_prior)
        a = my - c * mx
        # Onto the lower envelope of the recent bin minima.
        a += min(yy - (a + c * xx) for xx, yy in self._recent)
        self._a, self._c, self._fitted = a, c, True
