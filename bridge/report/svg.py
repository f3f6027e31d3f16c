"""Inline SVG plots of the report (no matplotlib, no JavaScript, no network)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _stats

from bridge.report.markup import _PHASE_WORDS, _e, _muscle, _Node
from bridge.report.traces import EmgTrace, SwayTrace

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
