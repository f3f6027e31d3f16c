"""What a user reads when something is off: a stop by SIGTERM, a serial path that is no
port, a garbage D-Bus address; and the dashboard writing amplitudes as the terminal does."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.errors import DeviceNotFoundError, TransportError
from bridge.sources import open as bopen

REPO = Path(__file__).resolve().parent.parent


def _cmd(*args) -> list[str]:
    exe = shutil.which("glutebridge")
    return ([exe] if exe else [sys.executable, "-m", "bridge.cli"]) + [str(a) for a in args]


def _env(**extra) -> dict:
    return dict(os.environ, COLUMNS="200", **extra,
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ simulate + SIGTERM
def test_simulate_stopped_by_sigterm_says_sigterm(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(_cmd("simulate", "--serve", f"tcp://127.0.0.1:{port}",
                                 "--scenario", "demo"),
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # kill, timeout, a service stop
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "simulator stopped (SIGTERM); clients disconnected" in out, (out, err)
    assert "Ctrl-C)" not in out and "Traceback" not in err, (out, err)


# ------------------------------------------------------------------ serial paths
@pytest.mark.parametrize("kind", ["directory", "regular file"])
async def test_serial_path_that_is_no_device_says_so(tmp_path, kind):
    path = tmp_path / "port"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"GBREC")
    with pytest.raises(DeviceNotFoundError) as info:
        async with bopen(f"serial://{path}"):
            pass
    msg = str(info.value)
    assert f"{path} is a {kind}, not a serial device" in msg, msg
    assert "list_ports" in msg and "ioctl" not in msg and "Errno" not in msg
    assert ("replay://" in msg) == (kind == "regular file")  # a recording? say how to play it


async def test_serial_device_that_takes_no_serial_settings_says_so():
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    with pytest.raises(DeviceNotFoundError, match=r"/dev/null is not a serial device") as info:
        async with bopen("serial:///dev/null"):
            pass
    assert "Inappropriate ioctl" not in str(info.value)


# ------------------------------------------------------------------ D-Bus address
async def test_garbage_dbus_address_is_one_clear_transport_error(monkeypatch):
    pytest.importorskip("dbus_fast")
    from bridge.sources.ble import scan

    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "garbage")
    with pytest.raises(TransportError) as info:
        await scan(0.5)
    msg = str(info.value)
    assert "DBUS_SYSTEM_BUS_ADDRESS='garbage' is not a D-Bus address" in msg, msg
    assert "unset it" in msg and "InvalidAddressError" not in msg
    assert isinstance(info.value.__cause__, ValueError)  # dbus-fast's error kept as the cause


def test_cli_with_garbage_dbus_address_prints_one_line(tmp_path):
    pytest.importorskip("dbus_fast")
    r = subprocess.run(_cmd("stream", "ble://AA:BB:CC:DD:EE:FF", "--view", "lines"),
                       cwd=tmp_path, env=_env(DBUS_SYSTEM_BUS_ADDRESS="garbage"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("glutebridge: error: ") and r.stderr.strip().count("\n") == 0
    assert "is not a D-Bus address" in r.stderr and "InvalidAddressError" not in r.stderr


# ------------------------------------------------------------------ dashboard amplitudes
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_dashboard_writes_amplitudes_as_the_terminal_does():
    from bridge.sinks.console import mv

    js = (REPO / "bridge" / "dashboard_assets" / "app.js").read_text()
    (fn,) = re.findall(r"^\s*const mV = .*;$", js, re.M)
    values = [0.0123, 0.348, 0.9996, 1.0, 1.2504, 2.5, 12.3456]
    r = subprocess.run(["node", "-e", fn + f"console.log(JSON.stringify({values}.map(mV)))"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [f"{mv(v)} mV" for v in values]


# ------------------------------------------------------------------ tidy imports
def test_no_module_imports_the_same_name_twice_at_top_level():
    twice = []
    for path in sorted((REPO / "bridge").rglob("*.py")):
        seen: set = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [(None, a.name, a.asname) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module, a.name, a.asname) for a in node.names]
            else:
                continue
            for n in names:
                if n in seen:
                    twice.append(f"{path.relative_to(REPO)}:{node.lineno} {n}")
                seen.add(n)
    assert not twice, twice
