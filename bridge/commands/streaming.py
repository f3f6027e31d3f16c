"""``demo``, ``stream`` and ``replay``: a session from a live or recorded source."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from bridge import _compat
from bridge.commands.run import Outputs, _note, run_session
from bridge.errors import ConfigError, RecordingError
from bridge.profiles import ProfileNote, profile_to_meta, resolve_profile
from bridge.recording import RecordingWriter
from bridge.session import Session
from bridge.sources import make_transport
from bridge.sources.base import Connection
from bridge.sources.replay import RecordingTransport, recording_meta


def session_for(profile: str | None = None, stance_duration: float = 30.0, *,
                recorded: dict | None = None, no_profile: bool = False) -> tuple[Session, str]:
    """A Session, calibrated from a saved profile when one is named, else from the
    profile stored in the recording being replayed (``recorded``); and where the
    profile came from."""
    session = Session(stance_duration=stance_duration)
    session.profile, origin = resolve_profile(profile, recorded=recorded,
                                              no_profile=no_profile)
    return session, origin


def recorded_profile(url: str, transport) -> dict | None:
    """The profile stored in the recording a ``replay://`` transport plays (else None)."""
    if url.lower().startswith("replay://"):
        return transport.reader.meta.get("profile")
    return None


def profiled_session(out: Outputs, profile: str | None = None, stance_duration: float = 30.0,
                     *, recorded: dict | None = None,
                     no_profile: bool = False) -> tuple[Session, ProfileNote]:
    """A session calibrated as :func:`session_for` says, and the sink that prints
    ``profile NAME applied ...`` (or why not) on the outputs' terminal.

    Every session command (stream, replay, demo, test) uses it: pass the note in
    ``run_session(extra_sinks=...)`` and call ``note.after(results)`` at the end.
    """
    session, origin = session_for(profile, stance_duration, recorded=recorded,
                                  no_profile=no_profile)
    return session, ProfileNote(session.profile, lambda text: _say(out, text), origin)


async def demo(*, scenario: str = "demo", seed: int = 0, speed: float = 2.0,
               faults=None, out: Outputs, record: str | None = None,
               profile: str | None = None, no_profile: bool = False) -> dict:
    """The main job: the virtual wearable through the whole stack, then a summary.

    ``profile`` calibrates the session as in :func:`stream`."""
    from bridge.simulator import scenarios
    from bridge.simulator.device import Faults

    signals = scenarios.build(scenario, seed=seed)
    faults = faults or Faults(drop_rate=0.002, bit_error_rate=1e-6, seed=seed)
    if speed <= 0:
        # As fast as possible: the in-process wearable, same decoder/assembler/session.
        from bridge.runner import virtual_items
        stats: dict = {}
        session, note = profiled_session(out, profile, no_profile=no_profile)
        # Named as the paced demo names it (the sim:// URL), so results read alike.
        items = virtual_items(signals, speed=0, faults=faults, stats=stats,
                              device=f"sim://{scenario}")
        results = await run_session(items,
                                    session, out, stats=lambda: _sim_stats(stats),
                                    extra_sinks=[note], live_clock=False)
        note.after(results)
        return results
    return await stream(f"sim://{scenario}", out=out, record=record, profile=profile,
                        no_profile=no_profile,
                        transport_options={"signals": signals, "faults": faults, "speed": speed})


def _sim_stats(stats: dict) -> dict:
    d = stats.get("decoder")
    return {"decoder": d.as_dict() if d is not None else {}}


async def stream(url: str, *, out: Outputs, record: str | None = None,
                 duration: float | None = None, profile: str | None = None,
                 no_profile: bool = False, stance_duration: float = 30.0,
                 transport_options: dict | None = None,
                 connection_options: dict | None = None) -> dict:
    """Stream ``url`` (any source URL) through a session to the outputs.

    ``record`` appends every raw byte to a crash-safe recording while
    streaming; ``duration`` stops after that many seconds (Ctrl-C stops too,
    and still prints the summary and closes the recording cleanly).
    ``profile`` names a calibration profile; a replayed recording made with one
    uses it unless ``profile`` overrides it or ``no_profile``.  A recording
    made here stores the profile in use (all of it), so files analyse alike.
    """
    transport = make_transport(url, **(transport_options or {}))
    opts = dict(connection_options or {})
    if url.lower().startswith("replay://"):
        opts.setdefault("autostart", False)
        # Same device label as the live session, so replayed results match it key for key.
        opts.setdefault("device", transport.reader.meta.get("device") or transport.url)
    session, note = profiled_session(out, profile, stance_duration,
                                     recorded=recorded_profile(url, transport),
                                     no_profile=no_profile)
    writer = None
    if record:
        extra = {}
        if session.profile is not None:
            extra["profile"] = profile_to_meta(session.profile)
        writer = RecordingWriter(record, recording_meta(
            transport, started=time.time(), device=opts.get("device") or transport.url,
            **extra))
        transport = RecordingTransport(transport, writer)
    conn = Connection(transport, **opts)
    opened = False
    try:
        await conn.open()
        opened = True
        if out.view in ("live", "lines", "auto") and conn.info is not None:
            i = conn.info
            out.console.print(f"connected: {i.name} (serial {i.serial}, firmware "
                              f"{i.firmware_version}, protocol v{i.protocol_version})")
        items = _limited(conn, duration) if duration else conn
        results = await run_session(items, session, out, stats=lambda: conn.stats,
                                    extra_sinks=[note])
        note.after(results)
    finally:
        await conn.close()
        if writer is not None:
            writer.close()
            if not opened and writer.records == 0:
                # The link never came up (device off, wrong address): an empty file would
                # only block the same command, run again once the device is on.
                for p in (writer.path, writer.path.with_name(writer.path.name + ".idx")):
                    p.unlink(missing_ok=True)
    if writer is not None:
        _note(out.console, out.view, f"recording written to {record}")
    return results


def _say(out: Outputs, text: str) -> None:
    """A one-line note, unbroken (scripts grep it); stderr in jsonl mode, none when quiet."""
    if out.view in ("jsonl", "quiet"):
        _note(out.console, out.view, text)
    else:
        out.console.print(text, soft_wrap=True, highlight=False)


async def _limited(conn, duration: float):
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    async for item in conn:
        yield item
        if loop.time() >= end:
            return


async def replay(path: str, *, speed: float, out: Outputs, profile: str | None = None,
                 no_profile: bool = False) -> dict:
    """Play a recording through the same path as live (``speed`` x, 0 = fast), with the
    profile it was recorded with unless ``profile`` overrides it or ``no_profile``."""
    if speed < 0:
        raise ConfigError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
    from bridge.commands.files import describe_file, is_recording
    if Path(path).is_file() and not is_recording(path):  # (the reader says what else fails)
        raise RecordingError(f"{path} is not a glutebridge recording: it looks like "
                             f"{describe_file(path)}. replay plays recordings made with "
                             "--record (analyze and report also read CSV files)")
    return await stream(f"replay://{path}", out=out, profile=profile, no_profile=no_profile,
                        transport_options={"speed": speed})


def run(coro):
    """asyncio.run that turns Ctrl-C into a clean stop (on every Python: bridge._compat)."""
    with contextlib.suppress(KeyboardInterrupt):
        return _compat.run(coro)
    return None
