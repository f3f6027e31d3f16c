"""Guided protocols: ``calibrate``, ``test single-leg``, ``test activation``.

The host leads the client through phases and sends a MARK command at each
phase start; the wearable echoes it as a MARKER on its own clock, so phases
line up with the samples exactly as in a recording (replays reproduce them).
With the virtual wearable (``sim://``) the scripted client sets the pace and
its own markers drive the phases; the guide then only narrates.
"""

from __future__ import annotations

import asyncio

import numpy as np
from rich.console import Console

from bridge.commands.run import Outputs, run_session
from bridge.errors import ConfigError, TransportError
from bridge.profiles import Profile, save_profile
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


async def calibrate(url: str, profile: str, *, rest_s: float = 5.0, mvc_s: float = 5.0,
                    console: Console, transport_options: dict | None = None) -> Profile:
    """Record rest and an MVC per channel and save them as profile ``profile``."""
    conn = Connection(make_transport(url, **(transport_options or {})))
    await conn.open()
    blocks: dict[str, list[np.ndarray]] = {"rest": [], "mvc": []}
    labels: tuple[str, ...] = ()
    rate = 0.0
    try:
        for phase, seconds, prompt in (
                ("rest", rest_s, "Relax every muscle completely (lie still)"),
                ("mvc", mvc_s, "Contract as hard as you can (maximal effort) and hold")):
            console.print(f"[bold]{prompt}[/] for {seconds:g} s")
            if not _scripted(url):
                await _countdown(console, 3, "starting in")
            conn.get_nowait()  # drop what came before the phase
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            async for item in conn:
                if isinstance(item, SampleChunk) and item.kind == "emg":
                    blocks[phase].append(item.samples)
                    labels, rate = item.labels, item.rate
                if loop.time() >= end:
                    break
    finally:
        await conn.close()
    if not blocks["rest"] or not blocks["mvc"]:
        raise ConfigError("no EMG arrived during calibration; check the wearable and retry")
    prof = Profile(profile, labels, rate, np.concatenate(blocks["rest"]),
                   np.concatenate(blocks["mvc"]))
    path = save_profile(prof)
    console.print(f"profile '{profile}' saved to {path}; use it with --profile {profile}")
    return prof


async def single_leg(url: str, *, legs=("right", "left"), duration: float = 30.0,
                     out: Outputs, transport_options: dict | None = None,
                     countdown: float = 5.0, operator: bool | None = None) -> dict:
    """Timed single-leg stance on each leg, then the left/right comparison.

    ``operator`` (default: not for sim:// and replay://) makes the host lead:
    it prompts, counts down ``countdown`` s and marks each leg's phase on the
    wearable; otherwise the device's own phase markers lead.
    """
    conn = Connection(make_transport(url, **(transport_options or {})))
    session = Session(stance_duration=duration)
    console = out.console
    await conn.open()
    try:
        if not (operator if operator is not None else not _scripted(url)):
            return await run_session(conn, session, out, stats=lambda: conn.stats)
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
        results = await run_session(conn, session, out, stats=lambda: conn.stats,
                                    extra_sinks=[watch])
        await task
        return results
    finally:
        await conn.close()


async def activation(url: str, *, reps: int = 5, hold_s: float = 10.0, out: Outputs,
                     transport_options: dict | None = None) -> dict:
    """Rest, MVC, glute bridge reps and a hold: firing order, symmetry, %MVC, holds."""
    conn = Connection(make_transport(url, **(transport_options or {})))
    session = Session()
    console = out.console
    await conn.open()
    try:
        if _scripted(url):
            return await run_session(conn, session, out, stats=lambda: conn.stats)

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
            await _mark(conn, f"hold:{hold_s:g}" if f"hold:{hold_s:g}" in MARK_FOR_PHASE
                        else "hold:10")
            await _countdown(console, hold_s, "hold")
            await _mark(conn, "end")
            await asyncio.sleep(1.0)
            await conn.close()

        task = asyncio.get_running_loop().create_task(drive())
        results = await run_session(conn, session, out, stats=lambda: conn.stats)
        await task
        return results
    finally:
        await conn.close()
