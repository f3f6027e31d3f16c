"""Arrival times of sample blocks over a BLE-like link, with ground truth.

Used to tune and test :class:`bridge.clock.DeviceClock` without hardware.
Model (all times in seconds):

- the device crystal runs ``drift_ppm`` fast (it clocks both the sampling and
  the timestamps) and the device clock starts at ``device_offset``;
- a block is ready when its last sample has been taken;
- the radio sends at connection events every ``interval`` s (random phase),
  at most ``per_event`` notifications per event; blocks ready before an event
  go out together (bunched); with probability ``miss_rate`` a block misses
  its event and waits for a later one (retransmission);
- the host stack adds ``host_latency`` plus exponential scheduling jitter
  (mean ``host_jitter``) and, with probability ``stall_rate``, a stall of up
  to ``stall_s`` for everything arriving in that event.

:func:`simulate` returns per-block (device time of first sample, device time
of last sample, host arrival, true host time of the first sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LinkModel", "simulate"]


@dataclass(frozen=True)
class LinkModel:
    rate: float = 2000.0  #: samples/s of the stream
    block: int = 16  #: samples per block
    interval: float = 0.030  #: BLE connection interval (7.5-50 ms)
    per_event: int = 6  #: notifications per connection event
    miss_rate: float = 0.02  #: chance a block misses its connection event
    drift_ppm: float = 100.0  #: device clock runs fast by this much
    device_offset: float = 123.456  #: device clock at true time 0
    host_offset: float = 5000.0  #: host clock at true time 0
    host_latency: float = 0.0002  #: fixed host-stack latency (cannot be fitted away)
    host_jitter: float = 0.0003  #: mean exponential OS scheduling jitter
    stall_rate: float = 0.0  #: chance per connection event of a host stall
    stall_s: float = 0.2  #: longest stall


def simulate(model: LinkModel, duration: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Simulate ``duration`` s of blocks; arrays keyed dev_first, dev_last, arrival, true_first."""
    rng = np.random.default_rng(seed)
    n_blocks = int(duration * model.rate / model.block)
    k = np.arange(n_blocks)
    # The device's crystal drives both its clock and its sampling: when it runs
    # fast, samples come early in true time while their timestamps stay
    # nominal.  Connection events run on the central's (host's) clock, so the
    # phase between block readiness and events slides at the drift rate.
    scale = 1.0 + model.drift_ppm * 1e-6
    nominal_first = k * model.block / model.rate
    nominal_last = nominal_first + (model.block - 1) / model.rate
    t_first = nominal_first / scale  # true time of each block's first sample
    t_ready = nominal_last / scale
    dev_first = model.device_offset + nominal_first
    dev_last = model.device_offset + nominal_last
    phase = rng.uniform(0, model.interval)
    # Event index at or after ready time, then capacity and misses push blocks later.
    event = np.ceil((t_ready - phase) / model.interval).astype(np.int64)
    event = np.maximum(event, 0)
    event += (rng.random(n_blocks) < model.miss_rate) * rng.integers(1, 3, n_blocks)
    # Capacity: at most per_event blocks per event, in order.
    ev = event.copy()
    for i in range(1, n_blocks):
        if ev[i] < ev[i - 1]:
            ev[i] = ev[i - 1]
    used = 0
    for i in range(n_blocks):
        if i and ev[i] <= ev[i - 1]:
            ev[i] = ev[i - 1]
            used += 1
            if used >= model.per_event:
                ev[i] += 1
                used = 0
        else:
            used = 0
    t_event = phase + ev * model.interval
    stalls = np.zeros(n_blocks)
    if model.stall_rate:
        n_ev = int(ev.max()) + 1
        per_ev = np.where(rng.random(n_ev) < model.stall_rate, rng.uniform(0, model.stall_s, n_ev),
                          0.0)
        stalls = per_ev[ev]
    arrival = (model.host_offset + t_event + model.host_latency
               + rng.exponential(model.host_jitter, n_blocks) + stalls)
    # Arrival order is the order of events (callbacks are serialised).
    arrival = np.maximum.accumulate(arrival)
    return {"dev_first": dev_first, "dev_last": dev_last, "arrival": arrival,
            "true_first": model.host_offset + t_first}
