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
    assert results["devices"]["sim"]["contractions"]


def test_live_recording_replays_to_the_same_results(recorded):
    d, rec, live = recorded
    assert rec.stat().st_size > 1_000_000
    r = glutebridge("analyze", rec, "--format", "json", "--no-progress", cwd=d)
    assert r.returncode == 0, r.stderr
    replayed = json.loads(r.stdout)
    live_results = json.loads((d / "live.json").read_text())
    for dev in live_results["devices"]:
        assert replayed["devices"][dev]["contractions"] == live_results["devices"][dev][
            "contractions"]
        assert replayed["devices"][dev]["phases"] == live_results["devices"][dev]["phases"]


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
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["interrupted"] is True
    (dev,) = res["devices"].values()
    assert len(dev["contractions"]) >= 6
    assert (tmp_path / "r.html").stat().st_size > 50_000
    # the recording was closed properly: it analyses like any other
    r = glutebridge("analyze", rec, "--format", "json", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(next(iter(json.loads(r.stdout)["devices"].values()))["contractions"]) >= 6


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
