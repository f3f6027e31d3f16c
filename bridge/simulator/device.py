"""The virtual wearable: a device that speaks the real firmware protocol.

Sans-IO like the protocol itself: the transports (pty, TCP, fake BlueZ) move
its bytes.  The device holds pre-computed physical signals (see
:mod:`bridge.simulator.scenarios`), quantises them to int16 counts with the
scales it announces in DEVICE_INFO, and emits EMG/IMU blocks as simulated
time advances.  Faults (bit errors, dropped packets, clock drift, hangs) are
injected here so every transport sees the same faulty device.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np

import firmware_protocol as fp
from firmware_protocol import Opcode, AckStatus

#: Physical units per count, announced in DEVICE_INFO.
EMG_SCALE_MV = 0.0005  # 0.5 uV per count: +-16.4 mV full scale
ACC_SCALE_G = 1.0 / 4096.0  # +-8 g
GYRO_SCALE_DPS = 0.061  # +-2000 deg/s

EMG_STREAM = 1
IMU_STREAM = 2


@dataclass(frozen=True)
class Signals:
    """Physical signals a virtual wearable plays back, with their ground truth.

    ``emg`` is (n, channels) in mV at ``emg_rate``; ``imu`` is (m, 6) with
    acc xyz in g then gyro xyz in deg/s at ``imu_rate`` (may be empty).
    ``truth`` is whatever the scenario knows (contractions, touchdowns...).
    """

    emg: np.ndarray
    emg_rate: float
    emg_labels: tuple[str, ...]
    imu: np.ndarray
    imu_rate: float
    truth: dict = field(default_factory=dict)
    markers: tuple[tuple[float, int, str], ...] = ()  # (time s, code, text) device markers

    @property
    def duration(self) -> float:
        d = self.emg.shape[0] / self.emg_rate
        if self.imu.size:
            d = min(d, self.imu.shape[0] / self.imu_rate)
        return d


@dataclass(frozen=True)
class Faults:
    """Faults the virtual wearable injects into what it sends."""

    bit_error_rate: float = 0.0  #: probability per sent byte of one flipped bit
    drop_rate: float = 0.0  #: probability that a data packet is never sent
    clock_drift_ppm: float = 0.0  #: device clock runs fast (+) or slow (-)
    disconnect_at: tuple[float, ...] = ()  #: device times (s) of link loss (transports act)
    #: device times (s) at which it hangs: the link stays up, but nothing is sent (samples,
    #: markers) and commands are not answered for ``stall_for`` s; then it carries on
    #: where its clock is (the samples of the hang are never sent)
    stall_at: tuple[float, ...] = ()
    stall_for: float = math.inf  #: seconds each hang lasts (inf: until the end)
    seed: int = 0


class VirtualWearable:
    """A simulated EMG + IMU wearable.

    Drive it with :meth:`receive` (framed command bytes from the host) and
    :meth:`advance` (simulated seconds elapsed); both return framed bytes to
    send back.  Streaming starts on a START command, or at once with
    ``autostart=True`` (like a serial logger that streams on power-up).
    """

    def __init__(self, signals: Signals, *, name: str = "glutebridge-sim",
                 serial: str = "SIM-0001", emg_block: int = 16, imu_block: int = 4,
                 faults: Faults | None = None, autostart: bool = False,
                 max_payload: int = 244, loop: bool = False,
                 clock_offset_us: int = 123_456_789) -> None:
        self.signals = signals
        self.name = name
        self.serial = serial
        self.emg_block = emg_block
        self.imu_block = imu_block
        self.faults = faults or Faults()
        self.max_payload = max_payload
        self.loop = loop
        self.clock_offset_us = clock_offset_us
        self.streaming = autostart
        self.time = 0.0  # seconds of playback
        self._rng = np.random.default_rng(self.faults.seed)
        self._seq = {fp.CONTROL_STREAM: 0, EMG_STREAM: 0, IMU_STREAM: 0}
        self._next = {EMG_STREAM: 0, IMU_STREAM: 0}  # next sample index to send
        self._decoder = fp.StreamDecoder()
        self._markers = sorted(signals.markers)
        self._marker_i = 0
        self.sent_packets = 0
        self.dropped_packets = 0
        self.stalled_packets = 0  # produced during a hang, never sent
        self.ignored_commands = 0  # received during a hang, never answered
        self.flipped_bits = 0
        self._emg_counts = self._quantise(signals.emg, EMG_SCALE_MV)
        self._imu_counts = np.empty((0, 6), np.int16)
        if signals.imu.size:
            scales = np.array([ACC_SCALE_G] * 3 + [GYRO_SCALE_DPS] * 3)
            self._imu_counts = self._quantise(signals.imu, scales)

    # ------------------------------------------------------------------ info
    @staticmethod
    def _quantise(x: np.ndarray, scale) -> np.ndarray:
        # Saturate like a real ADC instead of wrapping around.
        return np.clip(np.rint(np.asarray(x, float) / scale), -32768, 32767).astype("<i2")

    def device_info(self) -> fp.DeviceInfo:
        emg = fp.StreamInfo(
            EMG_STREAM, fp.PacketType.EMG_BLOCK, round(self.signals.emg_rate * 1000),
            fp.SampleFormat.INT16,
            tuple(fp.ChannelInfo(fp.ChannelKind.EMG, EMG_SCALE_MV, "mV", label)
                  for label in self.signals.emg_labels))
        streams = [emg]
        if self._imu_counts.size:
            chans = tuple(
                fp.ChannelInfo(kind, scale, unit, f"{prefix}_{axis}")
                for kind, scale, unit, prefix in (
                    (fp.ChannelKind.ACC, ACC_SCALE_G, "g", "acc"),
                    (fp.ChannelKind.GYRO, GYRO_SCALE_DPS, "deg/s", "gyro"))
                for axis in "xyz")
            streams.append(fp.StreamInfo(IMU_STREAM, fp.PacketType.IMU_BLOCK,
                                         round(self.signals.imu_rate * 1000),
                                         fp.SampleFormat.INT16, chans))
        return fp.DeviceInfo(self._next_seq(fp.CONTROL_STREAM), fp.PROTOCOL_VERSION, (1, 0, 0),
                             self.max_payload, self.name, self.serial, tuple(streams))

    @property
    def finished(self) -> bool:
        """True once every sample has been sent (never when looping)."""
        return (not self.loop and self._next[EMG_STREAM] >= self._emg_counts.shape[0]
                and self._next[IMU_STREAM] >= self._imu_counts.shape[0])

    def stalled_at(self, t: float) -> bool:
        """True while the device hangs at playback time ``t`` (``Faults.stall_at``)."""
        f = self.faults
        return any(a <= t < a + f.stall_for for a in f.stall_at)

    @property
    def stalled(self) -> bool:
        """True while the device hangs (link up, nothing sent, commands unanswered)."""
        return bool(self.faults.stall_at) and self.stalled_at(self.time)

    # -------------------------------------------------------------- commands
    def receive(self, data: bytes) -> bytes:
        """Feed host->device bytes; return the framed answers."""
        out = []
        stalled = self.stalled
        for packet in self._decoder.feed(data):
            if isinstance(packet, fp.Command):
                if stalled:
                    self.ignored_commands += 1
                    continue
                out.extend(self.handle(packet))
        return self._send(out, control=True)

    def handle(self, cmd: fp.Command) -> list[fp.Packet]:
        """Answer one command (ACK first, then any data it asked for)."""
        op = cmd.opcode
        if op == Opcode.HELLO:
            host_version = cmd.args[0] if cmd.args else 1
            if host_version < 1:
                return [self._ack(cmd, AckStatus.UNSUPPORTED, "protocol v1 is the minimum")]
            return [self.device_info()]
        if op == Opcode.START:
            self.streaming = True
            return [self._ack(cmd, AckStatus.OK)]
        if op == Opcode.STOP:
            self.streaming = False
            return [self._ack(cmd, AckStatus.OK)]
        if op == Opcode.GET_STATUS:
            return [self._ack(cmd, AckStatus.OK), self.status()]
        if op == Opcode.MARK:
            if len(cmd.args) != 2:
                return [self._ack(cmd, AckStatus.BAD_ARGUMENT, "MARK takes a u16 code")]
            (code,) = struct.unpack("<H", cmd.args)
            return [self._ack(cmd, AckStatus.OK),
                    fp.Marker(self._next_seq(fp.CONTROL_STREAM), self._t_us(self.time), code,
                              "")]
        if op in (Opcode.SET_RATE, Opcode.SET_CHANNEL_MASK):
            # Playback of recorded physiology has fixed rates and channels.
            return [self._ack(cmd, AckStatus.UNSUPPORTED, "the virtual wearable plays fixed "
                              "rates and channels")]
        return [self._ack(cmd, AckStatus.UNKNOWN_COMMAND, f"opcode {int(op)}")]

    def status(self) -> fp.Status:
        flags = fp.StatusFlags.STREAMING if self.streaming else fp.StatusFlags.NONE
        return fp.Status(self._next_seq(fp.CONTROL_STREAM), self._t_us(self.time), 3950, 87,
                         flags, 0)

    def _ack(self, cmd: fp.Command, status: AckStatus, message: str = "") -> fp.Ack:
        return fp.Ack(self._next_seq(fp.CONTROL_STREAM), cmd.seq, int(cmd.opcode), status, message)

    # ------------------------------------------------------------- streaming
    def advance(self, dt: float) -> bytes:
        """Let ``dt`` simulated seconds pass; return the framed bytes produced."""
        self.time += dt
        if not self.streaming:
            return b""
        timed: list[tuple[float, fp.Packet]] = []
        timed += self._blocks(EMG_STREAM, fp.PacketType.EMG_BLOCK, self._emg_counts,
                                self.signals.emg_rate, self.emg_block)
        if self._imu_counts.size:
            timed += self._blocks(IMU_STREAM, fp.PacketType.IMU_BLOCK, self._imu_counts,
                                    self.signals.imu_rate, self.imu_block)
        while (self._marker_i < len(self._markers)
               and self._markers[self._marker_i][0] <= self.time):
            t, code, text = self._markers[self._marker_i]
            timed.append((t, fp.Marker(self._next_seq(fp.CONTROL_STREAM), self._t_us(t), code,
                                       text)))
            self._marker_i += 1
        # Emit in time order across streams, as firmware with one queue would.
        timed.sort(key=lambda tp: tp[0])
        if self.faults.stall_at:
            kept = [tp for tp in timed if not self.stalled_at(tp[0])]
            self.stalled_packets += len(timed) - len(kept)
            timed = kept
        return self._send([p for _, p in timed], control=False)

    def _blocks(self, stream, ptype, counts, rate, block) -> list[tuple[float, fp.Packet]]:
        n_total = counts.shape[0]
        due = int(self.time * rate)  # samples whose time has come
        out = []
        while self._next[stream] + block <= due:
            i0 = self._next[stream]
            if i0 >= n_total:
                if not self.loop:
                    break
            idx = np.arange(i0, i0 + block) % n_total if self.loop else slice(i0, i0 + block)
            chunk = counts[idx]
            if chunk.shape[0] == 0:
                break
            out.append((i0 / rate, fp.SampleBlock.from_counts(
                ptype, stream, self._next_seq(stream), self._t_us(i0 / rate),
                i0 % (1 << 32), chunk)))
            self._next[stream] = i0 + chunk.shape[0]
        return out

    def _t_us(self, t: float) -> int:
        """Device clock at playback time ``t`` (drifting, offset, wrapping)."""
        drift = 1.0 + self.faults.clock_drift_ppm * 1e-6
        return int(round(self.clock_offset_us + t * drift * 1e6)) % (1 << 32)

    def _next_seq(self, stream: int) -> int:
        s = self._seq[stream]
        self._seq[stream] = (s + 1) % 65536
        return s

    def _send(self, packets: list[fp.Packet], control: bool) -> bytes:
        f = self.faults
        out = []
        for p in packets:
            if not control and f.drop_rate and self._rng.random() < f.drop_rate:
                self.dropped_packets += 1
                continue
            out.append(fp.encode(p))
            self.sent_packets += 1
        data = b"".join(out)
        if f.bit_error_rate and data:
            hits = np.nonzero(self._rng.random(len(data)) < f.bit_error_rate)[0]
            if hits.size:
                buf = bytearray(data)
                for i in hits:
                    buf[i] ^= 1 << int(self._rng.integers(8))
                self.flipped_bits += int(hits.size)
                data = bytes(buf)
        return data
