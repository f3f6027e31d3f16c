"""Self-contained HTML report of a session: the results tree, plotted and tabled.

The report renders :func:`bridge.results.session_results` -- the same tree
``glutebridge analyze`` prints as JSON -- and never recomputes the
analytics, so its numbers are the analyze numbers.  Every number taken from
the tree is written as ``<span class="num" data-path='[...]' data-scale=..>``
(its JSON path and the unit scale used for display), so tests and curious
users can trace each figure back to the JSON.  The only figures not from the
tree are the norm grades (``bridge.balance.grade_stance`` applied to the
stance results) and the plot geometry.

Plots are inline SVG drawn here (no matplotlib, no JavaScript, no network):
activation timeline per muscle (envelope, contraction shading, onsets and
offsets, phases, gaps), onset latencies, left/right bars, hold bars, fatigue
trend, and the sway path with its 95 % prediction ellipse per leg.  The
envelope and sway curves need the raw streams: pass :class:`ReportTraces`
(built from a :class:`bridge.export.Collector`); without them the timeline
shows the detected contractions only.

    results = session_results(session)
    traces = ReportTraces.from_streams(collector.streams(), results)
    write_report("report.html", results, traces, title="Client 12, week 3")
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import stats as _stats

from bridge.analytics.symmetry import BALANCED_LSI
from bridge.errors import ConfigError
from bridge.results import CUT_NOTE

__all__ = ["ReportTraces", "EmgTrace", "SwayTrace", "render_report", "write_report"]

_MUSCLE_WORDS = {"glute_max": "glute max", "glute_med": "glute med", "hamstring": "hamstring",
                 "erector": "lumbar erector"}
_PHASE_WORDS = {"rest": "rest", "reps": "reps", "hold": "hold", "stance": "single-leg stance",
                "mvc": "MVC"}


# ------------------------------------------------------------------- traces
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


# ---------------------------------------------------------- number provenance
class _Node:
    """A value of the results tree with its path, so every printed number is traceable."""

    __slots__ = ("value", "path")

    def __init__(self, value, path: tuple = ()):
        self.value = value
        self.path = path

    def __getitem__(self, key) -> "_Node":
        return _Node(self.value[key], self.path + (key,))

    def get(self, key) -> "_Node":
        v = self.value.get(key) if isinstance(self.value, dict) else None
        return _Node(v, self.path + (key,))

    def items(self):
        return [(k, self[k]) for k in self.value] if isinstance(self.value, dict) else []

    def list(self):
        return ([self[i] for i in range(len(self.value))]
                if isinstance(self.value, (list, tuple)) else [])

    def num(self, digits: int = 2, scale: float = 1.0, unit: str = "", sign: bool = False) -> str:
        v = self.value
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) \
                or not math.isfinite(v):
            return '<span class="na">n/a</span>'
        text = f"{v * scale:+.{digits}f}" if sign else f"{v * scale:.{digits}f}"
        path = escape(json.dumps(list(self.path)), quote=True)
        return (f'<span class="num" data-path="{path}" data-scale="{scale:g}">{text}</span>'
                + (f"&#8201;{unit}" if unit else ""))

    def ms(self, sign: bool = False, scale: float = 1000.0) -> str:
        return self.num(0, scale, "ms", sign)


def _e(x) -> str:
    return escape(str(x))


#: Metric keys of the results in words (report text must not show JSON keys).
_METRIC_WORDS = {"mean": "mean amplitude", "peak": "peak amplitude", "pct_mvc": "%MVC",
                 "time_under_tension": "time under tension"}


def _metric(key: str) -> str:
    return _METRIC_WORDS.get(key, str(key).replace("_", " "))


def _muscle(name: str) -> str:
    base, _, side = str(name).rpartition("_")
    if side in ("L", "R") and base:
        return f"{_MUSCLE_WORDS.get(base, base.replace('_', ' '))} {side}"
    return str(name).replace("_", " ")


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    h = "".join(f"<th>{c}</th>" for c in head)
    b = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>'


# --------------------------------------------------------------------- SVG
def _ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt_tick(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:g}"


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{_e(label)}">'
            f"{body}</svg>")


def _polyline(xs, ys, cls: str) -> str:
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    return f'<polyline class="{cls}" points="{pts}"/>'


def _timeline_svg(dev: _Node, trace: EmgTrace | None, rates: dict) -> str:
    """Stacked rows, one per muscle: phases, envelope, activation shading, onsets/offsets."""
    names = {int(k): v for k, v in (dev.value.get("channels") or {}).items()}
    contractions = dev.value.get("contractions") or []
    phases = dev.value.get("phases") or []
    if not names:
        names = {c["channel"]: c.get("muscle") or str(c["channel"]) for c in contractions}
    if not names:
        return '<p class="note">No EMG channels in this session.</p>'
    t_end = max([c["offset"] for c in contractions] + [p["end"] or p["start"] for p in phases]
                + ([float(trace.time[-1])] if trace is not None and trace.time.size else [])
                + [1.0])
    t0 = min([0.0] + [p["start"] for p in phases])
    W, left, right, row, top = 1100, 118, 12, 48, 22
    H = top + row * len(names) + 26
    sx = lambda t: left + (t - t0) / (t_end - t0) * (W - left - right)  # noqa: E731
    parts = []
    for p in phases:  # phase bands behind everything, labelled on top
        x0, x1 = sx(p["start"]), sx(p["end"] if p["end"] is not None else t_end)
        cls = f"phase-{p['phase']}" if p["phase"] in _PHASE_WORDS else "phase-other"
        parts.append(f'<rect class="{cls}" x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 0):.1f}" '
                     f'height="{row * len(names)}"/>')
        label = _PHASE_WORDS.get(p["phase"], p["phase"]) + (f" {p['arg']}" if p["arg"] else "")
        if x1 - x0 < 6.2 * len(label):  # no room: the band's tooltip still names it
            label = label.split(" ")[0] if x1 - x0 >= 6.2 * len(label.split(" ")[0]) else ""
        parts.append(f'<text x="{x0 + 3:.1f}" y="{top - 6}">{_e(label)}</text>')
    for t in _ticks(t0, t_end, 12):
        parts.append(f'<line class="grid" x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top}" '
                     f'y2="{top + row * len(names)}"/>')
        parts.append(f'<text x="{sx(t):.1f}" y="{H - 8}" text-anchor="middle">'
                     f"{_fmt_tick(t)}</text>")
    parts.append(f'<text x="{left - 8}" y="{H - 8}" text-anchor="end">time (s)</text>')
    for g in dev.value.get("gaps") or []:
        rate = rates.get((dev.path[-1], g["stream"]))
        if rate:
            x0 = sx(g["first_sample"] / rate)
            w = max(g["n_samples"] / rate / (t_end - t0) * (W - left - right), 1.0)
            parts.append(f'<rect class="gap" x="{x0:.1f}" y="{top}" width="{w:.1f}" '
                         f'height="{row * len(names)}"><title>{g["n_samples"]} samples '
                         f'{_e(g["reason"])}</title></rect>')
    all_peak = max([c["peak"] for c in contractions] + [0.0])
    for i, (ch, name) in enumerate(sorted(names.items())):
        y0 = top + i * row
        base = y0 + row - 6
        mine = [c for c in contractions if c["channel"] == ch]
        env = None
        if trace is not None and ch < trace.envelope.shape[1]:
            env = trace.envelope[:, ch]
        # Own scale per row, but never so small that a silent muscle's noise fills its row:
        # at least 30 % of the strongest contraction, and 8x the row's median envelope (its
        # rest level; contractions are usually >10x rest), so rest looks like rest.
        floor = [8.0 * float(np.median(env))] if env is not None and env.size else []
        peak = max([c["peak"] for c in mine] + [0.3 * all_peak] + floor + [1e-9])
        sy = lambda v: base - min(v / peak, 1.15) * (row - 12)  # noqa: E731
        parts.append(f'<line class="axis" x1="{left}" x2="{W - right}" y1="{base}" y2="{base}"/>')
        parts.append(f'<text x="{left - 8}" y="{y0 + row / 2 + 4:.1f}" text-anchor="end">'
                     f"{_e(_muscle(name))}</text>")
        for c in mine:
            x0, x1 = sx(c["onset"]), sx(c["offset"])
            parts.append(f'<rect class="act" x="{x0:.1f}" y="{y0 + 4}" width="{max(x1 - x0, 1):.1f}"'
                         f' height="{row - 10}"><title>{_e(name)} {c["onset"]:.3f}-'
                         f'{c["offset"]:.3f} s</title></rect>')
            parts.append(f'<line class="onset" x1="{x0:.1f}" x2="{x0:.1f}" y1="{y0 + 2}" '
                         f'y2="{base}"/>')
            parts.append(f'<line class="offset" x1="{x1:.1f}" x2="{x1:.1f}" y1="{y0 + 2}" '
                         f'y2="{base}"/>')
        if env is not None and env.size:
            parts.append(_polyline([sx(t) for t in trace.time], [sy(v) for v in env], "env"))
    legend = ("green band: contraction (solid green line onset, dashed grey offset); "
              + ("black: EMG envelope; " if trace is not None else "")
              + "red: lost samples; background: protocol phase")
    return (_svg(W, H, "".join(parts), "activation timeline per muscle")
            + f'<p class="note">{legend}. Time on the session timeline.</p>')


def _bars_svg(rows: list[tuple[str, list[tuple[float | None, str]]]], unit: str,
              label: str, target: float | None = None) -> str:
    """Horizontal grouped bars: [(row label, [(value, css class), ...]), ...]."""
    vals = [v for _, bs in rows for v, _ in bs if v is not None and math.isfinite(v)]
    hi = max(vals + ([target] if target else []) + [1e-9]) * 1.08
    W, left, right, bh = 620, 150, 40, 13
    H = 12 + sum(len(bs) * bh + 10 for _, bs in rows) + 24
    sx = lambda v: left + v / hi * (W - left - right)  # noqa: E731
    parts, y = [], 10
    for t in _ticks(0, hi, 5):
        parts.append(f'<line class="grid" x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="6" '
                     f'y2="{H - 22}"/><text x="{sx(t):.1f}" y="{H - 8}" text-anchor="middle">'
                     f"{_fmt_tick(t)}</text>")
    parts.append(f'<text x="{left - 8}" y="{H - 8}" text-anchor="end">{_e(unit)}</text>')
    if target:
        parts.append(f'<line class="trend" x1="{sx(target):.1f}" x2="{sx(target):.1f}" y1="6" '
                     f'y2="{H - 22}"/>')
    for name, bs in rows:
        parts.append(f'<text x="{left - 8}" y="{y + len(bs) * bh / 2 + 4:.1f}" '
                     f'text-anchor="end">{_e(name)}</text>')
        for v, cls in bs:
            if v is not None and math.isfinite(v):
                parts.append(f'<rect class="{cls}" x="{left}" y="{y}" height="{bh - 2}" '
                             f'width="{max(sx(v) - left, 0.5):.1f}"/>')
            y += bh
        y += 10
    return _svg(W, H, "".join(parts), label)


def _latency_svg(firing: dict) -> str:
    """Onset of each muscle relative to the reference, per rep (dots) and median (bar)."""
    ref = firing["reference"]
    muscles = [m for m in firing["muscles"] if m != ref]
    lat = firing.get("latency") or {}
    vals = [r["latencies"][m] * 1000 for r in firing["reps"] for m in muscles
            if r["latencies"].get(m) is not None]
    if not vals:
        return ""
    lo, hi = min(vals + [0.0]) - 20, max(vals + [0.0]) + 20
    W, left, right, rh = 620, 150, 20, 26
    H = 16 + rh * len(muscles) + 24
    sx = lambda v: left + (v - lo) / (hi - lo) * (W - left - right)  # noqa: E731
    parts = []
    for t in _ticks(lo, hi, 6):
        parts.append(f'<line class="grid" x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="8" '
                     f'y2="{H - 22}"/><text x="{sx(t):.1f}" y="{H - 8}" text-anchor="middle">'
                     f"{_fmt_tick(t)}</text>")
    near_right = sx(0) > W * 0.6
    parts.append(f'<line class="axis" x1="{sx(0):.1f}" x2="{sx(0):.1f}" y1="4" y2="{H - 22}"/>'
                 f'<text x="{sx(0) + (-4 if near_right else 4):.1f}" y="12" '
                 f'text-anchor="{"end" if near_right else "start"}">{_e(_muscle(ref))} onset</text>'
                 f'<text x="{left - 8}" y="{H - 8}" text-anchor="end">ms</text>')
    for i, m in enumerate(muscles):
        y = 20 + i * rh
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{_e(_muscle(m))}</text>')
        med = (lat.get(m) or {}).get("median")
        if med is not None:
            x0, x1 = sorted((sx(0), sx(med * 1000)))
            parts.append(f'<rect class="{"left" if m.endswith("_L") else "right"}" '
                         f'fill-opacity=".35" x="{x0:.1f}" y="{y - 7}" width="{x1 - x0:.1f}" '
                         f'height="14"/>')
        for r in firing["reps"]:
            v = r["latencies"].get(m)
            if v is not None:
                parts.append(f'<circle class="dot" cx="{sx(v * 1000):.1f}" cy="{y}" r="3"/>')
    return (_svg(W, H, "".join(parts), "onset latencies")
            + '<p class="note">Negative: the muscle fires before the reference. '
              "Dots: single reps; bar: median.</p>")


def _ellipse_axes(ap: np.ndarray, ml: np.ndarray, p: float = 0.95):
    """Centre, semi-axes and angle of the p prediction ellipse (F distribution)."""
    n = ap.size
    cov = np.cov(np.vstack([ml, ap]), ddof=1)
    k = _stats.f.ppf(p, 2, n - 2) * 2.0 * (n - 1) * (n + 1) / (n * (n - 2))
    w, v = np.linalg.eigh(cov)
    w = np.clip(w, 0, None)
    a, b = np.sqrt(w[::-1] * k)
    angle = math.degrees(math.atan2(v[1, 1], v[0, 1]))
    return (float(ml.mean()), float(ap.mean())), float(a), float(b), angle


def _sway_limit(tr: SwayTrace) -> float:
    """Half-width (m/s^2) that shows the bulk of a sway path and its whole ellipse."""
    ml, ap = tr.ml - tr.ml.mean(), tr.ap - tr.ap.mean()
    _, a, b, _ = _ellipse_axes(ap, ml)
    # A weight-shift transient may overshoot the 99th percentile; it is clipped.
    return max(float(np.percentile(np.hypot(ap, ml), 99)) * 1.3, a * 1.1, b * 1.1, 1e-6)


def _sway_svg(tr: SwayTrace, lim: float | None = None) -> str:
    """Pelvis acceleration path (ML right, AP up) with its 95 % prediction ellipse.

    ``lim``: the half-width of the plot; the legs of one report share one so that they can
    be compared by eye (a smaller ellipse must mean a steadier leg).
    """
    ml, ap = tr.ml - tr.ml.mean(), tr.ap - tr.ap.mean()
    (cx, cy), a, b, ang = _ellipse_axes(ap, ml)
    lim = _sway_limit(tr) if lim is None else lim
    S, pad = 300, 34
    s = lambda v: (v + lim) / (2 * lim) * (S - 2 * pad) + pad  # noqa: E731
    cid = f"clip{abs(hash((tr.leg, tr.start))) % 10**8}"
    parts = [f'<clipPath id="{cid}"><rect x="{pad}" y="{pad}" width="{S - 2 * pad}" '
             f'height="{S - 2 * pad}"/></clipPath>',
             f'<rect x="{pad}" y="{pad}" width="{S - 2 * pad}" height="{S - 2 * pad}" '
             f'fill="none" class="axis"/>',
             f'<line class="grid" x1="{s(0):.1f}" x2="{s(0):.1f}" y1="{pad}" y2="{S - pad}"/>',
             f'<line class="grid" y1="{s(0):.1f}" y2="{s(0):.1f}" x1="{pad}" x2="{S - pad}"/>']
    step = max(1, ml.size // 1500)
    parts.append(f'<g clip-path="url(#{cid})">'
                 + _polyline([s(x) for x in ml[::step]], [S - s(y) for y in ap[::step]], "path")
                 + "</g>")
    k = (S - 2 * pad) / (2 * lim)
    parts.append(f'<ellipse class="ellipse" cx="{s(cx):.1f}" cy="{S - s(cy):.1f}" '
                 f'rx="{a * k:.1f}" ry="{b * k:.1f}" '
                 f'transform="rotate({-ang:.1f} {s(cx):.1f} {S - s(cy):.1f})"/>')
    parts.append(f'<text x="{S / 2}" y="{S - 8}" text-anchor="middle">ML (m/s&#178;), '
                 f'&#177;{lim:.2f}</text>')
    parts.append(f'<text x="12" y="{S / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {S / 2})">AP (m/s&#178;)</text>')
    parts.append(f'<text x="{pad}" y="{pad - 10}">{_e(tr.leg)} leg</text>')
    return _svg(S, S, "".join(parts), f"sway path, {tr.leg} leg")


def _fatigue_svg(fat: dict) -> str:
    segs = [s for s in fat.get("segments") or [] if s.get("mdf") is not None]
    if len(segs) < 2:
        return ""
    xs = [s["index"] for s in segs]
    ys = [s["mdf"] for s in segs]
    lo, hi = min(ys) * 0.95, max(ys) * 1.05
    W, H, left, pad = 420, 170, 46, 20
    sx = lambda i: left + (i - min(xs)) / max(max(xs) - min(xs), 1) * (W - left - pad)  # noqa
    sy = lambda v: H - 26 - (v - lo) / max(hi - lo, 1e-9) * (H - 26 - pad)  # noqa: E731
    parts = [f'<line class="axis" x1="{left}" x2="{W - pad}" y1="{H - 26}" y2="{H - 26}"/>']
    for t in _ticks(lo, hi, 4):
        parts.append(f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">'
                     f"{_fmt_tick(round(t, 1))}</text>")
    for x, y in zip(xs, ys):
        parts.append(f'<circle class="dot" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3"/>')
    tr = fat.get("mdf_per_index") or {}
    if tr.get("slope") is not None:
        f = lambda i: tr["slope"] * i + tr["intercept"]  # noqa: E731
        parts.append(_polyline([sx(xs[0]), sx(xs[-1])], [sy(f(xs[0])), sy(f(xs[-1]))], "trend"))
    parts.append(f'<text x="{W - pad}" y="{H - 8}" text-anchor="end">rep / window</text>'
                 f'<text x="{left}" y="12">MDF (Hz)</text>')
    return _svg(W, H, "".join(parts), "median frequency per rep")


# ---------------------------------------------------------------- sections
def _side_word(side: str) -> str:
    return {"left": "Left", "right": "Right"}.get(side, side)


def _firing_section(reps: list[tuple[_Node, _Node]]) -> tuple[str, list[str]]:
    html, findings = [], []
    for ph, summ in reps:
        for side in ("left", "right"):
            sd = summ.get(side)
            if sd.value is None or sd.value.get("firing") is None:
                continue
            f = sd["firing"]
            ref = f.value["reference"]
            html.append(f"<h3>{_side_word(side)} side &#8212; {_e(ph.value.get('arg') or 'reps')} "
                        f"(reference: {_e(_muscle(ref))})</h3>")
            order = " &#8594; ".join(_e(_muscle(m)) for m in f.value.get("dominant_order") or [])
            html.append(f"<p>Usual firing order: <b>{order or 'n/a'}</b> in "
                        f"{f.get('dominant_count').num(0)} of {f.get('n_reps').num(0)} reps.</p>")
            rows = []
            for m, lat in f.get("latency").items():
                rows.append([_e(_muscle(m)), lat.get("n").num(0), lat.get("median").ms(True),
                             lat.get("mean").ms(True), lat.get("minimum").ms(True),
                             lat.get("maximum").ms(True), lat.get("n_before").num(0)])
                med = lat.value.get("median")
                if med is not None:
                    # latency = onset(muscle) - onset(reference): the reference is late by -med
                    word = "after" if med < 0 else "before"
                    findings.append(
                        f"{_side_word(side)}: {_e(_muscle(ref))} fires "
                        f"{lat.get('median').ms(scale=-1000.0 if med < 0 else 1000.0)} {word} "
                        f"{_e(_muscle(m))} (median of {lat.get('n').num(0)} reps)")
            html.append(_table(["muscle", "reps", f"median vs {_e(_muscle(ref))}", "mean",
                                "min", "max", "fired first"], rows))
            html.append(_latency_svg(f.value))
            per_rep = []
            for r in f.get("reps").list():
                per_rep.append([r.get("index").num(0)]
                               + [r.get("onsets").get(m).num(3) for m in f.value["muscles"]]
                               + [" &#8594; ".join(_e(_muscle(x)) for x in r.value["order"])])
            html.append("<details><summary>onsets per rep</summary>"
                        + _table(["rep"] + [f"{_e(_muscle(m))} (s)" for m in f.value["muscles"]]
                                 + ["order"], per_rep) + "</details>")
            for rt in sd.get("ratios").list():
                metric = _metric(rt.value["metric"])
                html.append(f"<p>Activation ratio {_e(_muscle(rt.value['numerator']))} / "
                            f"{_e(_muscle(rt.value['denominator']))} ({_e(metric)}): "
                            f"<b>{rt.get('ratio').num(2)}</b> (median per rep "
                            f"{rt.get('median_per_rep').num(2)}); above 1 the "
                            f"{_e(_muscle(rt.value['numerator']))} does more of the work.</p>")
    if not html:
        return ('<p class="note">No rep phase with at least two muscles per side: firing order '
                "not available.</p>", findings)
    return "".join(html), findings


def _lsi_verdict(lsi: float | None) -> str:
    """Judged against the usual clinical line (``BALANCED_LSI``)."""
    if lsi is None:
        return ""
    line = f"{BALANCED_LSI:.0f}%"
    return f"; LSI {lsi:.0f}%, " + (f"balanced (at least {line})" if lsi >= BALANCED_LSI
                                   else f"under {line}")


def _symmetry_section(reps) -> tuple[str, list[str]]:
    html, findings = [], []
    for ph, summ in reps:
        sym = summ.get("symmetry").list()
        if not sym:
            continue
        rows, bars = [], []
        for s in sym:
            for metric, mv in s.get("metrics").items():
                if mv.value.get("left") is None and mv.value.get("right") is None:
                    continue
                unit = {"peak": "mV", "mean": "mV", "pct_mvc": "%MVC", "duration": "s",
                        "count": "", "time_under_tension": "s"}.get(metric, "")
                d = 0 if metric == "count" else 3 if unit == "mV" else 1
                rows.append([_e(s.value["muscle"].replace("_", " ")),
                             # "%MVC" is its own unit; others: "peak (mV)", "duration (s)"
                             _e(metric.replace("_", " ") if metric != "pct_mvc" else "%MVC")
                             + (f" ({unit})" if unit and metric != "pct_mvc" else ""),
                             mv.get("left").num(d), mv.get("right").num(d),
                             mv.get("si").num(1, sign=True), mv.get("lsi").num(0)])
            mean = s.get("metrics").get("mean")
            if mean.value:
                bars.append((s.value["muscle"].replace("_", " "),
                             [(mean.value.get("left"), "left"), (mean.value.get("right"), "right")]))
                if mean.value.get("si") is not None:
                    findings.append(f"{_e(s.value['muscle'].replace('_', ' '))}: mean activation "
                                    f"left {mean.get('left').num(3, unit='mV')}, right "
                                    f"{mean.get('right').num(3, unit='mV')} (symmetry index "
                                    f"{mean.get('si').num(1, sign=True)}%"
                                    + _lsi_verdict(mean.value.get("lsi")) + ")")
        html.append(f"<h3>{_e(ph.value.get('arg') or 'reps')}</h3>")
        html.append(_table(["muscle", "metric", "left", "right", "SI (%)", "LSI (%)"], rows))
        if bars:
            html.append(_bars_svg(bars, "mV", "mean activation left vs right")
                        + '<p class="note">Blue: left, orange: right. SI = (L - R) / ((L + R) / 2)'
                          " x 100; LSI = weaker / stronger x 100.</p>")
    if not html:
        return '<p class="note">No paired left/right muscles with reps.</p>', findings
    return "".join(html), findings


def _reps_section(reps) -> str:
    """Reps per muscle, as the terminal summary counts them (cut-off reps counted, flagged,
    left out of the mean duration)."""
    html, cut_any = [], False
    for ph, summ in reps:
        rows = []
        for m in summ.get("muscles").list():
            r = m.get("reps")
            cut = r.value.get("n_partial") or 0
            cut_any = cut_any or bool(cut)
            rows.append([_e(_muscle(m.value["name"])), r.get("n_reps").num(0),
                         r.get("n_partial").num(0),
                         r.get("n_sets").num(0), r.get("mean_duration").num(2)])
        if rows:
            html.append(f"<h3>{_e(ph.value.get('arg') or 'reps')}</h3>"
                        + _table(["muscle", "reps", "cut off", "sets", "mean duration (s)"],
                                 rows))
    if not html:
        return '<p class="note">No reps phase in this session.</p>'
    if cut_any:
        html.append(f'<p class="note">{_e(CUT_NOTE[0].upper() + CUT_NOTE[1:])}.</p>')
    return "".join(html)


def _mvc_section(dev: _Node, reps) -> str:
    rows = []
    for ph, summ in reps:
        for m in summ.get("muscles").list():
            sets = m.get("reps").get("sets").list()
            for st in sets:
                if st.value.get("mean_pct_mvc") is not None:
                    rows.append([_e(_muscle(m.value["name"])), st.get("index").num(0),
                                 st.get("mean_pct_mvc").num(1)])
    n_mvc = sum(1 for c in dev.value.get("contractions") or [] if c.get("pct_mvc") is not None)
    if not rows and not n_mvc:
        return ('<p class="note">No MVC calibration in this session: %MVC not available '
                "(run <code>glutebridge calibrate</code> first).</p>")
    html = ""
    if rows:
        html += _table(["muscle", "set", "mean %MVC"], rows)
    html += f'<p class="note">{n_mvc} contractions carry a %MVC value (table below).</p>'
    return html


def _fatigue_reading(trend: dict, change: float | None) -> str:
    """What the MDF trend says, in words: a falling MDF is the usual sign of fatigue, but a
    2 s rep's MDF is only good to ~5 %, so a weak fit or a small change is no trend."""
    slope, r2 = trend.get("slope"), trend.get("r2")
    if slope is None or change is None or r2 is None:
        return "Too few reps for a trend."
    if r2 < 0.5 or abs(change) < 5:
        return "No clear trend (a falling MDF with a good fit would suggest fatigue)."
    if slope < 0:
        return "MDF falls steadily over the set: consistent with muscle fatigue."
    return "MDF rises over the set: not a fatigue sign (often warm-up or a changing effort)."


def _fatigue_section(reps) -> str:
    html = []
    for ph, summ in reps:
        for m in summ.get("muscles").list():
            fat = m.get("fatigue")
            if not fat.value:
                continue
            tr = fat.get("mdf_per_index")
            html.append(f"<h3>{_e(_muscle(m.value['name']))}</h3><p>Median frequency trend "
                        f"{tr.get('slope').num(2, sign=True, unit='Hz per rep')} "
                        f"(r&#178; {tr.get('r2').num(2)}), change over the set "
                        f"{fat.get('mdf_change_pct').num(1, sign=True, unit='%')}. "
                        + _fatigue_reading(tr.value, fat.value.get("mdf_change_pct"))
                        + "</p>" + _fatigue_svg(fat.value))
    return "".join(html) or ('<p class="note">No fatigue trend: it needs at least two reps '
                             "of a muscle with a spectrum (each rep's MNF/MDF is taken as it "
                             "ends).</p>")


def _holds_section(holds: list[tuple[_Node, _Node]]) -> tuple[str, list[str]]:
    html, findings = [], []
    for ph, hs in holds:
        target = None
        rows, bars = [], []
        for name, h in hs.items():
            target = h.value.get("target", target)
            for one in h.get("holds").list():
                met = one.value.get("met")
                rows.append([_e(_muscle(name)), one.get("index").num(0), one.get("onset").num(2),
                             ("at least " if met is None else "") + one.get("sustained").num(2),
                             one.get("target").num(1), one.get("held_fraction").num(0, 100.0),
                             # cut off before the target: neither met nor failed
                             "not known (cut off)" if met is None else
                             '<span class="good">yes</span>' if met else '<span class="bad">no</span>'])
            best = h.value.get("best_sustained")
            bars.append((_muscle(name), [(best, "left" if name.endswith("_L") else "right")]))
            if best is not None:
                top = max(h.value.get("holds") or [{}], key=lambda x: x.get("sustained") or 0)
                cut = top.get("partial") and not top.get("met")  # cut off short of the target
                findings.append(f"{_e(_muscle(name))}: held {'at least ' if cut else ''}"
                                f"{h.get('best_sustained').num(1)} s of {h.get('target').num(0)} s"
                                + (" (cut off)" if cut else ""))
        html.append(f"<h3>hold {_e(ph.value.get('arg') or '')} s, from "
                    f"{ph.get('start').num(1)} s</h3>")
        html.append(_table(["muscle", "attempt", "onset (s)", "sustained (s)", "target (s)",
                            "held (%)", "met"], rows))
        html.append(_bars_svg(bars, "s", "hold time per muscle", target=target)
                    + '<p class="note">Bars: longest sustained contraction; red line: target.</p>')
    if not html:
        return '<p class="note">No hold phase in this session.</p>', findings
    return "".join(html), findings


def _stance_objects(d: dict):
    """Rebuild a StanceResult from its dict so the balance module grades it."""
    from bridge.balance import StanceResult, SwayMetrics

    sway = SwayMetrics(**d["sway"]) if d.get("sway") else None
    return StanceResult(d["leg"], d["goal"], d["time_achieved"], d["completed"],
                        tuple(d["touchdowns"]), tuple(map(tuple, d["stance_segments"])),
                        d["total_stance"], d["start_t"], sway, tuple(d["quality"]))


_SWAY_ROWS = (("rms", "RMS sway", "m/s&#178;", 3), ("rms_ap", "RMS AP", "m/s&#178;", 3),
              ("rms_ml", "RMS ML", "m/s&#178;", 3),
              ("ellipse_area_95", "95% ellipse area", "(m/s&#178;)&#178;", 3),
              ("mean_velocity", "mean velocity (path/time)", "m/s&#179;", 2),
              ("jerk_per_s", "jerk per s", "m&#178;/s&#8309; per s", 2),
              ("mean_frequency", "mean frequency", "Hz", 2), ("f95", "95% power frequency", "Hz", 2))


def _stance_section(stances, traces: list[SwayTrace], age: float | None) -> tuple[str, list[str]]:
    from bridge.balance import compare_legs, grade_stance

    html, findings, by_leg, cards = [], [], {}, []
    lim = max((_sway_limit(t) for t in traces), default=None)  # one scale for every leg
    for ph, r in stances:
        leg = ph.value.get("arg") or "?"
        if r.value is None:
            cards.append(f'<div class="card"><h3>{_e(leg.capitalize())} leg stance</h3><p class="note">No result: '
                         "the trial did not finish (data ended before the countdown or no IMU)."
                         "</p></div>")
            continue
        res = _stance_objects(r.value)
        by_leg[res.leg] = res
        g = grade_stance(res, age)
        tds = r.get("touchdowns").list()
        td = (f"first touchdown at {tds[0].num(1)} s" if tds else "no touchdown")
        ok = "good" if g.met_goal else "bad"
        rows = [[lab, r.get("sway").get(k).num(d) + f" {u}"] for k, lab, u, d in _SWAY_ROWS
                if r.value.get("sway")]
        tr = next((t for t in traces if t.leg == res.leg
                   and abs(t.start - (ph.value["start"] + res.start_t)) < 0.01), None)
        cards.append(
            f'<div class="card"><h3>{_e(res.leg.capitalize())} leg stance</h3>'
            f"<p>Stood <b>{r.get('time_achieved').num(1)} s</b> of {r.get('goal').num(0)} s "
            f"({td}); touchdowns: {r.get('n_touchdowns').num(0)}.<br>"
            f'Grade: <span class="{ok}">{_e(g.grade)}</span>'
            + (f" (norm {g.norm_s:.1f} s for age {age:g}, {_e(g.source)})" if g.norm_s else "")
            + "</p>" + (_table(["sway metric", "value"], rows) if rows else
                        '<p class="note">Stance too short for sway metrics.</p>')
            + (f'<p class="note">quality flags: {_e(", ".join(res.quality))}</p>'
               if res.quality else "")
            + (_sway_svg(tr, lim) if tr is not None else "") + "</div>")
        # With an age, the grade against its norm (the card's "Grade: below norm ...").
        graded = (f"; {_e(g.grade)} (norm {g.norm_s:.1f} s for age {age:g})"
                  if g.norm_s is not None and not g.met_goal else "")
        findings.append(f"{_e(res.leg.capitalize())}-leg stance: {r.get('time_achieved').num(1)} s "
                        f"of {r.get('goal').num(0)} s" + (f", touchdown at {tds[0].num(1)} s"
                                                          if tds else " (goal met)"
                                                          if g.met_goal else "") + graded)
    if not cards:
        return '<p class="note">No single-leg stance test in this session.</p>', findings
    html.append(f'<div class="cards">{"".join(cards)}</div>')
    if "left" in by_leg and "right" in by_leg:
        c = compare_legs(by_leg["left"], by_leg["right"], age)
        html.append(f"<p>Left vs right: weaker leg <b>{_e(c.weaker_leg or 'none')}</b>, time "
                    f"asymmetry {c.time_asymmetry_pct:.0f}%"
                    + (f", sway asymmetry {c.sway_asymmetry_pct:.0f}%"
                       if c.sway_asymmetry_pct is not None else "")
                    + (' <span class="bad">(asymmetric)</span>' if c.asymmetric else "") + ".</p>")
    html.append('<p class="note">Sway: low-passed horizontal pelvis acceleration over the first '
                "single-leg segment; ellipse: 95% prediction ellipse (F distribution). Norms: "
                "30 s is the screening goal; age norms from Springer et al. 2007 (best of 3) when "
                "an age is given; below 10 s is a warning sign.</p>")
    return "".join(html), findings


def _link_down(dev: _Node) -> tuple[str, str]:
    """The session ended with the link down: (paragraph for Link quality, key finding)."""
    down = dev.get("link_down_at_end")
    if not down.value:
        return "", ""
    v = down.value
    tries = v.get("reconnect_attempts") or 0
    n = v.get("cut_contractions") or 0
    para = (f'<p class="bad">The link was down at the end of the session: lost at '
            f"{down.get('since').num(1)} s ({_e(v.get('reason') or '')}) and not back after "
            f"{down.get('down_for').num(1)} s ({down.get('reconnect_attempts').num(0)} reconnect "
            f"attempt{'s' if tries != 1 else ''}" + ("; the stream gave up" if v.get("gave_up")
                                                      else "") + f"). No data after "
            f"{down.get('since').num(1)} s"
            + (f"; {down.get('cut_contractions').num(0)} contraction{'s' if n != 1 else ''} "
               "cut off by it (marked &quot;cut&quot;: counted as reps, left out of mean "
               "durations; a cut-off hold is neither met nor failed)" if n else "") + ".</p>")
    finding = (f'<span class="bad">Link lost at {down.get("since").num(1)} s and not back '
               f"({down.get('down_for').num(1)} s without it when the session ended)</span>: "
               f"the data end there")
    return para, finding


def _link_section(dev: _Node, traces: ReportTraces | None) -> str:
    gaps = dev.get("gaps").list()
    per: dict = {}
    for g in gaps:
        per.setdefault((g.value["stream"], g.value["reason"]), []).append(g)
    down, _ = _link_down(dev)
    if not gaps:
        return down + ("<p>No gaps while the link was up.</p>" if down else
                       "<p>No lost samples: every block arrived.</p>")
    rows = []
    name = dev.path[-1]
    for (stream, reason), gs in sorted(per.items()):
        lost = sum(g.value["n_samples"] for g in gs)
        got = traces.samples.get((name, stream)) if traces else None
        rate = traces.rates.get((name, stream)) if traces else None
        pct = f"{100.0 * lost / (lost + got):.2f}" if got is not None else "n/a"
        ms = f"{1000.0 * lost / rate:.0f}" if rate else "n/a"
        rows.append([str(stream), _e(reason), str(len(gs)), str(lost), ms, pct])
    detail = _table(["stream", "first sample", "samples", "reason"],
                    [[g.get("stream").num(0), g.get("first_sample").num(0),
                      g.get("n_samples").num(0), _e(g.value["reason"])] for g in gaps])
    return (down + _table(["stream", "reason", "gaps", "samples lost", "lost (ms)", "lost (%)"],
                          rows)
            + f"<details><summary>every gap ({len(gaps)})</summary>{detail}</details>"
            + '<p class="note">Lost samples are never bridged: contractions across a long gap '
              "are closed and marked truncated.</p>")


def _contractions_table(dev: _Node) -> str:
    rows = []
    for c in dev.get("contractions").list():
        v = c.value
        rows.append([_e(_muscle(v.get("muscle") or v["channel"])), c.get("onset").num(3),
                     c.get("offset").num(3), f"{v['offset'] - v['onset']:.3f}",
                     c.get("peak").num(3), c.get("mean").num(3), c.get("pct_mvc").num(1),
                     ", ".join(w for w, f in (("before the recording", v.get("censored_onset")),
                                              ("cut", v.get("truncated"))) if f)])
    return (f"<details><summary>all {len(rows)} contractions</summary>"
            + _table(["muscle", "onset (s)", "offset (s)", "duration (s)", "peak (mV)",
                      "mean (mV)", "%MVC", "started / ended"], rows)
            + '<p class="note">"before the recording": the muscle was already contracting at '
              "the first sample (onset 0 is not a measured onset and is left out of firing "
              'order); "cut": closed by a link gap or the end of data.</p></details>')


def _device_html(dev: _Node, traces: ReportTraces | None, age: float | None,
                 multi: bool) -> tuple[str, list[str]]:
    name = dev.path[-1]
    phases = dev.get("phases").list()
    reps = [(p, p.get("summary")) for p in phases if p.value.get("summary")]
    holds = [(p, p.get("holds")) for p in phases if p.value.get("holds")]
    stances = [(p, r) for p in phases if p.value.get("phase") == "stance"
               for r in p.get("stance").list()]
    sway = (traces.sway.get(name, []) if traces else [])
    emg = traces.emg.get(name) if traces else None
    fire_html, f1 = _firing_section(reps)
    sym_html, f2 = _symmetry_section(reps)
    hold_html, f3 = _holds_section(holds)
    st_html, f4 = _stance_section(stances, sway, age)
    prefix = f"{_e(name)}: " if multi else ""
    out = [f"<h2>{prefix}Activation timeline</h2>",
           _timeline_svg(dev, emg, traces.rates if traces else {}), _contractions_table(dev),
           f"<h2>{prefix}Repetitions</h2>", _reps_section(reps),
           f"<h2>{prefix}Firing order and onset latencies</h2>", fire_html,
           f"<h2>{prefix}Left / right symmetry</h2>", sym_html,
           f"<h2>{prefix}%MVC</h2>", _mvc_section(dev, reps),
           f"<h2>{prefix}Fatigue trend</h2>", _fatigue_section(reps),
           f"<h2>{prefix}Holds</h2>", hold_html,
           f"<h2>{prefix}Single-leg balance</h2>", st_html,
           f"<h2>{prefix}Link quality</h2>", _link_section(dev, traces)]
    _, down = _link_down(dev)  # the first thing to know: the data end where the link did
    return "".join(out), [prefix + x for x in ([down] if down else []) + f1 + f3 + f2 + f4]


def _css() -> str:
    return resources.files("bridge").joinpath("report_assets/report.css").read_text("utf-8")


def render_report(results: dict, traces: ReportTraces | None = None, *,
                  title: str = "glutebridge session report", age: float | None = None,
                  subtitle: str = "") -> str:
    """Render the results tree (:func:`bridge.results.session_results`) as one HTML page.

    ``traces`` adds the envelope and sway curves (see :class:`ReportTraces`);
    ``age`` (years) grades the single-leg stance against age norms.  The page
    has no external resources: CSS and SVG plots are inline.
    """
    if not isinstance(results, dict) or not isinstance(results.get("devices"), dict):
        raise ConfigError("results must be the dict of bridge.results.session_results() "
                          "(with a 'devices' mapping); got " + type(results).__name__)
    if traces is not None and not isinstance(traces, ReportTraces):
        raise ConfigError("traces must be a ReportTraces (ReportTraces.from_streams(...)) or None")
    root = _Node(results)
    devices = root.get("devices").items()
    body, findings = [], []
    for _, dev in devices:
        h, f = _device_html(dev, traces, age, len(devices) > 1)
        body.append(h)
        findings += f
    n_c = sum(len(d.value.get("contractions") or []) for _, d in devices)
    ends = [p.get("end") or p.get("start") or 0.0 for _, d in devices
            for p in d.value.get("phases") or []]
    ends += [c["offset"] for _, d in devices for c in d.value.get("contractions") or []]
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (f'<header class="top"><h1>{_e(title)}</h1><div class="meta">'
            + (f"{_e(subtitle)} &#183; " if subtitle else "")
            + f"device{'s' if len(devices) != 1 else ''}: "
            + ", ".join(_e(n) for n, _ in devices)
            + f" &#183; {max(ends + [0.0]):.0f} s &#183; {n_c} contractions &#183; "
              f"generated {now}</div></header>")
    summary = ("<h2>Key findings</h2><ul class=\"findings\">"
               + "".join(f"<li>{x}</li>" for x in findings) + "</ul>" if findings else
               '<h2>Key findings</h2><p class="note">Nothing to summarise: no reps, holds or '
               "stance tests in this session.</p>")
    notes = [n for n in results.get("notes") or () if isinstance(n, str)]
    if notes:
        summary += ('<h2>Notes on this session</h2><ul class="notes">'
                    + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_css()}</style></head><body><main>"
            + head + summary + "".join(body)
            + "<footer>glutebridge &#183; numbers are those of <code>glutebridge analyze</code> "
              "(the session results JSON); hover a number's path with developer tools "
              "(data-path) to trace it.</footer></main></body></html>\n")


def write_report(path, results: dict, traces: ReportTraces | None = None, **kw) -> Path:
    """Render (see :func:`render_report`) and write the report to ``path``; return the path."""
    path = Path(path)
    html = render_report(results, traces, **kw)
    path.write_text(html, encoding="utf-8")
    return path
