"""Simulated multichannel surface EMG with known ground truth.

Each channel = background noise (white, amplifier-like)
             + sum of bursts: unit-RMS sEMG-shaped noise x amplitude envelope
             + optional mains hum, ECG (QRS-like spikes), baseline wander.

The burst carrier is Gaussian noise shaped in the frequency domain to a
classic sEMG power spectrum (Shwedyk et al. 1977 form,
``P(f) ~ fh^4 f^2 / ((f^2 + fl^2)(f^2 + fh^2)^2)``; defaults put the peak
near 80-100 Hz with most power in 20-250 Hz).  The amplitude envelope rises
with a raised-cosine over ``rise`` seconds from the burst's onset, holds
``level`` (RMS, mV) and falls over ``fall`` seconds to its offset, so the
truth onset is the first sample of muscle activity and the truth offset the
last.

Example (glute bridge reps on two channels, right weaker and later)::

    from bridge.simulator.emg_model import Burst, simulate_emg
    bursts = [Burst(0, t, t + 2.0, 0.4) for t in (2, 6, 10)]
    bursts += [Burst(1, t + 0.08, t + 2.0, 0.25) for t in (2, 6, 10)]
    samples, truth = simulate_emg(2000, 14, bursts, channels=2, snr_db=15,
                                  hum=0.02, ecg=0.05, wander=0.2, seed=1)

Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from bridge.errors import ConfigError

__all__ = ["Burst", "simulate_emg", "emg_spectrum"]


@dataclass(frozen=True, slots=True)
class Burst:
    """One activation: ``channel``, ``onset``/``offset`` (s), ``level`` (RMS mV
    at the plateau), ``rise``/``fall`` times (s, inside [onset, offset]).

    ``freq_scale`` scales the burst's spectrum along the frequency axis (its
    mean and median frequency scale with it): values below 1 model fatigue,
    whose sEMG spectrum shifts down as conduction velocity falls.
    """

    channel: int
    onset: float
    offset: float
    level: float
    rise: float = 0.05
    fall: float = 0.05
    freq_scale: float = 1.0


def emg_spectrum(freqs: np.ndarray, fl: float = 60.0, fh: float = 120.0) -> np.ndarray:
    """Unnormalised sEMG power spectral density (Shwedyk form)."""
    f2 = freqs * freqs
    return fh ** 4 * f2 / ((f2 + fl * fl) * (f2 + fh * fh) ** 2)


def _shaped_noise(rng: np.random.Generator, n: int, rate: float, fl: float, fh: float) -> np.ndarray:
    """Unit-RMS Gaussian noise with the sEMG spectrum."""
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1.0 / rate)
    spec *= np.sqrt(emg_spectrum(f, fl, fh))
    x = np.fft.irfft(spec, n)
    rms = np.sqrt(np.mean(x * x))
    return x / rms if rms > 0 else x


def _envelope(t: np.ndarray, b: Burst) -> np.ndarray:
    env = np.zeros_like(t)
    rise = min(max(b.rise, 0.0), (b.offset - b.onset) / 2)
    fall = min(max(b.fall, 0.0), (b.offset - b.onset) / 2)
    on = (t >= b.onset) & (t <= b.offset)
    env[on] = 1.0
    if rise > 0:
        r = on & (t < b.onset + rise)
        env[r] = 0.5 - 0.5 * np.cos(np.pi * (t[r] - b.onset) / rise)
    if fall > 0:
        f = on & (t > b.offset - fall)
        env[f] = 0.5 - 0.5 * np.cos(np.pi * (b.offset - t[f]) / fall)
    return env * b.level


def _ecg(t: np.ndarray, rng: np.random.Generator, rate_hz: float) -> np.ndarray:
    """QRS-like spikes (~1 per second, slight jitter), unit peak."""
    out = np.zeros_like(t)
    beat = rng.uniform(0, 1.0 / rate_hz)
    dur = t[-1] if len(t) else 0.0
    while beat < dur:
        # Only +-0.1 s around the beat matters (the Gaussians are < 1e-30 beyond).
        lo, hi = np.searchsorted(t, (beat - 0.1, beat + 0.1))
        d = t[lo:hi] - beat
        # Q dip, tall R (~20 ms wide), S dip: sum of Gaussians.
        out[lo:hi] += (-0.15 * np.exp(-0.5 * ((d + 0.02) / 0.006) ** 2)
                       + 1.0 * np.exp(-0.5 * (d / 0.008) ** 2)
                       - 0.25 * np.exp(-0.5 * ((d - 0.022) / 0.007) ** 2))
        beat += (1.0 / rate_hz) * rng.uniform(0.92, 1.08)
    return out


def simulate_emg(
    rate: float,
    duration: float,
    bursts: Iterable[Burst | Sequence[float]],
    channels: int = 1,
    *,
    snr_db: float | None = None,
    noise_rms: float = 0.01,
    hum: float = 0.0,
    hum_freq: float = 50.0,
    ecg: float = 0.0,
    ecg_rate: float = 1.1,
    wander: float = 0.0,
    spectrum: tuple[float, float] = (60.0, 120.0),
    seed: int | None = 0,
) -> tuple[np.ndarray, list[tuple[int, float, float, float]]]:
    """Simulate ``duration`` s of sEMG at ``rate`` Hz on ``channels`` channels.

    ``bursts``: :class:`Burst` objects or tuples
    ``(channel, onset, offset, level[, rise[, fall]])`` in s and RMS mV.
    ``snr_db``: if given, each channel's background noise RMS is set so that
    its weakest burst has this SNR (20 log10 burst RMS / noise RMS, full band);
    otherwise ``noise_rms`` (mV) is used.
    ``hum``: amplitude (mV) of mains hum at ``hum_freq`` (+ 3rd harmonic at a
    third of it).  ``ecg``: R-peak amplitude (mV) of ECG cross-talk at
    ``ecg_rate`` beats/s.  ``wander``: amplitude (mV) of <1 Hz baseline wander.

    Returns ``(samples, truth)``: samples (n, channels) float64 in mV and
    truth as a list of ``(channel, onset_s, offset_s, level)`` sorted by onset.
    """
    if rate <= 0 or duration <= 0:
        raise ConfigError(f"rate and duration must be > 0, got {rate}, {duration}")
    if channels < 1:
        raise ConfigError(f"channels must be >= 1, got {channels}")
    bl = [b if isinstance(b, Burst) else Burst(int(b[0]), *map(float, b[1:])) for b in bursts]
    for b in bl:
        if not 0 <= b.channel < channels:
            raise ConfigError(f"burst channel {b.channel} outside 0..{channels - 1}")
        if not (0 <= b.onset < b.offset) or b.level <= 0:
            raise ConfigError(f"burst needs 0 <= onset < offset and level > 0: {b}")
        if not b.freq_scale > 0:
            raise ConfigError(f"burst freq_scale must be > 0: {b}")
    rng = np.random.default_rng(seed)
    n = int(round(rate * duration))
    t = np.arange(n) / rate
    out = np.zeros((n, channels))
    for c in range(channels):
        mine = [b for b in bl if b.channel == c]
        if snr_db is not None and mine:
            sigma = min(b.level for b in mine) / 10 ** (snr_db / 20.0)
        else:
            sigma = noise_rms
        x = sigma * rng.standard_normal(n)
        if mine:
            carrier = _shaped_noise(rng, n, rate, *spectrum)
            amp = np.zeros(n)
            for b in mine:
                if b.freq_scale == 1.0:
                    amp += _envelope(t, b)
            x += carrier * amp
            # Bursts with a shifted spectrum get their own carrier (drawn after the
            # shared one, so simulations without shifts are unchanged).
            for b in mine:
                if b.freq_scale != 1.0:
                    fl, fh = spectrum
                    own = _shaped_noise(rng, n, rate, fl * b.freq_scale, fh * b.freq_scale)
                    x += own * _envelope(t, b)
        if hum:
            ph = rng.uniform(0, 2 * np.pi)
            x += hum * np.sin(2 * np.pi * hum_freq * t + ph)
            x += (hum / 3) * np.sin(2 * np.pi * 3 * hum_freq * t + 3 * ph)
        if ecg:
            x += ecg * _ecg(t, rng, ecg_rate)
        if wander:
            for f in (rng.uniform(0.05, 0.15), rng.uniform(0.2, 0.6)):
                x += 0.5 * wander * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        out[:, c] = x
    truth = sorted(((b.channel, b.onset, b.offset, b.level) for b in bl), key=lambda r: (r[1], r[0]))
    return out, truth
