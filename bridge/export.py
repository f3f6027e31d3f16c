"""Export a session to the formats labs already use: CSV, EDF+/BDF+, C3D.

Input is what a replay or live session produced: the stream items
(:class:`~bridge.stream.SampleChunk` / :class:`~bridge.stream.Gap`) gathered
by :class:`Collector`, plus the events (contractions, phases) as
annotations.  Lost samples are never bridged silently: CSV leaves the cells
empty, EDF/BDF/C3D (which cannot hold NaN) store 0 there and carry a
``gap: N samples lost`` annotation.

EDF+/BDF+ need ``pyedflib`` (``pip install glutebridge[export]``); C3D needs
``ezc3d`` (``pip install glutebridge[c3d]``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bridge.errors import ConfigError, GlutebridgeError
from bridge.stream import Gap, SampleChunk


@dataclass
class StreamData:
    """One stream's samples on one array, NaN where samples were lost."""

    device: str
    stream: int
    kind: str
    labels: tuple[str, ...]
    units: tuple[str, ...]
    rate: float
    first_sample: int
    samples: np.ndarray  # (n, channels) float64, NaN in gaps

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.rate


@dataclass(frozen=True)
class Annotation:
    onset: float  # s on the session timeline
    duration: float
    text: str


@dataclass
class Collector:
    """Gather stream items into whole arrays (call :meth:`add` per item)."""

    _chunks: dict = field(default_factory=dict)
    _meta: dict = field(default_factory=dict)
    gaps: list = field(default_factory=list)

    def add(self, item) -> None:
        if isinstance(item, SampleChunk):
            key = (item.device, item.stream)
            self._chunks.setdefault(key, []).append((item.first_sample, item.samples))
            self._meta.setdefault(key, item)
        elif isinstance(item, Gap):
            self.gaps.append(item)

    def streams(self) -> list[StreamData]:
        out = []
        for key, chunks in sorted(self._chunks.items()):
            m = self._meta[key]
            start = min(f for f, _ in chunks)
            end = max(f + s.shape[0] for f, s in chunks)
            arr = np.full((end - start, len(m.labels)), np.nan)
            for f, s in chunks:
                arr[f - start:f - start + s.shape[0]] = s
            out.append(StreamData(m.device, m.stream, m.kind, m.labels, m.units, m.rate, start,
                                  arr))
        return out


def annotations_from(session, collector: Collector | None = None) -> list[Annotation]:
    """Contractions, phases and gaps of a session as timed annotations."""
    out = []
    for c in session.contractions():
        name = session.channel_names().get(c.channel, str(c.channel))
        out.append(Annotation(c.onset, c.duration, f"contraction {name}"))
    for dev in session.devices.values():
        for ph in dev.phases:
            end = ph.end if ph.end is not None else ph.start
            label = f"phase {ph.name}" + (f":{ph.arg}" if ph.arg else "")
            out.append(Annotation(ph.start, max(0.0, end - ph.start), label))
    if collector is not None:
        rates = {(s.device, s.stream): s.rate for s in collector.streams()}
        for g in collector.gaps:
            rate = rates.get((g.device, g.stream))
            if rate:
                out.append(Annotation(g.first_sample / rate, g.n_samples / rate,
                                      f"gap: {g.n_samples} samples lost ({g.reason})"))
    return sorted(out, key=lambda a: a.onset)


# ---------------------------------------------------------------------- CSV
def to_csv(streams: list[StreamData], annotations: list[Annotation], out_dir, *,
           overwrite: bool = True) -> list[Path]:
    """One CSV per stream (``time_s`` + one column per channel, empty = lost) + events.csv.

    ``overwrite=False``: if any of these files exists, raise :class:`ConfigError` and
    write none of them.
    """
    out_dir = Path(out_dir)
    paths = [out_dir / f"{_safe(s.device)}_{s.kind}{s.stream}.csv" for s in streams]
    if not overwrite:
        there = [p.name for p in paths + [out_dir / "events.csv"] if p.exists()]
        if there:
            raise ConfigError(f"{out_dir} already holds {', '.join(there)}; pass --force to "
                              "overwrite, or choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for s, path in zip(streams, paths):
        t = (s.first_sample + np.arange(s.samples.shape[0])) / s.rate
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["time_s"] + [f"{lab} [{u}]" for lab, u in zip(s.labels, s.units)])
            body = np.column_stack([np.char.mod("%.6f", t).astype(object),
                                    _sample_text(s.samples)])
            w.writerows(body.tolist())
        written.append(path)
    path = out_dir / "events.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["onset_s", "duration_s", "event"])
        for a in annotations:
            w.writerow([f"{a.onset:.6f}", f"{a.duration:.6f}", a.text])
    written.append(path)
    return written


#: Samples are device counts x the announced float32 scale (EMG: 0.0005 mV per count):
#: 7 significant digits hold every such value to far below one count (a float32 has
#: 7-8), so ``round(value / scale)`` gives the count back, without the 17 digits of
#: noise a float64 repr adds (``0.05600000265985727`` for 112 counts of 0.0005 mV).
SAMPLE_FORMAT = "%.7g"


def _sample_text(samples: np.ndarray) -> np.ndarray:
    """The CSV cells of ``samples``: SAMPLE_FORMAT, empty where lost (NaN)."""
    text = np.char.mod(SAMPLE_FORMAT, np.nan_to_num(samples)).astype(object)
    text[np.isnan(samples)] = ""
    return text


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "device"


# ----------------------------------------------------------------- EDF/BDF
def to_edf(streams: list[StreamData], annotations: list[Annotation], path,
           bdf: bool = False) -> Path:
    """EDF+ (16-bit) or BDF+ (24-bit) with every stream and the annotations.

    Data records last 1 s, so every rate must be a whole number of Hz.  The
    physical range of each channel is its data range (with a margin), so no
    sample is clipped; lost samples are written as 0 and annotated.
    """
    try:
        import pyedflib
    except ImportError as exc:
        raise GlutebridgeError("EDF/BDF export needs pyedflib: pip install "
                               "'glutebridge[export]'") from exc
    if not streams:
        raise ConfigError("nothing to export: the session has no samples")
    headers, data = [], []
    duration = max(s.first_sample / s.rate + s.duration for s in streams)
    n_records = int(np.ceil(duration))
    digital = (-8388608, 8388607) if bdf else (-32768, 32767)
    for s in streams:
        if abs(s.rate - round(s.rate)) > 1e-9:
            raise ConfigError(f"stream {s.stream} runs at {s.rate} Hz; EDF needs whole Hz")
        rate = int(round(s.rate))
        total = n_records * rate
        for c, (label, unit) in enumerate(zip(s.labels, s.units)):
            x = np.zeros(total)
            col = s.samples[:, c]
            col = np.where(np.isnan(col), 0.0, col)
            x[s.first_sample:s.first_sample + len(col)] = col[:total - s.first_sample]
            lo, hi = float(x.min()), float(x.max())
            span = max(hi - lo, 1e-6)
            headers.append({"label": label[:16], "dimension": unit[:8],
                            "sample_frequency": rate,
                            "physical_min": _edf_bound(lo - 0.01 * span, up=False),
                            "physical_max": _edf_bound(hi + 0.01 * span, up=True),
                            "digital_min": digital[0], "digital_max": digital[1],
                            "transducer": f"{s.kind} {s.device}"[:80], "prefilter": ""})
            data.append(x)
    path = Path(path)
    ftype = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    writer = pyedflib.EdfWriter(str(path), len(headers), file_type=ftype)
    try:
        writer.setSignalHeaders(headers)
        writer.setEquipment("glutebridge")
        for a in annotations:
            writer.writeAnnotation(a.onset, a.duration if a.duration > 0 else -1, a.text)
        writer.writeSamples(data)
    finally:
        writer.close()
    return path


def _edf_bound(v: float, up: bool) -> float:
    """Round outward to a value EDF's 8-character header field holds exactly."""
    import math

    for decimals in range(6, -1, -1):
        q = 10.0 ** decimals
        r = (math.ceil(v * q) if up else math.floor(v * q)) / q
        if len(f"{r:.{decimals}f}".rstrip("0").rstrip(".")) <= 8:
            return r
    raise ConfigError(f"value {v} is too large for an EDF header")


# ---------------------------------------------------------------------- C3D
def to_c3d(streams: list[StreamData], annotations: list[Annotation], path) -> Path:
    """C3D with every channel as an analog at the fastest rate.

    C3D has one analog rate, a whole multiple of the (here empty) point rate;
    slower streams are held (zero-order hold) up to it, and the ANALOG
    DESCRIPTIONS say so.  Annotations become C3D events.
    """
    try:
        import ezc3d
    except ImportError as exc:
        raise GlutebridgeError("C3D export needs ezc3d: pip install 'glutebridge[c3d]'") from exc
    if not streams:
        raise ConfigError("nothing to export: the session has no samples")
    rate = max(s.rate for s in streams)
    point_rate = min(s.rate for s in streams)
    if abs(rate / point_rate - round(rate / point_rate)) > 1e-9:
        raise ConfigError("C3D needs rates that are whole multiples of each other")
    n = int(np.ceil(max((s.first_sample + s.samples.shape[0]) / s.rate for s in streams) * rate))
    labels, descs, units, cols = [], [], [], []
    for s in streams:
        factor = int(round(rate / s.rate))
        for c, (label, unit) in enumerate(zip(s.labels, s.units)):
            col = np.where(np.isnan(s.samples[:, c]), 0.0, s.samples[:, c])
            x = np.zeros(n)
            up = np.repeat(col, factor)
            start = s.first_sample * factor
            x[start:start + len(up)] = up[:n - start]
            labels.append(label)
            units.append(unit)
            descs.append(f"{s.kind} {s.device}" + (f" held from {s.rate:g} Hz" if factor > 1
                                                    else ""))
            cols.append(x)
    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [point_rate]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = ()
    c3d["parameters"]["ANALOG"]["RATE"]["value"] = [rate]
    c3d["parameters"]["ANALOG"]["LABELS"]["value"] = tuple(labels)
    c3d["parameters"]["ANALOG"]["DESCRIPTIONS"]["value"] = tuple(descs)
    c3d["parameters"]["ANALOG"]["UNITS"]["value"] = tuple(units)
    frames = n // int(round(rate / point_rate))
    analogs = np.array(cols)[:, : frames * int(round(rate / point_rate))]
    c3d["data"]["points"] = np.zeros((4, 0, frames))  # no markers, but C3D counts frames here
    c3d["data"]["analogs"] = analogs[np.newaxis, :, :]
    for a in annotations:
        minutes, seconds = divmod(a.onset, 60.0)
        c3d.add_event([int(minutes), float(seconds)], context="General", label=a.text[:32],
                      description=a.text)
    path = Path(path)
    c3d.write(str(path))
    return path
