"""Guided protocols: ``calibrate``, ``test single-leg``, ``test activation``.

The host leads the client through phases and sends a MARK command at each
phase start; the wearable echoes it as a MARKER on its own clock, so phases
line up with the samples exactly as in a recording (replays reproduce them).
With the virtual wearable (``sim://``) the scripted client sets the pace and
its own markers drive the phases; the guide then only narrates.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from bridge import _compat
from bridge.commands.run import Outputs, run_session
from bridge.commands.streaming import profiled_session, recorded_profile
from bridge.errors import ConfigError, TransportError
from bridge.profiles import (MVC_MARGIN, REST_STEADY, REST_WINDOW, Profile, check_profile,
                             load_profile, now_stamp, profile_path, save_profile)
from bridge.session import MARK_FOR_PHASE, BalanceEvent, Session
from bridge.sources import make_transport
from bridge.sources.base import Connection
from bridge.stream import SampleChunk


async def _countdown(console: Console, seconds: float, text: str) -> None:
    left = seconds
    while left > 0:
        console.print(f"  {text} … {left:.0f}", end="\r")
        await asyncio.sleep(min(1.0, left))
        left -= 1.0
    console.print(" " * 60, end="\r")


async def _mark(conn: Connection, phase: str) -> None:
    try:
        await conn.mark(MARK_FOR_PHASE[phase])
    except TransportError as exc:
        raise TransportError(f"could not mark the '{phase}' phase on the wearable: {exc}") \
            from exc


def _scripted(url: str) -> bool:
    return url.lower().startswith(("sim://", "replay://"))


#: Shortest phases ``calibrate`` accepts (seconds); see :func:`calibrate`.
MIN_REST_S = 2.0
MIN_MVC_S = 2.0
#: Give up when no EMG arrives for this long (wall seconds) during a phase.
NO_DATA_TIMEOUT = 10.0


def _check_durations(rest_s: float, mvc_s: float) -> None:
    if not rest_s >= MIN_REST_S:
        raise ConfigError(
            f"--rest {rest_s:g}: give at least {MIN_REST_S:g} s. The rest baseline is the "
            "envelope's mean and SD, and the check that the client was really at rest "
            f"compares {REST_WINDOW:g} s windows: it needs several of them (5 s is usual)")
    if not mvc_s >= MIN_MVC_S:
        raise ConfigError(
            f"--mvc {mvc_s:g}: give at least {MIN_MVC_S:g} s. A maximal contraction takes "
            "about 1 s to build up and its level is the best 0.5 s average of the envelope "
            "(3-5 s is usual)")


async def _record_phase(conn: Connection, phase: str, seconds: float, carry: list,
                        ) -> tuple[list[np.ndarray], tuple, float, bool, list]:
    """EMG blocks covering ``seconds`` of samples (device time, so a sped-up or
    replayed source gives the same phase as a live one).

    Returns (blocks, labels, rate, ended, leftover): ``ended`` when the stream
    ended first; ``leftover`` = samples of the last chunk past the phase.
    """
    blocks: list[np.ndarray] = []
    labels: tuple = ()
    rate = 0.0
    got, need = 0, None
    pending = list(carry)
    while True:
        if pending:
            item = pending.pop(0)
        else:
            try:
                # (_compat.wait_for: asyncio's, before 3.12, can lose the stop when an
                # item is ready in the same step: the calibration ran on and saved)
                item = await _compat.wait_for(conn.__anext__(), NO_DATA_TIMEOUT)
            except StopAsyncIteration:
                return blocks, labels, rate, True, []
            except asyncio.TimeoutError:
                raise TransportError(
                    f"no EMG for {NO_DATA_TIMEOUT:g} s during the {phase} phase; check that the "
                    "wearable is on and streaming, then calibrate again") from None
        if not (isinstance(item, SampleChunk) and item.kind == "emg"):
            continue
        labels, rate = item.labels, item.rate
        if need is None:
            need = max(1, int(round(seconds * rate)))
        take = min(len(item.samples), need - got)
        blocks.append(item.samples[:take])
        got += take
        if got >= need:
            rest = item.samples[take:]
            leftover = [replace(item, samples=rest)] if len(rest) else []
            return blocks, labels, rate, False, leftover


async def calibrate(url: str, profile: str, *, rest_s: float = 5.0, mvc_s: float = 5.0,
                    console: Console, force: bool = False,
                    transport_options: dict | None = None) -> Profile:
    """Record rest and an MVC per channel, check them and save them as profile ``profile``.

    Phases are measured in samples (device time).  The calibration is refused
    (nothing saved) when a channel's rest was not at rest or its MVC is not
    clearly above rest (see :func:`bridge.profiles.check_profile`), unless
    ``force``.  An existing profile of that name is kept as ``NAME.prev``.
    """
    _check_durations(rest_s, mvc_s)
    path = profile_path(profile)  # a bad name fails now, not after the recording
    previous = None
    if path.exists():
        try:
            previous = load_profile(profile)
        except ConfigError:
            previous = None
    conn = Connection(make_transport(url, **(transport_options or {})))
    await conn.open()
    got: dict[str, np.ndarray] = {}
    labels: tuple[str, ...] = ()
    rate = 0.0
    carry: list = []
    try:
        for phase, seconds, prompt in (
                ("rest", rest_s, "Relax every muscle completely (lie still)"),
                ("mvc", mvc_s, "Contract as hard as you can (maximal effort) and hold")):
            console.print(f"[bold]{prompt}[/] for {seconds:g} s")
            if not _scripted(url):
                await _countdown(console, 3, "starting in")
                conn.get_nowait()  # drop what came before the phase
                carry = []
            blocks, lab, r, ended, carry = await _record_phase(conn, phase, seconds, carry)
            if lab:
                labels, rate = lab, r
            n = sum(len(b) for b in blocks)
            if ended:
                _ended_message(phase, n, rate, seconds, got)
            got[phase] = np.concatenate(blocks)
    finally:
        await conn.close()
    prof = Profile(profile, labels, rate, got["rest"], got["mvc"], now_stamp())
    checks = check_profile(prof)
    console.print(_check_table(prof, checks))
    console.print(f"rest, rest SD, MVC: EMG envelope levels in mV; steady: loudest (or "
                  f"quietest) {REST_WINDOW:g} s window of the rest vs its median (ok up to "
                  f"{REST_STEADY:g}x); MVC must reach {MVC_MARGIN:g}x the detector's onset "
                  "threshold (rest mean + 10 SD, at least 2.5x the mean)")
    problems = _problems(checks)
    if problems and not force:
        raise ConfigError("calibration not saved:\n  " + "\n  ".join(problems) +
                          f"\n  Calibrate again (`glutebridge calibrate URL --profile {profile}`)"
                          ", or add --force to save it anyway.")
    if problems:
        console.print("[yellow]saved anyway (--force):[/] " + "; ".join(problems))
    path = save_profile(prof, keep_previous=previous is not None)
    if previous is not None:
        console.print(f"replaced profile {profile} (previous one from "
                      f"{previous.created or 'an unknown date'}, kept as {profile}.prev: "
                      f"--profile {profile}.prev uses it)")
    console.print(f"profile '{profile}' saved to {path}; use it with --profile {profile}")
    return prof


def _ended_message(phase: str, n: int, rate: float, seconds: float, got: dict) -> None:
    if phase == "rest" and n == 0:
        raise ConfigError("no EMG arrived during calibration; check that the wearable is on "
                          "and streaming, then calibrate again")
    had = f"{n / rate:.1f} s of {seconds:g} s recorded" if rate else "no data"
    if phase == "mvc" and rate:
        had += f", after a complete {len(got['rest']) / rate:.1f} s rest"
    raise ConfigError(
        f"the stream ended during the {'MVC' if phase == 'mvc' else 'rest'} phase "
        f"({had}); nothing saved. Calibrate again with a source that streams for at least "
        "--rest + --mvc seconds (a sim:// scenario plays once).")


def _problems(checks) -> list[str]:
    out = []
    bad_rest = [c for c in checks if not c.rest_ok]
    if bad_rest:
        out.append(
            "not at rest during the rest phase on " + ", ".join(
                f"{c.label} (loudest {REST_WINDOW:g} s {c.rest_steady:.1f}x the median"
                + (f", quietest 1/{c.rest_dip:.1f}" if c.rest_dip > REST_STEADY else "") + ")"
                for c in bad_rest)
            + f": a steady rest stays within {REST_STEADY:g}x. Have the client relax "
            "completely (lying down) and keep still until the MVC prompt")
    bad_mvc = [c for c in checks if c.mvc_ok is False]
    if bad_mvc:
        out.append(
            "MVC not clearly above rest on " + ", ".join(
                f"{c.label} ({c.ratio:.1f}x rest, needs {MVC_MARGIN * c.onset / c.rest_mean:.1f}x)"
                for c in bad_mvc)
            + f": the MVC must reach {MVC_MARGIN:g}x the detector's onset threshold. Use an "
            "exercise that works these muscles as hard as possible and check the electrodes")
    return out


def _check_table(prof: Profile, checks) -> Table:
    t = Table(title=f"Calibration '{prof.name}': {len(prof.rest) / prof.rate:.1f} s rest, "
                    f"{len(prof.mvc) / prof.rate:.1f} s MVC at {prof.rate:g} Hz",
              padding=(0, 1), collapse_padding=True, show_edge=False, box=box.SIMPLE_HEAD)
    for col in ("channel", "rest mV", "rest SD mV", "steady", "MVC mV", "MVC/rest", "check"):
        t.add_column(col, justify="left" if col in ("channel", "check") else "right",
                     no_wrap=True)
    for c in checks:
        verdict = []
        if not c.rest_ok:
            verdict.append("[red]no rest[/]")
        if c.mvc_ok is False:
            verdict.append("[red]low MVC[/]")
        t.add_row(c.label, f"{c.rest_mean:.3g}", f"{c.rest_sd:.2g}",
                  f"{max(c.rest_steady, c.rest_dip):.2f}x",
                  "-" if c.mvc is None else f"{c.mvc:.3g}",
                  "-" if c.ratio is None else f"{c.ratio:.1f}x",
                  ", ".join(verdict) or "[green]ok[/]")
    return t


async def single_leg(url: str, *, legs=("right", "left"), duration: float = 30.0,
                     out: Outputs, transport_options: dict | None = None,
                     countdown: float = 5.0, operator: bool | None = None,
                     profile: str | None = None, no_profile: bool = False) -> dict:
    """Timed single-leg stance on each leg (goal ``duration`` s), then the left/right
    comparison.

    ``operator`` (default: not for sim:// and replay://) makes the host lead:
    it prompts, counts down ``countdown`` s and marks each leg's phase on the
    wearable; otherwise the device's own phase markers lead.  ``profile`` and
    ``no_profile`` calibrate the EMG as in :func:`bridge.commands.streaming.stream`.
    """
    transport = make_transport(url, **(transport_options or {}))
    session, note = profiled_session(out, profile, duration,
                                     recorded=recorded_profile(url, transport),
                                     no_profile=no_profile)
    conn = Connection(transport)
    console = out.console
    await conn.open()
    try:
        if not (operator if operator is not None else not _scripted(url)):
            return await _run(conn, session, out, note)
        done = asyncio.Event()

        def watch(ev) -> None:
            if isinstance(ev, BalanceEvent) and type(ev.event).__name__ == "TrialCompleted":
                done.set()

        async def drive() -> None:
            for leg in legs:
                other = "left" if leg == "right" else "right"
                console.print(f"[bold]Stand on your {leg} leg[/], hands on hips. Lift your "
                              f"{other} foot when told; keep it up as long as you can "
                              f"(goal {duration:g} s).")
                await _countdown(console, countdown, "stand still on both feet")
                done.clear()
                await _mark(conn, f"stance:{leg}")
                console.print(f"[bold green]Lift your {other} foot now![/]")
                try:
                    await asyncio.wait_for(done.wait(), duration + 20.0)
                except asyncio.TimeoutError:
                    console.print("no result within the time limit; moving on")
            if conn.connected:  # a recording or a virtual client may have ended already
                await _mark(conn, "end")
                await asyncio.sleep(0.5)
            await conn.close()

        task = asyncio.get_running_loop().create_task(drive())
        results = await _run(conn, session, out, note, watch)
        await task
        return results
    finally:
        await conn.close()


async def _run(conn: Connection, session: Session, out: Outputs, note, *sinks) -> dict:
    results = await run_session(conn, session, out, stats=lambda: conn.stats,
                                extra_sinks=[note, *sinks])
    note.after(results)
    return results


async def activation(url: str, *, reps: int = 5, hold_s: float = 10.0, out: Outputs,
                     transport_options: dict | None = None, profile: str | None = None,
                     no_profile: bool = False) -> dict:
    """Rest, MVC, glute bridge reps and a hold: firing order, symmetry, %MVC, holds.

    ``profile`` and ``no_profile`` calibrate the EMG as in
    :func:`bridge.commands.streaming.stream`."""
    hold_mark = f"hold:{hold_s:g}"
    if not _scripted(url) and hold_mark not in MARK_FOR_PHASE:
        # The phase marker is a code the wearable echoes; protocol v1 has one hold code
        # (10 s), and the results would grade the client's hold against that.
        holds = sorted(float(m.split(":")[1]) for m in MARK_FOR_PHASE if m.startswith("hold:"))
        raise ConfigError(f"--hold {hold_s:g}: the wearable's phase markers know holds of "
                          + ", ".join(f"{h:g}" for h in holds) + " s only, and the results "
                          f"would grade a {hold_s:g} s hold against that; give --hold "
                          + " or ".join(f"{h:g}" for h in holds))
    transport = make_transport(url, **(transport_options or {}))
    session, note = profiled_session(out, profile, recorded=recorded_profile(url, transport),
                                     no_profile=no_profile)
    conn = Connection(transport)
    console = out.console
    await conn.open()
    try:
        if _scripted(url):
            return await _run(conn, session, out, note)

        async def drive() -> None:
            steps = [("rest", 5.0, "Lie on your back, knees bent, and relax completely"),
                     ("mvc", 5.0, "Squeeze your glutes as hard as you can and hold")]
            for phase, seconds, prompt in steps:
                console.print(f"[bold]{prompt}[/] ({seconds:g} s)")
                await _mark(conn, phase)
                await _countdown(console, seconds, phase)
            await _mark(conn, "reps:bridge")
            for i in range(reps):
                console.print(f"[bold]Bridge up[/] (rep {i + 1} of {reps})")
                await asyncio.sleep(2.0)
                console.print("down")
                await asyncio.sleep(2.0)
            console.print(f"[bold]Bridge up and hold {hold_s:g} s[/]")
            await _mark(conn, hold_mark)
            await _countdown(console, hold_s, "hold")
            await _mark(conn, "end")
            await asyncio.sleep(1.0)
            await conn.close()

        task = asyncio.get_running_loop().create_task(drive())
        results = await _run(conn, session, out, note)
        await task
        return results
    finally:
        await conn.close()
