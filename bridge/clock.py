"""Device clock -> host clock mapping.

Every sample block carries the device's monotonic timestamp; the host logs
when the bytes arrived.  Arrival = true time + a positive, jittery delay
(BLE connection intervals bunch notifications), so the device->host map is
fitted to the *lower envelope* of (device time, arrival time): the packets
that were delayed least.  Slope absorbs clock drift, intercept the offset.
"""

from __future__ import annotations

import math
from collections import deque


class DeviceClock:
    """Online fit of host time as a linear function of device time.

    Keeps the minimum arrival delay per window of device time and fits a
    line through those minima (least squares), so bunched late arrivals do
    not bias the estimate.  Before two windows exist it uses the minimum
    offset seen so far with slope 1.
    """

    def __init__(self, window_s: float = 2.0, history: int = 60) -> None:
        self.window_s = window_s
        self._minima: deque[tuple[float, float]] = deque(maxlen=history)  # (device, offset)
        self._cur_key: int | None = None
        self._cur: tuple[float, float] | None = None
        self._t0: float | None = None  # device time origin, keeps the fit well conditioned
        self._slope = 0.0  # drift of offset per device second
        self._offset = math.nan

    def update(self, device_s: float, host_s: float) -> None:
        """Record that the sample with device time ``device_s`` arrived at ``host_s``."""
        if self._t0 is None:
            self._t0 = device_s
        offset = host_s - device_s
        key = int((device_s - self._t0) // self.window_s)
        if key != self._cur_key:
            if self._cur is not None:
                self._minima.append(self._cur)
                self._refit()
            self._cur_key = key
            self._cur = (device_s, offset)
        elif offset < self._cur[1]:
            self._cur = (device_s, offset)
        if len(self._minima) < 2:
            best = min([o for _, o in self._minima] + [self._cur[1]])
            self._offset, self._slope = best, 0.0
            self._anchor = device_s

    def _refit(self) -> None:
        pts = list(self._minima)
        if len(pts) < 2:
            return
        n = len(pts)
        mx = sum(d for d, _ in pts) / n
        my = sum(o for _, o in pts) / n
        sxx = sum((d - mx) ** 2 for d, _ in pts)
        if sxx <= 0:
            return
        self._slope = sum((d - mx) * (o - my) for d, o in pts) / sxx
        self._offset = my
        self._anchor = mx

    def to_host(self, device_s: float) -> float:
        """Host time of an event at device time ``device_s``."""
        if math.isnan(self._offset):
            raise RuntimeError("DeviceClock.to_host called before any update")
        return device_s + self._offset + self._slope * (device_s - self._anchor)
