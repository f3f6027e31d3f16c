"""JSON Lines events: one JSON object per session event, one line each.

For scripting: ``glutebridge stream URL --format jsonl | jq ...``.  Every
object has a ``type`` field and the fields listed in ``docs/events.md``;
times are seconds on the session timeline (``time``) and on the host clock
(``host_time``) where the event has one.  Lines are flushed one by one so a
reader downstream sees each event as soon as it is decided.  NaN and
infinities become ``null`` (JSON has neither).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys
from typing import IO, Any

from bridge.session import BalanceEvent, LinkEvent, MuscleEvent, PhaseEvent

__all__ = ["JsonlSink", "event_to_dict", "SCHEMA_VERSION"]

#: Bumped when a field changes meaning or disappears (adding fields does not bump it).
SCHEMA_VERSION = 1

# Balance core events (bridge.balance.stance) by class name -> JSON type.
_BALANCE_TYPES = {
    "BaselineReady": "stance_baseline",
    "StanceStarted": "stance_start",
    "Touchdown": "touchdown",
    "Jolt": "jolt",
    "TrialCompleted": "stance_result",
}
_LINK_TYPES = {"gap": "gap", "status": "status", "info": "device_info", "ack": "ack"}


def _plain(obj: Any) -> Any:
    """JSON-ready copy: dataclasses -> dicts, enums -> names/ints, NaN -> None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, enum.Flag):
        return [m.name for m in type(obj) if m.value and m in obj]  # e.g. ["STREAMING"]
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex()
    if hasattr(obj, "item"):  # numpy scalars
        return _plain(obj.item())
    return str(obj)


def _contraction(c) -> dict:
    return {"onset": _plain(c.onset), "offset": _plain(c.offset),
            "duration": _plain(c.offset - c.onset), "peak": _plain(c.peak),
            "mean": _plain(c.mean), "pct_mvc": _plain(c.pct_mvc),
            "truncated": bool(c.truncated),
            "censored_onset": bool(getattr(c, "censored_onset", False))}


def event_to_dict(event, stance_start: float | None = None) -> dict | None:
    """The JSON object for one session event, or None for objects that are not events.

    Balance events carry their session time and host time (``time``, ``host_time``);
    the balance core's own times (``phase_time``, ``decided_t``...) count from the
    stance test's first IMU sample.  ``stance_start`` (the stance phase's start,
    session time) only serves events built without a session time (``time`` NaN):
    it is added to the core's ``t`` (:class:`JsonlSink` tracks it from the phase events).
    """
    if isinstance(event, MuscleEvent):
        d = {"type": event.kind, "device": event.device, "time": _plain(event.time),
             "host_time": _plain(event.host_time), "channel": event.channel,
             "muscle": event.muscle, "latency": _plain(event.latency),
             "peak": _plain(event.peak), "mean": _plain(event.mean)}
        if event.kind == "offset" and event.contraction is not None:
            d["contraction"] = _contraction(event.contraction)
        return d
    if isinstance(event, PhaseEvent):
        return {"type": "phase", "device": event.device, "time": _plain(event.time),
                "host_time": _plain(event.host_time), "phase": event.name, "arg": event.arg}
    if isinstance(event, BalanceEvent):
        inner = event.event
        kind = _BALANCE_TYPES.get(type(inner).__name__, "balance")
        # ``time``: the session's own (its IMU sample / rate), as the terminal and the results
        # give it.  Not phase start + the core's ``t``: the core counts from the first IMU
        # sample it was fed, which lags the phase marker when that marker arrives after the
        # IMU block holding its time (25 ms off over the sim transport).
        t = event.time
        if not (isinstance(t, (int, float)) and math.isfinite(t)):
            t_rel = getattr(inner, "t", None)
            t = stance_start + t_rel if stance_start is not None and t_rel is not None else t
        d = {"type": kind, "device": event.device, "leg": event.leg, "time": _plain(t),
             "host_time": _plain(getattr(event, "host_time", math.nan))}
        body = _plain(inner)
        if isinstance(body, dict):
            body.pop("leg", None)
            if "t" in body:
                body["phase_time"] = body.pop("t")
            if kind == "stance_result":
                result = body.get("result") or {}
                body = {"phase_time": body.get("phase_time"), "sample": body.get("sample"),
                        **result}
                body.pop("leg", None)
                if isinstance(result.get("touchdowns"), list):
                    body["n_touchdowns"] = len(result["touchdowns"])
            d.update(body)
        else:
            d["detail"] = body
        return d
    if isinstance(event, LinkEvent):
        d = {"type": _LINK_TYPES.get(event.kind, event.kind), "device": event.device,
             "time": _plain(event.time)}
        detail = _plain(event.detail)
        if isinstance(detail, dict):
            detail.pop("device", None)
            detail.pop("seq", None)
            d.update(detail)
        elif detail is not None:
            d["message"] = detail
        return d
    return None


class JsonlSink:
    """A session sink that writes each event as one JSON line to ``stream`` (stdout).

    ``types``: if given, only events whose ``type`` is in it are written
    (e.g. ``{"onset", "offset"}``).  Call it like any sink: ``sink(event)``.
    """

    def __init__(self, stream: IO[str] | None = None, *, types: set[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.types = set(types) if types is not None else None
        self.written = 0
        self._stance_start: dict[str, float] = {}  # device -> start of its stance phase

    def __call__(self, event) -> None:
        if isinstance(event, PhaseEvent) and event.name == "stance":
            self._stance_start[event.device] = event.time
        d = event_to_dict(event, self._stance_start.get(getattr(event, "device", None)))
        if d is None or (self.types is not None and d["type"] not in self.types):
            return
        self.stream.write(json.dumps(d, allow_nan=False, separators=(",", ":")) + "\n")
        self.stream.flush()
        self.written += 1

    # the dashboard-style sink interface, so the CLI can treat sinks alike
    def on_event(self, event) -> None:
        self(event)
