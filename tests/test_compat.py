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


def _child(runner: str, absorb: bool, linger: float, interrupts: int) -> list[str]:
    code = CHILD.format(runner=runner, absorb=absorb, linger=linger)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for i in range(interrupts):
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
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
