"""A session: stream items -> native cores -> events, the same live and in replay.

:class:`Session` consumes what :class:`~bridge.stream.StreamAssembler`
produces (SampleChunk, Gap, DeviceEvent) from any source and drives, per
device, one :class:`~bridge.emg.ContractionDetector` over its EMG stream and
a single-leg stance test over its IMU stream while a stance phase runs.  It
emits typed events (below) to the caller and keeps what the end-of-session
analytics need.  It does no I/O: live sources, replay and tests all call
:meth:`Session.handle` with the same items and get the same events.

Phases come from device MARKERs whose text is ``"<phase>[:<arg>]"``
(``rest``, ``reps:bridge``, ``hold:10``, ``stance:left``...): a button on the
wearable, the CLI's guided protocols (MARK command echoed by the device with
its own timestamp) or the virtual wearable's script all produce them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import firmware_protocol as fp
from bridge.analytics.fatigue import SegmentFrequency
from bridge.emg import Contraction, ContractionDetector, Offset, Onset
from bridge.spectra import RawHistory, contraction_spectrum
from bridge.sources.base import LinkState
from bridge.stream import DeviceEvent, Gap, SampleChunk


#: MARK codes a host (the CLI's guided protocols) sends for protocol phases; the device
#: echoes them as MARKERs with its own timestamp.  A marker whose text names a phase
#: (``"stance:left"``) is read as that phase whatever its code.
PHASE_CODES = {
    0x0101: "rest", 0x0102: "mvc", 0x0103: "reps:bridge", 0x0104: "hold:10",
    0x0105: "reps:clamshell", 0x0110: "stance:left", 0x0111: "stance:right", 0x01FF: "end",
}
PHASE_NAMES = {"rest", "mvc", "reps", "hold", "stance", "end"}
MARK_FOR_PHASE = {v: k for k, v in PHASE_CODES.items()}


# ------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class MuscleEvent:
    """A contraction started (``onset``) or ended (``offset``) on one muscle."""

    kind: str  # "onset" | "offset"
    device: str
    channel: int
    muscle: str
    time: float  # s on the session timeline (stream sample / rate)
    host_time: float  # s, host clock
    latency: float  # s between the event's time and when it was decided
    peak: float
    mean: float
    contraction: Contraction | None = None  # offsets only, on the session timeline


@dataclass(frozen=True, slots=True)
class PhaseEvent:
    """The protocol moved to a new phase (from a device marker)."""

    device: str
    name: str  # e.g. "reps", "hold", "stance"
    arg: str  # e.g. "bridge", "10", "left"
    time: float
    host_time: float


@dataclass(frozen=True, slots=True)
class BalanceEvent:
    """An event of the single-leg stance test (stance start, touchdown, result)."""

    device: str
    leg: str
    time: float  # s on the session timeline (IMU sample / rate)
    event: object  # the balance core's event dataclass
    host_time: float = math.nan  # s, host clock (of the event's IMU sample)


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """Link health worth showing: gaps (lost samples), status, device info."""

    device: str
    kind: str  # "gap" | "status" | "info" | "ack" | "marker" | "link"
    time: float
    detail: object


@dataclass
class LinkDown:
    """The link to a device is down: lost and (so far) not back.

    Kept by the session from the connection's link items (``LinkState``); what is
    left at the end of the data is the session's ``link_down_at_end`` (the results).
    """

    since: float  # session time of the newest sample when the link dropped
    lost_at: float  # host time.monotonic() of the loss
    reason: str  # why it dropped
    down_for: float = 0.0  # s without the link (to the end of data once finished)
    attempts: int = 0  # reconnect attempts made
    gave_up: bool = False  # the connection stopped trying (--give-up)
    cut_contractions: int = 0  # contractions open at the end: closed, marked truncated

    def to_dict(self) -> dict:
        return {"since": self.since, "down_for": self.down_for, "reason": self.reason,
                "reconnect_attempts": self.attempts, "gave_up": self.gave_up,
                "cut_contractions": self.cut_contractions}


@dataclass
class Phase:
    name: str
    arg: str
    start: float
    end: float | None = None


# ------------------------------------------------------------------ session
class _GapBridge:
    """Keeps a core's sample clock equal to the stream's across short gaps.

    A short gap is bridged by a straight line from the last sample before it
    to the first after it (no band-pass content for EMG, no impact for the
    IMU), fed to the core only; the data keep their gap everywhere else.
    """

    __slots__ = ("last", "pending")

    def __init__(self) -> None:
        self.last: np.ndarray | None = None
        self.pending = 0

    def gap(self, n: int) -> bool:
        """Note ``n`` lost samples; False if there is nothing to bridge from."""
        if self.last is None:
            return False
        self.pending += n
        return True

    def block(self, samples: np.ndarray) -> np.ndarray:
        """``samples``, preceded by the bridge of any pending gap."""
        if not samples.shape[0]:
            return samples
        out = samples
        if self.pending:
            ramp = np.linspace(0.0, 1.0, self.pending + 2)[1:-1, None]
            fill = self.last[None, :] + ramp * (samples[0] - self.last)[None, :]
            out = np.ascontiguousarray(np.concatenate([fill, samples]))
            self.pending = 0
        self.last = samples[-1].copy()
        return out

    def reset(self) -> None:
        self.last = None
        self.pending = 0


@dataclass
class _Emg:
    detector: ContractionDetector
    rate: float
    labels: tuple[str, ...]
    base: int | None = None  # stream sample of detector sample 0
    bridge: _GapBridge = field(default_factory=_GapBridge)
    anchor: tuple[int, float] | None = None  # (stream sample, host time) of the latest chunk
    contractions: list[Contraction] = field(default_factory=list)
    calib: dict[str, list[np.ndarray]] = field(default_factory=dict)  # phase -> blocks
    history: RawHistory | None = None  # recent raw samples, for per-contraction spectra
    spectra: dict[tuple[int, int], SegmentFrequency] = field(default_factory=dict)

    def stream_sample(self, det_sample: int) -> int:
        return self.base + det_sample

    def host_time(self, stream_sample: int) -> float:
        s0, h0 = self.anchor
        return h0 + (stream_sample - s0) / self.rate


class _DeviceState:
    def __init__(self) -> None:
        self.emg: dict[int, _Emg] = {}
        self.imu: dict[int, object] = {}  # stream -> (rate, labels)
        self.phases: list[Phase] = []
        self.device_origin: float | None = None  # device clock (s) at session time 0
        self.latest = 0.0  # session time of the newest sample
        self.stance = None  # running stance test
        self.stance_leg = ""
        self.stance_base: int | None = None  # IMU sample index of the test's sample 0
        self.imu_bridge = _GapBridge()
        self.stance_results: list[tuple[str, object]] = []
        self.gaps: list[Gap] = []
        self.status: fp.Status | None = None
        self.info: fp.DeviceInfo | None = None
        self.link_down: LinkDown | None = None  # lost and not (yet) back


class Session:
    """Drive the native cores from stream items; collect events and results.

    ``detector`` holds keyword arguments for every ContractionDetector;
    ``stance_duration`` is the single-leg test's goal (s); with
    ``end_on_touchdown`` (default, as in the timed unipedal stance test) the
    first touchdown ends the trial.  Gaps shorter than
    ``max_bridge`` s are bridged *inside the detector only* by a straight line
    from the last sample before to the first after (no band-pass content, so
    no false onset; a contraction's envelope dips for the gap and is merged
    back), keeping the detector's sample clock equal to the stream's.  The
    data itself keeps its gap (LinkEvent, results, exports).  Longer gaps
    close open contractions (marked truncated) and restart the detector.
    The last ``spectrum_history`` s of raw EMG are kept so that each
    contraction's MNF/MDF is computed when it ends (fatigue trends over reps,
    :meth:`spectrum`); 0 turns this off.
    """

    def __init__(self, *, detector: dict | None = None, stance_duration: float = 30.0,
                 end_on_touchdown: bool = True, max_bridge: float = 0.1,
                 calibrate_on_rest: bool = True, spectrum_history: float = 40.0) -> None:
        self.spectrum_history = spectrum_history
        self.detector_params = dict(detector or {})
        self.stance_duration = stance_duration
        self.end_on_touchdown = end_on_touchdown
        self.max_bridge = max_bridge
        self.calibrate_on_rest = calibrate_on_rest
        self.devices: dict[str, _DeviceState] = {}
        #: A calibration profile (bridge.profiles.Profile) applied to new detectors.
        self.profile = None
        self.notes: list[str] = []

    # --------------------------------------------------------------- intake
    def handle(self, item) -> list:
        """Process one stream item; return the events it produced."""
        name = getattr(item, "device", "")
        dev = self.devices.get(name)
        if dev is None:
            dev = self.devices[name] = _DeviceState()
        if isinstance(item, SampleChunk):
            if item.kind == "emg":
                return self._emg_chunk(dev, item)
            return self._imu_chunk(dev, item)
        if isinstance(item, Gap):
            return self._gap(dev, item)
        if isinstance(item, DeviceEvent):
            return self._device_event(dev, item)
        return []

    def _session_time(self, dev: _DeviceState, device_time: float) -> float:
        """Session time of a device timestamp (exact: the device clock is the timeline).

        Packets without a timestamp (DeviceInfo, Ack) get the latest sample time.
        """
        if dev.device_origin is None or math.isnan(device_time):
            return dev.latest
        return device_time - dev.device_origin

    def _emg_chunk(self, dev: _DeviceState, c: SampleChunk) -> list:
        st = dev.emg.get(c.stream)
        if st is None:
            st = dev.emg[c.stream] = _Emg(
                ContractionDetector(c.samples.shape[1], c.rate, **self.detector_params),
                c.rate, c.labels)
            if self.spectrum_history > 0:
                st.history = RawHistory(c.rate, self.spectrum_history)
            if self.profile is not None:
                from bridge.profiles import apply_profile
                self.notes += apply_profile(st.detector, c.labels, c.rate, self.profile)
        if st.base is None:
            st.base = c.first_sample
        st.anchor = (c.first_sample, c.host_time)
        if st.history is not None:
            st.history.add(c.first_sample, c.samples)
        self._timeline(dev, c)
        phase = dev.phases[-1] if dev.phases else None
        if phase is not None and phase.name in ("rest", "mvc") and phase.end is None:
            st.calib.setdefault(phase.name, []).append(c.samples)
        return self._emg_events(c.device, st, st.detector.process(st.bridge.block(c.samples)))

    def _emg_events(self, device: str, st: _Emg, events) -> list:
        out = []
        for ev in events:
            s = st.stream_sample(ev.sample)
            t = s / st.rate
            name = st.labels[ev.channel] if ev.channel < len(st.labels) else str(ev.channel)
            if isinstance(ev, Onset):
                out.append(MuscleEvent("onset", device, ev.channel, name, t, st.host_time(s),
                                       ev.latency, ev.peak, ev.mean))
            elif isinstance(ev, Offset):
                k = ev.contraction
                on = st.stream_sample(k.onset_sample)
                c = Contraction(k.channel, on / st.rate, t, k.peak, k.mean, k.pct_mvc, on, s,
                                k.truncated, k.censored_onset)
                st.contractions.append(c)
                if st.history is not None:
                    spec = contraction_spectrum(st.history, k.channel, on, s)
                    if spec is not None:
                        st.spectra[(k.channel, on)] = spec
                out.append(MuscleEvent("offset", device, ev.channel, name, t, st.host_time(s),
                                       ev.latency, k.peak, k.mean, c))
        return out

    def _gap(self, dev: _DeviceState, g: Gap) -> list:
        dev.gaps.append(g)
        st = dev.emg.get(g.stream)
        rate = st.rate if st is not None else dev.imu.get(g.stream, (None,))[0]
        t = g.first_sample / rate if rate else dev.latest
        out: list = [LinkEvent(g.device, "gap", t, g)]
        short = bool(rate) and g.n_samples / rate <= self.max_bridge and g.reason == "lost"
        if st is not None and st.base is not None:
            if not (short and st.bridge.gap(g.n_samples)):
                out += self._emg_events(g.device, st, st.detector.finish())
                st.detector.reset()
                st.base = g.first_sample + g.n_samples
                st.bridge.reset()
        elif g.stream in dev.imu:
            if not (short and dev.imu_bridge.gap(g.n_samples)) and dev.stance is not None:
                # The stance test cannot time across a long hole: stop it honestly.
                out += self._end_stance(dev, g.device, "link gap of "
                                        f"{g.n_samples / rate:.2f} s during the stance test")
                dev.imu_bridge.reset()
        return out

    def _device_event(self, dev: _DeviceState, e: DeviceEvent) -> list:
        p = e.packet
        t = self._session_time(dev, e.device_time)
        if isinstance(p, fp.Marker):
            name, _, arg = p.text.partition(":")
            if name not in PHASE_NAMES:
                if p.code not in PHASE_CODES:
                    return [LinkEvent(e.device, "marker", t, p)]
                name, _, arg = PHASE_CODES[p.code].partition(":")
            return self._phase(dev, e.device, name, arg, t, e.host_time)
        if isinstance(p, fp.Status):
            dev.status = p
            return [LinkEvent(e.device, "status", t, p)]
        if isinstance(p, fp.DeviceInfo):
            dev.info = p
            return [LinkEvent(e.device, "info", t, p)]
        if isinstance(p, fp.Ack):
            return [LinkEvent(e.device, "ack", t, p)]
        if isinstance(p, LinkState):  # the host's view of the link (bridge.sources.base)
            self._link_change(dev, p)
            return [LinkEvent(e.device, "link", t, p)]
        return []

    @staticmethod
    def _link_change(dev: _DeviceState, p: LinkState) -> None:
        """Follow the link: a loss that is still open at the end of data is reported."""
        if p.state == "lost":
            dev.link_down = LinkDown(dev.latest, p.host_time, p.reason)
        elif p.state == "reconnected":
            dev.link_down = None  # the hole is the disconnect Gap that follows
        elif dev.link_down is not None:  # retrying, gave_up
            down = dev.link_down
            down.attempts = max(down.attempts, p.attempt)
            down.down_for = max(down.down_for, p.down_for)
            down.gave_up = down.gave_up or p.state == "gave_up"

    def _phase(self, dev, device, name, arg, t, host_time) -> list:
        out: list = []
        if dev.phases and dev.phases[-1].end is None:
            prev = dev.phases[-1]
            prev.end = t
            if prev.name in ("rest", "mvc") and self.calibrate_on_rest and self.profile is None:
                self._calibrate(dev, device, prev.name)
            if prev.name == "stance":
                out += self._end_stance(dev, device)
        dev.phases.append(Phase(name, arg, t))
        out.append(PhaseEvent(device, name, arg, t, host_time))
        if name == "stance":
            out += self._start_stance(dev, device, arg or "left", t)
        return out

    def _calibrate(self, dev: _DeviceState, device: str, phase: str) -> None:
        """A rest phase sets the baseline; an MVC phase sets 100 % (>= 1 s of data).

        A rest phase that was not at rest (the profile check: a 0.5 s window of
        its envelope more than twice the median, or less than half) is not
        used: its mean and SD would lift the onset threshold above real
        contractions.  That happens when the client moves during the rest, and
        when the link lost the markers of the phases that followed it (the
        "rest" then runs on into reps).  The detector then keeps tracking the
        noise floor itself, and a note says so.
        """
        from bridge.profiles import REST_STEADY, rest_steadiness

        for st in dev.emg.values():
            blocks = st.calib.pop(phase, [])
            if not blocks:
                continue
            block = np.concatenate(blocks)
            if block.shape[0] < st.rate:
                self.notes.append(f"{device}: {phase} phase shorter than 1 s: not used for "
                                  "calibration")
            elif phase == "rest":
                env = st.detector.filter.fresh().process(block)
                loud, dip = rest_steadiness(env, st.rate)
                bad = [st.labels[i] if i < len(st.labels) else f"ch{i}"
                       for i in np.flatnonzero((loud > REST_STEADY) | (dip > REST_STEADY))]
                if bad:
                    gap = " (it had a link gap: phase markers may have been lost)" if any(
                        self._in_phase(dev, g) for g in dev.gaps) else ""
                    self.notes.append(
                        f"{device}: the rest phase was not at rest on {', '.join(bad)}{gap}; "
                        "not used as the baseline: the detector tracks the noise floor itself")
                else:
                    st.detector.calibrate_rest(block)
            else:
                st.detector.calibrate_mvc(block)

    @staticmethod
    def _in_phase(dev: _DeviceState, g: Gap) -> bool:
        """Whether gap ``g`` lies in the device's last (just ended) phase."""
        ph = dev.phases[-1]
        st = dev.emg.get(g.stream)
        rate = st.rate if st is not None else dev.imu.get(g.stream, (None,))[0]
        if not rate:
            return False
        t0, t1 = g.first_sample / rate, (g.first_sample + g.n_samples) / rate
        return t1 > ph.start and (ph.end is None or t0 < ph.end)

    # -------------------------------------------------------------- balance
    @staticmethod
    def _timeline(dev: _DeviceState, c: SampleChunk) -> None:
        # Session time = sample index / rate; the device clock of sample 0 anchors markers.
        if dev.device_origin is None and not math.isnan(c.device_time):
            dev.device_origin = c.device_time - c.first_sample / c.rate
        dev.latest = max(dev.latest, c.end_sample / c.rate)

    def _imu_chunk(self, dev: _DeviceState, c: SampleChunk) -> list:
        dev.imu[c.stream] = (c.rate, c.labels)
        self._timeline(dev, c)
        test = dev.stance
        if test is None:
            dev.imu_bridge.block(c.samples)  # keep the bridge's last sample current
            return []
        if dev.stance_base is None:
            dev.stance_base = c.first_sample  # the test's sample 0
        out = []
        for ev in test.process(dev.imu_bridge.block(c.samples)):
            s = dev.stance_base + ev.sample
            out.append(BalanceEvent(c.device, dev.stance_leg, s / c.rate, ev,
                                    c.host_time + (s - c.first_sample) / c.rate))
        if test.result is not None:  # countdown over: the trial is decided
            dev.stance_results.append((dev.stance_leg, test.result))
            dev.stance = None
        return out

    def _start_stance(self, dev, device, leg, t) -> list:
        from bridge.balance import SingleLegStanceTest

        if not dev.imu:
            return [LinkEvent(device, "info", t, "no IMU stream: stance test skipped")]
        rate = next(iter(dev.imu.values()))[0]
        dev.stance = SingleLegStanceTest(rate, duration=self.stance_duration, leg=leg,
                                         end_on_touchdown=self.end_on_touchdown)
        dev.stance_leg = leg
        dev.stance_base = None
        return []

    def _end_stance(self, dev, device, why: str = "the protocol moved on") -> list:
        """The test stopped before its countdown ended: record that it has no result."""
        if dev.stance is None:
            return []
        dev.stance_results.append((dev.stance_leg, dev.stance.result))
        dev.stance = None
        return [LinkEvent(device, "info", dev.latest, f"{dev.stance_leg}-leg stance test "
                          f"ended before its countdown ({why}): no result")]

    # ------------------------------------------------------------------ end
    def finish(self, now: float | None = None) -> list:
        """End of data: close open contractions, phases and stance tests.

        ``now``: the host's ``time.monotonic()`` at the end (live sources): a link that
        was lost and never came back was down until then (``link_down_at_end``).
        """
        out: list = []
        for name, dev in self.devices.items():
            down = dev.link_down
            for st in dev.emg.values():
                ends = self._emg_events(name, st, st.detector.finish())
                if down is not None:  # cut off by the loss: closed at the last sample
                    down.cut_contractions += sum(e.kind == "offset" for e in ends)
                out += ends
            if down is not None and now is not None:
                down.down_for = max(down.down_for, now - down.lost_at)
            if dev.phases and dev.phases[-1].end is None:
                last = dev.phases[-1]
                # The data ran to the newest sample (EMG or IMU), not just to the last offset.
                last.end = max([c.offset for st in dev.emg.values() for c in st.contractions]
                               + [last.start, dev.latest])
                if last.name == "stance":
                    out += self._end_stance(dev, name, "the protocol moved on" if down is None
                                            else f"the link was lost at {down.since:.1f} s "
                                            "and did not come back")
        return out

    def contractions(self, device: str | None = None) -> list[Contraction]:
        """All contractions so far (session timeline), by onset."""
        devs = [self.devices[device]] if device is not None else self.devices.values()
        out = [c for d in devs for st in d.emg.values() for c in st.contractions]
        return sorted(out, key=lambda c: (c.onset, c.channel))

    def spectrum(self, device: str, contraction) -> SegmentFrequency | None:
        """MNF/MDF of ``contraction``'s raw EMG (None if too short, cut by a gap or not kept)."""
        for st in self.devices[device].emg.values():
            spec = st.spectra.get((contraction.channel, contraction.onset_sample))
            if spec is not None:
                return spec
        return None

    def channel_names(self, device: str | None = None) -> dict[int, str]:
        dev = self.devices[device] if device is not None else next(iter(self.devices.values()))
        st = next(iter(dev.emg.values()), None)
        return {i: n for i, n in enumerate(st.labels)} if st else {}
