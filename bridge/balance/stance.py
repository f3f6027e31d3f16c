"""The single-leg stance test ("stand on one leg for 30 s"), live or offline.

Feed IMU blocks from a pelvis/L5 sensor to :class:`SingleLegStanceTest`;
it returns events as they are decided:

1. ``BaselineReady`` after ``baseline_s`` of double stance (the subject
   should stand still on both feet when the test object starts receiving data).
2. ``StanceStarted`` when the weight has shifted onto the stance leg
   (automatic: the trunk lean toward the stance leg exceeds
   ``lift_threshold_deg`` for 0.3 s and stays for another 0.3 s; the start
   is then placed where the weight shift ended, found by fitting the
   push-then-brake movement of the pelvis toward the stance leg in its
   horizontal acceleration; if no plausible shift fits, where the lean
   reached 80 % of its stance level) or at the next sample after
   :meth:`SingleLegStanceTest.start` (operator trigger).  The countdown of
   ``duration`` seconds starts there.
3. ``Touchdown`` when the lifted foot comes down: an impact transient in |a|
   (high-passed at ~5 Hz, > ``impact_threshold_g``) followed within 0.8 s by
   the weight shifting back (lean below 50 % of its stance level); or, for a
   soft touchdown without impact, the lean staying below 30 % of its stance
   level for 0.8 s (timed at a small |a| transient if there is one, else
   where the lean fell below half its stance level).  With an operator start
   and no measurable lean, impacts alone decide.  An impact without a weight
   shift is reported as
   ``Jolt`` (not a touchdown).  After a touchdown the subject may lift the
   foot again (another ``StanceStarted``) while the countdown runs.
4. ``TrialCompleted`` at the end of the countdown (or at the first touchdown
   with ``end_on_touchdown=True``), carrying a :class:`StanceResult`.

Event times are seconds from the first sample fed to the test (``sample`` /
``rate``); decisions are made with a delay (up to ~1 s) but carry the time
they refer to.  Every decision is in the native core, per sample, so the
events do not depend on how the stream is cut into blocks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from bridge import _sway
from bridge.balance.metrics import MIN_SAMPLES, SwayMetrics, sway_metrics
from bridge.balance.stream import (Mounting, _check_rate, design_lowpass,
                                   imu_nonfinite_error, tilt_gain, validate_imu_block)
from bridge.errors import ConfigError, SignalError

__all__ = ["SingleLegStanceTest", "StanceResult", "BaselineReady", "StanceStarted",
           "Touchdown", "Jolt", "TrialCompleted"]

_EV_BASELINE, _EV_STANCE, _EV_TOUCHDOWN, _EV_JOLT, _EV_COMPLETE = 1, 2, 3, 4, 5
# Below this sway (RMS of low-passed horizontal acceleration) nobody is
# standing on the sensor: a person on one leg sways >= ~0.03 m/s^2, a sensor
# on a table shows only its noise (~0.005 m/s^2 after the 3.5 Hz low-pass).
NO_SWAY_RMS = 0.01


@dataclass(frozen=True, slots=True)
class BaselineReady:
    t: float
    sample: int
    lean_deg: float  # double-stance lean toward the stance leg


@dataclass(frozen=True, slots=True)
class StanceStarted:
    t: float
    sample: int
    leg: str
    attempt: int  # 1 for the first lift-off, 2... after touchdowns
    trigger: str  # "auto" or "operator"
    lean_deg: float  # lean toward the stance leg during stance, vs double stance
    decided_t: float  # when the detector decided (t + detection delay)


@dataclass(frozen=True, slots=True)
class Touchdown:
    t: float
    sample: int
    leg: str
    elapsed: float  # seconds since the (first) stance start
    stance_time: float  # length of this stance segment
    kind: str  # "impact", "soft_impact" (small transient found after the weight
    # came back) or "weight_shift" (no transient: time the lean fell below half
    # its stance level)
    impact_g: float  # peak of the high-passed |a| (0 for soft touchdowns)
    decided_t: float


@dataclass(frozen=True, slots=True)
class Jolt:
    """An impact-like transient that was not followed by a weight shift."""
    t: float
    sample: int
    impact_g: float


@dataclass(frozen=True, slots=True)
class StanceResult:
    """How one leg did.

    time_achieved: seconds from stance start to the first touchdown, or the
    goal ``duration`` if none (the timed unipedal stance score).
    touchdowns: times (s, relative to stance start) of every touchdown within
    the countdown.  stance_segments: (start, end) of each single-leg period,
    relative to the stance start.  sway: metrics of the low-passed AP/ML
    acceleration (m/s^2, ``signal="acceleration"``) over the first stance
    segment, or None if it was shorter than the metrics need.
    quality: flags such as "acc_clipped", "gyro_saturated", "no_sway",
    "stance_too_short", "operator_start", "jolt".
    """

    leg: str
    goal: float
    time_achieved: float
    completed: bool
    touchdowns: tuple[float, ...]
    stance_segments: tuple[tuple[float, float], ...]
    total_stance: float
    start_t: float
    sway: SwayMetrics | None
    quality: tuple[str, ...]

    @property
    def n_touchdowns(self) -> int:
        return len(self.touchdowns)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_touchdowns"] = self.n_touchdowns
        return d


@dataclass(frozen=True, slots=True)
class TrialCompleted:
    t: float
    sample: int
    result: StanceResult


class SingleLegStanceTest:
    """Timed single-leg stance on ``leg`` (the stance leg) from a pelvis IMU.

    Parameters
    ----------
    rate : IMU rate in Hz (20-5000; 100-1000 typical).
    duration : goal / countdown in seconds (30 by default; Springer 2007 used 45).
    leg : "left" or "right", the leg the subject stands on.
    mounting : sensor axes on the body (:class:`Mounting`).
    end_on_touchdown : end the trial at the first touchdown instead of
        running the countdown to the end.
    acc_range_g, gyro_range_dps : sensor full scale; samples at >= 99 % of it
        are counted as clipped/saturated and flag the result.
    The thresholds are physical quantities (degrees of lean, g of impact) and
    were set on the simulator (bridge.simulator.sway_model), not per test.

    ``process(block)`` takes ``(n, 6)`` [acc xyz g, gyro xyz deg/s] or
    ``(n, 9)`` (+ mag, ignored) float arrays and returns a list of events.
    """

    # Fallback when no weight shift fits: the stance starts where the lean
    # reached this fraction of its stance level.
    _SETTLE_FRAC = 0.8
    # Time constant (s) of the lean low-pass: sway noise vs lag.
    _LEAN_TAU = 0.1
    # Weight-shift fit on the pelvis acceleration (refines the automatic
    # start): window reaching this far before the lean excursion (None: no
    # fit), shift durations searched, smallest plausible shift, smallest
    # fraction of the window's variance the fit must explain.
    _FIT_BACK_S = 2.0
    _FIT_DUR_S = (0.25, 1.2)
    _FIT_MIN_DISP_M = 0.03
    _FIT_MIN_R2 = 0.5

    def __init__(self, rate: float, duration: float = 30.0, leg: str = "left", *,
                 mounting: Mounting = Mounting(), end_on_touchdown: bool = False,
                 acc_range_g: float = 8.0, gyro_range_dps: float = 2000.0,
                 baseline_s: float = 1.5, lift_threshold_deg: float = 2.0,
                 impact_threshold_g: float = 0.12, lowpass_hz: float = 3.5,
                 tilt_tau_s: float = 2.0):
        self.rate = _check_rate(rate)
        if leg not in ("left", "right"):
            raise ConfigError(f"leg must be 'left' or 'right' (the stance leg), got {leg!r}")
        if not (np.isfinite(duration) and 1.0 <= duration <= 600.0):
            raise ConfigError(f"duration must be 1-600 s, got {duration}")
        if not (0.5 <= baseline_s <= 10.0):
            raise ConfigError(f"baseline_s must be 0.5-10 s, got {baseline_s}")
        if not (0.5 <= lift_threshold_deg <= 20.0):
            raise ConfigError(f"lift_threshold_deg must be 0.5-20, got {lift_threshold_deg}")
        if not (0.02 <= impact_threshold_g <= 4.0):
            raise ConfigError(f"impact_threshold_g must be 0.02-4 g, got {impact_threshold_g}")
        if acc_range_g <= 1.5 or gyro_range_dps <= 50:
            raise ConfigError("acc_range_g must exceed 1.5 g and gyro_range_dps 50 deg/s")
        self.leg = leg
        self.duration = float(duration)
        self._keep_n = int(5 * self.rate)  # samples kept before the stance starts (_keep)
        r = self.rate
        sos, zi = design_lowpass(r, lowpass_hz)

        def n(s):
            return max(1, int(round(s * r)))

        self._core = _sway.StanceCore(
            mounting.matrix().ravel(), r, tilt_gain(r, tilt_tau_s), 0.85, 1.15,
            sos.tolist(), zi.tolist(), 1.0 if leg == "left" else -1.0,
            1.0 - np.exp(-1.0 / (self._LEAN_TAU * r)),  # lean low-pass
            1.0 - np.exp(-2 * np.pi * 5.0 / r),  # |a| low-pass at 5 Hz (impact = residual)
            n(baseline_s), n(0.3), n(0.3), n(0.8), n(0.8), n(0.8), n(duration),
            np.sin(np.radians(lift_threshold_deg)), self._SETTLE_FRAC, 0.5, 0.3,
            impact_threshold_g, 0.99 * acc_range_g, 0.99 * gyro_range_dps,
            bool(end_on_touchdown),
            1.0 - np.exp(-1.0 / (2.0 * r)),  # double-stance lean baseline follows drift, tau 2 s
            1.0 - np.exp(-1.0 / (3.0 * r)),  # stance lean level follows drift, tau 3 s
            1.0 - np.exp(-1.0 / (2.0 * r)),  # stance |a| noise power, tau 2 s
            0.01, 4.0,  # soft touchdown transient: >= 0.01 g and >= 4x the stance noise RMS
            n(self._FIT_BACK_S) if self._FIT_BACK_S else 0,
            n(self._FIT_DUR_S[0]), n(self._FIT_DUR_S[1]),
            self._FIT_MIN_DISP_M, self._FIT_MIN_R2)
        self.reset()

    def reset(self) -> None:
        """Forget everything; the next sample is t = 0 (subject on both feet)."""
        self._core.reset()
        self._blocks: deque[np.ndarray] = deque()  # low-passed ap/ml since _blocks_from
        self._blocks_from = 0
        self._kept = 0
        self._start_sample: int | None = None
        self._segments: list[list[int | None]] = []
        self._touchdowns: list[int] = []
        self._flags: set[str] = set()
        self._attempt = 0
        self._result: StanceResult | None = None

    def start(self) -> None:
        """Operator trigger: the foot is up now; start the countdown."""
        if self._result is not None:
            raise ConfigError("trial already completed; call reset() for a new one")
        self._core.start()

    @property
    def result(self) -> StanceResult | None:
        return self._result

    @property
    def state(self) -> str:
        return ("baseline", "double_stance", "settling", "single_stance", "done")[
            self._core.state_code]

    def process(self, block) -> list:
        imu = validate_imu_block(block, check_finite=False)
        # one native call: NaN/inf check (nothing processed if it fails),
        # the block, clipping flags and the event count
        out, code = self._core.run(imu)
        if code < 0:
            raise imu_nonfinite_error(-code - 1)
        if self._result is None:
            if code & 1:
                self._flags.add("acc_clipped")
            if code & 2:
                self._flags.add("gyro_saturated")
            self._keep(out)
        ne = code >> 2
        if not ne:
            return []
        return [e for e in map(self._event, self._core.events(ne)) if e is not None]

    # -- internals ---------------------------------------------------------
    def _keep(self, out: np.ndarray) -> None:
        # `out` is fresh per block; keeping it whole is cheaper than copying columns
        self._blocks.append(out)
        self._kept += out.shape[0]
        if self._start_sample is None:
            # before the stance starts only the last few seconds can matter
            # (the start is placed up to ~1.5 s before it is decided)
            blocks = self._blocks
            while self._kept - blocks[0].shape[0] >= self._keep_n:
                n = blocks.popleft().shape[0]
                self._kept -= n
                self._blocks_from += n

    def _kept_range(self, lo: int, hi: int) -> np.ndarray:
        # low-passed ap/ml of samples [lo, hi) that are still kept; only the
        # overlapping parts of the blocks are copied
        parts = []
        at = self._blocks_from
        for b in self._blocks:
            n = b.shape[0]
            a, z = max(lo - at, 0), min(hi - at, n)
            if a < z:
                parts.append(b[a:z, :2])
            at += n
            if at >= hi:
                break
        if not parts:
            return np.empty((0, 2))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _event(self, row):
        kind, sample, v1, v2, decided = int(row[0]), int(row[1]), row[2], row[3], int(row[4])
        t = sample / self.rate
        if kind == _EV_BASELINE:
            return BaselineReady(t, sample, float(np.degrees(np.arcsin(np.clip(v1, -1, 1)))))
        if kind == _EV_STANCE:
            self._attempt += 1
            if self._start_sample is None:
                self._start_sample = sample
            self._segments.append([sample, None])
            trig = "operator" if v2 == 1.0 else "auto"
            if trig == "operator":
                self._flags.add("operator_start")
            return StanceStarted(t, sample, self.leg, self._attempt, trig,
                                 float(np.degrees(np.arcsin(np.clip(v1, -1, 1)))),
                                 decided / self.rate)
        if kind == _EV_TOUCHDOWN:
            self._touchdowns.append(sample)
            seg_start = self._segments[-1][0] if self._segments else sample
            if self._segments:
                self._segments[-1][1] = sample
            return Touchdown(t, sample, self.leg, (sample - self._start_sample) / self.rate,
                             (sample - seg_start) / self.rate,
                             {1.0: "impact", 2.0: "soft_impact"}.get(v2, "weight_shift"), float(v1),
                             decided / self.rate)
        if kind == _EV_JOLT:
            self._flags.add("jolt")
            return Jolt(t, sample, float(v1))
        if kind == _EV_COMPLETE:
            self._result = self._finish(sample)
            return TrialCompleted(t, sample, self._result)
        return None

    def _finish(self, end: int) -> StanceResult:
        r = self.rate
        s0 = self._start_sample
        tds = [x for x in self._touchdowns if x <= end]
        first_end = tds[0] if tds else end
        segs = [(a, end if b is None or b > end else b) for a, b in self._segments]
        flags = set(self._flags)
        sway = None
        seg = self._kept_range(s0, first_end)
        if seg.shape[0] < max(MIN_SAMPLES, int(r)):
            flags.add("stance_too_short")
        else:
            try:
                sway = sway_metrics(seg[:, 0], seg[:, 1], r, signal="acceleration")
            except SignalError:
                flags.add("no_sway")
            else:
                if sway.rms < NO_SWAY_RMS:
                    flags.add("no_sway")
        self._blocks = deque()
        return StanceResult(
            leg=self.leg, goal=self.duration,
            time_achieved=min((first_end - s0) / r, self.duration),
            completed=not tds, touchdowns=tuple((x - s0) / r for x in tds),
            stance_segments=tuple(((a - s0) / r, (b - s0) / r) for a, b in segs),
            total_stance=sum((b - a) / r for a, b in segs), start_t=s0 / r,
            sway=sway, quality=tuple(sorted(flags)),
        )


def run_offline(imu, rate: float, **kw) -> tuple[list, StanceResult | None]:
    """Run a whole recording through a fresh :class:`SingleLegStanceTest`."""
    test = SingleLegStanceTest(rate, **kw)
    events = test.process(imu)
    return events, test.result

