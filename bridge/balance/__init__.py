"""Balance: sway metrics and the single-leg stance test from a pelvis IMU.

Public API (stable names):

* :func:`sway_metrics` / :class:`SwayMetrics` - whole-trial metrics.
"""

from bridge.balance.metrics import MIN_SAMPLES, SwayMetrics, prediction_ellipse_area, sway_metrics

__all__ = ["MIN_SAMPLES", "SwayMetrics", "prediction_ellipse_area", "sway_metrics"]
