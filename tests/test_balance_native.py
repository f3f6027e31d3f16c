"""Native balance core: chunk invariance, orientation on known rotations, filters and
the sliding window against slow numpy/scipy references."""
import numpy as np
import pytest
from scipy import signal as sig
from scipy import stats

from bridge.balance import ImuSway, Mounting, SingleLegStanceTest, SwayWindow
from bridge.errors import ConfigError, SignalError
from bridge.simulator.sway_model import body_to_sensor_matrix, simulate_stance

G = 9.80665


def random_splits(n, rng):
    """Cut points with 0- and 1-sample blocks mixed in."""
    cuts = [0]
    while cuts[-1] < n:
        r = rng.random()
        step = 0 if r < 0.1 else 1 if r < 0.4 else int(rng.integers(2, 50))
        cuts.append(min(n, cuts[-1] + step))
    return cuts


def run_split(fn, x, rng):
    cuts = random_splits(len(x), rng)
    return [fn(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


def rot(roll, pitch, yaw):
    """Body->world R = Rz(yaw) Ry(pitch) Rx(roll), radians."""
    cr, sr, cp, sp, cy, sy = (np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch),
                              np.cos(yaw), np.sin(yaw))
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def static_imu(n, r_body, a_world_g=(0.0, 0.0, 0.0), s_mat=np.eye(3)):
    spec = r_body.T @ (np.array([0, 0, 1.0]) + np.asarray(a_world_g))
    acc = s_mat @ spec
    return np.tile(np.r_[acc, 0.0, 0.0, 0.0], (n, 1))


# ---------------------------------------------------------------- orientation
@pytest.mark.parametrize("pitch, roll", [(10.0, 0.0), (0.0, -7.0), (-15.0, 12.0), (25.0, 5.0)])
@pytest.mark.parametrize("axes", [("+x", "+y", "+z"), ("-z", "-x", "+y"), ("+y", "-x", "+z")])
def test_static_tilt_is_recovered_for_any_mounting(pitch, roll, axes):
    s_mat = body_to_sensor_matrix(axes)
    imu = static_imu(400, rot(np.radians(-roll), np.radians(pitch), 0.7), s_mat=s_mat)
    m = Mounting(*axes)
    out = ImuSway(200.0, mounting=m).process(imu)
    # forward lean = pitch; left lean = -roll -> tilt_ml_deg = asin(sin(left) cos(pitch))
    exp_ml = np.degrees(np.arcsin(np.sin(np.radians(roll)) * np.cos(np.radians(pitch))))
    assert out[-1, 3] == pytest.approx(pitch, abs=1e-6)
    assert out[-1, 4] == pytest.approx(exp_ml, abs=1e-6)
    assert np.abs(out[:, :3]).max() < 1e-9  # no linear acceleration


def test_gyro_rotation_is_tracked():
    # roll the body to the left at 20 deg/s for 0.5 s; the accelerometer agrees
    rate, w = 400.0, 20.0
    n = 400
    t = np.arange(n) / rate
    lean = np.where(t < 0.25, 0.0, np.minimum((t - 0.25) * w, 10.0))
    gyro = np.where((t >= 0.25) & (lean < 10.0), -w, 0.0)  # roll rate = -d(left lean)/dt
    imu = np.zeros((n, 6))
    for i, a in enumerate(np.radians(lean)):
        imu[i, :3] = rot(-a, 0.0, 0.0).T @ [0, 0, 1.0]
    imu[:, 3] = gyro
    out = ImuSway(rate, tilt_tau_s=1000.0).process(imu)  # effectively gyro-only after start-up
    assert np.max(np.abs(out[:, 4] - lean)) < 0.15


def test_heading_frame_projection_removes_gravity_and_ignores_yaw():
    r_body = rot(np.radians(4.0), np.radians(8.0), np.radians(60.0))
    heading = np.array([np.cos(np.radians(60.0)), np.sin(np.radians(60.0)), 0.0])
    left = np.array([-heading[1], heading[0], 0.0])
    quiet = static_imu(400, r_body)
    push = static_imu(100, r_body, a_world_g=0.05 * heading - 0.02 * left)
    s = ImuSway(200.0, lowpass_hz=40.0, tilt_tau_s=1000.0)
    s.process(quiet)
    out = s.process(push)
    assert out[-1, 0] == pytest.approx(0.05 * G, rel=0.02)
    assert out[-1, 1] == pytest.approx(-0.02 * G, rel=0.05)


def test_mounting_validation():
    with pytest.raises(ConfigError, match="twice"):
        Mounting("+x", "+x", "+z").matrix()
    with pytest.raises(ConfigError, match="mirror"):
        Mounting("+x", "-y", "+z").matrix()
    with pytest.raises(ConfigError, match="one of"):
        Mounting("x", "+y", "+z").matrix()


# ---------------------------------------------------------------- chunking
@pytest.fixture(scope="module")
def trial():
    imu, truth = simulate_stance(200.0, 24.0, "right", touchdowns=[12.0], seed=11, quantize=True)
    return imu, truth


def test_imu_sway_chunk_invariant(trial):
    imu, _ = trial
    whole = ImuSway(200.0).process(imu)
    for seed in range(3):
        s = ImuSway(200.0)
        parts = run_split(s.process, imu, np.random.default_rng(seed))
        assert np.array_equal(np.concatenate(parts), whole)
    s = ImuSway(200.0)
    ones = np.concatenate([s.process(imu[i:i + 1]) for i in range(600)])
    assert np.array_equal(ones, whole[:600])


def test_stance_test_chunk_invariant(trial):
    imu, _ = trial
    whole = SingleLegStanceTest(200.0, 20.0, "right")
    ev_whole = whole.process(imu)
    assert ev_whole  # something happened
    for seed in range(3):
        t = SingleLegStanceTest(200.0, 20.0, "right")
        evs = sum(run_split(t.process, imu, np.random.default_rng(seed)), [])
        assert evs == ev_whole
        assert t.result == whole.result
    t = SingleLegStanceTest(200.0, 20.0, "right")
    evs = []
    for i in range(imu.shape[0]):
        evs += t.process(imu[i:i + 1])
    assert evs == ev_whole


def test_sway_window_chunk_invariant():
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(size=(3000, 2)), axis=0) * 0.01
    whole = SwayWindow(100.0, 1.0).process(x[:, 0], x[:, 1])
    w = SwayWindow(100.0, 1.0)
    parts = run_split(lambda b: w.process(b[:, 0], b[:, 1]), x, rng)
    assert np.array_equal(np.concatenate(parts), whole, equal_nan=True)


# ---------------------------------------------------------------- references
def test_lowpass_matches_scipy_sosfilt():
    from bridge import _sway
    from bridge.balance.stream import design_lowpass
    rng = np.random.default_rng(2)
    rate = 200.0
    x = np.ascontiguousarray(rng.normal(size=(2000, 2)) + [3.0, -1.0])
    sos, zi = design_lowpass(rate, 3.5)
    f = _sway.SosFilter2(sos.tolist(), zi.tolist())
    out = np.empty_like(x)
    f.process(x, out)
    for ch in range(2):
        ref, _ = sig.sosfilt(sos, x[:, ch], zi=sig.sosfilt_zi(sos) * x[0, ch])
        np.testing.assert_allclose(out[:, ch], ref, rtol=1e-12, atol=1e-12)
    f.reset()
    again = np.empty_like(x)
    f.process(x, again)
    assert np.array_equal(again, out)


def _window_reference(x, w, rate, i):
    seg = x[max(0, i - w + 1):i + 1]
    n = len(seg)
    d = seg - seg.mean(axis=0)
    inc = np.diff(seg, axis=0)
    path = np.hypot(inc[:, 0], inc[:, 1]).sum()
    jerk = 0.5 * ((inc * rate) ** 2).sum() / rate
    k = stats.f.ppf(0.95, 2, n - 2) * 2 * (n - 1) * (n + 1) / (n * (n - 2))
    area = np.pi * np.sqrt(np.linalg.det(np.cov(seg.T))) * k
    return [np.sqrt((d[:, 0] ** 2).mean()), np.sqrt((d[:, 1] ** 2).mean()), path * rate / n,
            area, jerk / (n / rate)]


def test_sway_window_matches_numpy_reference():
    rng = np.random.default_rng(9)
    rate = 50.0
    x = np.cumsum(rng.normal(size=(500, 2)), axis=0) * 0.1 + 3.0
    win = SwayWindow(rate, 1.0)
    out = win.process(x[:, 0], x[:, 1])
    for i in (2, 10, 49, 50, 51, 99, 100, 101, 333, 499):
        ref = _window_reference(x, 50, rate, i)
        np.testing.assert_allclose(out[i, [0, 1, 2, 4]], np.array(ref)[[0, 1, 2, 4]], rtol=1e-8)
        # the covariance determinant of a few nearly collinear points cancels badly
        np.testing.assert_allclose(out[i, 3], ref[3], rtol=1e-8 if i >= 10 else 1e-4)
    assert np.isnan(out[:2]).all()


def test_whole_trial_mode_matches_sway_metrics():
    from bridge.balance import sway_metrics
    rng = np.random.default_rng(4)
    rate = 100.0
    x = np.cumsum(rng.normal(size=(3000, 2)), axis=0) * 0.01 + [20.0, -5.0]
    cum = SwayWindow(rate, None)
    out = np.concatenate(run_split(lambda b: cum.process(b[:, 0], b[:, 1]), x, rng))
    for i in (40, 999, 2999):
        m = sway_metrics(x[:i + 1, 0], x[:i + 1, 1], rate, signal="acceleration")
        np.testing.assert_allclose(
            out[i], [m.rms_ap, m.rms_ml, m.mean_velocity, m.ellipse_area_95, m.jerk_per_s],
            rtol=1e-7)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("block, exc, match", [
    (np.zeros((10, 5)), ConfigError, r"\(n, 6\)"),
    (np.zeros(6), ConfigError, r"\(n, 6\)"),
    (np.array([[0, 0, 1, 0, 0, np.nan]]), SignalError, "NaN"),
    (np.array([[0, 0, 1, 0, 0, np.inf]]), SignalError, "NaN"),
    (np.array([["a"] * 6]), ConfigError, "real numbers"),
])
def test_bad_blocks(block, exc, match):
    with pytest.raises(exc, match=match):
        ImuSway(100.0).process(block)
    with pytest.raises(exc, match=match):
        SingleLegStanceTest(100.0).process(block)


def test_nine_column_blocks_ignore_the_magnetometer(trial):
    imu, _ = trial
    mag = np.hstack([imu, np.full((imu.shape[0], 3), 40.0)])
    assert np.array_equal(ImuSway(200.0).process(mag), ImuSway(200.0).process(imu))


@pytest.mark.parametrize("kw, match", [
    (dict(rate=0), "rate"), (dict(rate=-5), "rate"), (dict(rate=float("nan")), "rate"),
    (dict(rate=10), "20-5000"), (dict(rate=100, lowpass_hz=60), "cutoff"),
    (dict(rate=100, tilt_tau_s=0), "tilt_tau_s"),
])
def test_bad_config(kw, match):
    with pytest.raises(ConfigError, match=match):
        ImuSway(**kw)


def test_window_config():
    with pytest.raises(ConfigError, match="at least 32"):
        SwayWindow(100.0, 0.1)
    with pytest.raises(ConfigError, match="equal length"):
        SwayWindow(100.0, 1.0).process(np.zeros(5), np.zeros(4))
    with pytest.raises(SignalError):
        SwayWindow(100.0, 1.0).process(np.array([np.nan]), np.array([0.0]))


# ---------------------------------------------------------------- property
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PROP_IMU, _ = simulate_stance(100.0, 8.0, "left", touchdowns=[6.0], lift_off=3.0, seed=21)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=60))
def test_any_split_gives_the_same_stream(sizes):
    imu = _PROP_IMU
    ref_sway = ImuSway(100.0).process(imu)
    ref_test = SingleLegStanceTest(100.0, 4.0, "left")
    ref_ev = ref_test.process(imu)
    s, t = ImuSway(100.0), SingleLegStanceTest(100.0, 4.0, "left")
    outs, evs, i = [], [], 0
    for k in sizes * (imu.shape[0] // max(1, sum(sizes)) + 1):
        outs.append(s.process(imu[i:i + k]))
        evs += t.process(imu[i:i + k])
        i += k
        if i >= imu.shape[0]:
            break
    outs.append(s.process(imu[i:]))
    evs += t.process(imu[i:])
    assert np.array_equal(np.concatenate(outs), ref_sway)
    assert evs == ref_ev and t.result == ref_test.result


# ---------------------------------------------------------------- fast paths
def _plain_shift_fit(y, tn_min, tn_max, t0_step, tn_step, stride):
    """The weight-shift grid search as a plain loop (the reference the C
    kernel, which sums 32 onsets side by side, must match bit for bit)."""
    n = len(y)
    ym = 0.0
    for v in y:
        ym += v
    ym /= n
    ss = 0.0
    for v in y:
        ss += (v - ym) * (v - ym)
    best = [0.0, -1, 0, 0.0]  # score, t0, tn, coef

    def one_pass(t0_lo, t0_hi, s, tn_lo, tn_hi, ts, st):
        tn_lo, t0_lo = max(tn_lo, 2), max(t0_lo, 0)
        for tn in range(tn_lo, tn_hi + 1, ts):
            inv = 1.0 / tn
            t0 = t0_lo
            while t0 <= t0_hi and t0 + tn <= n - 1:
                num = sg = sgg = 0.0
                for k in range(1, tn, st):
                    x = k * inv
                    g = 60.0 * x * (1.0 - x) * (1.0 - 2.0 * x)
                    num += g * (y[t0 + k] - ym)
                    sg += g
                    sgg += g * g
                if num > 0.0:
                    den = sgg - sg * sg / (n / st)
                    if den > 0.0:
                        sc = num * num / den * st
                        if sc > best[0]:
                            best[:] = [sc, t0, tn, num / den]
                t0 += s

    one_pass(0, n, t0_step, tn_min, tn_max, tn_step, stride)
    while best[1] >= 0 and (t0_step > 1 or tn_step > 1 or stride > 1):
        s0, s1 = t0_step, tn_step
        t0_step, tn_step = (t0_step + 3) // 4, (tn_step + 3) // 4
        stride = min((stride + 3) // 4, t0_step)
        best[0] = 0.0
        k, d = best[1], best[2]
        one_pass(k - s0, k + s0, t0_step, max(d - s1, tn_min), min(d + s1, tn_max), tn_step,
                 stride)
    return best[1], best[2], best[0], best[3], ss


@pytest.mark.parametrize("n, tn, steps", [(90, (12, 40), (2, 8, 1)), (130, (10, 60), (5, 20, 2)),
                                          (61, (8, 30), (1, 1, 1)), (150, (20, 70), (3, 7, 3))])
def test_shift_fit_kernel_matches_a_plain_loop(n, tn, steps):
    from bridge import _sway
    rng = np.random.default_rng(n)
    for _ in range(3):
        t = np.arange(n)
        y = rng.normal(0, 0.2, n) + 2.0 * np.exp(-0.5 * ((t - rng.uniform(20, n - 20)) / 6) ** 2)
        got = _sway.shift_fit_window(np.ascontiguousarray(y), tn[0], tn[1], *steps)
        want = _plain_shift_fit(list(y), tn[0], tn[1], *steps)
        assert want[0] >= 0 and got == want  # exact: same sums in the same order


def _core(test):
    return test._core


def test_stance_core_run_matches_process_across_chunk_and_baseline_edges(trial):
    imu, _ = trial  # baseline ends at sample 300; the core works in chunks of 128
    n = imu.shape[0]
    a, b = SingleLegStanceTest(200.0, 20.0, "right"), SingleLegStanceTest(200.0, 20.0, "right")
    out_ref = np.empty((n, 4))
    ev = np.empty((n // 8 + 8, 5))
    ne = _core(a).process(imu, out_ref, ev)
    assert ne >= 3
    outs, evs, i = [], [], 0
    for size in [127, 1, 128, 129, 0, 300, 5, 1000, n]:
        out, code = _core(b).run(imu[i:i + size])
        assert code >= 0
        outs.append(out)
        if code >> 2:
            evs.append(_core(b).events(code >> 2))
        i += size
    assert np.array_equal(np.concatenate(outs), out_ref)
    assert np.array_equal(np.concatenate(evs), ev[:ne])


def test_stance_core_run_rejects_nonfinite_rows_untouched(trial):
    imu, _ = trial
    t = SingleLegStanceTest(200.0, 20.0, "right")
    core = _core(t)
    core.run(imu[:50])
    bad = imu[50:60].copy()
    bad[7, 4] = np.inf
    assert core.run(bad) == (None, -8)
    assert core.samples_seen == 50
    out, code = core.run(imu[50:])
    ref = SingleLegStanceTest(200.0, 20.0, "right")
    assert code >> 2 == len(ref.process(imu)) and code & 3 == 0
    with pytest.raises(ValueError):
        core.run(np.asfortranarray(imu[:10]))
    with pytest.raises(ValueError):
        core.run(imu[:10, :5].copy())
