"""Session analytics over detected contractions and EMG signals.

Everything here works on *contraction-like* objects (any object with
``channel``, ``onset``, ``offset``, ``peak``, ``mean``, ``pct_mvc``; see
:class:`ContractionLike`) and on numpy arrays; nothing imports the detector.
Results are frozen dataclasses with ``to_dict()`` for JSON.  Formulas and
references: docs/analytics.md.

Modules: :mod:`.reps` (repetitions, sets), :mod:`.holds` (isometric holds),
:mod:`.symmetry` (left/right), :mod:`.timing` (firing order, onset latency),
:mod:`.cocontraction` (Winter's %COCON), :mod:`.ratios` (activation ratios),
:mod:`.fatigue` (MDF/MNF trends), :mod:`.summary` (one session in one object).
"""

from bridge.analytics._base import ContractionLike, Result
from bridge.analytics.cocontraction import CoContraction, cocontraction, cocontraction_index
from bridge.analytics.fatigue import (
    FatigueTrend,
    SegmentFrequency,
    Trend,
    fatigue_trend,
    linear_trend,
    segment_frequencies,
    trend_of_segments,
    within_hold_fatigue,
)
from bridge.analytics.holds import Hold, HoldSummary, SustainedRun, hold_timing, sustained_above
from bridge.analytics.ratios import ActivationRatio, activation_ratio, envelope_ratio
from bridge.analytics.reps import ChannelReps, Rep, RepSet, count_reps
from bridge.analytics.summary import MuscleSummary, SessionSummary, summarize
from bridge.analytics.symmetry import (
    MetricSymmetry,
    SideComparison,
    compare_sides,
    find_side_pairs,
    limb_symmetry_index,
    symmetry_index,
    symmetry_ratio,
)
from bridge.analytics.timing import FiringOrder, FiringRep, LatencyStats, firing_order, group_firing

__all__ = [
    "ActivationRatio",
    "ChannelReps",
    "CoContraction",
    "ContractionLike",
    "FatigueTrend",
    "FiringOrder",
    "FiringRep",
    "Hold",
    "HoldSummary",
    "LatencyStats",
    "MetricSymmetry",
    "MuscleSummary",
    "Rep",
    "RepSet",
    "Result",
    "SegmentFrequency",
    "SessionSummary",
    "SideComparison",
    "SustainedRun",
    "Trend",
    "activation_ratio",
    "cocontraction",
    "cocontraction_index",
    "compare_sides",
    "count_reps",
    "envelope_ratio",
    "fatigue_trend",
    "find_side_pairs",
    "firing_order",
    "group_firing",
    "hold_timing",
    "limb_symmetry_index",
    "linear_trend",
    "segment_frequencies",
    "summarize",
    "sustained_above",
    "symmetry_index",
    "symmetry_ratio",
    "trend_of_segments",
    "within_hold_fatigue",
]
