"""Shared HTML pieces of the report: traceable numbers, words for keys, tables.

:class:`_Node` is how every number of the results tree reaches the page: it keeps the
value's JSON path and writes it into the ``<span class="num" data-path=...>``.
"""

from __future__ import annotations

import json
import math
from html import escape

_MUSCLE_WORDS = {"glute_max": "glute max", "glute_med": "glute med", "hamstring": "hamstring",
                 "erector": "lumbar erector"}
_PHASE_WORDS = {"rest": "rest", "reps": "reps", "hold": "hold", "stance": "single-leg stance",
                "mvc": "MVC"}


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
        # a signed value that rounds to zero has no direction: +0.0, not -0.0 (as the terminal)
        text = (f"{round(v * scale, digits) + 0.0:+.{digits}f}" if sign
                else f"{v * scale:.{digits}f}")
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
