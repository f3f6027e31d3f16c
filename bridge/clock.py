"""Device clock -> host clock mapping.

Every sample block carries the device's monotonic timestamp; the host logs
when the bytes arrived.  Arrival = true time + a positive, jittery delay (BLE
connection intervals of 7.5-50 ms bunch notifications; the OS adds
scheduling jitter; a missed connection event adds a whole interval), so the
map is fitted to the *lower envelope* of (device time, arrival time): the
packets that were delayed least.  Stamping samples with arrival time instead
(BrainFlow's habit) gives bunched, drifting timestamps.

Algorithm (O(1) per update; a refit over at most ``history_bins`` points
each time a bin closes, i.e. every ``bin_s`` of device time):

1. Bin updates by device time (``bin_s``, default 0.5 s) and keep the
   smallest ``host - device`` offset in each bin: the least delayed packet.
   Updates may come out of device-time order (EMG and IMU blocks share the
   clock); a bin closes once device time is two bins past it.
2. Fit ``offset = a + c * device`` through the bin minima by weighted least
   squares with exponential forgetting (``half_life_s``, default 90 s, as
   LSL's dejittering RLS).  ``c`` absorbs the clock drift (any ppm, also a
   simulator running ``speed`` times faster than real time).  A small ridge
   term (``slope_prior``, in s^2 of bin weight: (1 ms / 200 ppm)^2) keeps the
   first seconds from extrapolating a wild slope out of a few noisy bins.
3. Trim: bins whose minimum lies more than ``outlier_s`` above the envelope
   (a stall: every packet of that bin was late) are left out and the line is
   refitted (twice at most).  Refitting from the stored bins, rather than
   updating running sums, lets a bad early bin be dropped later.
4. Shift the line down onto the lower envelope: by the smallest residual of
   the ``envelope_bins`` most recent kept bins (least squares through the
   minima is biased by their average delay; the envelope is not).  Once
   those bins span ``hull_span_s`` (20 s), use instead the lower convex
   hull edge over them at their mean device time (see ``_hull_line``): the
   bin minima form a sawtooth as the sampling phase slides past the
   connection events, and the hull follows the teeth's bottoms.
5. Clock jumps: a new bin more than ``jump_s`` below the envelope, the last
   ``reset_after`` bins all above it, or device time running backwards for
   good (device restart) restart the fit from the newest evidence.

Before two bins have closed, the mapping is ``host = device + min offset``
(slope 1), which is already right within the jitter's minimum.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

__all__ = ["DeviceClock"]


class DeviceClock:
    """Online lower-envelope fit of host time as a linear function of device time.

    >>> clock = DeviceClock()
    >>> clock.update(device_s, host_s)   # the sample at device_s arrived at host_s
    >>> clock.to_host(device_s)          # host time (time.monotonic base) of a device time
    """

    def __init__(self, bin_s: float = 0.5, half_life_s: float = 90.0,
                 envelope_bins: int = 120, history_bins: int = 360,
                 outlier_s: float = 0.010, reset_after: int = 20, jump_s: float = 0.25,
                 slope_prior: float = 25.0, hull_span_s: float = 20.0) -> None:
        if not (bin_s > 0 and half_life_s > 0 and envelope_bins >= 1 and outlier_s > 0
                and reset_after >= 1 and jump_s > 0 and history_bins >= 2
                and slope_prior >= 0):
            from bridge.errors import ConfigError
            raise ConfigError("DeviceClock: bin_s, half_life_s, outlier_s, jump_s must be > 0, "
                              "slope_prior >= 0, envelope_bins and reset_after >= 1, "
                              "history_bins >= 2")
        self.bin_s = float(bin_s)
        self.half_life_s = float(half_life_s)
        self.envelope_bins = int(envelope_bins)
        self.history_bins = int(history_bins)
        self.outlier_s = float(outlier_s)
        self.reset_after = int(reset_after)
        self.jump_s = float(jump_s)
        self.slope_prior = float(slope_prior)
        self.hull_span_s = float(hull_span_s)
        self.resets = 0  #: times the fit started afresh after a clock jump
        self.updates = 0
        self.reset()

    def reset(self) -> None:
        """Forget everything (the counter ``resets`` is kept)."""
        self._d0: float | None = None  # device-time origin (keeps the fit well conditioned)
        self._r0 = 0.0  # offset origin
        self._open: dict[int, tuple[float, float]] = {}  # bin -> (x, y) of its minimum
        self._max_key = -(1 << 62)  # newest bin seen
        self._closed_upto = -(1 << 62)  # bins up to this one are closed
        self._behind = 0  # consecutive updates far behind the closed bins
        self._bins: deque[tuple[float, float]] = deque(maxlen=self.history_bins)
        self._kept = np.zeros(0, bool)
        self._a = 0.0  # offset line y = a + c*x, already on the envelope
        self._c = 0.0
        self._fitted = False
        self._min_y = math.inf

    # ------------------------------------------------------------------ API
    def update(self, device_s: float, host_s: float) -> None:
        """Record that the sample at device time ``device_s`` arrived at host time ``host_s``.

        Updates need not come in device-time order (several streams share a
        clock, and a block that missed its connection event arrives after
        newer ones): a bin stays open until device time is two bins past it.
        """
        self.updates += 1
        if self._d0 is None:
            self._d0 = device_s
            self._r0 = host_s - device_s
        x = device_s - self._d0
        y = host_s - device_s - self._r0
        key = math.floor(x / self.bin_s)
        if key <= self._closed_upto:
            # Too late for its bin (late blocks are never the envelope) -- or,
            # far behind and persistently, the device clock went backwards
            # (restart): start afresh from this update.
            if key < self._closed_upto - 4:
                self._behind += 1
                if self._behind >= 64:
                    self.resets += 1
                    self.reset()
                    self.update(device_s, host_s)
                    self.updates -= 1
            return
        self._behind = 0
        cur = self._open.get(key)
        if cur is None or y < cur[1]:
            self._open[key] = (x, y)
        if key > self._max_key:
            self._max_key = key
            for k in sorted(k for k in self._open if k < key - 1):
                self._closed_upto = k
                self._close_bin(*self._open.pop(k))
        if not self._fitted and y < self._min_y:
            self._min_y = y

    def to_host(self, device_s: float) -> float:
        """Host time of an event at device time ``device_s``."""
        if self._d0 is None:
            raise RuntimeError("DeviceClock.to_host called before any update")
        if not self._fitted:
            return device_s + self._r0 + self._min_y
        return device_s + self._r0 + self._a + self._c * (device_s - self._d0)

    @property
    def drift_ppm(self) -> float:
        """Estimated rate of the host clock relative to the device clock, minus 1, in ppm."""
        return self._c * 1e6 if self._fitted else 0.0

    @property
    def outliers(self) -> int:
        """Bins in the current history left out of the fit (stalls)."""
        return int(self._kept.size - np.count_nonzero(self._kept))

    # ------------------------------------------------------------ internals
    def _close_bin(self, x: float, y: float) -> None:
        if self._fitted:
            resid = y - (self._a + self._c * x)
            if resid < -self.jump_s:
                self._restart_with([(x, y)])
                return
        self._bins.append((x, y))
        self._refit()
        n = self._kept.size
        if n > self.reset_after and not self._kept[n - self.reset_after:].any():
            # Everything recent sits far above the old envelope: the clock jumped.
            self._restart_with(list(self._bins)[n - self.reset_after:])

    def _restart_with(self, points) -> None:
        self.resets += 1
        self._bins.clear()
        self._bins.extend(points)
        self._fitted = False
        self._min_y = min(y for _, y in points)
        self._refit()

    def _refit(self) -> None:
        pts = np.asarray(self._bins, dtype=np.float64)
        n = pts.shape[0]
        if n < 2:
            self._kept = np.ones(n, bool)
            if n:
                self._min_y = min(self._min_y, float(pts[:, 1].min()))
            return
        x, y = pts[:, 0], pts[:, 1]
        # Forgetting by device time, relative to the newest bin.
        w_all = 0.5 ** ((x[-1] - x) / self.half_life_s)
        recent = np.zeros(n, bool)
        recent[max(0, n - self.envelope_bins):] = True
        kept = np.ones(n, bool)
        for _ in range(3):
            w = w_all[kept]
            sw = w.sum()
            mx = (w * x[kept]).sum() / sw
            my = (w * y[kept]).sum() / sw
            dx = x[kept] - mx
            # Ridge towards zero drift: crystals are within a few hundred ppm.
            c = (w * dx * (y[kept] - my)).sum() / ((w * dx * dx).sum() + self.slope_prior)
            a = my - c * mx
            resid = y - (a + c * x)
            # Envelope for trimming: robust to one point below it (the 2nd lowest).
            env_pool = np.sort(resid[recent & kept] if (recent & kept).any() else resid)
            env = env_pool[min(1, env_pool.size - 1)]
            new_kept = resid - env <= self.outlier_s
            if not new_kept.any() or np.array_equal(new_kept, kept):
                break
            kept = new_kept
        self._kept = kept
        sel = recent & kept
        a += float(resid[sel].min()) if sel.any() else float(resid[kept].min())
        if sel.sum() >= 3 and x[sel][-1] - x[sel][0] >= self.hull_span_s:
            a, c = _hull_line(x[sel], y[sel])
        self._a, self._c, self._fitted = float(a), float(c), True


def _hull_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The line under all points (x, y) that is highest at their mean x.

    That is the lower-convex-hull edge spanning mean(x) (the linear program
    "maximise sum(a + c*x_i) subject to a + c*x_i <= y_i").  With a sliding
    phase between sampling and connection events the bin minima form a
    sawtooth; this line touches the bottoms of its teeth, where the delay is
    least, while least squares would tilt towards the teeth's average.
    """
    hull: list[int] = []
    for i in range(x.size):  # monotone chain, x ascending
        while len(hull) >= 2:
            i0, i1 = hull[-2], hull[-1]
            # Drop i1 if it lies on or above the segment i0 -> i.
            if (y[i1] - y[i0]) * (x[i] - x[i0]) >= (y[i] - y[i0]) * (x[i1] - x[i0]):
                hull.pop()
            else:
                break
        hull.append(i)
    xm = float(x.mean())
    for i0, i1 in zip(hull, hull[1:]):
        if x[i1] >= xm:
            c = (y[i1] - y[i0]) / (x[i1] - x[i0])
            return float(y[i0] - c * x[i0]), float(c)
    i0 = hull[-1]
    return float(y[i0]), 0.0
