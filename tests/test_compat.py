"""bridge._compat.run: the first Ctrl-C cancels the main task (the commands' clean stop), the
second raises KeyboardInterrupt, on every Python version.

Python 3.11's asyncio.run does this itself; the 3.10 version (``_run_310``) is tested here on
whatever Python runs the tests, in a child process that gets real SIGINTs.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import asyncio, sys
from bridge import _compat

async def main(absorb):
    print("ready", flush=True)
    try:
        await asyncio.sleep(30)
        return "timed out"
    except asyncio.CancelledError:
        if not absorb:
            raise
        print("cancelled", flush=True)
        uncancel = getattr(asyncio.current_task(), "uncancel", None)
        if uncancel is not None:
            uncancel()
        await asyncio.sleep({linger})  # cleaning up: a second Ctrl-C must still get through
        return "clean stop"

try:
    print(_compat.{runner}(main({absorb})), flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
"""


def _child(runner: str, absorb: bool, linger: float, interrupts: int,
           sig=signal.SIGINT, returncode: int = 0) -> list[str]:
    code = CHILD.format(runner=runner, absorb=absorb, linger=linger)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for i in range(interrupts):
            time.sleep(0.2)
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == returncode, err
    return out.split()


@pytest.mark.parametrize("runner", ["run", "_run_310"])
def test_first_ctrl_c_cancels_the_task_which_may_stop_cleanly(runner):
    assert _child(runner, absorb=True, linger=0.1, interrupts=1) == ["cancelled", "clean", "stop"]


@pytest.mark.parametrize("runner", ["run", "_run_310"])
def test_a_cancellation_not_absorbed_is_a_keyboard_interrupt(runner):
    assert _child(runner, absorb=False, linger=0, interrupts=1) == ["KeyboardInterrupt"]


@pytest.mark.parametrize("runner", ["run", "_run_310"])
def test_second_ctrl_c_quits_at_once(runner):
    assert _child(runner, absorb=True, linger=30, interrupts=2) == ["cancelled",
                                                                   "KeyboardInterrupt"]


def test_without_ctrl_c_it_is_asyncio_run():
    from bridge import _compat

    async def value():
        return 42
    assert _compat.run(value()) == 42
    assert _compat._run_310(value()) == 42


# SIGTERM (kill PID, timeout, systemctl stop, docker stop) stops like the first Ctrl-C: it
# killed the process outright, so a stream stopped that way left no summary, --json or --report.
def test_sigterm_cancels_like_the_first_ctrl_c():
    assert _child("run", absorb=True, linger=0.1, interrupts=1,
                  sig=signal.SIGTERM) == ["cancelled", "clean", "stop"]


def test_a_sigterm_not_absorbed_is_a_keyboard_interrupt():
    assert _child("run", absorb=False, linger=0, interrupts=1,
                  sig=signal.SIGTERM) == ["KeyboardInterrupt"]


def test_second_sigterm_ends_the_process_at_once():
    assert _child("run", absorb=True, linger=30, interrupts=2, sig=signal.SIGTERM,
                  returncode=-signal.SIGTERM) == ["cancelled"]


async def test_wait_for_keeps_a_cancellation_that_arrives_with_the_result():
    """asyncio.wait_for before 3.12 returned the result instead: a consumer whose source
    nearly always had an item ready (calibrate) ran on after SIGTERM and saved its profile."""
    import asyncio

    from bridge import _compat

    consumer = None

    async def item():
        consumer.cancel()  # the stop arrives in the loop step the item is ready
        return 1

    async def consume():
        return await _compat.wait_for(item(), 5.0)

    consumer = asyncio.ensure_future(consume())
    with pytest.raises(asyncio.CancelledError):
        await consumer


async def test_wait_for_still_times_out_and_returns():
    import asyncio

    from bridge import _compat

    async def slow():
        await asyncio.sleep(10)

    async def quick():
        await asyncio.sleep(0)
        return "item"

    with pytest.raises(asyncio.TimeoutError):
        await _compat.wait_for(slow(), 0.05)
    assert await _compat.wait_for(quick(), 1.0) == "item"
