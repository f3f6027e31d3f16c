"""Lab Streaming Layer outlets: raw channels and event markers (optional extra ``pylsl``).

One LSL outlet per sample stream of each device (EMG, IMU), declared from
the first chunk with the channel labels, units and rate in the stream's XML
description, and one marker outlet carrying every session event as a JSON
string (the same objects as ``--format jsonl``, see ``docs/events.md``).
LabRecorder then records them into one XDF file next to the lab's other
streams.

Timestamps: each sample is stamped with its host time (from the device
clock fit, ``chunk.host_time + i / rate``) moved onto ``pylsl.local_clock()``.
With the default ``host_clock=time.monotonic`` the offset between the two
clocks is measured once (both are the system's monotonic clock on Linux,
so it is ~0); with ``host_clock=None`` the first item's host time is
anchored to ``local_clock()`` at its arrival (for simulated sessions whose
host clock starts at 0; the CLI uses it for ``replay`` and ``demo --speed 0``,
whose host times are the recorded or simulated ones, not now).  Lost samples are not filled: the timestamps jump
over the gap, which is how LSL consumers see missing data.

Install with ``pip install glutebridge[lsl]``; pylsl ships liblsl for glibc
>= 2.35 x86_64 (other platforms need a liblsl of their own).
"""

from __future__ import annotations

import json
import time
from typing import Callable

import numpy as np

from bridge.errors import ConfigError, GlutebridgeError
from bridge.sinks.jsonl import event_to_dict
from bridge.session import PhaseEvent
from bridge.stream import SampleChunk

__all__ = ["LslSink", "LslUnavailable", "load_pylsl"]


class LslUnavailable(GlutebridgeError, ImportError):
    """pylsl (or the liblsl it loads) is not available."""


def load_pylsl():
    """Import pylsl, or raise :class:`LslUnavailable` saying how to get it."""
    try:
        import pylsl
        pylsl.local_clock()  # loads liblsl: fails here if the shared library is missing
    except (ImportError, RuntimeError, OSError) as exc:
        raise LslUnavailable(
            f"Lab Streaming Layer output needs pylsl with a working liblsl ({exc}); "
            "install it with: pip install 'glutebridge[lsl]'") from exc
    return pylsl


def _channel_type(kind: str, unit: str, label: str) -> str:
    if kind == "emg":
        return "EMG"
    u = unit.lower()
    if u in ("g", "m/s^2", "m/s2"):
        return "Accelerometer"
    if "deg" in u or "rad" in u:
        return "Gyroscope"
    if "t" == u or "ut" in u or "gauss" in u or label.startswith("mag"):
        return "Magnetometer"
    return "Misc"


class LslSink:
    """Publish sample chunks and events of a session as LSL streams.

    ``name``: prefix of the stream names (``<name> <device> EMG``,
    ``<name> Markers``).  ``markers``: also publish events.  ``chunk_size``:
    LSL transmission chunking (0 = as pushed).  Use ``on_chunk(chunk)`` for
    every :class:`~bridge.stream.SampleChunk` and ``on_event(event)`` (or
    call the sink) for every session event; ``close()`` drops the outlets.
    """

    def __init__(self, name: str = "glutebridge", *, markers: bool = True,
                 host_clock: Callable[[], float] | None = time.monotonic,
                 chunk_size: int = 0, pylsl=None) -> None:
        if not name or not isinstance(name, str):
            raise ConfigError(f"name must be a non-empty string, got {name!r}")
        self._lsl = pylsl if pylsl is not None else load_pylsl()
        self.name = name
        self.chunk_size = int(chunk_size)
        self._offset: float | None = None
        if host_clock is not None:
            self._offset = self._lsl.local_clock() - host_clock()
        self.outlets: dict[tuple[str, int], object] = {}
        self._channels: dict[tuple[str, int], int] = {}
        self.marker_outlet = None
        self._stance_start: dict[str, float] = {}
        if markers:
            info = self._lsl.StreamInfo(f"{name} Markers", "Markers", 1, self._lsl.IRREGULAR_RATE,
                                        self._lsl.cf_string, f"{name}-markers")
            info.desc().append_child_value("schema", "glutebridge events v1 (docs/events.md)")
            self.marker_outlet = self._lsl.StreamOutlet(info)
        self.pushed_samples = 0
        self.pushed_markers = 0

    # ----------------------------------------------------------- clocks
    def lsl_time(self, host_time: float) -> float:
        """``host_time`` (s, host clock) on the ``pylsl.local_clock()`` base."""
        if self._offset is None:
            self._offset = self._lsl.local_clock() - host_time
        return host_time + self._offset

    # ----------------------------------------------------------- samples
    def _outlet(self, c: SampleChunk):
        key = (c.device, c.stream)
        out = self.outlets.get(key)
        if out is not None:
            return out
        lsl = self._lsl
        n_ch = c.samples.shape[1]
        kind = "EMG" if c.kind == "emg" else "IMU"
        info = lsl.StreamInfo(f"{self.name} {c.device} {kind}".replace("  ", " "), kind, n_ch,
                              float(c.rate), lsl.cf_float32,
                              f"{self.name}-{c.device}-{c.stream}")
        desc = info.desc()
        chans = desc.append_child("channels")
        for i in range(n_ch):
            label = c.labels[i] if i < len(c.labels) else f"ch{i}"
            unit = c.units[i] if i < len(c.units) else ""
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", unit)
            ch.append_child_value("type", _channel_type(c.kind, unit, label))
        desc.append_child("acquisition").append_child_value("manufacturer", "glutebridge")
        desc.append_child_value("device", c.device)
        desc.append_child_value("stream_id", str(c.stream))
        out = lsl.StreamOutlet(info, self.chunk_size)
        self.outlets[key] = out
        self._channels[key] = n_ch
        return out

    def on_chunk(self, chunk: SampleChunk) -> None:
        """Push one chunk (declares its outlet on first sight)."""
        outlet = self._outlet(chunk)
        n = chunk.samples.shape[0]
        if n == 0:
            return
        if chunk.samples.shape[1] != self._channels[(chunk.device, chunk.stream)]:
            raise ConfigError(f"stream {chunk.stream} of {chunk.device!r} changed from "
                              f"{self._channels[(chunk.device, chunk.stream)]} to "
                              f"{chunk.samples.shape[1]} channels; start a new LslSink")
        # The last sample's time: liblsl derives the others from the nominal rate,
        # which is exactly chunk.host_time + i / rate (and cheaper than a list).
        t_last = self.lsl_time(chunk.host_time) + (n - 1) / chunk.rate
        outlet.push_chunk(np.ascontiguousarray(chunk.samples, dtype=np.float32), t_last)
        self.pushed_samples += n

    # ------------------------------------------------------------ events
    def on_event(self, event) -> None:
        """Push one session event as a JSON marker."""
        if self.marker_outlet is None:
            return
        if isinstance(event, PhaseEvent) and event.name == "stance":
            self._stance_start[event.device] = event.time
        d = event_to_dict(event, self._stance_start.get(getattr(event, "device", None)))
        if d is None:
            return
        ht = d.get("host_time")
        stamp = self.lsl_time(ht) if isinstance(ht, float) else self._lsl.local_clock()
        self.marker_outlet.push_sample([json.dumps(d, allow_nan=False)], stamp)
        self.pushed_markers += 1

    __call__ = on_event

    def close(self) -> None:
        """Drop every outlet (consumers see the streams end)."""
        self.outlets.clear()
        self._channels.clear()
        self.marker_outlet = None
