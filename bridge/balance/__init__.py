"""Balance: sway metrics and the single-leg stance test from a pelvis IMU.

Public API (stable names):

* :func:`sway_metrics` / :class:`SwayMetrics` - whole-trial metrics (numpy/scipy),
  reproducing Santos & Duarte (2016) COParea/COPvelo/COPmfreq with the defaults.
* :class:`Mounting`, :class:`ImuSway` - streaming tilt-corrected AP/ML acceleration.
* :class:`SwayWindow` - sliding-window sway metrics (native core).
* :class:`SingleLegStanceTest` - the timed single-leg stance test, block by block;
  events :class:`BaselineReady`, :class:`StanceStarted`, :class:`Touchdown`,
  :class:`Jolt`, :class:`TrialCompleted` (with a :class:`StanceResult`).
* :func:`grade_stance`, :func:`compare_legs` - norms (Springer 2007) and asymmetry.

IMU blocks: (n, 6) acc x, y, z [g] + gyro x, y, z [deg/s] in the sensor frame,
or (n, 9) with magnetometer (ignored).
"""

from bridge.balance.metrics import MIN_SAMPLES, SwayMetrics, prediction_ellipse_area, sway_metrics
from bridge.balance.norms import (BOHANNON_2006, SPRINGER_2007, LegComparison, StanceGrade,
                                  compare_legs, grade_stance)
from bridge.balance.stance import (BaselineReady, Jolt, SingleLegStanceTest, StanceResult,
                                   StanceStarted, Touchdown, TrialCompleted, run_offline)
from bridge.balance.stream import ImuSway, Mounting, SwayWindow, validate_imu_block

__all__ = [
    "BOHANNON_2006", "MIN_SAMPLES", "SPRINGER_2007", "BaselineReady", "ImuSway", "Jolt",
    "LegComparison", "Mounting", "SingleLegStanceTest", "StanceGrade", "StanceResult",
    "StanceStarted", "SwayMetrics", "SwayWindow", "Touchdown", "TrialCompleted",
    "compare_legs", "grade_stance", "prediction_ellipse_area", "run_offline", "sway_metrics",
    "validate_imu_block",
]
