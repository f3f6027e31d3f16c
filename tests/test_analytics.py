"""Analytics: hand-computed cases, properties, and slow references."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import butter, chirp, sosfiltfilt

from bridge.analytics import (
    ContractionLike,
    activation_ratio,
    cocontraction,
    cocontraction_index,
    compare_sides,
    count_reps,
    envelope_ratio,
    fatigue_trend,
    find_side_pairs,
    firing_order,
    hold_timing,
    limb_symmetry_index,
    linear_trend,
    segment_frequencies,
    summarize,
    sustained_above,
    symmetry_index,
    symmetry_ratio,
    within_hold_fatigue,
)
from bridge.errors import ConfigError, SignalError


@dataclass(frozen=True)
class C:
    """A contraction as the detector reports it (a stand-in built here, not bridge.emg)."""

    channel: int
    onset: float
    offset: float
    peak: float = 1.0
    mean: float = 0.5
    pct_mvc: float | None = None

    @property
    def duration(self) -> float:
        return self.offset - self.onset


def test_test_double_satisfies_protocol():
    assert isinstance(C(0, 0.0, 1.0), ContractionLike)


# ----------------------------------------------------------------------------
# reps and sets


def _workout(sets=3, reps=10, rep_s=2.0, rest_s=2.0, set_rest=90.0, channel=0):
    out, t = [], 5.0
    for _ in range(sets):
        for _ in range(reps):
            out.append(C(channel, t, t + rep_s, peak=2.0, mean=1.0, pct_mvc=40.0))
            t += rep_s + rest_s
        t += set_rest - rest_s
    return out


def test_reps_and_sets_by_construction():
    r = count_reps(_workout(), set_gap=20.0, name="glute_max_L")
    assert (r.n_reps, r.n_sets, r.reps_per_set) == (30, 3, (10, 10, 10))
    s1, s2 = r.sets[0], r.sets[1]
    assert s1.time_under_tension == pytest.approx(20.0)
    assert s1.mean_rest == pytest.approx(2.0)
    assert s1.rest_before is None and s2.rest_before == pytest.approx(90.0)
    assert s1.start == 5.0 and s1.end == pytest.approx(5.0 + 9 * 4 + 2)
    assert [x.index for x in r.reps] == list(range(1, 31))
    assert r.reps[10].set_index == 2 and r.reps[10].rest_before == pytest.approx(90.0)
    assert s1.mean_pct_mvc == 40.0 and r.name == "glute_max_L"


def test_set_gap_boundary_and_order_independence():
    cs = [C(0, 0, 1), C(0, 21, 22), C(0, 42.5, 43)]  # rests 20.0 and 20.5
    r = count_reps(list(reversed(cs)), set_gap=20.0)
    assert r.reps_per_set == (2, 1)  # a rest equal to the gap stays in the set


def test_reps_filters_and_channels():
    cs = [C(0, 0, 1), C(0, 3, 3.1), C(1, 0, 1), C(0, 5, 6, pct_mvc=30.0)]
    with pytest.raises(ConfigError, match="channels"):
        count_reps(cs)
    r = count_reps(cs, channel=0, min_duration=0.5)
    assert r.n_reps == 2
    assert r.sets[0].mean_pct_mvc == 30.0  # over the reps that have one
    assert count_reps([C(1, 0, 1)], channel=0).n_reps == 0
    empty = count_reps([])
    assert (empty.n_reps, empty.n_sets, empty.sets) == (0, 0, ())


@pytest.mark.parametrize(
    "bad, err, msg",
    [
        (C(0, 2.0, 1.0), SignalError, "before it starts"),
        (C(0, float("nan"), 1.0), SignalError, "onset"),
        (C(0, 0.0, 1.0, peak=float("inf")), SignalError, "peak"),
        (C(0, 0.0, 1.0, pct_mvc=float("nan")), SignalError, "pct_mvc"),
        (C(0.5, 0.0, 1.0), ConfigError, "channel"),  # type: ignore[arg-type]
        (object(), ConfigError, "lacks"),
    ],
)
def test_bad_contractions(bad, err, msg):
    with pytest.raises(err, match=msg):
        count_reps([C(0, 0, 1), bad])


def test_bad_rep_parameters():
    with pytest.raises(ConfigError, match="set_gap"):
        count_reps([], set_gap=0)
    with pytest.raises(ConfigError, match="contractions is None"):
        count_reps(None)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------
# holds


def test_hold_timing_by_construction():
    cs = [C(0, 0.1, 6.1), C(0, 20.1, 30.1), C(0, 40.0, 49.95), C(0, 50, 50.2), C(1, 0, 10)]
    h = hold_timing(cs, 10.0, channel=0, min_duration=1.0, name="glute_L")
    assert h.n_holds == 3 and h.n_met == 1
    first = h.holds[0]
    assert first.describe() == "glute_L holds 6.0 s of 10 s"
    assert first.held_fraction == pytest.approx(0.6) and not first.met
    assert first.shortfall == pytest.approx(4.0)
    assert h.holds[1].met and h.holds[1].shortfall == 0.0  # 30.1 - 20.1 is not exactly 10
    assert h.best_sustained == pytest.approx(10.0)
    assert h.mean_held_fraction == pytest.approx((0.6 + 1.0 + 0.995) / 3)
    tol = hold_timing(cs, 10.0, channel=0, min_duration=1.0, tolerance=0.1)
    assert tol.n_met == 2
    assert "1 of 3 holds reached 10 s" in h.describe()
    with pytest.raises(ConfigError, match="tolerance"):
        hold_timing(cs, 10.0, channel=0, tolerance=10.0)
    with pytest.raises(ConfigError, match="target"):
        hold_timing(cs, 0.0, channel=0)


def test_sustained_above_hand_case():
    rate = 100.0
    env = np.zeros(1000)
    env[100:300] = 1.0  # 2 s
    env[310:610] = 1.0  # 0.1 s dip, then 3 s
    env[640:700] = 1.0  # 0.3 s dip, then 0.6 s
    r = sustained_above(env, rate, 0.5)
    assert (r.onset, r.offset, r.duration) == (3.1, 6.1, 3.0)
    assert r.time_above == pytest.approx(5.6)
    r = sustained_above(env, rate, 0.5, max_dip=0.2)
    assert (r.onset, r.duration) == (1.0, pytest.approx(5.1))
    r = sustained_above(env, rate, 0.5, max_dip=0.5)
    assert r.duration == pytest.approx(6.0)  # the trailing zeros are not a dip: no bridging
    r = sustained_above(env, rate, 0.5, start=2.0, end=5.0)
    assert (r.onset, r.offset) == (3.1, 5.0)
    none = sustained_above(env, rate, 2.0)
    assert none.duration == 0.0 and none.onset is None


def _longest_bridged(mask, max_gap):
    """Slow reference: fill interior False runs shorter than max_gap, then longest True run."""
    m = list(mask)
    i = 0
    while i < len(m):
        if not m[i]:
            j = i
            while j < len(m) and not m[j]:
                j += 1
            if i > 0 and j < len(m) and j - i < max_gap:
                m[i:j] = [True] * (j - i)
            i = j
        else:
            i += 1
    best = cur = 0
    for v in m:
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=60), st.integers(0, 6))
def test_sustained_above_matches_slow_reference(mask, max_gap):
    env = np.asarray(mask, dtype=float)
    r = sustained_above(env, 1.0, 0.5, max_dip=float(max_gap))
    assert r.duration == _longest_bridged(mask, max_gap)


def test_sustained_above_validation():
    with pytest.raises(SignalError, match="negative"):
        sustained_above(np.array([-1.0, 1.0]), 10, 0.5)
    with pytest.raises(ConfigError, match="span"):
        sustained_above(np.ones(10), 10, 0.5, start=0.5, end=0.5)
    with pytest.raises(ConfigError, match="rate"):
        sustained_above(np.ones(10), 0, 0.5)


# ----------------------------------------------------------------------------
# symmetry


def test_symmetry_formulas_by_hand():
    assert symmetry_index(60, 40) == pytest.approx(40.0)
    assert symmetry_index(40, 60) == pytest.approx(-40.0)
    assert symmetry_ratio(60, 40) == pytest.approx(1.5)
    assert limb_symmetry_index(60, 40) == pytest.approx(200 / 3)
    assert math.isnan(symmetry_index(0, 0)) and math.isnan(symmetry_ratio(1, 0))
    assert symmetry_index(1, 0) == 200.0
    assert symmetry_index(5e-324, 0.0) == 200.0  # subnormal sum: no division by an underflowed 0
    np.testing.assert_allclose(symmetry_index([3, 1], [1, 3]), [100.0, -100.0])
    with pytest.raises(SignalError):
        symmetry_index(float("nan"), 1)


@given(st.floats(0, 1e6), st.floats(0, 1e6))
def test_symmetry_properties(a, b):
    assert symmetry_index(a, a) == 0 or a == 0
    if a + b > 0:
        assert symmetry_index(a, b) == pytest.approx(-symmetry_index(b, a))
        assert -200 <= symmetry_index(a, b) <= 200
    if a > 0:
        assert symmetry_ratio(a, a) == 1.0 and limb_symmetry_index(a, a) == 100.0


def test_compare_sides_by_construction():
    cs = [C(0, 0, 1, peak=1), C(0, 5, 7, peak=2), C(0, 10, 13, peak=3),
          C(1, 0, 1, peak=1), C(1, 5, 6, peak=1), C(2, 0, 9)]
    names = {0: "glute_max_L", 1: "glute_max_R", 2: "lumbar"}
    s = compare_sides(cs, "glute_max_L", "glute_max_R", channel_names=names)
    assert s.muscle == "glute_max"
    assert s.metrics["peak"].si == pytest.approx((2 - 1) / 1.5 * 100)
    assert s.metrics["count"].si == pytest.approx((3 - 2) / 2.5 * 100)
    assert s.metrics["duration"].left == pytest.approx(2.0)
    assert s.metrics["time_under_tension"].right == pytest.approx(2.0)
    assert s.metrics["pct_mvc"].si is None  # no MVC calibration
    assert s.describe() == "glute_max peak: SI +67 % (left larger)"
    same = compare_sides([C(0, 0, 1), C(1, 0, 1)], 0, 1)
    assert all(m.si == 0 for m in same.metrics.values() if m.si is not None)
    one_sided = compare_sides([C(0, 0, 1)], 0, 1)
    assert one_sided.metrics["count"].si == 200.0 and one_sided.metrics["peak"].right is None
    with pytest.raises(ConfigError, match="same channel"):
        compare_sides(cs, 0, 0)
    with pytest.raises(ConfigError, match="not in channel_names"):
        compare_sides(cs, "glute_L", 1, channel_names=names)


def test_find_side_pairs():
    names = {0: "glute_max_L", 1: "glute_max_R", 2: "Left hamstring", 3: "right hamstring",
             4: "lumbar erectors", 5: "glute_med_l", 6: "Rectus femoris (R)"}
    assert find_side_pairs(names) == [("glute_max", 0, 1), ("hamstring", 2, 3)]


# ----------------------------------------------------------------------------
# firing order and latency


NAMES = {0: "glute_max", 1: "hamstrings", 2: "lumbar_erectors"}


def _reps_with_order(n=5):
    cs = []
    for k in range(n):
        t = 10.0 * k
        cs += [C(2, t, t + 3), C(1, t + 0.05, t + 3), C(0, t + 0.12, t + 3)]
    return cs


def test_firing_order_by_construction():
    cs = _reps_with_order(5)
    cs[-3:] = [C(0, 40.0, 43.0), C(2, 40.1, 43.0), C(1, 40.3, 43.0)]  # rep 5: glute first
    cs += [C(2, 50.0, 52.0), C(1, 50.02, 52.0)]  # rep 6: glute silent
    cs += [C(7, 0.0, 99.0)]  # channel without a name: ignored, must not chain reps
    f = firing_order(cs, NAMES)
    assert f.reference == "glute_max" and f.n_reps == 6
    assert f.dominant_order == ("lumbar_erectors", "hamstrings", "glute_max")
    assert f.dominant_count == 4
    assert f.order_counts["glute_max > lumbar_erectors > hamstrings"] == 1
    assert f.missing == {"glute_max": 1, "hamstrings": 0, "lumbar_erectors": 0}
    assert f.first_counts == {"glute_max": 1, "hamstrings": 0, "lumbar_erectors": 5}
    lat = f.latency["lumbar_erectors"]
    assert lat.n == 5 and lat.n_before == 4
    assert lat.median == pytest.approx(-0.12)
    assert f.latency["hamstrings"].median == pytest.approx(-0.07)
    assert f.reps[5].latencies == {}  # no reference in that rep
    assert f.pairwise_median["lumbar_erectors"]["hamstrings"] == pytest.approx(0.05)
    assert f.describe() == "usual order lumbar_erectors > hamstrings > glute_max (4 of 6 reps)"


def test_firing_order_skips_onsets_from_before_the_recording():
    from bridge.emg import Contraction

    # rep 1 was under way at the first sample on the glute: its onset 0 is not a measured onset
    cs = [Contraction(0, 0.0, 2.0, 1.0, 0.5, censored_onset=True), C(2, 0.1, 2.0), C(1, 0.2, 2.0)]
    cs += _reps_with_order(3)[3:]
    f = firing_order(cs, NAMES)
    assert f.reps[0].order == ("lumbar_erectors", "hamstrings")
    assert f.latency["lumbar_erectors"].n == 2  # only the reps with a measured glute onset
    assert f.missing["glute_max"] == 1


def test_firing_order_reference_and_join_gap():
    cs = [C(0, 0.0, 1.0), C(1, 1.05, 2.0), C(0, 5.0, 6.0), C(1, 6.05, 7.0)]
    apart = firing_order(cs, NAMES, reference="hamstrings")
    assert apart.n_reps == 4 and apart.reference == "hamstrings"
    joined = firing_order(cs, NAMES, reference=1, join_gap=0.1)
    assert joined.n_reps == 2
    assert joined.latency["glute_max"].median == pytest.approx(-1.05)
    assert firing_order([], NAMES).dominant_order == ()


@settings(max_examples=25, deadline=None)
@given(st.floats(-100, 100), st.randoms(use_true_random=False))
def test_firing_order_invariant_to_shift_and_input_order(shift, rnd):
    cs = _reps_with_order(4)
    base = firing_order(cs, NAMES)
    moved = [replace(c, onset=c.onset + shift + 200, offset=c.offset + shift + 200) for c in cs]
    rnd.shuffle(moved)
    f = firing_order(moved, NAMES)
    assert f.dominant_order == base.dominant_order and f.order_counts == base.order_counts
    assert f.latency["hamstrings"].median == pytest.approx(base.latency["hamstrings"].median)


def test_firing_order_validation():
    with pytest.raises(ConfigError, match="channel_names"):
        firing_order([], {})
    with pytest.raises(ConfigError, match="repeats"):
        firing_order([], {0: "a", 1: "a"})
    with pytest.raises(ConfigError, match="reference"):
        firing_order([], NAMES, reference="psoas")


# ----------------------------------------------------------------------------
# co-contraction


def test_cocontraction_by_hand():
    a = np.array([1.0, 1.0, 1.0, 1.0])
    b = np.array([1.0, 1.0, 0.0, 0.0])
    assert cocontraction_index(a, b) == pytest.approx(2 * 2 / 6 * 100)
    assert cocontraction_index(a, 2 * a) == pytest.approx(2 * 4 / 12 * 100)
    np.testing.assert_allclose(
        cocontraction_index(a, b, 10.0, windows=[(0.0, 0.2), (0.2, 0.4)]), [100.0, 0.0]
    )
    per = cocontraction_index(a, b, 10.0, windows=[C(0, 0.1, 0.3)])
    assert per[0] == pytest.approx(2 * 1 / 3 * 100)
    assert math.isnan(cocontraction_index(np.zeros(5), np.zeros(5)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1e3), min_size=1, max_size=50), st.integers(0, 2**31))
def test_cocontraction_properties(values, seed):
    a = np.asarray(values)
    if a.sum() > 0:
        assert cocontraction_index(a, a) == pytest.approx(100.0)
    b = np.random.default_rng(seed).random(a.size)
    if a.sum() + b.sum() > 0:
        ab, ba = cocontraction_index(a, b), cocontraction_index(b, a)
        assert ab == pytest.approx(ba) and 0 <= ab <= 100 + 1e-9
        slow = 2 * sum(min(x, y) for x, y in zip(a, b, strict=True)) / (a.sum() + b.sum()) * 100
        assert ab == pytest.approx(slow)
    disjoint_a = np.r_[a, np.zeros(a.size)]
    disjoint_b = np.r_[np.zeros(a.size), a]
    if a.sum() > 0:
        assert cocontraction_index(disjoint_a, disjoint_b) == 0.0


def test_cocontraction_result_and_validation():
    a, b = np.ones(100), np.r_[np.ones(50), np.zeros(50)]
    r = cocontraction(a, b, 100.0, [(0, 0.5), (0.5, 1.0)], muscle_a="glute", muscle_b="psoas")
    assert r.per_window == (100.0, 0.0) and r.median_per_window == 50.0
    assert r.overall == pytest.approx(2 * 50 / 150 * 100)
    with pytest.raises(SignalError, match="rectified"):
        cocontraction_index(-a, b)
    with pytest.raises(ConfigError, match="same recording"):
        cocontraction_index(a, b[:10])
    with pytest.raises(ConfigError, match="rate"):
        cocontraction_index(a, b, windows=[(0, 0.5)])
    with pytest.raises(ConfigError, match="outside the signal"):
        cocontraction_index(a, b, 100.0, windows=[(0.5, 1.5)])
    with pytest.raises(ConfigError, match="after start"):
        cocontraction_index(a, b, 100.0, windows=[(0.5, 0.5)])
    with pytest.raises(SignalError, match="NaN"):
        cocontraction_index(np.r_[a[:-1], np.nan], b)


# ----------------------------------------------------------------------------
# activation ratios


def test_activation_ratio_by_hand():
    cs = [C(0, 0, 2, mean=0.3, peak=1.0, pct_mvc=20), C(1, 0.1, 2, mean=0.6, peak=1.5, pct_mvc=30),
          C(0, 5, 7, mean=0.2, peak=1.0, pct_mvc=20), C(1, 5.1, 7, mean=0.6, peak=3.0, pct_mvc=60),
          C(1, 9, 10, mean=0.6, peak=1.5, pct_mvc=30)]  # rep without glute
    names = {0: "glute_max", 1: "hamstrings"}
    r = activation_ratio(cs, "hamstrings", "glute_max", channel_names=names)
    assert r.ratio == pytest.approx(0.6 / 0.25)
    assert r.per_rep == pytest.approx((2.0, 3.0)) and r.median_per_rep == pytest.approx(2.5)
    assert (r.n_numerator, r.n_denominator) == (3, 2)
    assert r.describe() == "hamstrings/glute_max (mean) = 2.40"
    p = activation_ratio(cs, 1, 0, metric="pct_mvc")
    assert p.ratio == pytest.approx(40 / 20) and p.per_rep == pytest.approx((1.5, 3.0))
    assert activation_ratio(cs, 1, 0, metric="peak").ratio == pytest.approx(2.0)
    assert activation_ratio([C(1, 0, 1)], 1, 0).ratio is None
    with pytest.raises(ConfigError, match="pct_mvc"):
        activation_ratio([C(0, 0, 1), C(1, 0, 1)], 1, 0, metric="pct_mvc")
    with pytest.raises(ConfigError, match="metric"):
        activation_ratio(cs, 1, 0, metric="rms")


def test_envelope_ratio_by_hand():
    rate = 10.0
    num = np.r_[np.full(10, 2.0), np.full(10, 1.0)]
    den = np.r_[np.full(10, 1.0), np.r_[np.full(5, 1.0), np.full(5, 3.0)]]
    r = envelope_ratio(num, den, rate, [(0, 1), (1, 2)])
    assert r.per_rep == pytest.approx((2.0, 0.5)) and r.ratio == pytest.approx(1.5 / 1.5)
    pk = envelope_ratio(num, den, rate, [(0, 1), (1, 2)], stat="peak")
    assert pk.per_rep == pytest.approx((2.0, 1 / 3))
    m = envelope_ratio(num, den, rate, [(0, 1)], mvc=(4.0, 1.0))
    assert m.metric == "pct_mvc_mean" and m.ratio == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="mvc"):
        envelope_ratio(num, den, rate, [(0, 1)], mvc=(1.0,))
    with pytest.raises(ConfigError, match="windows is empty"):
        envelope_ratio(num, den, rate, [])


# ----------------------------------------------------------------------------
# fatigue


def test_linear_trend_against_polyfit():
    t = linear_trend([1, 2, 3], [2, 4, 6])
    assert (t.slope, t.intercept, t.r2, t.n) == (pytest.approx(2), pytest.approx(0), pytest.approx(1), 3)
    rng = np.random.default_rng(3)
    x, y = np.arange(20.0), rng.standard_normal(20) + 0.3 * np.arange(20)
    t = linear_trend(x, y)
    slope, icpt = np.polyfit(x, y, 1)
    assert t.slope == pytest.approx(slope) and t.intercept == pytest.approx(icpt)
    assert t.r2 == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2)
    assert linear_trend([1, 2, 3], [1, np.nan, 3]).n == 2
    assert linear_trend([1], [1]).slope is None and linear_trend([1, 1], [1, 2]).slope is None
    assert linear_trend([1, 2], [5, 5]).r2 is None


def test_fatigue_slope_from_tones_of_known_frequency():
    rate = 1000.0
    rep_f = [121.3 - 2.0 * k for k in range(10)]  # 2 Hz per rep down
    segs, x = [], []
    for k, f in enumerate(rep_f):
        t = np.arange(int(2 * rate)) / rate
        x.append(np.sin(2 * np.pi * f * t))
        x.append(np.zeros(int(rate)))
        segs.append((3.0 * k, 3.0 * k + 2.0))
    raw = np.concatenate(x)
    tr = fatigue_trend(raw, rate, segs)
    mdf = [s.mdf for s in tr.segments]
    np.testing.assert_allclose(mdf, rep_f, atol=0.5)  # interpolated MDF of a pure tone
    np.testing.assert_allclose([s.mnf for s in tr.segments], rep_f, atol=1.0)
    assert tr.mdf_per_index.slope == pytest.approx(-2.0, abs=0.05) and tr.mdf_per_index.r2 > 0.999
    assert tr.mdf_per_second.slope == pytest.approx(-2.0 / 3.0, abs=0.02)
    assert tr.mdf_change_pct == pytest.approx(-18 / 121.3 * 100, abs=1.0)
    assert "Hz/rep" in tr.describe()


def test_white_noise_mdf_is_band_centre():
    # band 20-450 Hz in 4 Hz bins: cells span 18-450 Hz, centre 234 Hz.  Over 20 seeds
    # at 20 s the MDF scatter was 2.7 Hz SD; 60 s gives ~1.6 Hz, so 5 Hz is ~3 SD.
    rng = np.random.default_rng(4)
    raw = rng.standard_normal(60000)
    s = segment_frequencies(raw, 1000.0, [(0, 60)])[0]
    assert s.mdf == pytest.approx(234.0, abs=5) and s.mnf == pytest.approx(234.0, abs=5)


def test_fatigue_falls_as_spectrum_compresses():
    """Band-limited noise whose upper edge drops rep by rep: MDF must fall."""
    rng = np.random.default_rng(5)
    rate, chunks, segs = 1000.0, [], []
    for k in range(8):
        sos = butter(4, [20, 300 - 20 * k], btype="band", fs=rate, output="sos")
        chunks.append(sosfiltfilt(sos, rng.standard_normal(1500)))
        segs.append(C(0, 1.5 * k, 1.5 * k + 1.5))
    tr = fatigue_trend(np.concatenate(chunks)[:, None], rate, segs, channel=0)
    assert tr.mdf_per_index.slope < -5 and tr.mdf_per_index.r2 > 0.8
    assert tr.mnf_per_index.slope < -5


def test_within_hold_chirp():
    rate = 1000.0
    t = np.arange(int(10 * rate)) / rate
    raw = chirp(t, f0=150, t1=10, f1=100)  # 5 Hz/s down
    tr = within_hold_fatigue(raw, rate, 0.0, 10.0, window=1.0, step=0.5)
    assert len(tr.segments) == 19
    assert tr.mdf_per_second.slope == pytest.approx(-5.0, abs=0.2)


def test_fatigue_validation():
    raw = np.zeros((1000, 2))
    with pytest.raises(ConfigError, match="channel="):
        fatigue_trend(raw, 1000.0, [(0, 0.5)])
    with pytest.raises(SignalError, match="at least"):
        fatigue_trend(raw, 1000.0, [(0, 0.01)], channel=0)
    with pytest.raises(ConfigError, match="Nyquist"):
        fatigue_trend(raw[:, 0], 100.0, [(0, 5)], band=(60, 80))
    with pytest.raises(ConfigError, match="shorter than one window"):
        within_hold_fatigue(raw[:, 0], 1000.0, 0.0, 0.5)
    assert fatigue_trend(raw[:, 0], 1000.0, [(0, 0.5)]).segments[0].mdf is None  # no power


# ----------------------------------------------------------------------------
# summary


def _session():
    """Two sets of 3 reps; erector fires first, then glute L, then glute R; hams late."""
    names = {0: "glute_max_L", 1: "glute_max_R", 2: "lumbar_erectors", 3: "hamstrings"}
    cs = []
    for s in range(2):
        for r in range(3):
            t = 1.0 + s * 40 + r * 5
            cs += [C(2, t, t + 3, peak=1.0, mean=0.5, pct_mvc=30.0),
                   C(0, t + 0.1, t + 3.1, peak=2.0, mean=1.0, pct_mvc=50.0),
                   C(1, t + 0.2, t + 3.0, peak=1.0, mean=0.5, pct_mvc=25.0),
                   C(3, t + 0.3, t + 2.8, peak=1.5, mean=0.6, pct_mvc=20.0)]
    return names, cs


def test_summarize_session():
    names, cs = _session()
    rate = 200.0
    n = int(60 * rate)
    rng = np.random.default_rng(6)
    raw = rng.standard_normal((n, 4))
    env = np.abs(raw)
    s = summarize(cs, names, rate, raw=raw, envelopes=env, antagonists=[("glute_max_L", "lumbar_erectors")],
                  ratios=[("hamstrings", "glute_max_L"), ("lumbar_erectors", "glute_max_L")],
                  hold_target=3.0, firing_muscles=["glute_max_L", "lumbar_erectors", "hamstrings"])
    assert s.n_contractions == 24 and s.start == 1.0
    m = s.muscle("glute_max_L")
    assert (m.reps.n_reps, m.reps.reps_per_set) == (6, (3, 3))
    assert m.holds.n_met == 6 and s.muscle("glute_max_R").holds.n_met == 0
    assert m.fatigue is not None and len(m.fatigue.segments) == 6
    assert [p.muscle for p in s.symmetry] == ["glute_max"]
    assert s.symmetry[0].metrics["pct_mvc"].si == pytest.approx((50 - 25) / 37.5 * 100)
    assert s.firing.dominant_order == ("lumbar_erectors", "glute_max_L", "hamstrings")
    assert s.firing.latency["lumbar_erectors"].median == pytest.approx(-0.1)
    assert s.ratios[0].metric == "pct_mvc" and s.ratios[0].ratio == pytest.approx(20 / 50)
    assert len(s.cocontraction) == 1 and len(s.cocontraction[0].per_window) == 6
    assert s.notes == ()
    d = json.loads(s.to_json())
    assert d["muscles"][0]["reps"]["sets"][1]["reps"][0]["index"] == 4
    assert d["channel_names"] == {"0": "glute_max_L", "1": "glute_max_R",
                                  "2": "lumbar_erectors", "3": "hamstrings"}
    assert d["firing"]["order_counts"] == {"lumbar_erectors > glute_max_L > hamstrings": 6}


def test_summarize_minimal_inputs_leave_notes():
    names, cs = _session()
    s = summarize(cs, names)
    assert s.cocontraction == () and all(m.fatigue is None and m.holds is None for m in s.muscles)
    assert any("fatigue" in n for n in s.notes) and any("hold" in n for n in s.notes)
    json.loads(s.to_json())
    empty = summarize([], {0: "glute"})
    assert empty.start is None and empty.firing is None
    assert json.loads(empty.to_json())["muscles"][0]["reps"]["n_reps"] == 0


def test_summarize_validation():
    names, cs = _session()
    with pytest.raises(ConfigError, match="rate"):
        summarize(cs, names, raw=np.zeros((100, 4)))
    with pytest.raises(ConfigError, match="columns"):
        summarize(cs, names, 100.0, raw=np.zeros((100, 2)))
    with pytest.raises(ConfigError, match="pair"):
        summarize(cs, names, ratios=["hamstrings"])
    with pytest.raises(ConfigError, match="firing_muscles"):
        summarize(cs, names, reference="glute_max_R", firing_muscles=["glute_max_L", "hamstrings"])
