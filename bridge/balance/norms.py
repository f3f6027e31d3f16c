"""Grading single-leg stance results against published norms; left vs right.

Norm tables (eyes open unless stated; seconds standing on one leg):

* Springer BA, Marin R, Cyhan T, Roberts H, Gill NW (2007). Normative values
  for the unipedal stance test with eyes open and closed. J Geriatr Phys
  Ther 30(1):8-15.  549 healthy adults, 3 trials, max 45 s; the paper's table
  gives the mean of the 3 trials and the best of 3 per age group and sex, eyes
  open and closed, and finds no effect of sex.  ``SPRINGER_2007`` below is the
  women's best-of-3 column (women / men, best of 3, s):

      age     eyes open     eyes closed
      18-39   45.1 / 44.4   13.1 / 16.9
      40-49   42.1 / 41.6   13.5 / 12.0
      50-59   40.9 / 41.5    7.9 /  8.6
      60-69   30.4 / 33.8    3.6 /  5.1
      70-79   16.7 / 25.9    3.7 /  2.6
      80-99   10.6 /  8.7    2.1 /  1.8

  45.1 s (women 18-39) is the paper's reported mean, above the 45 s cap of a
  single trial: kept as published (grading caps every norm at the goal).  The
  80-99 eyes-open norm was 6.2 s, the mean of 3 trials, not the best of 3, and
  the 70-79 / 80-99 eyes-closed norms were 3.1 / 1.9 s, in neither sex's
  column: corrected to 10.6, 3.7 and 2.1 s.  Checked against reproductions of
  the table (the stored copies of the paper searchable here stop before it):
  women's eyes-open 60-69 30.4 and 80-99 10.6 s (Heyward 2019, via a public
  fitness-norms repository); women/men eyes closed, the full column above (a
  public norms write-up); the best of 3 rounded down from the sexes' average
  44/41/41/32/21/9 s (theprehabguys.com, "Single Leg Balance Assessment"); the
  mean of 3 trials eyes open 43.3/40.3/37.0/26.9/15.0/6.2 s (a public exercise
  guide).  Check against the paper's table before clinical use.
* Bohannon RW (2006). Single limb stance times: a descriptive meta-analysis
  of data from individuals at least 60 years of age. Top Geriatr Rehabil
  22(1):70-77: mean eyes-open times 27.0 s (60-69), 17.2 s (70-79),
  8.5 s (80-99).
* 30 s per leg is the common screening goal; < 10 s in mid/later life is a
  warning sign (Araujo et al. 2022, Br J Sports Med 56:975-980).
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.balance.stance import StanceResult
from bridge.errors import ConfigError

__all__ = ["SPRINGER_2007", "BOHANNON_2006", "StanceGrade", "LegComparison",
           "grade_stance", "compare_legs"]

# (age_lo, age_hi): (eyes open best-of-3 s, eyes closed best-of-3 s); Springer et al. 2007,
# the table of UPST times by age group: women's best of 3 trials (see the module docstring)
SPRINGER_2007 = {
    (18, 39): (45.1, 13.1),
    (40, 49): (42.1, 13.5),
    (50, 59): (40.9, 7.9),
    (60, 69): (30.4, 3.6),
    (70, 79): (16.7, 3.7),
    (80, 120): (10.6, 2.1),
}
BOHANNON_2006 = {(60, 69): 27.0, (70, 79): 17.2, (80, 120): 8.5}


@dataclass(frozen=True, slots=True)
class StanceGrade:
    leg: str
    time_achieved: float
    goal: float
    met_goal: bool  # reached the goal (30 s by default) without touchdown
    norm_s: float | None  # age norm used (Springer 2007 best of 3), if age given
    norm_ratio: float | None  # time_achieved / norm (capped by the goal)
    grade: str  # "goal met", "normal for age", "below norm", "poor (<10 s)"
    source: str


@dataclass(frozen=True, slots=True)
class LegComparison:
    left: StanceGrade
    right: StanceGrade
    weaker_leg: str | None  # None if equal
    time_asymmetry_pct: float  # |L - R| / max(L, R) * 100
    sway_asymmetry_pct: float | None  # same on RMS sway (acceleration), if both have it
    asymmetric: bool  # time asymmetry > threshold


def _norm(age: float | None, eyes: str) -> float | None:
    if age is None:
        return None
    if not 18 <= age <= 120:
        raise ConfigError(f"age must be 18-120 years for these norms, got {age}")
    for (lo, hi), (eo, ec) in SPRINGER_2007.items():
        if lo <= age <= hi + 0.999:
            return eo if eyes == "open" else ec
    return None


def grade_stance(result: StanceResult, age: float | None = None,
                 eyes: str = "open") -> StanceGrade:
    """Grade one leg: goal met, normal for age (>= Springer 2007 norm or the goal),
    below norm, or poor (< 10 s)."""
    if eyes not in ("open", "closed"):
        raise ConfigError(f"eyes must be 'open' or 'closed', got {eyes!r}")
    t = result.time_achieved
    norm = _norm(age, eyes)
    ratio = None
    if norm is not None:
        ratio = t / min(norm, result.goal)
    met = result.completed and t >= result.goal - 1e-9
    if met:
        grade = "goal met"
    elif norm is not None and t >= min(norm, result.goal):
        grade = "normal for age"
    elif t < 10.0:
        grade = "poor (<10 s)"
    else:
        grade = "below norm" if norm is not None else "below goal"
    return StanceGrade(result.leg, t, result.goal, met, norm, ratio, grade,
                       "Springer 2007 (best of 3)" if norm is not None else "goal only")


def compare_legs(left: StanceResult, right: StanceResult, age: float | None = None,
                 eyes: str = "open", threshold_pct: float = 20.0) -> LegComparison:
    """Left vs right: which leg is weaker and by how much (time and sway)."""
    if left.leg != "left" or right.leg != "right":
        raise ConfigError("compare_legs(left, right) needs a left-leg and a right-leg result")
    gl, gr = grade_stance(left, age, eyes), grade_stance(right, age, eyes)
    tl, tr = left.time_achieved, right.time_achieved
    hi = max(tl, tr)
    asym = abs(tl - tr) / hi * 100.0 if hi > 0 else 0.0
    sway_asym = None
    if left.sway is not None and right.sway is not None:
        sl, sr = left.sway.rms, right.sway.rms
        sway_asym = abs(sl - sr) / max(sl, sr) * 100.0 if max(sl, sr) > 0 else 0.0
    if tl != tr:
        weaker = "left" if tl < tr else "right"
    elif sway_asym:
        weaker = "left" if left.sway.rms > right.sway.rms else "right"
    else:
        weaker = None
    return LegComparison(gl, gr, weaker, asym, sway_asym, asym > threshold_pct)
