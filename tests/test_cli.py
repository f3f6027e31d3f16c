"""The CLI driven as a user drives it: subprocesses, real files, real errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def glutebridge(*args, timeout=180, cwd=None, env_extra=None):
    exe = shutil.which("glutebridge")
    cmd = [exe] if exe else [sys.executable, "-m", "bridge.cli"]
    env = dict(os.environ, COLUMNS="100", GLUTEBRIDGE_HOME=str(cwd or REPO),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.update(env_extra or {})
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or REPO, env=env)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A demo session recorded through the live path (sim transport, 20x)."""
    d = tmp_path_factory.mktemp("rec")
    rec = d / "demo.gbrec"
    r = glutebridge("demo", "--speed", "20", "--view", "lines", "--record", rec,
                    "--json", d / "live.json", cwd=d)
    assert r.returncode == 0, r.stderr
    return d, rec, r


def test_help_explains_every_command():
    r = glutebridge("--help")
    assert r.returncode == 0
    for cmd in ("demo", "stream", "replay", "analyze", "export", "report", "scan", "simulate",
                "calibrate", "test"):
        assert cmd in r.stdout
    r = glutebridge("stream", "--help")
    assert "--record" in r.stdout and "ble://" in r.stdout


def test_demo_as_fast_as_possible_prints_the_findings(tmp_path):
    r = glutebridge("demo", "--speed", "0", "--view", "lines", "--json", "out.json",
                    cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())  # the terminal width may wrap lines anywhere
    assert "glute_max_L fires" in out and "after hamstring_L" in out
    assert "Hold ✗ glute_max_L" in out
    assert "right leg: 30.0 s of 30 s — goal met" in out
    assert "left leg: 14.0 s of 30 s, touchdown" in out
    results = json.loads((tmp_path / "out.json").read_text())
    # The device is named as at any other speed (the sim:// URL), on screen and in the JSON.
    assert list(results["devices"]) == ["sim://demo"]
    assert results["devices"]["sim://demo"]["contractions"]


def test_live_recording_replays_to_the_same_results(recorded):
    d, rec, live = recorded
    assert rec.stat().st_size > 1_000_000
    r = glutebridge("analyze", rec, "--format", "json", "--no-progress", cwd=d)
    assert r.returncode == 0, r.stderr
    replayed = json.loads(r.stdout)
    live_results = json.loads((d / "live.json").read_text())
    assert list(live_results["devices"]) == list(replayed["devices"]) == ["sim://demo"]
    for dev in live_results["devices"]:
        assert replayed["devices"][dev]["contractions"] == live_results["devices"][dev][
            "contractions"]
        assert replayed["devices"][dev]["phases"] == live_results["devices"][dev]["phases"]
    # The end of the file is the end of the data, not a link loss the live run never had.
    for key in ("link_losses", "reconnect_attempts", "reconnects", "stalls"):
        assert replayed["link"][key] == live_results["link"][key] == 0, key


def test_terminal_amplitudes_are_the_mV_of_the_results_files(recorded):
    """Lines view and summary table show EMG peaks in mV, the numbers of the JSON/report."""
    d, _, live = recorded
    assert "µV" not in live.stdout
    (dev,) = json.loads((d / "live.json").read_text())["devices"].values()
    peaks = {(c["muscle"], f"{c['peak']:.3f}") for c in dev["contractions"]}
    shown = re.findall(r"▼ (\S+) +relaxes after [\d.]+ s +\(peak ([\d.]+) mV", live.stdout)
    assert len(shown) >= 30 and set(shown) <= peaks
    assert "mean peak mV" in live.stdout
    (reps,) = [ph["summary"] for ph in dev["phases"] if ph["phase"] == "reps"]
    for m in reps["muscles"]:
        rows = [r for st in m["reps"]["sets"] for r in st["reps"]]
        mean = sum(r["peak"] for r in rows) / len(rows)
        assert re.search(rf"^ {m['name']} +│ {len(rows)} +│ [\d.]+ +│ {mean:.3f} ",
                         live.stdout, re.M), m["name"]


def test_replay_command_and_csv_output(recorded):
    d, rec, _ = recorded
    r = glutebridge("replay", rec, "--speed", "0", "--view", "lines", cwd=d)
    assert r.returncode == 0, r.stderr
    assert "Single-leg stance, left leg: 14.0 s" in " ".join(r.stdout.split())
    r = glutebridge("analyze", rec, "--format", "csv", "--no-progress", cwd=d)
    rows = r.stdout.strip().splitlines()
    assert rows[0].startswith("device,channel,muscle,onset_s")
    assert len(rows) > 30


def test_replay_streams_jsonl_for_scripts(recorded):
    d, rec, _ = recorded
    r = glutebridge("replay", rec, "--speed", "0", "--format", "jsonl", cwd=d)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    types = {e["type"] for e in events}
    assert {"onset", "offset"} <= types


@pytest.mark.parametrize("fmt,name", [("csv", "csvdir"), ("edf", "s.edf"), ("c3d", "s.c3d")])
def test_export_command(recorded, fmt, name):
    d, rec, _ = recorded
    r = glutebridge("export", rec, "--to", fmt, "-o", d / name, cwd=d)
    assert r.returncode == 0, r.stderr
    assert (d / name).exists()


@pytest.mark.parametrize("args", [["report", "{rec}", "-o", "out.html"],
                                  ["export", "{rec}", "--to", "edf", "-o", "out.html"],
                                  ["analyze", "{rec}", "--no-progress", "-o", "out.html"]])
def test_named_output_files_are_not_overwritten_without_force(recorded, tmp_path, args):
    d, rec, _ = recorded
    args = [a.format(rec=rec) for a in args]
    (tmp_path / "out.html").write_text("keep me")
    r = glutebridge(*args, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "glutebridge: error: out.html exists; pass --force to overwrite it, or choose "
        "another name"]
    assert (tmp_path / "out.html").read_text() == "keep me"
    r = glutebridge(*args, "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.html").read_bytes() != b"keep me"


def test_demo_at_speed_0_refuses_to_drop_a_recording(tmp_path):
    r = glutebridge("demo", "--speed", "0", "--record", "d.gbrec", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "glutebridge: error: --record d.gbrec needs the wearable's byte stream, which "
        "--speed 0 skips; give a speed above 0 (e.g. --speed 50)"]
    assert not (tmp_path / "d.gbrec").exists()


def test_export_csv_does_not_overwrite_an_earlier_export(recorded, tmp_path):
    _, rec, _ = recorded
    r = glutebridge("export", rec, "--to", "csv", "-o", "x", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (tmp_path / "x" / "events.csv").write_text("mine")
    r = glutebridge("export", rec, "--to", "csv", "-o", "x", cwd=tmp_path)
    assert r.returncode == 1 and "x already holds an export" in r.stderr
    assert "--force" in r.stderr and (tmp_path / "x" / "events.csv").read_text() == "mine"
    r = glutebridge("export", rec, "--to", "csv", "-o", "x", "--force", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "x" / "events.csv").read_text() != "mine"


def test_session_outputs_are_checked_before_streaming_and_recordings_never_overwritten(
        tmp_path):
    (tmp_path / "s.json").write_text("keep me")
    r = glutebridge("stream", "sim://holds?speed=50", "--view", "lines", "--json", "s.json",
                    cwd=tmp_path, timeout=60)
    assert r.returncode == 1 and "s.json exists; pass --force" in r.stderr
    assert "connected" not in r.stdout and (tmp_path / "s.json").read_text() == "keep me"
    (tmp_path / "old.gbrec").write_text("keep me")
    r = glutebridge("stream", "sim://holds?speed=50", "--view", "quiet", "--json", "s.json",
                    "--force", "--record", "old.gbrec", cwd=tmp_path, timeout=60)
    assert r.returncode == 1 and "never overwritten" in r.stderr
    assert (tmp_path / "old.gbrec").read_text() == "keep me"
    r = glutebridge("stream", "sim://holds?speed=50", "--view", "quiet", "--json", "s.json",
                    "--force", cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "s.json").read_text())["devices"]


def test_demo_replaces_its_own_report_on_a_second_run(tmp_path):
    (tmp_path / "glutebridge-demo.html").write_text("an earlier demo")
    r = glutebridge("demo", "--speed", "0", "--view", "quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "glutebridge-demo.html").stat().st_size > 50_000


def test_analyze_a_csv_file(tmp_path):
    import numpy as np

    from bridge.simulator.emg_model import Burst, simulate_emg

    x, _ = simulate_emg(1000, 12, [Burst(0, 2, 4, 0.3), Burst(1, 2.1, 4, 0.3),
                                   Burst(0, 7, 9, 0.3), Burst(1, 7.2, 9, 0.3)],
                        channels=2, snr_db=15, seed=2)
    t = np.arange(len(x)) / 1000
    p = tmp_path / "emg.csv"
    np.savetxt(p, np.column_stack([t, x]), delimiter=",", header="time,glute_max_L,glute_max_R",
               comments="", fmt="%.6f")
    r = glutebridge("analyze", p, "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    cs = res["devices"]["emg"]["contractions"]
    assert sorted(c["muscle"] for c in cs) == ["glute_max_L"] * 2 + ["glute_max_R"] * 2
    r = glutebridge("analyze", p, "--format", "table", cwd=tmp_path)
    assert "glute_max_L" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["stream", "bogus"], "not a source URL"),
    (["stream", "foo://x"], "unknown scheme"),
    (["stream", "serial:///dev/nonexistent-port-xyz"], "/dev/nonexistent-port-xyz"),
    (["analyze", "missing.gbrec"], "no such file"),
    (["replay", "notes.txt"], "not a glutebridge recording"),
    (["stream", "sim://no-such-scenario"], "unknown scenario"),
    (["analyze", "notes.txt", "--rate", "1000"], "notes.txt"),
    # a file of another kind: what the command reads, and what this file looks like
    (["analyze", "page.html"], "page.html is not a glutebridge recording (.gbrec) or a CSV "
     "file of EMG samples: it looks like an HTML page. analyze, report and export read"),
    (["report", "page.html"], "it looks like an HTML page"),
    (["export", "page.html", "--to", "csv", "-o", "out"], "it looks like an HTML page"),
    (["replay", "page.html"], "page.html is not a glutebridge recording: it looks like an "
     "HTML page. replay plays recordings"),
    (["replay", "nums.csv"], "it looks like a CSV file of numbers"),
    (["analyze", "r.json"], "it looks like JSON (glutebridge results"),
    (["analyze", "nums.csv"], "nums.csv: no time column; pass --rate HZ"),
])
def test_bad_input_gives_one_clear_line(tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "page.html").write_text("<!DOCTYPE html>\n<html><body>\n<p>1</p>\n"
                                        "</body></html>\n")
    (tmp_path / "nums.csv").write_text("a,b\n1,2\n3,4\n")
    (tmp_path / "r.json").write_text('{"devices": {}}\n')
    r = glutebridge(*args, cwd=tmp_path, timeout=60)
    assert r.returncode != 0
    err = r.stderr.strip().splitlines()
    assert err and err[-1].startswith("glutebridge: error:"), r.stderr
    assert message in err[-1]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("output", ["--lsl", "--dashboard"])
def test_an_output_that_cannot_run_fails_before_connecting_or_recording(tmp_path, output):
    """pylsl missing / the dashboard's port taken: one line, before the wearable is
    connected and before --record makes a file (it was left holding the handshake, and
    the same command, run again once pylsl was installed, stopped at "exists")."""
    import socket

    env, args = {}, [output]
    with socket.socket() as busy:
        if output == "--lsl":  # a pylsl that cannot be imported, first on the path
            (tmp_path / "nolsl" / "pylsl").mkdir(parents=True)
            (tmp_path / "nolsl" / "pylsl" / "__init__.py").write_text(
                "raise ImportError('No module named pylsl')\n")
            env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "nolsl"), str(REPO)])
            message = "pip install 'glutebridge[lsl]'"
        else:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            args += ["--port", busy.getsockname()[1]]
            message = f"cannot serve the dashboard on 127.0.0.1:{busy.getsockname()[1]}"
        r = glutebridge("stream", "sim://demo?speed=10", *args, "--record", "x.gbrec",
                        "--duration", "1", "--view", "lines", cwd=tmp_path, env_extra=env,
                        timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("glutebridge: error:") and message in r.stderr, r.stderr
    assert "connected:" not in r.stdout  # the wearable was not connected first
    assert not (tmp_path / "x.gbrec").exists() and not (tmp_path / "x.gbrec.idx").exists()


def test_sigkill_while_recording_leaves_an_analysable_file(tmp_path):
    """kill -9 mid-stream: the file opens, replays and analyses; at most 1 s is lost."""
    import signal
    import time

    from bridge.recording import RecordingReader

    rec = tmp_path / "killed.gbrec"
    exe = shutil.which("glutebridge")
    cmd = ([exe] if exe else [sys.executable, "-m", "bridge.cli"]) + [
        "stream", "sim://demo?speed=8", "--record", str(rec), "--view", "quiet"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not rec.exists() or rec.stat().st_size < 400_000):
        time.sleep(0.2)  # wait until about 12 s of device time are on disk
    assert proc.poll() is None, proc.stderr.read().decode()
    time.sleep(1.0)
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    records = list(RecordingReader(rec).records())
    assert killed_at - records[-1].host_time < 1.0
    r = glutebridge("analyze", rec, "--format", "json", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    (dev,) = res["devices"].values()
    assert len(dev["contractions"]) >= 6  # the first bridge reps are in the file
    assert [p["phase"] for p in dev["phases"]][:2] == ["rest", "reps"]


def test_ctrl_c_ends_a_live_stream_with_its_summary_results_and_report(tmp_path):
    """The first Ctrl-C (SIGINT) stops the stream; what was received is summarised and saved."""
    import signal
    import time

    exe = shutil.which("glutebridge")
    cmd = ([exe] if exe else [sys.executable, "-m", "bridge.cli"]) + [
        "stream", "sim://demo?speed=2", "--view", "lines", "--json", "r.json",
        "--report", "r.html", "--record", "r.gbrec"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    rec = tmp_path / "r.gbrec"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not rec.exists() or rec.stat().st_size < 300_000):
        time.sleep(0.2)  # until the first bridge reps (~10 s of device time) are in
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped (Ctrl-C)" in out and "Repetitions" in out
    # said after the stop: one more Ctrl-C (not two) would quit without the files
    assert "press Ctrl-C again to quit without them" in " ".join(out.split())
    assert "recording written to r.gbrec" in out
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["interrupted"] is True
    (dev,) = res["devices"].values()
    assert len(dev["contractions"]) >= 6
    assert (tmp_path / "r.html").stat().st_size > 50_000
    # the recording was closed properly: it analyses like any other
    r = glutebridge("analyze", rec, "--format", "json", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(next(iter(json.loads(r.stdout)["devices"].values()))["contractions"]) >= 6


def _popen_cli(args, cwd):
    exe = shutil.which("glutebridge")
    cmd = ([exe] if exe else [sys.executable, "-m", "bridge.cli"]) + [str(a) for a in args]
    env = dict(os.environ, GLUTEBRIDGE_HOME=str(cwd),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigterm_ends_a_live_stream_like_ctrl_c(tmp_path):
    """`kill PID`, `timeout 600 glutebridge stream ...`, systemctl/docker stop send SIGTERM:
    the stream stops as on Ctrl-C, with its summary and files (it died without them)."""
    import signal
    import time

    proc = _popen_cli(["stream", "sim://demo?speed=4", "--view", "lines", "--json", "r.json",
                       "--record", "r.gbrec"], tmp_path)
    rec = tmp_path / "r.gbrec"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not rec.exists() or rec.stat().st_size < 300_000):
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    out = " ".join(out.split())
    assert "stopped (SIGTERM): the results cover the data received so far; another SIGTERM " \
           "to quit without them" in out
    assert "Repetitions" in out and "recording written to r.gbrec" in out
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["interrupted"] is True
    assert len(next(iter(res["devices"].values()))["contractions"]) >= 6


def test_sigterm_during_calibration_saves_nothing(tmp_path):
    """A stop in the middle of the rest phase aborts the calibration (it ran on through both
    phases and saved the profile: asyncio.wait_for before 3.12 lost the cancellation)."""
    import signal
    import time

    proc = _popen_cli(["calibrate", "sim://holds?speed=1", "--profile", "cut", "--force"],
                      tmp_path)
    assert "Relax every muscle" in proc.stdout.readline()
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert "stopped" in err.split() and "Traceback" not in err, err
    assert "Contract" not in out and "saved" not in out
    assert not list(tmp_path.rglob("cut*"))


def test_guided_single_leg_test_with_the_scripted_virtual_client(tmp_path):
    r = glutebridge("test", "single-leg", "sim://single-leg?speed=25", "--view", "lines",
                    "--json", "sl.json", "--age", "70", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "right leg: 30.0 s of 30 s — goal met" in out
    assert "left leg: 14.0 s of 30 s" in out and "left leg weaker" in out
    # graded against the age norm too (Springer 2007: 16.7 s at 70-79, eyes open)
    assert "grade: below norm (age norm 16.7 s" in out
    res = json.loads((tmp_path / "sl.json").read_text())
    assert res["age"] == 70.0
    (dev,) = res["devices"].values()
    assert dev["stance_comparison"]["left"]["norm_s"] == 16.7
    r = glutebridge("test", "single-leg", "sim://single-leg", "--age", "300", cwd=tmp_path)
    assert r.returncode == 2 and "not a plausible age" in r.stderr


def test_test_single_leg_takes_stance_duration_like_stream(tmp_path):
    r = glutebridge("test", "--help")
    assert "--stance-duration" in r.stdout and "--duration" not in r.stdout.replace(
        "--stance-duration", "")
    for option in ("--stance-duration", "--duration"):  # the old name still works
        r = glutebridge("test", "single-leg", "sim://single-leg?speed=25", option, "20",
                        "--view", "lines", "--json", f"{option[2:]}.json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "right leg: 20.0 s of 20 s — goal met" in " ".join(r.stdout.split())
        (dev,) = json.loads((tmp_path / f"{option[2:]}.json").read_text())["devices"].values()
        assert [dev["stance_comparison"][leg]["goal"] for leg in ("left", "right")] == [20, 20]
        assert ("warning: test --duration is now --stance-duration" in r.stderr) == (
            option == "--duration")
    r = glutebridge("test", "single-leg", "sim://single-leg", "--duration", "20",
                    "--stance-duration", "25", cwd=tmp_path)
    assert r.returncode == 1 and "old name of --stance-duration" in r.stderr


def test_calibrate_then_stream_with_the_profile(tmp_path):
    # --force: the holds scenario never works glute medius, so its MVC check fails
    r = glutebridge("calibrate", "sim://holds?speed=10", "--profile", "client-b",
                    "--rest", "3", "--mvc", "8", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "profiles" / "client-b.npz").exists()
    r = glutebridge("stream", "sim://holds?speed=20", "--profile", "client-b", "--view",
                    "quiet", "--json", "out.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "out.json").read_text())
    (dev,) = res["devices"].values()
    pct = [c["pct_mvc"] for c in dev["contractions"]]
    assert pct and all(p is not None and p > 0 for p in pct)
    r = glutebridge("stream", "sim://holds", "--profile", "nobody", cwd=tmp_path)
    assert r.returncode == 1 and "glutebridge calibrate" in r.stderr


def test_analyze_names_what_is_wrong_with_a_broken_recording(tmp_path):
    (tmp_path / "empty.gbrec").write_bytes(b"")
    (tmp_path / "junk.gbrec").write_bytes(b"\x00\x01garbage" * 10)
    r = glutebridge("analyze", tmp_path / "empty.gbrec", "--no-progress", cwd=tmp_path)
    assert r.returncode != 0 and "is empty (0 bytes)" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = glutebridge("analyze", tmp_path / "junk.gbrec", "--no-progress", cwd=tmp_path)
    assert r.returncode != 0 and "not a glutebridge recording" in r.stderr


# ------------------------------------------------- a fresh user's walkthrough, in process
def _main(*args) -> int:
    from bridge.cli import main
    return main([str(a) for a in args])


def test_a_damaged_recording_says_what_the_file_lost(recorded, tmp_path, capsys):
    """Damaged records and a cut-off end are skipped (the rest still analyses), and every
    command says so: their samples are not link losses, and a torn end is no gap at all
    (replay, analyze and export said nothing)."""
    from bridge.recording import Kind, RecordingReader

    _, rec, _ = recorded
    data = bytearray(rec.read_bytes())
    ins = [r for r in RecordingReader(rec).records() if r.kind == Kind.DATA_IN]
    victim = ins[len(ins) // 2]
    data[victim.offset + 30] ^= 0xFF  # a payload byte: that record's checksum fails
    bad = tmp_path / "bad.gbrec"
    bad.write_bytes(bytes(data[:-10]))  # and the last record cut short
    said = (f"the recording is damaged: 1 record skipped ({16 + len(victim.payload) + 4} "
            "bytes; samples in it are missing, marked as gaps); its last "
            f"{16 + len(ins[-1].payload) + 4 - 10} bytes are an unfinished record (the "
            "recording was cut off while writing) and are left out")

    assert _main("analyze", bad, "--format", "json", "--no-progress") == 0
    out, err = capsys.readouterr()
    assert " ".join(err.split()) == f"warning: {bad}: {said}"
    res = json.loads(out)
    assert said in res["notes"]
    assert res["link"]["transport"]["corrupt_records"] == 1

    assert _main("export", bad, "--to", "csv", "-o", tmp_path / "csv") == 0
    assert said in " ".join(capsys.readouterr().err.split())

    assert _main("replay", bad, "--speed", "0", "--view", "lines",
                 "--json", tmp_path / "r.json") == 0
    assert f"Note: {said}" in " ".join(capsys.readouterr().out.split())
    assert said in json.loads((tmp_path / "r.json").read_text())["notes"]

    assert _main("analyze", rec, "--format", "json", "--no-progress") == 0  # a whole file:
    out, err = capsys.readouterr()  # no word of damage
    assert err == "" and not any("damaged" in n for n in json.loads(out)["notes"])



@pytest.mark.parametrize("args,message", [
    (["stream", "sim://demo", "--duration", "0"], "--duration: 0: give a number above 0"),
    (["stream", "sim://demo", "--duration", "-5"], "--duration: -5: give a number above 0"),
    (["stream", "sim://demo", "--give-up", "-3"], "--give-up: -3: give 0 or more"),
    (["stream", "sim://demo", "--stance-duration", "-10"], "--stance-duration: -10"),
    (["demo", "--speed", "-3"], "--speed: -3: give 0 or more"),
    (["demo", "--drop-rate", "1.5"], "--drop-rate: 1.5 is not a fraction between 0 and 1"),
    (["demo", "--bit-errors", "-0.1"], "--bit-errors: -0.1 is not a fraction"),
    (["demo", "--port", "99999"], "--port: 99999 is not a port (0-65535"),
    (["replay", "x.gbrec", "--speed", "nan"], "--speed: 'nan' is not a finite number"),
    (["scan", "--timeout", "0"], "--timeout: 0: give a number above 0"),
    (["simulate", "--serve", "serial", "--speed", "0"], "--speed: 0: give a number above 0"),
    (["test", "activation", "sim://demo", "--reps", "0"], "--reps: 0: give 1 or more"),
    (["test", "activation", "sim://demo", "--hold", "-10"], "--hold: -10: give a number"),
])
def test_numbers_that_would_silently_mean_something_else_are_refused(capsys, args, message):
    # e.g. --duration 0 streamed forever, --duration -5 printed an empty summary, --speed -3
    # raced, --drop-rate 1.5 dropped everything, --port 99999 failed after connecting
    with pytest.raises(SystemExit) as exc:
        _main(*args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1], err


@pytest.mark.parametrize("args", [
    ["stream", "sim://demo?speed=50", "--view", "quiet", "--json", "{missing}/r.json"],
    ["demo", "--speed", "0", "--view", "quiet", "--report", "{missing}/r.html"],
    ["report", "{file}", "-o", "{missing}/r.html"],
    ["analyze", "{file}", "-o", "{missing}/r.txt"],
    ["export", "{file}", "--to", "edf", "-o", "{missing}/r.edf"],
])
def test_an_output_in_a_missing_folder_is_refused_before_anything_runs(capsys, tmp_path,
                                                                        args):
    # it used to stream or analyse everything, then end in a FileNotFoundError traceback
    (tmp_path / "a.csv").write_text("time,glute_max_L\n0,0.1\n0.001,0.2\n")
    missing = tmp_path / "no-such-folder"
    args = [a.format(missing=missing, file=tmp_path / "a.csv") for a in args]
    assert _main(*args) == 1
    out = capsys.readouterr()
    assert out.err.strip().splitlines() == [
        f"glutebridge: error: cannot write {missing}/{Path(args[-1]).name}: the folder "
        f"{missing} does not exist; create it first or choose another place"]
    assert "connected" not in out.out and not missing.exists()


def test_a_device_that_never_answered_leaves_no_recording_to_block_the_retry(capsys,
                                                                             tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec = tmp_path / "anna.gbrec"
    for _ in range(2):  # the same command again (device switched on) must not meet
        assert _main("stream", f"tcp://127.0.0.1:{port}", "--record", rec) == 1
        err = capsys.readouterr().err  # "anna.gbrec exists; choose a new file name"
        assert "connection refused" in err and "exists" not in err
        assert list(tmp_path.iterdir()) == []


def test_demo_jsonl_keeps_stdout_pure_json_lines(capsys, monkeypatch, tmp_path):
    import bridge.commands.streaming as streaming

    async def demo(**kwargs):  # the banner is the point here, not the session
        return {}

    monkeypatch.setattr(streaming, "demo", demo)
    monkeypatch.chdir(tmp_path)
    assert _main("demo", "--speed", "0", "--format", "jsonl") == 0
    out = capsys.readouterr()
    assert out.out == ""  # the banner went to stdout and broke `| jq`
    assert "glutebridge demo — scenario 'demo' from the virtual wearable, as fast as " \
           "possible" in out.err
    assert _main("demo", "--speed", "0", "--view", "quiet") == 0
    assert capsys.readouterr().out == ""  # quiet is quiet


def test_help_of_each_command_says_only_what_it_has(capsys):
    def help_of(*cmd):
        with pytest.raises(SystemExit):
            _main(*cmd, "--help")
        return " ".join(capsys.readouterr().out.split())

    for cmd in (["test"], ["replay"]):  # no --record there, and test reads no recording
        assert "a --record recording is never overwritten" not in help_of(*cmd), cmd
    assert "stored in a recording" not in help_of("test")
    assert "a --record recording is never overwritten" in help_of("stream")
    assert "Analyses a recording (or CSV EMG columns) as analyze does" in help_of("report")


def test_rate_and_columns_are_not_silently_ignored_for_a_recording(capsys, recorded):
    _, rec, _ = recorded
    for extra, said in ((["--rate", "1000"], "--rate applies"),
                        (["--columns", "foo"], "--columns applies"),
                        (["--rate", "1", "--columns", "a"], "--rate and --columns apply")):
        assert _main("analyze", rec, *extra) == 1
        err = capsys.readouterr().err
        assert f"{said} to CSV files only; {rec} is a recording" in err


def test_export_says_a_missing_library_before_analysing(capsys, monkeypatch, tmp_path):
    import bridge.commands.files as files

    monkeypatch.setitem(sys.modules, "pyedflib", None)  # import fails
    monkeypatch.setitem(sys.modules, "ezc3d", None)
    monkeypatch.setattr(files, "analyze", lambda *a, **k: pytest.fail("analysed first"))
    (tmp_path / "a.csv").write_text("time,glute_max_L\n0,0.1\n0.001,0.2\n")
    for fmt, said in (("edf", "EDF/BDF export needs pyedflib: pip install "
                       "'glutebridge[export]'"),
                      ("c3d", "C3D export needs ezc3d: pip install 'glutebridge[c3d]'")):
        assert _main("export", tmp_path / "a.csv", "--to", fmt, "-o", tmp_path / "x") == 1
        assert capsys.readouterr().err.strip() == f"glutebridge: error: {said}"


def test_analyze_to_a_pipe_leaves_stderr_clean_and_confirms_the_recording(recorded):
    d, rec, live = recorded
    assert f"recording written to {rec}" in " ".join(live.stdout.split())
    r = glutebridge("analyze", rec, "--format", "csv", cwd=d)  # the progress bar is on
    assert r.returncode == 0 and r.stdout.startswith("device,channel,muscle")
    assert r.stderr == ""  # a bar that cannot draw left a blank line


def test_the_summary_reads_like_the_report(recorded):
    """Jerk per second with its unit (the total grows with the time stood), no '-0 %', %MVC
    when calibrated, and a stance without result said as the report says it."""
    import copy
    import io

    from rich.console import Console

    from bridge.sinks.console import ConsoleSink, signed

    d, _, _ = recorded
    results = json.loads((d / "live.json").read_text())

    def summary(res):
        buf = io.StringIO()
        ConsoleSink(Console(file=buf, width=400, highlight=False)).summary(res)
        return buf.getvalue()

    text = summary(results)
    (dev,) = results["devices"].values()
    stances = [p["stance"][0] for p in dev["phases"] if p["phase"] == "stance"]
    for st in stances:
        assert f"jerk {st['sway']['jerk_per_s']:.2f} m²/s⁵ per s" in text
        assert f"jerk {st['sway']['jerk']:.1f}," not in text
    assert "mean %MVC" not in text  # no profile: no column
    assert (signed(-0.4), signed(0.4), signed(-4.6), signed(-0.04, 1)) == (
        "+0", "+0", "-5", "+0.0")
    res = copy.deepcopy(results)
    (dev,) = res["devices"].values()
    reps = next(p for p in dev["phases"] if p["phase"] == "reps")["summary"]
    reps["muscles"][0]["fatigue"]["mdf_change_pct"] = -0.3
    reps["symmetry"][0]["metrics"]["peak"]["si"] = -0.2
    for i, r in enumerate(reps["muscles"][0]["reps"]["sets"][0]["reps"]):
        r["pct_mvc"] = 80.0 + 10 * i  # a calibrated session
    next(p for p in dev["phases"] if p["phase"] == "stance")["stance"] = [None]
    text = summary(res)
    row = next(ln for ln in text.splitlines() if ln.lstrip().startswith(
        reps["muscles"][0]["name"]))
    assert "mean %MVC" in text and " 100 " in row  # mean of 80, 90, ..., 120
    assert "-0 %" not in text and "peak +0 %" in text
    sym = reps["symmetry"][0]
    mean_si = sym["metrics"]["mean"]["si"]
    # the verdict follows the mean's limb symmetry index, with the clinical 90 % line
    line = next(ln for ln in text.splitlines() if ln.startswith(f"Symmetry {sym['muscle']}:"))
    assert line.startswith(f"Symmetry {sym['muscle']}: SI mean {signed(mean_si)} %, peak +0 %")
    lsi = sym["metrics"]["mean"]["lsi"]
    assert f"LSI {lsi:.0f} %" in line
    assert ("balanced" in line) == (lsi >= 90)
    assert ("right stronger" in line) == (lsi < 90 and mean_si < 0)
    assert "no result: the trial did not finish (data ended before the countdown or no IMU)" \
        in text


def test_activation_hold_the_wearable_cannot_mark_is_refused(capsys, monkeypatch):
    # --hold 15 on a wearable used to mark "hold:10": the client held 15 s, graded vs 10 s
    assert _main("test", "activation", "tcp://127.0.0.1:9", "--hold", "15") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["glutebridge: error: --hold 15: the wearable's phase markers know holds of "
                   "10 s only, and the results would grade a 15 s hold against that; give "
                   "--hold 10"]
    import bridge.commands.guided as guided

    async def single_leg(url, **kwargs):  # the scripted source is the point, not the run
        return {}

    monkeypatch.setattr(guided, "single_leg", single_leg)
    assert _main("test", "single-leg", "sim://single-leg", "--legs", "left", "--view",
                 "quiet") == 0
    assert ("sim://single-leg plays its own script (the scripted client or the recording "
            "sets the legs, reps and hold): --legs not used") in capsys.readouterr().err
