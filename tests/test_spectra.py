"""Per-contraction spectra kept live, and the fatigue trend over reps they give."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from scipy.signal import periodogram

from bridge.analytics.fatigue import pieces_frequencies, segment_frequencies, welch_psd
from bridge.features import mean_frequency, median_frequency
from bridge.results import session_results
from bridge.runner import run_items, virtual_items
from bridge.session import Session
from bridge.simulator.device import Faults, Signals
from bridge.simulator.emg_model import Burst, simulate_emg
from bridge.spectra import RawHistory, contraction_spectrum


def _reference_frequencies(pieces, rate, nper, lo=20.0, hi=450.0):
    """Slow reference: the mean of every Hann periodogram of every half-overlapping window."""
    psds = []
    for x in pieces:
        for s in range(0, len(x) - nper + 1, nper - nper // 2):
            f, p = periodogram(x[s:s + nper], fs=rate, window="hann", detrend="constant")
            psds.append(p)
    p = np.mean(psds, axis=0)
    keep = (f >= lo) & (f <= hi)
    f, p = f[keep], p[keep]
    # the frequency definitions themselves are checked against libemg in test_features
    return mean_frequency(p, f), median_frequency(p, f, interpolate=True)


@pytest.mark.parametrize("n, nper", [(4000, 500), (3999, 500), (777, 125), (500, 500), (64, 64),
                                     (1000, 333)])
def test_welch_psd_equals_scipy(n, nper):
    from scipy.signal import welch

    x = np.random.default_rng(n).standard_normal(n) * 0.3 + 0.05
    f, p, k = welch_psd(x, 2000.0, nper)
    f_ref, p_ref = welch(x, fs=2000.0, window="hann", nperseg=nper, noverlap=nper // 2,
                         detrend="constant", scaling="density")
    assert k == 1 + (n - nper) // (nper - nper // 2)
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p, p_ref, rtol=1e-12, atol=1e-15 * p_ref.max())


def test_history_returns_gap_free_pieces_and_forgets_old_samples():
    rate = 100.0
    h = RawHistory(rate, seconds=1.5)
    x = np.arange(300, dtype=float).reshape(150, 2)
    h.add(0, x[:50])
    h.add(50, x[50:80])
    h.add(90, x[90:150])  # stream samples 80..89 lost
    pieces = h.pieces(40, 120, 1)
    assert [p.tolist() for p in pieces] == [x[40:80, 1].tolist(), x[90:120, 1].tolist()]
    h.add(150, np.zeros((100, 2)))  # the first two chunks leave the 1.5 s window
    assert [p.tolist() for p in h.pieces(0, 120, 0)] == [x[90:120, 0].tolist()]
    assert h.pieces(300, 400, 0) == []


def test_pieces_frequencies_match_a_slow_reference():
    rng = np.random.default_rng(3)
    rate = 2000.0
    sig, _ = simulate_emg(rate, 4.0, [Burst(0, 0.0, 4.0, 0.5, 0, 0)], snr_db=30, seed=5)
    x = sig[:, 0]
    pieces = [x[:3100], x[3200:5000], x[5100:5300], x[5400:]]  # three gaps; one piece too short
    nper = int(0.25 * rate)
    got = pieces_frequencies(pieces, rate)
    want = _reference_frequencies([p for p in pieces if p.size >= nper], rate, nper)
    assert got[0] == pytest.approx(want[0], rel=1e-9)
    assert got[1] == pytest.approx(want[1], rel=1e-9)
    # one gap-free piece: the same numbers as the whole-segment function
    (seg,) = segment_frequencies(x, rate, [(0.0, 4.0)])
    assert pieces_frequencies([x], rate) == pytest.approx((seg.mnf, seg.mdf), rel=1e-12)
    assert pieces_frequencies([x[:100]], rate) is None
    del rng


def test_contraction_spectrum_needs_most_of_the_contraction():
    h = RawHistory(1000.0, 10.0)
    rng = np.random.default_rng(0)
    h.add(0, rng.standard_normal((1000, 1)))
    h.add(1600, rng.standard_normal((400, 1)))
    assert contraction_spectrum(h, 0, 0, 1000) is not None
    assert contraction_spectrum(h, 0, 0, 2000) is not None  # 1400 of 2000 held
    assert contraction_spectrum(h, 0, 600, 1600) is None  # 400 of 1000 held
    h.add(2000, np.full((1000, 1), np.nan))
    assert contraction_spectrum(h, 0, 2000, 3000) is None


def _reps_signals(scales, seed=0):
    rate = 2000.0
    onsets = [2.0 + 4.0 * i for i in range(len(scales))]
    bursts = [Burst(0, t, t + 2.0, 0.4, 0.1, 0.1, freq_scale=s) for t, s in zip(onsets, scales)]
    bursts += [Burst(1, t + 0.05, t + 2.0, 0.4, 0.1, 0.1) for t in onsets]
    emg, truth = simulate_emg(rate, onsets[-1] + 4.0, bursts, channels=2, snr_db=25, seed=seed)
    return Signals(emg, rate, ("glute_max_L", "glute_max_R"), np.zeros((0, 6)), 100.0,
                   {"contractions": truth})


def _fatigue(signals, faults=None):
    session = Session()
    asyncio.run(run_items(virtual_items(signals, speed=0, faults=faults), session, []))
    res = session_results(session)
    return {m["name"]: m.get("fatigue") for m in res["devices"]["sim"]["summary"]["muscles"]}


def test_falling_spectrum_over_reps_shows_as_a_falling_mdf_trend():
    scales = [1.0, 0.95, 0.9, 0.85, 0.8, 0.75]
    signals = _reps_signals(scales)
    # live over the detected contractions == offline over the true spans, within what a few
    # ms of onset/offset error change
    spans = [(c[1], c[2]) for c in signals.truth["contractions"] if c[0] == 0]
    offline = [f.mdf for f in segment_frequencies(signals.emg, signals.emg_rate, spans, channel=0)]
    live = [s["mdf"] for s in _fatigue(signals)["glute_max_L"]["segments"]]
    assert live == pytest.approx(offline, rel=0.02)
    # with 1 % of the packets lost each rep is measured over its gap-free pieces
    fat = _fatigue(signals, faults=Faults(drop_rate=0.01, seed=2))
    tired, fresh = fat["glute_max_L"], fat["glute_max_R"]
    assert [s["index"] for s in tired["segments"]] == [1, 2, 3, 4, 5, 6]
    assert tired["reps_without_spectrum"] == 0
    mdf = np.array([s["mdf"] for s in tired["segments"]])
    assert mdf == pytest.approx(offline, rel=0.08)
    # a 2 s Welch MDF is good to ~5 %, so the scripted 25 % fall shows as a trend
    assert tired["mdf_change_pct"] == pytest.approx(-25, abs=10)
    assert tired["mdf_per_index"]["slope"] < 0 and tired["mdf_per_index"]["r2"] > 0.7
    # the other side keeps its spectrum: no trend to speak of
    assert abs(fresh["mdf_change_pct"]) < 8


def test_spectra_can_be_turned_off():
    session = Session(spectrum_history=0)
    asyncio.run(run_items(virtual_items(_reps_signals([1.0, 0.8]), speed=0), session, []))
    muscles = session_results(session)["devices"]["sim"]["summary"]["muscles"]
    assert all("fatigue" not in m or m["fatigue"] is None for m in muscles)
