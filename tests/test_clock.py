"""DeviceClock: lower-envelope device->host fit under BLE-like jitter and drift."""

import math

import numpy as np
import pytest

from bridge.clock import DeviceClock
from bridge.errors import ConfigError
from bridge.simulator.link_timing import LinkModel, simulate


def _online_errors(model, seconds, seed, clock=None):
    sim = simulate(model, seconds, seed)
    clock = clock or DeviceClock()
    err = np.empty(sim["arrival"].size)
    for i, (df, dl, arr, tf) in enumerate(zip(sim["dev_first"], sim["dev_last"],
                                              sim["arrival"], sim["true_first"])):
        clock.update(dl, arr)
        err[i] = clock.to_host(df) - tf
    t = sim["arrival"] - sim["arrival"][0]
    return t, err, clock, sim


@pytest.mark.parametrize("interval,drift,seed", [(0.0075, 100.0, 21), (0.030, -100.0, 22),
                                                 (0.050, 100.0, 23)])
def test_error_below_1ms_after_60s(interval, drift, seed):
    model = LinkModel(interval=interval, drift_ppm=drift, per_event=8)
    t, err, clock, _ = _online_errors(model, 61.0, seed)
    last = np.abs(err[(t >= 59.0) & (t < 61.0)])
    assert last.size > 100
    assert last.max() < 1e-3
    # The drift itself is recovered (host runs slow relative to a fast device).
    assert clock.drift_ppm == pytest.approx(-drift, abs=30.0)


def test_beats_arrival_stamping_by_far():
    model = LinkModel(interval=0.050, drift_ppm=100.0, per_event=8)
    t, err, _, sim = _online_errors(model, 40.0, 5)
    stamped = sim["arrival"] - (sim["dev_last"] - sim["dev_first"]) - sim["true_first"]
    sel = t > 30.0
    assert np.median(np.abs(err[sel])) * 10 < np.median(np.abs(stamped[sel]))


def test_host_stalls_are_left_out():
    model = LinkModel(interval=0.030, drift_ppm=100.0, per_event=8, stall_rate=0.05, stall_s=0.3)
    t, err, clock, _ = _online_errors(model, 61.0, 7)
    assert np.abs(err[t > 59.0]).max() < 1e-3


def test_long_stall_bins_are_outliers_and_do_not_bend_the_fit():
    model = LinkModel(interval=0.030, drift_ppm=100.0, per_event=8)
    sim = simulate(model, 61.0, 8)
    t = sim["arrival"] - sim["arrival"][0]
    late = (t > 40.0) & (t < 43.0)  # the host was busy for 3 s: everything 80 ms late
    arrival = sim["arrival"] + np.where(late, 0.080, 0.0)
    clock = DeviceClock()
    errs = []
    for df, dl, arr, tf, tt in zip(sim["dev_first"], sim["dev_last"], arrival,
                                   sim["true_first"], t):
        clock.update(dl, arr)
        if tt > 59.0:
            errs.append(clock.to_host(df) - tf)
    assert clock.outliers >= 4
    assert clock.resets == 0
    assert np.abs(errs).max() < 1e-3


def test_clock_jump_restarts_fit():
    model = LinkModel(interval=0.015, drift_ppm=50.0, per_event=8)
    sim = simulate(model, 40.0, 3)
    clock = DeviceClock()
    n = sim["arrival"].size
    half = n // 2
    for i in range(n):
        # Host time jumps back by 2 s halfway (e.g. the device re-anchored its clock).
        shift = -2.0 if i >= half else 0.0
        clock.update(sim["dev_last"][i], sim["arrival"][i] + shift)
    assert clock.resets >= 1
    err = clock.to_host(sim["dev_first"][-1]) - (sim["true_first"][-1] - 2.0)
    assert abs(err) < 2e-3


def _bin_minima(dev, host, bin_s=0.5):
    x = dev - dev[0]
    y = host - dev - (host[0] - dev[0])
    keys = np.floor(x / bin_s).astype(int)
    closed = keys < keys[-1] - 1  # the two newest bins are still open
    bx, by = [], []
    for k in np.unique(keys[closed]):
        sel = np.nonzero(keys == k)[0]
        j = sel[np.argmin(y[sel])]
        bx.append(x[j])
        by.append(y[j])
    return np.array(bx), np.array(by)


def _noisy_drifting(seconds, seed=0):
    rng = np.random.default_rng(seed)
    dev = np.sort(rng.uniform(0, seconds, int(seconds * 130))) + 1000.0
    host = 50.0 + dev * (1 - 80e-6) + rng.exponential(0.01, dev.size)
    return dev, host


def test_short_history_is_least_squares_on_bin_minima_shifted_to_envelope():
    # Under hull_span_s of history, with no forgetting and no ridge, the fit is
    # ordinary least squares through the per-bin minima, shifted onto their
    # lower envelope.
    dev, host = _noisy_drifting(15.0)
    clock = DeviceClock(half_life_s=1e12, slope_prior=0.0, outlier_s=10.0)
    for d, h in zip(dev, host):
        clock.update(d, h)
    bx, by = _bin_minima(dev, host)
    c, a = np.polyfit(bx, by, 1)
    a += np.min(by - (a + c * bx))
    probe = dev[-1] + 1.0
    expected = probe + (host[0] - dev[0]) + a + c * (probe - dev[0])
    assert clock.to_host(probe) == pytest.approx(expected, abs=1e-9)
    assert clock.drift_ppm == pytest.approx(c * 1e6, abs=1e-6)


def test_long_history_is_the_lower_envelope_linear_program():
    # With >= hull_span_s of history the line is the solution of
    # max sum(a + c*x_i) s.t. a + c*x_i <= y_i over the recent bin minima.
    from scipy.optimize import linprog

    dev, host = _noisy_drifting(45.0, seed=1)
    clock = DeviceClock(outlier_s=10.0)
    for d, h in zip(dev, host):
        clock.update(d, h)
    bx, by = _bin_minima(dev, host)
    bx, by = bx[-clock.envelope_bins:], by[-clock.envelope_bins:]
    res = linprog(c=[-bx.size, -bx.sum()], A_ub=np.column_stack([np.ones_like(bx), bx]),
                  b_ub=by, bounds=[(None, None), (None, None)], method="highs")
    a, c = res.x
    probe = dev[-1] + 1.0
    expected = probe + (host[0] - dev[0]) + a + c * (probe - dev[0])
    assert clock.to_host(probe) == pytest.approx(expected, abs=1e-7)
    assert clock.drift_ppm == pytest.approx(-80.0, abs=20.0)


def test_before_two_bins_uses_min_offset():
    clock = DeviceClock()
    clock.update(10.0, 110.030)
    clock.update(10.1, 110.105)
    assert clock.to_host(10.2) == pytest.approx(110.2 + 0.005)
    assert clock.drift_ppm == 0.0


def test_errors():
    with pytest.raises(RuntimeError):
        DeviceClock().to_host(1.0)
    with pytest.raises(ConfigError):
        DeviceClock(bin_s=0)
    with pytest.raises(ConfigError):
        DeviceClock(half_life_s=-1)


def test_reset_forgets():
    clock = DeviceClock()
    for i in range(100):
        clock.update(i * 0.1, 5.0 + i * 0.1)
    clock.reset()
    with pytest.raises(RuntimeError):
        clock.to_host(0.0)
    clock.update(0.0, 1.0)
    assert math.isclose(clock.to_host(1.0), 2.0)


def test_streams_sharing_one_clock_out_of_order():
    # EMG (8 ms blocks) and IMU (20 ms blocks) feed one clock in arrival order,
    # so device times go back and forth; the fit must not care.
    emg = LinkModel(interval=0.050, drift_ppm=100.0, per_event=8)
    imu = LinkModel(rate=200.0, block=4, interval=0.050, drift_ppm=100.0)
    sims = [simulate(m, 61.0, 31) for m in (emg, imu)]
    cols = {k: np.concatenate([s[k] for s in sims]) for k in sims[0]}
    is_imu = np.concatenate([np.zeros(sims[0]["arrival"].size, bool),
                             np.ones(sims[1]["arrival"].size, bool)])
    order = np.argsort(cols["arrival"], kind="stable")
    assert (np.diff(cols["dev_last"][order]) < 0).any()
    clock = DeviceClock()
    t0 = cols["arrival"].min()
    errs = []
    for j in order:
        clock.update(cols["dev_last"][j], cols["arrival"][j])
        if is_imu[j] and cols["arrival"][j] - t0 > 59.0:
            errs.append(clock.to_host(cols["dev_first"][j]) - cols["true_first"][j])
    assert len(errs) > 20
    # Out-of-order updates once broke the bins (errors of 20+ ms); the < 1 ms
    # figures per setting are printed by benchmarks/clock_eval.py.
    assert np.abs(errs).max() < 1.5e-3
    assert clock.resets == 0


def test_device_restart_clock_goes_backwards():
    clock = DeviceClock()
    for i in range(2000):  # 20 s at 100 blocks/s, device clock at 500 s
        clock.update(500.0 + i * 0.01, 1000.0 + i * 0.01 + 0.002)
    for i in range(1000):  # restarted: device clock from 0, host continues
        clock.update(i * 0.01, 1020.0 + i * 0.01 + 0.002)
    assert clock.resets == 1
    assert clock.to_host(9.99) == pytest.approx(1029.99, abs=0.003)
