"""Differences between the Python versions glutebridge supports (3.10 and later).

``run(coro)`` is ``asyncio.run`` with Python 3.11's Ctrl-C handling on every version: from 3.11
on, ``asyncio.run`` answers the first Ctrl-C by cancelling the main task (which the commands
turn into a clean stop: the summary is printed and the files are written, see
``bridge.runner.run_items(stop_on_cancel=True)``) and the second by ``KeyboardInterrupt``.
Python 3.10's ``asyncio.run`` raised ``KeyboardInterrupt`` at once, wherever the loop was, so a
stopped stream lost its summary and its ``--json``/``--report`` files.  On 3.10 the same
behaviour is built here, the way 3.11's ``asyncio.Runner.run`` does it.
"""
from __future__ import annotations

import asyncio
import signal
import sys
import threading


def run(coro):
    """``asyncio.run(coro)``; on Python 3.10 with 3.11's first-Ctrl-C-cancels handling."""
    if sys.version_info >= (3, 11):
        return asyncio.run(coro)
    return _run_310(coro)


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
