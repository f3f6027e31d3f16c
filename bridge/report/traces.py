"""The curves behind the report's numbers: EMG envelopes and sway paths from raw streams."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

@dataclass
class EmgTrace:
    """A device's EMG envelopes for plotting, reduced to a few points per pixel."""

    time: np.ndarray  # (m,) s on the session timeline (bin centres)
    envelope: np.ndarray  # (m, channels) max of the envelope within each bin, mV
    labels: tuple[str, ...]


@dataclass
class SwayTrace:
    """Horizontal pelvis acceleration (m/s^2) over a stance's first single-leg segment."""

    leg: str
    start: float  # s on the session timeline (stance start)
    ap: np.ndarray
    ml: np.ndarray


@dataclass
class ReportTraces:
    """Curves behind the numbers, per device name: envelopes and sway paths."""

    emg: dict[str, EmgTrace] = field(default_factory=dict)
    sway: dict[str, list[SwayTrace]] = field(default_factory=dict)
    samples: dict[tuple[str, int], int] = field(default_factory=dict)  # received per stream
    rates: dict[tuple[str, int], float] = field(default_factory=dict)

    @classmethod
    def from_streams(cls, streams, results: dict | None = None, *,
                     points: int = 1500) -> "ReportTraces":
        """Build traces from :meth:`bridge.export.Collector.streams` output.

        EMG: the causal envelope of :class:`bridge.emg.EmgFilter` (lost samples
        read as 0), reduced to ``points`` bins by their maximum so no burst
        disappears.  Sway: for each stance result in ``results``, the
        tilt-corrected, 3.5 Hz low-passed AP/ML acceleration of
        :class:`bridge.balance.ImuSway` run from the phase start, cut to the
        segment the stance metrics describe (stance start to first touchdown).
        """
        from bridge.balance import ImuSway
        from bridge.emg import EmgFilter

        out = cls()
        for s in streams:
            ok = ~np.isnan(s.samples).any(axis=1)
            out.samples[(s.device, s.stream)] = int(ok.sum())
            out.rates[(s.device, s.stream)] = float(s.rate)
            if s.kind != "emg" or s.samples.shape[0] == 0 or s.device in out.emg:
                continue
            x = np.nan_to_num(s.samples, nan=0.0)
            env = EmgFilter(x.shape[1], s.rate).process(x)
            n = env.shape[0]
            bins = max(1, min(points, n))
            edges = np.linspace(0, n, bins + 1).astype(int)
            red = np.maximum.reduceat(env, edges[:-1], axis=0)
            mid = (edges[:-1] + edges[1:]) / 2.0
            out.emg[s.device] = EmgTrace((s.first_sample + mid) / s.rate, red, tuple(s.labels))
        for dev_name, dev in (results or {}).get("devices", {}).items():
            imu = next((s for s in streams if s.device == dev_name and s.kind == "imu"), None)
            if imu is None:
                continue
            for ph in dev.get("phases", []):
                for r in ph.get("stance") or []:
                    if not r or r.get("start_t") is None:
                        continue
                    a = max(int(round(ph["start"] * imu.rate)) - imu.first_sample, 0)
                    block = imu.samples[a:, :6]
                    # The stance core saw the received samples only (lost ones are not
                    # filled), and its times count those: index the same way.
                    block = block[~np.isnan(block).any(axis=1)]
                    seg0 = int(round(r["start_t"] * imu.rate))
                    seg1 = seg0 + int(round(r["time_achieved"] * imu.rate))
                    if block.shape[1] < 6 or seg1 > block.shape[0] or seg1 - seg0 < 3:
                        continue
                    apml = ImuSway(imu.rate).process(block[:seg1])[seg0:, :2]
                    if apml.shape[0] >= 3:
                        out.sway.setdefault(dev_name, []).append(
                            SwayTrace(r["leg"], ph["start"] + r["start_t"], apml[:, 0].copy(),
                                      apml[:, 1].copy()))
        return out
