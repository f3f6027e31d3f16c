"""The IMU sway simulator: determinism, truth, physical plausibility."""
import numpy as np
import pytest

from bridge.balance import ImuSway, Mounting
from bridge.simulator.sway_model import simulate_stance


def test_deterministic_with_seed():
    a, ta = simulate_stance(100.0, 10.0, "left", touchdowns=[6.0], seed=3)
    b, tb = simulate_stance(100.0, 10.0, "left", touchdowns=[6.0], seed=3)
    c, _ = simulate_stance(100.0, 10.0, "left", touchdowns=[6.0], seed=4)
    assert np.array_equal(a, b) and ta.impact_g == tb.impact_g
    assert not np.array_equal(a, c)


def test_truth_is_consistent():
    imu, t = simulate_stance(200.0, 40.0, "right", touchdowns=[10.0, 20.0], seed=1,
                             lift_off=3.0, relift_after=2.0, shift_s=0.5)
    assert imu.shape == (8000, 6) and imu.flags.c_contiguous
    assert t.lift_offs == (3.0, 12.5, 22.5) and t.touchdowns == (10.0, 20.0)
    assert t.stance_segments == ((3.0, 10.0), (12.5, 20.0), (22.5, 40.0))
    assert t.stance_durations == (7.0, 7.5, 17.5)
    assert t.time_to_first_touchdown == 7.0
    assert t.shift_onsets == (2.5, 12.0, 22.0)
    single = t.signals["single"]
    assert single[int(5 * 200)] == 1 and single[int(11 * 200)] == 0
    with pytest.raises(ValueError):
        simulate_stance(100.0, 10.0, "left", touchdowns=[2.0], lift_off=3.0)
    with pytest.raises(ValueError):
        simulate_stance(100.0, 10.0, "both")


def test_gravity_and_amplitudes_are_plausible():
    imu, t = simulate_stance(200.0, 30.0, "left", seed=2, lift_off=10.0)
    norm = np.linalg.norm(imu[:, :3], axis=1)
    assert abs(norm.mean() - 1.0) < 0.01
    s = t.signals
    double = slice(400, 1800)  # 2-9 s
    single = slice(2400, 5800)  # 12-29 s
    assert 0.1 < s["tilt_ml_deg"][double].std() < 0.6
    assert s["acc_ml"][single].std() > 2 * s["acc_ml"][double].std()
    # the trunk leans toward the stance leg (left = +) on one leg
    assert 2.0 < s["tilt_ml_deg"][single].mean() < 7.0
    _, closed = simulate_stance(200.0, 30.0, "left", eyes="closed", seed=2, lift_off=10.0)
    assert closed.signals["acc_ml"][single].std() > 1.3 * s["acc_ml"][single].std()


def test_mounting_is_applied():
    axes = ("-z", "-x", "+y")
    a, t = simulate_stance(200.0, 12.0, "left", seed=5, axes=axes, lift_off=6.0,
                           gyro_bias_dps=0.0)
    out = ImuSway(200.0, mounting=Mounting(*axes)).process(a)
    # estimated leans follow the true ones (after the 1 s start-up); the
    # weight shift's lateral acceleration briefly pulls the accelerometer tilt
    err_ml = out[200:, 4] - t.signals["tilt_ml_deg"][200:]
    err_ap = out[200:, 3] - t.signals["tilt_ap_deg"][200:]
    assert np.abs(err_ml).max() < 1.5 and np.abs(err_ml).mean() < 0.2
    assert np.abs(err_ap).max() < 0.3 and np.abs(err_ap).mean() < 0.1


def test_quantisation_to_int16_counts():
    imu, _ = simulate_stance(100.0, 5.0, "left", seed=1, quantize=True, acc_range_g=8.0,
                             gyro_range_dps=2000.0)
    lsb_a, lsb_g = 8.0 / 32768, 2000.0 / 32768
    assert np.allclose(imu[:, :3] / lsb_a, np.round(imu[:, :3] / lsb_a), atol=1e-6)
    assert np.allclose(imu[:, 3:] / lsb_g, np.round(imu[:, 3:] / lsb_g), atol=1e-6)
