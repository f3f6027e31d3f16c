"""Scripted sessions for the virtual wearable, with ground truth.

A scenario is a timeline of phases (rest, glute bridge reps, clamshells,
isometric holds, single-leg stance per leg).  It is rendered into physical
signals with the physiology models (:mod:`.emg_model`, :mod:`.sway_model`)
and returned as :class:`~bridge.simulator.device.Signals`: 8 EMG channels at
2 kHz, a pelvis IMU at 200 Hz, device MARKERs announcing each phase (as an
operator's button presses would), and ``truth`` for checking detections.

``build(name, seed=...)`` returns one of :data:`SCENARIOS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridge.errors import ConfigError
from bridge.simulator.device import Signals
from bridge.simulator.emg_model import Burst, simulate_emg
from bridge.simulator.sway_model import simulate_stance

EMG_RATE = 2000.0
IMU_RATE = 200.0
MUSCLES = ("glute_max_L", "glute_max_R", "hamstring_L", "hamstring_R",
           "erector_L", "erector_R", "glute_med_L", "glute_med_R")
CH = {name: i for i, name in enumerate(MUSCLES)}

#: Marker codes the device sends at phase starts; text is "<phase>[:<arg>]".
MARK_PHASE = 1


@dataclass(frozen=True)
class Profile:
    """How one simulated client fires: levels (RMS mV) and onset delays (s)."""

    glute_level: tuple[float, float] = (0.40, 0.40)  # left, right
    glute_delay: tuple[float, float] = (0.04, 0.04)  # after hamstrings, left/right
    hamstring_level: float = 0.30
    erector_level: float = 0.12
    erector_delay: float = 0.02
    glute_med_level: float = 0.35
    hold_drop: tuple[float | None, float | None] = (None, None)  # s into a hold a side fails


#: The client of the default demo: left glute weak and late (fires 180 ms after the
#: hamstrings, right side 40 ms), left glute gives up 6 s into a 10 s hold.
ASYMMETRIC = Profile(glute_level=(0.22, 0.45), glute_delay=(0.18, 0.04), hold_drop=(6.0, None))


def _bridge_rep(t: float, hold: float, p: Profile, drop=(None, None)) -> list[Burst]:
    """One glute bridge: hamstrings lead, glutes follow by their delays, erectors help."""
    end = t + hold
    out = []
    for side, suffix in ((0, "_L"), (1, "_R")):
        out.append(Burst(CH["hamstring" + suffix], t, end, p.hamstring_level, 0.08, 0.1))
        g_on = t + p.glute_delay[side]
        g_end = end if drop[side] is None else min(end, t + drop[side])
        out.append(Burst(CH["glute_max" + suffix], g_on, g_end, p.glute_level[side], 0.1, 0.1))
        out.append(Burst(CH["erector" + suffix], t + p.erector_delay, end, p.erector_level,
                         0.08, 0.1))
    return out


def _clamshell(t: float, hold: float, side: int, p: Profile) -> list[Burst]:
    suffix = "_L" if side == 0 else "_R"
    return [Burst(CH["glute_med" + suffix], t, t + hold, p.glute_med_level, 0.08, 0.08)]


class _Timeline:
    """Accumulates bursts, phase markers and stance segments along time."""

    def __init__(self, profile: Profile) -> None:
        self.p = profile
        self.t = 0.0
        self.bursts: list[Burst] = []
        self.phases: list[tuple[str, float, float]] = []
        self.stances: list[tuple[str, float, float, tuple[float, ...], float]] = []

    def rest(self, seconds: float) -> None:
        self.phases.append(("rest", self.t, self.t + seconds))
        self.t += seconds

    def reps(self, n: int, on: float = 2.0, off: float = 2.0, kind: str = "bridge",
             side: int = 0) -> None:
        start = self.t
        for _ in range(n):
            self.bursts += (_bridge_rep(self.t, on, self.p) if kind == "bridge"
                            else _clamshell(self.t, on, side, self.p))
            self.t += on + off
        self.phases.append((f"reps:{kind}", start, self.t))

    def hold(self, seconds: float = 10.0, after: float = 2.0) -> None:
        self.bursts += _bridge_rep(self.t, seconds, self.p, self.p.hold_drop)
        self.phases.append((f"hold:{seconds:g}", self.t, self.t + seconds))
        self.t += seconds + after

    def stance(self, leg: str, seconds: float, touchdown: float | None = None,
               lift_off: float = 3.0, after: float = 3.0) -> None:
        """Single-leg stance on ``leg``: lift at +lift_off, stand ``seconds`` or touch down."""
        total = lift_off + (touchdown if touchdown is not None else seconds) + after
        tds = (lift_off + touchdown,) if touchdown is not None else (lift_off + seconds + 1.0,)
        self.stances.append((leg, self.t, total, tds, lift_off))
        self.phases.append((f"stance:{leg}", self.t, self.t + total))
        self.t += total


def _render(tl: _Timeline, seed: int, snr_db: float = 15.0, imu: bool = True) -> Signals:
    duration = tl.t
    emg, emg_truth = simulate_emg(EMG_RATE, duration, tl.bursts, channels=len(MUSCLES),
                                  snr_db=snr_db, hum=0.02, ecg=0.03, wander=0.1, seed=seed)
    n_imu = int(round(duration * IMU_RATE))
    truth = {"contractions": emg_truth, "phases": tl.phases, "stance": []}
    imu_data = np.empty((0, 6))
    if imu:
        pieces, t = [], 0.0
        for k, (leg, start, total, tds, lift_off) in enumerate(tl.stances):
            if start > t:  # double stance between tests
                quiet, _ = simulate_stance(IMU_RATE, start - t, stance="double",
                                           seed=seed + 101 + k)
                pieces.append(quiet)
            data, st = simulate_stance(IMU_RATE, total, leg=leg, touchdowns=tds,
                                       lift_off=lift_off, relift_after=1e9, seed=seed + 7 + k)
            pieces.append(data)
            truth["stance"].append({
                "leg": leg, "start": start,
                "lift_offs": [start + x for x in st.lift_offs],
                "touchdowns": [start + x for x in st.touchdowns]})
            t = start + total
        if duration > t:
            quiet, _ = simulate_stance(IMU_RATE, duration - t, stance="double", seed=seed + 99)
            pieces.append(quiet)
        imu_data = np.concatenate(pieces)[:n_imu]
    markers = tuple((start, MARK_PHASE, name) for name, start, _ in tl.phases)
    return Signals(emg, EMG_RATE, MUSCLES, imu_data, IMU_RATE, truth, markers)


def demo(seed: int = 0) -> Signals:
    """The default demo client (about 100 s): reps, a 10 s hold, 30 s stance per leg.

    Left glute weak and late, left hold fails at 6 s, left-leg stance touches
    down after 14 s while the right leg stands the full 30 s.
    """
    tl = _Timeline(ASYMMETRIC)
    tl.rest(4.0)
    tl.reps(5, 2.0, 2.0)
    tl.hold(10.0, after=3.0)
    tl.stance("right", 30.0)
    tl.stance("left", 30.0, touchdown=14.0)
    return _render(tl, seed)


def bridge_reps(seed: int = 0, profile: Profile = Profile()) -> Signals:
    """Three sets of 10 glute bridge reps (2 s up, 2 s down, 20 s between sets)."""
    tl = _Timeline(profile)
    tl.rest(4.0)
    for k in range(3):
        tl.reps(10, 2.0, 2.0)
        if k < 2:
            tl.rest(20.0)
    return _render(tl, seed, imu=False)


def holds(seed: int = 0, profile: Profile = ASYMMETRIC) -> Signals:
    """Three 10 s isometric bridge holds with 5 s rests."""
    tl = _Timeline(profile)
    tl.rest(4.0)
    for _ in range(3):
        tl.hold(10.0, after=5.0)
    return _render(tl, seed, imu=False)


def clamshells(seed: int = 0, profile: Profile = ASYMMETRIC) -> Signals:
    """Ten clamshells per side (glute medius)."""
    tl = _Timeline(profile)
    tl.rest(4.0)
    tl.reps(10, 1.5, 1.5, kind="clamshell", side=0)
    tl.rest(5.0)
    tl.reps(10, 1.5, 1.5, kind="clamshell", side=1)
    return _render(tl, seed, imu=False)


def late_glute(seed: int = 0) -> Signals:
    """Glutes fire 250 ms after the hamstrings on both sides (synergistic dominance)."""
    return bridge_reps(seed, Profile(glute_delay=(0.25, 0.25), glute_level=(0.3, 0.3)))


def single_leg(seed: int = 0) -> Signals:
    """Single-leg stance 30 s per leg; the left leg touches down at 14 s."""
    tl = _Timeline(Profile())
    tl.rest(3.0)
    tl.stance("right", 30.0)
    tl.stance("left", 30.0, touchdown=14.0)
    return _render(tl, seed)


SCENARIOS = {
    "demo": demo,
    "bridge-reps": bridge_reps,
    "holds": holds,
    "clamshells": clamshells,
    "late-glute": late_glute,
    "single-leg": single_leg,
}


def build(name: str, seed: int = 0) -> Signals:
    """Render scenario ``name`` (see :data:`SCENARIOS`)."""
    try:
        make = SCENARIOS[name]
    except KeyError:
        raise ConfigError(f"unknown scenario {name!r}; choose one of: "
                          + ", ".join(sorted(SCENARIOS))) from None
    return make(seed=seed)
