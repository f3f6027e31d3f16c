"""Window features: hand-computed cases, a slow reference, libemg's MATLAB values, streaming."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge.features as feat
from bridge.errors import ConfigError, SignalError
from bridge.features import (
    FEATURES,
    SlidingWindowFeatures,
    median_frequency,
    n_windows,
    window_features,
    window_starts,
)

# ----------------------------------------------------------------------------
# slow reference: one window, one channel at a time, written from the definitions


def _ref_window(x, rate, zc, ssc, wamp, nfft, axis):
    n = len(x)
    out = {
        "RMS": np.sqrt(sum(v * v for v in x) / n),
        "MAV": sum(abs(v) for v in x) / n,
        "IAV": sum(abs(v) for v in x),
        "WL": sum(abs(x[i + 1] - x[i]) for i in range(n - 1)),
        "ZC": sum(1 for i in range(n - 1) if x[i] * x[i + 1] < 0 and abs(x[i] - x[i + 1]) >= zc),
        "SSC": sum(1 for i in range(1, n - 1) if (x[i] - x[i - 1]) * (x[i] - x[i + 1]) >= ssc),
        "WAMP": sum(1 for i in range(n - 1) if abs(x[i + 1] - x[i]) > wamp),
    }
    padded = np.zeros(nfft)
    padded[:n] = x
    spec = np.fft.fft(padded)[: nfft // 2]
    p = np.abs(spec) ** 2
    f = np.arange(nfft // 2) * rate / nfft if axis == "bins" else np.linspace(0, rate / 2, nfft // 2)
    if p.sum() == 0:
        out["MNF"] = out["MDF"] = np.nan
    else:
        out["MNF"] = float((p * f).sum() / p.sum())
        c = np.cumsum(p)
        out["MDF"] = float(f[np.nonzero(c > c[-1] / 2)[0][0]])
    return out


def _reference(x, window, step, rate=1000.0, zc=0.0, ssc=0.0, wamp=0.0, nfft=None, axis="bins"):
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    nfft = nfft or int(2 ** np.ceil(np.log2(window)))
    starts = range(0, x.shape[0] - window + 1, step)
    res = {f: np.full((len(starts), x.shape[1]), np.nan) for f in FEATURES}
    for j, s in enumerate(starts):
        for c in range(x.shape[1]):
            for k, v in _ref_window(list(x[s : s + window, c]), rate, zc, ssc, wamp, nfft, axis).items():
                res[k][j, c] = v
    return res


def _assert_same(a, b, rtol=1e-12):
    assert a.keys() == b.keys() or set(a) <= set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=1e-9, equal_nan=True, err_msg=k)


# ----------------------------------------------------------------------------
# hand-computed


def test_hand_computed_time_domain():
    x = np.array([0.0, 2.0, -1.0, 3.0, 3.0, -2.0])
    r = window_features(x, 6, 1)
    assert r["RMS"].shape == (1,)
    assert r["RMS"][0] == pytest.approx(np.sqrt(27 / 6))
    assert r["MAV"][0] == pytest.approx(11 / 6)
    assert r["IAV"][0] == 11
    assert r["WL"][0] == 14
    assert r["ZC"][0] == 3  # 2|-1, -1|3, 3|-2; 0|2 is not a crossing
    assert r["SSC"][0] == 4  # 12, 6, and two products equal to 0 (>= 0 counts)
    assert r["WAMP"][0] == 4  # |diff| = 2, 3, 4, 0, 5


def test_hand_computed_thresholds():
    x = np.array([0.0, 2.0, -1.0, 3.0, 3.0, -2.0])
    r = window_features(x, 6, 1, zc_threshold=4.5, ssc_threshold=1.0, wamp_threshold=3.0)
    assert r["ZC"][0] == 1  # only 3 -> -2 (step 5) passes
    assert r["SSC"][0] == 2
    assert r["WAMP"][0] == 2  # 4 and 5 are > 3, the 3 is not


def test_sine_on_a_bin_has_that_frequency():
    rate, nfft, k0 = 1000.0, 256, 40
    t = np.arange(nfft) / rate
    x = np.sin(2 * np.pi * k0 * rate / nfft * t)
    r = window_features(x, nfft, nfft, rate=rate, features=["MNF", "MDF"])
    assert r["MDF"][0] == pytest.approx(k0 * rate / nfft)
    assert r["MNF"][0] == pytest.approx(k0 * rate / nfft, rel=1e-9)


def test_two_tones_mnf_is_power_weighted():
    rate, nfft = 2000.0, 512
    t = np.arange(nfft) / rate
    f1, f2 = 10 * rate / nfft, 60 * rate / nfft
    x = 1.0 * np.sin(2 * np.pi * f1 * t) + 2.0 * np.sin(2 * np.pi * f2 * t)  # powers 1 : 4
    r = window_features(x, nfft, 1, rate=rate, features=["MNF", "MDF"])
    assert r["MNF"][0] == pytest.approx((1 * f1 + 4 * f2) / 5, rel=1e-9)
    assert r["MDF"][0] == pytest.approx(f2)  # 80 % of the power sits at f2


def test_zero_window_has_no_frequency():
    x = np.zeros((300, 2))
    x[200:, 1] = np.sin(np.arange(100))
    r = window_features(x, 100, 100)
    assert np.isnan(r["MNF"][:2]).all() and np.isnan(r["MDF"][:2, 0]).all()
    assert np.isfinite(r["MNF"][2, 1]) and r["RMS"][0, 0] == 0.0


def test_median_frequency_interpolation():
    freqs = np.array([0.0, 10.0, 20.0, 30.0])  # cells [-5, 5), [5, 15), [15, 25), [25, 35)
    power = np.array([0.0, 1.0, 1.0, 0.0])  # symmetric about 15 Hz
    assert median_frequency(power, freqs) == 20.0  # first bin with cum > half
    assert median_frequency(power, freqs, interpolate=True) == pytest.approx(15.0)
    power = np.array([1.0, 2.0, 3.0, 4.0])  # half = 5: 3 below bin 2, 2 of its 3 needed
    assert median_frequency(power, freqs, interpolate=True) == pytest.approx(15 + 2 / 3 * 10)
    power = np.array([[4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(median_frequency(power, freqs, interpolate=True), [0.0, np.nan])


def test_window_geometry():
    assert n_windows(500, 200, 25) == 13
    assert n_windows(199, 200, 25) == 0
    np.testing.assert_array_equal(window_starts(260, 100, 50), [0, 50, 100, 150])


# ----------------------------------------------------------------------------
# libemg's MATLAB reference values (tests/data/libemg/ATTRIBUTION.md)


@pytest.fixture(scope="module")
def myo(request):
    from pathlib import Path

    d = Path(__file__).parent / "data" / "libemg"
    data = np.loadtxt(d / "emg_data_myo.csv", delimiter=",")
    refs = {f: np.loadtxt(d / f"matlab_{f}.csv", delimiter=",") for f in FEATURES}
    return data, refs


def test_matches_libemg_matlab_values(myo):
    data, refs = myo
    assert data.shape == (500, 8)
    r = window_features(data, 200, 25, rate=1000, freq_axis="toolbox")
    for f in FEATURES:
        m = refs[f]
        assert r[f].shape == m.shape == (13, 8)
        # csvwrite keeps 5 significant digits: allow half a unit in the 5th digit, no more
        half_unit = 0.5 * 10.0 ** (np.floor(np.log10(np.abs(m))) - 4)
        assert (np.abs(r[f] - m) <= half_unit * 1.0001).all(), f
    for f in ("MAV", "IAV", "WL", "ZC", "SSC", "WAMP"):
        np.testing.assert_array_equal(r[f], refs[f])


def test_bin_axis_differs_from_toolbox_axis_by_its_stretch(myo):
    data, refs = myo
    r = window_features(data, 200, 25, features=["MNF", "MDF"])
    # toolbox axis puts bin k at k*500/127 Hz instead of k*500/128 Hz
    np.testing.assert_allclose(r["MNF"], refs["MNF"] * 127 / 128, rtol=1e-4)
    np.testing.assert_allclose(r["MDF"], refs["MDF"] * 127 / 128, rtol=1e-4)


# ----------------------------------------------------------------------------
# against the slow reference, streaming, batching


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(10, 120),
    ch=st.integers(1, 3),
    window=st.integers(2, 40),
    step=st.integers(1, 50),
    thr=st.floats(0.0, 1.5),
    seed=st.integers(0, 2**31),
)
def test_matches_slow_reference(n, ch, window, step, thr, seed):
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal((n, ch)), 1)  # rounding makes ties and zeros happen
    if n < window:
        with pytest.raises(SignalError):
            window_features(x, window, step)
        return
    nfft = int(2 ** np.ceil(np.log2(window))) * int(rng.integers(1, 3))
    axis = ["bins", "toolbox"][int(rng.integers(0, 2))]
    got = window_features(x, window, step, rate=500.0, zc_threshold=thr, ssc_threshold=thr,
                          wamp_threshold=thr, nfft=nfft, freq_axis=axis)
    ref = _reference(x, window, step, 500.0, thr, thr, thr, nfft, axis)
    _assert_same(got, ref, rtol=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    window=st.integers(2, 30),
    step=st.integers(1, 45),
    cuts=st.lists(st.integers(0, 200), max_size=12),
    seed=st.integers(0, 2**31),
)
def test_streaming_equals_one_pass(window, step, cuts, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, 2))
    whole = window_features(x, window, step, wamp_threshold=0.5)
    sw = SlidingWindowFeatures(2, window, step, wamp_threshold=0.5)
    edges = sorted(cuts + [0, 200, 0, 1])  # duplicates give 0-sample blocks, 0..1 a 1-sample one
    parts = [sw.process(x[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    assert sw.windows_emitted == whole["RMS"].shape[0]
    for f in FEATURES:
        np.testing.assert_allclose(np.concatenate([p[f] for p in parts]), whole[f], rtol=1e-12,
                                   equal_nan=True, err_msg=f)
    sw.reset()
    again = sw.process(x)
    _assert_same(again, whole)


def test_streaming_sample_by_sample_and_bounded_buffer():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 1))
    sw = SlidingWindowFeatures(1, 50, 20, features=["rms", "MDF"])
    assert sw.features == ("RMS", "MDF")
    got = [sw.process(x[i]) for i in range(400)]  # (1,) blocks are one sample of one channel
    whole = window_features(x, 50, 20, features=["RMS", "MDF"])
    np.testing.assert_allclose(np.concatenate([g["RMS"] for g in got]), whole["RMS"])
    assert sw._buf.shape[0] < 50  # only what the next window needs is kept


def test_batches_give_the_same_numbers(monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3000, 3))
    whole = window_features(x, 128, 16)
    monkeypatch.setattr(feat, "_BATCH_ELEMENTS", 1000)  # forces ~one window per batch
    _assert_same(window_features(x, 128, 16), whole)


def test_integer_input_and_feature_subset():
    x = np.arange(-50, 50, dtype=np.int16).reshape(50, 2)
    r = window_features(x, 10, 10, features=("iav", "zc"))
    assert set(r) == {"IAV", "ZC"} and r["IAV"].shape == (5, 2)
    assert r["IAV"][0, 0] == np.abs(x[:10, 0]).sum()


# ----------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(window=1), "window"),
        (dict(window=2.5), "window"),
        (dict(step=0), "step"),
        (dict(features=["RMS", "FOO"]), "unknown feature"),
        (dict(features=[]), "features is empty"),
        (dict(rate=0), "rate"),
        (dict(rate=float("nan")), "rate"),
        (dict(zc_threshold=-1), "zc_threshold"),
        (dict(wamp_threshold="x"), "wamp_threshold"),
        (dict(nfft=8), "nfft"),
        (dict(freq_axis="matlab"), "freq_axis"),
    ],
)
def test_bad_parameters(kwargs, msg):
    args = dict(window=16, step=4) | kwargs
    with pytest.raises(ConfigError, match=msg):
        window_features(np.zeros((64, 2)), **args)


def test_bad_signals():
    with pytest.raises(SignalError, match="fewer than one window"):
        window_features(np.zeros(10), 16, 1)
    x = np.zeros((64, 2))
    x[7, 1] = np.nan
    with pytest.raises(SignalError, match="sample 7"):
        window_features(x, 16, 1)
    with pytest.raises(ConfigError, match="shape"):
        window_features(np.zeros((4, 4, 4)), 2, 1)
    with pytest.raises(ConfigError, match="real numbers"):
        window_features(np.zeros(64, dtype=complex), 16, 1)
    sw = SlidingWindowFeatures(2, 16, 4)
    with pytest.raises(ConfigError, match="channels"):
        sw.process(np.zeros((5, 3)))
