"""Differences between the Python versions glutebridge supports (3.10 and later).

``run(coro)`` is ``asyncio.run`` with Python 3.11's Ctrl-C handling on every version: from 3.11
on, ``asyncio.run`` answers the first Ctrl-C by cancelling the main task (which the commands
turn into a clean stop: the summary is printed and the files are written, see
``bridge.runner.run_items(stop_on_cancel=True)``) and the second by ``KeyboardInterrupt``.
Python 3.10's ``asyncio.run`` raised ``KeyboardInterrupt`` at once, wherever the loop was, so a
stopped stream lost its summary and its ``--json``/``--report`` files.  On 3.10 the same
behaviour is built here, the way 3.11's ``asyncio.Runner.run`` does it.

``run`` also answers SIGTERM (``kill PID``, ``timeout``, ``systemctl stop``, ``docker stop``)
like the first Ctrl-C: a clean stop, summary and files included (it killed the process
outright, leaving no ``--json``/``--report``); a second SIGTERM ends it at once.
``stopped_by`` then names the signal ("SIGTERM") for the message saying why the stream stopped.
"""
from __future__ import annotations

import asyncio
import signal
import sys
import threading


#: The stop signal other than Ctrl-C that cancelled the last :func:`run` (None: none did).
stopped_by: str | None = None


def run(coro):
    """``asyncio.run(coro)``; on Python 3.10 with 3.11's first-Ctrl-C-cancels handling;
    the first SIGTERM cancels like the first Ctrl-C (see the module docstring)."""
    global stopped_by
    stopped_by = None
    coro = _stop_on_sigterm(coro)
    if sys.version_info >= (3, 11):
        return asyncio.run(coro)
    return _run_310(coro)


async def _stop_on_sigterm(coro):
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()

    def on_sigterm():
        global stopped_by
        loop.remove_signal_handler(signal.SIGTERM)  # the default again: a second one kills
        if not task.done():
            stopped_by = "SIGTERM"
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows; not the main thread
        return await task
    try:
        return await task
    except asyncio.CancelledError:
        if stopped_by:  # ours, and the command did not absorb it: stop as Ctrl-C stops it
            raise KeyboardInterrupt() from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _run_310(coro):
    async def main():
        task = asyncio.ensure_future(coro)
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            return await task
        loop = asyncio.get_running_loop()
        interrupts = 0

        def on_sigint(signum, frame):
            nonlocal interrupts
            interrupts += 1
            if interrupts == 1 and not task.done():
                task.cancel()
                loop.call_soon_threadsafe(lambda: None)  # wake a select() with a long timeout
                return
            raise KeyboardInterrupt()

        try:
            signal.signal(signal.SIGINT, on_sigint)
        except ValueError:
            return await task
        try:
            return await task
        except asyncio.CancelledError:
            if interrupts:  # the cancellation was ours and the coroutine did not absorb it
                raise KeyboardInterrupt() from None
            raise
        finally:
            if signal.getsignal(signal.SIGINT) is on_sigint:
                signal.signal(signal.SIGINT, signal.default_int_handler)

    return asyncio.run(main())


async def wait_for(aw, timeout: float | None):
    """``asyncio.wait_for`` that never loses a cancellation (Ctrl-C, SIGTERM).

    Before Python 3.12, ``wait_for`` returns the result instead of raising when the
    awaitable finished in the loop step the cancellation arrived in; a consumer whose
    source nearly always has an item ready (a streaming wearable) can miss the stop: a
    SIGTERM'd ``calibrate`` ran on through both phases and saved the profile.
    """
    if sys.version_info >= (3, 12):
        return await asyncio.wait_for(aw, timeout)
    fut = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({fut}, timeout=timeout)
    except asyncio.CancelledError:
        fut.cancel()
        raise
    if not done:
        fut.cancel()
        await asyncio.wait({fut})  # let it finish cancelling (as wait_for does)
        raise asyncio.TimeoutError()
    return fut.result()
