"""Single-leg stance test on simulated trials with known truth, bad input, norms."""
import numpy as np
import pytest

from bridge.balance import (SPRINGER_2007, BaselineReady, Jolt, SingleLegStanceTest,
                            StanceResult, StanceStarted, SwayMetrics, Touchdown, TrialCompleted,
                            compare_legs, grade_stance, run_offline)
from bridge.errors import ConfigError, SignalError
from bridge.simulator.sway_model import simulate_stance


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def feed(test, imu, block=7):
    events = []
    for i in range(0, imu.shape[0], block):
        events += test.process(imu[i:i + block])
    return events


@pytest.mark.parametrize("leg, rate, seed", [("left", 200.0, 1), ("right", 100.0, 2),
                                              ("left", 500.0, 3), ("right", 200.0, 4)])
def test_detects_stance_and_touchdown(leg, rate, seed):
    imu, truth = simulate_stance(rate, 36.0, leg, touchdowns=[14.0], seed=seed, quantize=True)
    test = SingleLegStanceTest(rate, 30.0, leg)
    events = feed(test, imu)
    assert len(of(events, BaselineReady)) == 1
    starts, tds = of(events, StanceStarted), of(events, Touchdown)
    assert starts[0].trigger == "auto" and starts[0].leg == leg
    assert abs(starts[0].t - truth.lift_offs[0]) < 0.05
    assert starts[0].decided_t > starts[0].t  # decided later, timed at the lift-off
    assert len(tds) == 1 and abs(tds[0].t - 14.0) < 0.1 and tds[0].kind == "impact"
    assert len(starts) == 2  # lifted the foot again after the touchdown
    assert abs(starts[1].t - truth.lift_offs[1]) < 0.05
    done = of(events, TrialCompleted)
    assert len(done) == 1 and done[0].t == pytest.approx(starts[0].t + 30.0, abs=1.0 / rate)
    res = done[0].result
    assert res is test.result and not res.completed
    assert res.time_achieved == pytest.approx(14.0 - truth.lift_offs[0], abs=0.05)
    assert res.n_touchdowns == 1 and len(res.stance_segments) == 2
    # 30 s minus 2 s on both feet and the 0.5 s re-lift shift
    assert res.total_stance == pytest.approx(30.0 - 2.5, abs=0.6)
    assert isinstance(res.sway, SwayMetrics) and res.sway.signal == "acceleration"
    assert 0.03 < res.sway.rms < 1.0  # m/s^2: single-leg sway, not noise, not garbage
    assert res.quality == ()
    assert res.to_dict()["n_touchdowns"] == 1


@pytest.mark.parametrize("shift_s", [0.35, 0.5, 0.8])
def test_start_is_where_the_weight_shift_ends(shift_s):
    # The simulator's foot leaves the floor when the weight shift ends; the
    # lean-threshold rule alone is off by ~0.05-0.1 s for shifts faster or
    # slower than 0.5 s, the fit of the shift is not.
    errs = []
    for seed, leg, rate in ((21, "left", 100.0), (22, "right", 200.0), (23, "left", 500.0),
                            (24, "right", 200.0)):
        imu, truth = simulate_stance(rate, 20.0, leg, touchdowns=[10.0], seed=seed,
                                     shift_s=shift_s, quantize=True, sensor_tilt_deg=(10, -3))
        events, _ = run_offline(imu, rate, leg=leg)
        starts = of(events, StanceStarted)
        assert len(starts) == len(truth.lift_offs) == 2
        errs += [s.t - lo for s, lo in zip(starts, truth.lift_offs)]
    errs = np.abs(errs)
    assert np.median(errs) < 0.03
    assert errs.max() < (0.03 if shift_s <= 0.5 else 0.2)


def test_lean_without_a_weight_shift_falls_back_to_the_lean():
    # A trunk lean with no pelvis movement (the sensor only rotates): no
    # weight shift to fit, the start comes from the lean (80 % of its level).
    rate = 200.0
    imu, _ = simulate_stance(rate, 12.0, "left", stance="double", seed=25)
    t = np.arange(imu.shape[0]) / rate
    x = np.clip((t - 3.0) / 0.5, 0.0, 1.0)
    phi = np.radians(4.0) * x * x * (3 - 2 * x)  # 4 deg toward the left leg over 0.5 s
    c, s = np.cos(phi), np.sin(phi)
    imu = imu.copy()
    ay, az = imu[:, 1].copy(), imu[:, 2].copy()
    imu[:, 1], imu[:, 2] = c * ay - s * az, s * ay + c * az  # left lean = negative roll
    imu[:, 3] -= np.degrees(np.gradient(phi, 1 / rate))
    events, _ = run_offline(imu, rate, leg="left", duration=5.0)
    starts = of(events, StanceStarted)
    assert len(starts) == 1 and 3.2 < starts[0].t < 3.6 and starts[0].lean_deg > 3.0


def test_full_thirty_seconds_without_touchdown():
    imu, truth = simulate_stance(200.0, 36.0, "left", seed=5)
    events, res = run_offline(imu, 200.0, leg="left")
    assert not of(events, Touchdown)
    assert res.completed and res.time_achieved == 30.0
    assert res.stance_segments[0][1] == pytest.approx(30.0)


def test_double_stance_never_starts():
    imu, _ = simulate_stance(200.0, 30.0, "left", stance="double", eyes="closed", seed=6)
    events, res = run_offline(imu, 200.0, leg="left")
    assert not of(events, StanceStarted) and res is None


def test_standing_on_the_other_leg_is_not_this_legs_stance():
    imu, _ = simulate_stance(200.0, 30.0, "right", seed=7)
    events, res = run_offline(imu, 200.0, leg="left")
    assert not of(events, StanceStarted) and res is None


def test_operator_start_and_end_on_touchdown():
    rate = 200.0
    imu, truth = simulate_stance(rate, 20.0, "left", touchdowns=[9.0], seed=8)
    test = SingleLegStanceTest(rate, 30.0, "left", end_on_touchdown=True)
    k = int(truth.lift_offs[0] * rate)
    events = test.process(imu[:k])
    test.start()
    events += test.process(imu[k:])
    start = of(events, StanceStarted)[0]
    assert start.trigger == "operator" and start.sample == k
    done = of(events, TrialCompleted)
    assert len(done) == 1
    assert done[0].t == pytest.approx(9.0, abs=0.1)
    assert "operator_start" in done[0].result.quality
    assert done[0].result.time_achieved == pytest.approx(9.0 - k / rate, abs=0.1)
    with pytest.raises(ConfigError, match="reset"):
        test.start()


def test_soft_touchdown_is_found_without_an_impact():
    imu, truth = simulate_stance(200.0, 30.0, "right", touchdowns=[12.0], impact_g=0.05, seed=9)
    events, res = run_offline(imu, 200.0, leg="right", duration=20.0)
    tds = of(events, Touchdown)
    assert len(tds) == 1 and tds[0].kind in ("soft_impact", "weight_shift")
    assert abs(tds[0].t - 12.0) < 0.4


def test_jolt_without_weight_shift_is_not_a_touchdown():
    rate = 200.0
    imu, truth = simulate_stance(rate, 30.0, "left", seed=10)
    t = np.arange(imu.shape[0]) / rate - 15.0
    bump = np.where(t >= 0, 0.5 * np.exp(-np.maximum(t, 0) / 0.03) * np.sin(2 * np.pi * 18 * t), 0)
    imu = imu.copy()
    imu[:, 2] += bump  # a knock on the sensor, the subject keeps standing
    events, res = run_offline(imu, rate, leg="left", duration=20.0)
    assert not of(events, Touchdown)
    assert of(events, Jolt) and abs(of(events, Jolt)[0].t - 15.0) < 0.05
    assert res.completed and "jolt" in res.quality


def test_clipping_and_saturation_are_flagged():
    imu, _ = simulate_stance(200.0, 30.0, "left", seed=12)
    imu = imu.copy()
    imu[2000, 3] = 2000.0  # gyro at full scale during the stance
    imu[2500, 2] = 1.999  # accelerometer at its 2 g full scale
    events, res = run_offline(imu, 200.0, leg="left", duration=20.0, acc_range_g=2.0)
    assert {"acc_clipped", "gyro_saturated"} <= set(res.quality)


def test_sensor_lying_on_a_table_has_no_sway():
    rng = np.random.default_rng(0)
    imu = np.zeros((200 * 8, 6))
    imu[:, 2] = 1.0
    imu += rng.normal(scale=[0.002] * 3 + [0.1] * 3, size=imu.shape)
    test = SingleLegStanceTest(200.0, 5.0, "left")
    events = test.process(imu[:400])
    assert not of(events, StanceStarted)  # nothing lifts on a table
    test.start()
    events += test.process(imu[400:])
    res = of(events, TrialCompleted)[0].result
    assert "no_sway" in res.quality


def test_stance_too_short_for_metrics():
    rate = 200.0
    imu, truth = simulate_stance(rate, 10.0, "left", touchdowns=[3.6], seed=13)
    test = SingleLegStanceTest(rate, 30.0, "left", end_on_touchdown=True)
    k = int(truth.lift_offs[0] * rate)
    test.process(imu[:k])
    test.start()
    events = test.process(imu[k:])
    res = of(events, TrialCompleted)[0].result
    assert res.time_achieved < 1.0 and res.sway is None and "stance_too_short" in res.quality


@pytest.mark.parametrize("kw, match", [
    (dict(leg="middle"), "leg"), (dict(duration=0.0), "duration"),
    (dict(rate=0.0), "rate"), (dict(impact_threshold_g=0.0), "impact"),
    (dict(acc_range_g=1.0), "acc_range"),
])
def test_bad_config(kw, match):
    args = dict(rate=200.0)
    args.update(kw)
    with pytest.raises(ConfigError, match=match):
        SingleLegStanceTest(**args)


def test_nan_block_raises_signal_error():
    test = SingleLegStanceTest(200.0)
    with pytest.raises(SignalError, match="row 3"):
        test.process(np.array([[0, 0, 1, 0, 0, 0]] * 3 + [[0, np.nan, 1, 0, 0, 0]], float))


def test_reset_gives_the_same_answer_again():
    imu, _ = simulate_stance(100.0, 36.0, "left", touchdowns=[10.0], seed=14)
    test = SingleLegStanceTest(100.0, 30.0, "left")
    first = test.process(imu)
    test.reset()
    assert test.process(imu) == first


# ---------------------------------------------------------------- norms
def result(leg, t, goal=30.0, tds=None, rms=0.1):
    sway = None if rms is None else SwayMetrics(
        "acceleration", 100.0, 1000, 10.0, rms, rms, rms, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    tds = (t,) if tds is None and t < goal else (tds or ())
    return StanceResult(leg, goal, t, not tds, tds, ((0.0, t),), t, 3.0, sway, ())


def test_grades_against_goal_and_springer_norms():
    assert grade_stance(result("left", 30.0)).grade == "goal met"
    g = grade_stance(result("left", 20.0), age=72)  # Springer 70-79 best of 3: 16.7 s
    assert g.grade == "normal for age" and g.norm_s == 16.7
    assert grade_stance(result("left", 12.0), age=30).grade == "below norm"
    assert grade_stance(result("left", 6.0), age=30).grade == "poor (<10 s)"
    assert grade_stance(result("left", 12.0)).grade == "below goal"
    assert grade_stance(result("left", 3.0), age=65, eyes="closed").norm_s == 3.6
    with pytest.raises(ConfigError):
        grade_stance(result("left", 3.0), age=10)


def test_springer_norms_are_the_best_of_3_column():
    """Springer 2007's table: women's best of 3 trials (eyes open / closed).  The 80+ eyes-open
    norm was the mean of 3 trials (6.2 s) and two eyes-closed norms were in neither column."""
    assert SPRINGER_2007[(70, 79)] == (16.7, 3.7)
    assert SPRINGER_2007[(80, 120)] == (10.6, 2.1)
    eo = [eo for eo, _ in SPRINGER_2007.values()]
    assert eo == sorted(eo, reverse=True)  # best of 3 falls with age
    assert all(ec < eo for eo, ec in SPRINGER_2007.values())
    # 10.3 s at 85 is under the best-of-3 norm (was "normal for age" against 6.2 s)
    g = grade_stance(result("left", 10.3), age=85)
    assert (g.grade, g.norm_s) == ("below norm", 10.6)


def test_compare_legs_finds_the_weaker_side():
    c = compare_legs(result("left", 30.0, rms=0.1), result("right", 12.0, rms=0.3), age=45)
    assert c.weaker_leg == "right" and c.asymmetric
    assert c.time_asymmetry_pct == pytest.approx(60.0)
    assert c.sway_asymmetry_pct == pytest.approx(100 * 0.2 / 0.3)
    same = compare_legs(result("left", 30.0, rms=0.2), result("right", 30.0, rms=0.1))
    assert same.weaker_leg == "left" and not same.asymmetric  # same time, more sway
    with pytest.raises(ConfigError):
        compare_legs(result("right", 30.0), result("left", 30.0))
