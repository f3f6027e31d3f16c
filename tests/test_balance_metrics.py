"""Whole-trial sway metrics: the Santos & Duarte published values and a slow reference."""
import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bridge.balance import SwayMetrics, sway_metrics
from bridge.errors import ConfigError, SignalError

BDS = Path(__file__).resolve().parent / "data" / "bds"


def _reference():
    with open(BDS / "BDSinfoCOP_subset.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {r["Trial"]: {k: float(v) for k, v in r.items() if k != "Trial"} for r in rows}


REF = _reference()


def _load(trial):
    with gzip.open(BDS / f"{trial}.csv.gz", "rt") as f:
        d = np.loadtxt(f, delimiter=";", skiprows=1)
    return d[:, 1], d[:, 2]


def test_all_sixty_trials_present():
    assert len(REF) == 60
    assert all((BDS / f"{t}.csv.gz").exists() for t in REF)


@pytest.mark.parametrize("trial", sorted(REF))
def test_reproduces_santos_duarte(trial):
    ap, ml = _load(trial)
    m = sway_metrics(ap, ml, 100.0)
    ref = REF[trial]
    assert m.ellipse_area_95 == pytest.approx(ref["COParea"], rel=1e-6)
    assert m.mean_velocity == pytest.approx(ref["COPvelo"], rel=1e-6)
    assert m.mean_frequency == pytest.approx(ref["COPmfreq"], rel=1e-6)


def _slow_reference(ap, ml, rate):
    """Loop-based re-derivation of the time-domain metrics (no vectorised shortcuts)."""
    n = len(ap)
    ma = sum(ap) / n
    mm = sum(ml) / n
    a = [x - ma for x in ap]
    b = [x - mm for x in ml]
    path = 0.0
    for i in range(1, n):
        path += ((a[i] - a[i - 1]) ** 2 + (b[i] - b[i - 1]) ** 2) ** 0.5
    saa = sum(x * x for x in a) / (n - 1)
    sbb = sum(x * x for x in b) / (n - 1)
    sab = sum(x * y for x, y in zip(a, b)) / (n - 1)
    # semi-axes from the eigenvalues of the covariance, prediction-ellipse scale
    tr, det = saa + sbb, saa * sbb - sab * sab
    l1 = tr / 2 + ((tr / 2) ** 2 - det) ** 0.5
    l2 = tr / 2 - ((tr / 2) ** 2 - det) ** 0.5
    scale = stats.f.ppf(0.95, 2, n - 2) * 2 * (n - 1) * (n + 1) / (n * (n - 2))
    area = np.pi * (l1 * scale) ** 0.5 * (l2 * scale) ** 0.5
    jerk = 0.0
    for i in range(1, n):
        jerk += ((a[i] - a[i - 1]) * rate) ** 2 + ((b[i] - b[i - 1]) * rate) ** 2
    jerk *= 0.5 / rate
    return dict(
        rms_ap=(sum(x * x for x in a) / n) ** 0.5, rms_ml=(sum(x * x for x in b) / n) ** 0.5,
        range_ap=max(a) - min(a), range_ml=max(b) - min(b), path_length=path,
        mean_velocity=path * rate / n,
        mean_distance=sum((x * x + y * y) ** 0.5 for x, y in zip(a, b)) / n,
        ellipse_area_95=area, jerk=jerk,
    )


def test_time_domain_metrics_match_slow_reference():
    rng = np.random.default_rng(3)
    ap = np.cumsum(rng.normal(size=700)) * 0.01 + 0.3
    ml = np.cumsum(rng.normal(size=700)) * 0.02 - 1.0
    m = sway_metrics(ap, ml, 50.0, signal="acceleration")
    ref = _slow_reference(list(ap), list(ml), 50.0)
    for k, v in ref.items():
        assert getattr(m, k) == pytest.approx(v, rel=1e-9), k
    assert m.jerk_per_s == pytest.approx(ref["jerk"] / (700 / 50.0), rel=1e-9)
    assert isinstance(m, SwayMetrics) and m.to_dict()["n"] == 700


def test_frequency_metrics_on_a_sine():
    rate, f0 = 100.0, 1.0
    t = np.arange(6000) / rate
    m = sway_metrics(np.sin(2 * np.pi * f0 * t), 0.5 * np.sin(2 * np.pi * f0 * t + 1), rate)
    assert m.mean_frequency == pytest.approx(f0, abs=0.05)
    assert m.f50 == pytest.approx(f0, abs=0.05)
    assert m.f95 <= 1.2
    assert m.jerk is None  # displacement has no jerk


def test_ellipse_is_prediction_not_chi_square_for_short_trials():
    rng = np.random.default_rng(0)
    ap, ml = rng.normal(size=(2, 40))
    m = sway_metrics(ap, ml, 10.0)
    chi = np.pi * np.sqrt(np.linalg.det(np.cov(np.vstack([ap, ml])))) * stats.chi2.ppf(0.95, 2)
    assert m.ellipse_area_95 > 1.05 * chi


def test_lowpass_option_reduces_high_frequency_content():
    rng = np.random.default_rng(1)
    ap, ml = rng.normal(size=(2, 2000))
    raw = sway_metrics(ap, ml, 100.0, signal="acceleration")
    lp = sway_metrics(ap, ml, 100.0, signal="acceleration", lowpass_hz=3.5)
    assert lp.mean_frequency < 5 < raw.mean_frequency


@pytest.mark.parametrize("bad, exc, match", [
    (dict(ap=np.zeros(10), ml=np.zeros(10)), SignalError, "too short"),
    (dict(ap=np.r_[np.zeros(99), np.nan], ml=np.zeros(100)), SignalError, "NaN"),
    (dict(ap=np.ones(100), ml=np.ones(100)), SignalError, "lying still"),
    (dict(ap=np.zeros(100), ml=np.zeros(99)), ConfigError, "same length"),
    (dict(ap=np.zeros((100, 2)), ml=np.zeros(100)), ConfigError, "1-D"),
    (dict(ap=np.arange(100.0), ml=np.zeros(100), rate=0), ConfigError, "positive"),
    (dict(ap=np.arange(100.0), ml=np.zeros(100), signal="velocity"), ConfigError, "signal"),
])
def test_bad_input(bad, exc, match):
    kw = dict(rate=100.0)
    kw.update(bad)
    with pytest.raises(exc, match=match):
        sway_metrics(**kw)
