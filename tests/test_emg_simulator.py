"""Simulated sEMG: determinism, truth, SNR, spectrum, artefacts."""

import numpy as np
import pytest
from scipy import signal

from bridge.errors import ConfigError
from bridge.simulator.emg_model import Burst, emg_spectrum, simulate_emg

RATE = 2000.0


def test_deterministic_and_truth():
    bursts = [Burst(0, 1.0, 2.0, 0.3), (1, 1.5, 3.0, 0.2, 0.1, 0.05)]
    a, ta = simulate_emg(RATE, 4.0, bursts, 2, seed=5)
    b, tb = simulate_emg(RATE, 4.0, bursts, 2, seed=5)
    c, _ = simulate_emg(RATE, 4.0, bursts, 2, seed=6)
    assert a.shape == (8000, 2) and a.dtype == np.float64
    assert np.array_equal(a, b) and ta == tb and not np.array_equal(a, c)
    assert ta == [(0, 1.0, 2.0, 0.3), (1, 1.5, 3.0, 0.2)]


def test_levels_and_snr():
    x, _ = simulate_emg(RATE, 6.0, [Burst(0, 2.0, 5.0, 0.4, rise=0.02, fall=0.02)], 1,
                        snr_db=10, seed=1)
    burst = x[int(2.2 * RATE):int(4.8 * RATE), 0]
    rest = x[:int(1.8 * RATE), 0]
    noise = 0.4 / 10 ** 0.5
    assert np.std(rest) == pytest.approx(noise, rel=0.1)
    assert np.sqrt(np.mean(burst ** 2)) == pytest.approx(np.hypot(0.4, noise), rel=0.1)


def test_rise_time_shapes_the_envelope():
    x, _ = simulate_emg(RATE, 3.0, [Burst(0, 1.0, 2.5, 1.0, rise=0.15)], 1, noise_rms=1e-6, seed=2)
    e = np.abs(x[:, 0])
    early = e[int(1.0 * RATE):int(1.03 * RATE)].mean()
    late = e[int(1.5 * RATE):int(2.0 * RATE)].mean()
    assert early < 0.2 * late
    assert np.all(e[:int(0.999 * RATE)] < 1e-4)              # nothing before the onset


def test_emg_spectrum_peak():
    x, _ = simulate_emg(RATE, 20.0, [Burst(0, 0.0, 20.0, 1.0, rise=0, fall=0)], 1,
                        noise_rms=1e-6, seed=3)
    f, p = signal.welch(x[:, 0], fs=RATE, nperseg=2048)
    assert 50 <= f[np.argmax(p)] <= 150
    assert p[(f > 20) & (f < 450)].sum() / p.sum() > 0.9
    assert emg_spectrum(np.array([0.0]))[0] == 0.0


def test_artefacts():
    n = int(10 * RATE)
    hum, _ = simulate_emg(RATE, 10.0, [], 1, noise_rms=1e-6, hum=0.1, hum_freq=60, seed=4)
    f, p = signal.welch(hum[:, 0], fs=RATE, nperseg=4096)
    assert abs(f[np.argmax(p)] - 60) < 1
    ecg, _ = simulate_emg(RATE, 10.0, [], 1, noise_rms=1e-6, ecg=1.0, ecg_rate=1.0, seed=4)
    peaks, _ = signal.find_peaks(ecg[:, 0], height=0.5)
    assert 8 <= len(peaks) <= 12
    wan, _ = simulate_emg(RATE, 10.0, [], 1, noise_rms=1e-6, wander=1.0, seed=4)
    f, p = signal.welch(wan[:, 0], fs=RATE, nperseg=n)
    assert f[np.argmax(p)] < 1.0


@pytest.mark.parametrize("bad", [
    dict(rate=0), dict(duration=-1), dict(channels=0),
    dict(bursts=[(3, 1.0, 2.0, 0.1)]), dict(bursts=[(0, 2.0, 1.0, 0.1)]),
    dict(bursts=[(0, 1.0, 2.0, 0.0)]),
])
def test_bad_arguments(bad):
    args = dict(rate=RATE, duration=3.0, bursts=[], channels=1)
    args.update(bad)
    with pytest.raises(ConfigError):
        simulate_emg(**args)
