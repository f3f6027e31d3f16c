"""Stream assembly: decoded packets -> sample chunks on the host clock, gaps marked.

This is the one place where raw counts become physical units, device time
becomes host time, and missing samples become explicit :class:`Gap` items.
Live sources and replay both call :meth:`StreamAssembler.handle` with each
packet and the host time its bytes arrived, so both produce the same items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import firmware_protocol as fp
from bridge.clock import DeviceClock

_U32 = 1 << 32


@dataclass(frozen=True, slots=True)
class SampleChunk:
    """One decoded block in physical units on the host clock."""

    device: str
    stream: int
    kind: str  # "emg" | "imu"
    labels: tuple[str, ...]
    units: tuple[str, ...]
    rate: float
    first_sample: int  # unwrapped sample index of samples[0]
    host_time: float  # host time (s) of samples[0], from the device clock fit
    samples: np.ndarray = field(repr=False)  # (n, channels) float64
    #: device clock (s, unwrapped, from the first timestamp seen) at samples[0]:
    #: the exact timeline shared by every stream and marker of the device.
    device_time: float = math.nan

    @property
    def n_samples(self) -> int:
        return self.samples.shape[0]

    @property
    def end_sample(self) -> int:
        return self.first_sample + self.samples.shape[0]


@dataclass(frozen=True, slots=True)
class Gap:
    """Samples that never arrived: never silently bridged."""

    device: str
    stream: int
    first_sample: int
    n_samples: int
    host_time: float
    reason: str  # "lost" (sequence gap) | "disconnect" | "restart" | "overflow"


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A non-sample packet (DeviceInfo, Status, Marker, Ack) with its host time."""

    device: str
    host_time: float
    packet: fp.Packet
    device_time: float = math.nan  # device clock (s, unwrapped) of timestamped packets


@dataclass
class StreamCounters:
    """Per-stream bookkeeping, all in samples unless named otherwise."""

    received: int = 0
    lost: int = 0
    gaps: int = 0
    chunks: int = 0
    restarts: int = 0
    late: int = 0  # blocks that arrived more than ``late_after`` s after their samples
    rejected: int = 0  # blocks that did not match the announced stream (dropped, counted)


class _StreamState:
    __slots__ = ("info", "kind", "scales", "labels", "units", "rate", "next_sample",
                 "last_wrapped", "counters")

    def __init__(self, info: fp.StreamInfo) -> None:
        self.info = info
        self.kind = "emg" if info.block_type == fp.PacketType.EMG_BLOCK else "imu"
        # The scale as announced (float32 on the wire) is the truth.
        self.scales = np.array([c.scale for c in info.channels], dtype=np.float64)
        self.labels = tuple(c.label for c in info.channels)
        self.units = tuple(c.unit for c in info.channels)
        self.rate = info.rate
        self.next_sample: int | None = None  # unwrapped index expected next
        self.last_wrapped = 0
        self.counters = StreamCounters()


class StreamAssembler:
    """Turn packets of one device into :class:`SampleChunk`, :class:`Gap`, :class:`DeviceEvent`.

    Sample blocks before the device's DEVICE_INFO cannot be scaled; they are
    dropped and counted in ``unannounced``.
    """

    def __init__(self, device: str = "", clock_factory=DeviceClock, late_after: float = 0.25):
        self.device = device
        self._clock_factory = clock_factory
        self.clock = clock_factory()
        self.late_after = late_after
        self.info: fp.DeviceInfo | None = None
        self._streams: dict[int, _StreamState] = {}
        self.counters: dict[int, StreamCounters] = {}
        self.unannounced = 0
        self._disconnected: set[int] = set()  # streams whose next gap is a disconnect
        self._dev_t0: int | None = None  # first device timestamp (us), for unwrapping
        self._dev_last = 0  # last unwrapped device time (us)

    def disconnected(self, host_time: float) -> None:
        """The link dropped: the next sample of each stream will open a 'disconnect' gap."""
        self._disconnected = set(self._streams)

    def handle(self, packet: fp.Packet, host_time: float) -> list:
        """Process one packet that arrived at ``host_time``; return the items it yields."""
        if isinstance(packet, fp.SampleBlock):
            return self._block(packet, host_time)
        device_time = math.nan
        if isinstance(packet, fp.DeviceInfo):
            self._announce(packet)
        elif isinstance(packet, (fp.Marker, fp.Status)) and self._dev_t0 is not None:
            # Timestamped on the device: place it on the host clock like the samples.
            device_time = self._device_us(packet.t_us) * 1e-6
            try:
                host_time = self.clock.to_host(device_time)
            except RuntimeError:  # clock not fitted yet
                pass
        return [DeviceEvent(self.device, host_time, packet, device_time)]

    def _announce(self, info: fp.DeviceInfo) -> None:
        same = self.info is not None and self.info.streams == info.streams
        self.info = info
        if same:  # a re-handshake after reconnect keeps continuity tracking
            return
        self._streams = {s.stream_id: _StreamState(s) for s in info.streams}
        self.counters = {sid: st.counters for sid, st in self._streams.items()}

    def _device_us(self, t_us: int) -> int:
        """Unwrap the 32-bit device microsecond clock (wraps every ~71.6 min)."""
        if self._dev_t0 is None:
            self._dev_t0 = t_us
            self._dev_last = 0
            return 0
        prev_wrapped = (self._dev_t0 + self._dev_last) % _U32
        delta = (t_us - prev_wrapped) % _U32
        if delta >= _U32 // 2:  # slightly older timestamp (other stream): step back
            delta -= _U32
        self._dev_last += delta
        return self._dev_last

    def _block(self, b: fp.SampleBlock, host_time: float) -> list:
        st = self._streams.get(b.stream)
        if st is None:
            self.unannounced += 1
            return []
        c = st.counters
        if b.n_channels != st.scales.shape[0]:
            c.rejected += 1
            return []
        pending_gaps: list[tuple[int, int, str]] = []  # timed once the clock has this block
        if st.next_sample is None:
            first = b.first_sample
        else:
            delta = (b.first_sample - st.last_wrapped) % _U32
            if delta >= _U32 // 2:  # went backwards: the device restarted
                c.restarts += 1
                first = st.next_sample
                reason = "restart"
            else:
                first = st.next_sample + delta
                reason = "disconnect" if b.stream in self._disconnected else "lost"
            if first > st.next_sample:
                n_lost = first - st.next_sample
                pending_gaps.append((st.next_sample, n_lost, reason))
        st.last_wrapped = (b.first_sample + b.n_samples) % _U32
        self._disconnected.discard(b.stream)

        dev_s = self._device_us(b.t_us) * 1e-6
        last_s = dev_s + (b.n_samples - 1) / st.rate if b.n_samples else dev_s
        self.clock.update(last_s, host_time)
        t0 = self.clock.to_host(dev_s)
        if host_time - self.clock.to_host(last_s) > self.late_after:
            c.late += 1

        out: list = []
        for start, n_lost, reason in pending_gaps:
            c.lost += n_lost
            c.gaps += 1
            out.append(Gap(self.device, b.stream, start, n_lost, t0 - n_lost / st.rate, reason))
        samples = b.counts() * st.scales
        out.append(SampleChunk(self.device, b.stream, st.kind, st.labels, st.units, st.rate,
                               first, t0, samples, dev_s))
        st.next_sample = first + b.n_samples
        c.received += b.n_samples
        c.chunks += 1
        return out
