"""Calibration profiles driven as a user would: the CLI in a subprocess, sim:// sources.

The virtual client of ``sim://holds`` rests for 4 s, then holds a bridge from 4 to 14 s
(glute max, hamstrings and erectors fire; glute medius stays quiet); ``sim://demo``
rests only 4 s before its first bridge rep.  Phases are measured in samples, so
``?speed=`` does not change what a phase holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def gb(*args, cwd, timeout=180):
    env = dict(os.environ, COLUMNS="100", GLUTEBRIDGE_HOME=str(cwd),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True,
                       text=True, timeout=timeout, cwd=cwd, env=env)
    r.out = " ".join((r.stdout + r.stderr).split())  # rich wraps; compare unwrapped
    return r


def _profiles(tmp_path) -> list[str]:
    d = tmp_path / "profiles"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def _contractions(path) -> list[dict]:
    (dev,) = json.loads(Path(path).read_text())["devices"].values()
    return dev["contractions"]


@pytest.fixture(scope="module")
def forced(tmp_path_factory):
    """A profile from the holds scenario: rest 0-3 s, MVC 3-11 s, saved with --force
    because glute medius does not contract in a bridge."""
    d = tmp_path_factory.mktemp("prof")
    r = gb("calibrate", "sim://holds?speed=20", "--profile", "anna2", "--rest", "3",
           "--mvc", "8", cwd=d)
    assert r.returncode == 1, r.out
    assert "calibration not saved" in r.out and not _profiles(d)
    assert "MVC not clearly above rest on glute_med_L" in r.out and "glute_max" not in \
        r.out.split("MVC not clearly above rest on")[1].split(":")[0]
    assert "--force" in r.out
    r = gb("calibrate", "sim://holds?speed=20", "--profile", "anna2", "--rest", "3",
           "--mvc", "8", "--force", cwd=d)
    assert r.returncode == 0, r.out
    return d, r


def test_calibrate_prints_the_per_channel_table(forced):
    d, r = forced
    assert _profiles(d) == ["anna2.npz"]
    rows = {ln.split()[0]: ln.split() for ln in r.stdout.splitlines()
            if ln.strip().startswith(("glute", "hamstring", "erector"))
            and ln.split()[1][0].isdigit()}
    assert set(rows) == {"glute_max_L", "glute_max_R", "hamstring_L", "hamstring_R",
                         "erector_L", "erector_R", "glute_med_L", "glute_med_R"}
    for name, row in rows.items():
        mean, sd, steady, mvc, ratio = (float(v.rstrip("x")) for v in row[1:6])
        assert 0 < sd < mean and steady < 2.0  # a real rest: steady envelope
        assert ratio == pytest.approx(mvc / mean, rel=0.05)
        if name.startswith("glute_med"):
            assert ratio < 2 and "low MVC" in " ".join(row)
        else:
            assert ratio > 5 and row[-1] == "ok"
    assert "saved anyway (--force)" in r.out


def test_a_rest_with_a_contraction_in_it_is_refused(tmp_path):
    # demo: the first bridge rep starts at 4 s, inside a 5 s rest
    r = gb("calibrate", "sim://demo?speed=20", "--profile", "anna", cwd=tmp_path)
    assert r.returncode == 1
    assert "calibration not saved" in r.out and "not at rest during the rest phase on" in r.out
    bad = r.out.split("not at rest during the rest phase on")[1].split(": a steady")[0]
    assert "glute_max_L" in bad and "erector_R" in bad and "glute_med" not in bad
    assert "no rest" in r.stdout and _profiles(tmp_path) == []
    # the same client resting long enough: rest accepted (only glute medius' MVC is low)
    r = gb("calibrate", "sim://demo?speed=20", "--profile", "anna", "--rest", "3.5", cwd=tmp_path)
    assert r.returncode == 1 and "not at rest" not in r.out and "glute_med_L" in r.out


def test_stream_says_the_profile_applied_and_warns_when_nothing_is_detected(forced, tmp_path):
    d, _ = forced
    r = gb("stream", "sim://demo?speed=20", "--profile", "anna2", "--view", "lines",
           "--json", str(tmp_path / "o.json"), cwd=d)
    assert r.returncode == 0, r.out
    assert "profile anna2 applied (calibrated 20" in r.out
    assert "channels glute_max_L, glute_max_R, hamstring_L" in r.out
    assert "warning" not in r.out
    cs = _contractions(tmp_path / "o.json")
    assert len(cs) >= 30 and all(c["pct_mvc"] is not None for c in cs)
    # a rest that held a rep, saved with --force: the run finds nothing and says why
    assert gb("calibrate", "sim://demo?speed=20", "--profile", "bad", "--force",
              cwd=tmp_path).returncode == 0
    r = gb("stream", "sim://demo?speed=20", "--profile", "bad", "--view", "lines",
           cwd=tmp_path)
    assert r.returncode == 0
    assert "warning: no contractions detected with profile bad" in r.out
    assert "--no-profile" in r.out


def test_demo_and_test_take_a_profile_like_stream(forced, tmp_path):
    d, _ = forced
    applied = "profile anna2 applied (calibrated 20"
    r = gb("demo", "--speed", "0", "--profile", "anna2", "--view", "lines",
           "--json", str(tmp_path / "d.json"), "--report", str(tmp_path / "d.html"), cwd=d)
    assert r.returncode == 0, r.out
    assert applied in r.out and "warning" not in r.out
    cs = _contractions(tmp_path / "d.json")
    assert len(cs) >= 30 and all(c["pct_mvc"] is not None for c in cs)
    r = gb("demo", "--speed", "40", "--profile", "anna2", "--view", "lines",
           "--report", str(tmp_path / "d2.html"), cwd=d)
    assert r.returncode == 0 and applied in r.out
    r = gb("test", "activation", "sim://demo?speed=40", "--profile", "anna2", "--view",
           "lines", "--json", str(tmp_path / "a.json"), cwd=d)
    assert r.returncode == 0 and applied in r.out, r.out
    cs = _contractions(tmp_path / "a.json")
    assert len(cs) >= 30 and all(c["pct_mvc"] is not None for c in cs)
    r = gb("test", "single-leg", "sim://single-leg?speed=40", "--profile", "anna2", "--view",
           "lines", cwd=d)
    assert r.returncode == 0 and applied in r.out
    # a stance-only protocol expects no contraction: no "no contractions" warning
    assert "warning" not in r.out, r.out
    for cmd in (["demo", "--speed", "0"], ["test", "single-leg", "sim://single-leg"]):
        r = gb(*cmd, "--profile", "nobody", cwd=d)
        assert r.returncode == 1 and "glutebridge calibrate URL --profile nobody" in r.out
        r = gb(*cmd, "--profile", "anna2", "--no-profile", cwd=d)
        assert r.returncode == 2 and "not allowed with argument" in r.out


def test_recording_keeps_the_profile_and_files_agree_with_live(forced, tmp_path):
    d, _ = forced
    rec = tmp_path / "x.gbrec"
    r = gb("stream", "sim://demo?speed=20", "--profile", "anna2", "--record", str(rec),
           "--view", "quiet", "--json", str(tmp_path / "live.json"), cwd=d)
    assert r.returncode == 0, r.out
    # the profile itself travels with the recording: delete it, analyse elsewhere
    (d / "profiles" / "anna2.npz").rename(tmp_path / "moved.npz")
    try:
        r = gb("analyze", str(rec), "--format", "json", "-o", str(tmp_path / "file.json"),
               "--no-progress", cwd=tmp_path)
        assert r.returncode == 0, r.out
        assert "profile anna2 applied" in r.out and "stored in the recording" in r.out
        live, file = _contractions(tmp_path / "live.json"), _contractions(tmp_path / "file.json")
        key = lambda c: (c["channel"], round(c["onset"], 6), round(c["offset"], 6))  # noqa
        assert sorted(map(key, live)) == sorted(map(key, file)) and len(live) >= 30
        pct = {key(c): c["pct_mvc"] for c in live}
        assert all(c["pct_mvc"] == pytest.approx(pct[key(c)], rel=1e-9) for c in file)
        # --no-profile: the recording's profile is ignored
        r = gb("analyze", str(rec), "--format", "json", "--no-progress", "--no-profile",
               cwd=tmp_path)
        assert r.returncode == 0 and "applied" not in r.stderr
        (dev,) = json.loads(r.stdout)["devices"].values()
        assert dev["contractions"] and all(c["pct_mvc"] is None for c in dev["contractions"])
        # replay applies it too, and --profile NAME overrides it (here: a missing one)
        r = gb("replay", str(rec), "--speed", "0", "--view", "lines", cwd=tmp_path)
        assert r.returncode == 0 and "profile anna2 applied" in r.out
        r = gb("report", str(rec), "-o", str(tmp_path / "r.html"), "--profile", "nobody",
               cwd=tmp_path)
        assert r.returncode == 1 and "no calibration profile 'nobody'" in r.out
        r = gb("export", str(rec), "--to", "csv", "-o", str(tmp_path / "csv"), cwd=tmp_path)
        assert r.returncode == 0 and "profile anna2 applied" in r.out
    finally:
        (tmp_path / "moved.npz").rename(d / "profiles" / "anna2.npz")


def test_bad_names_and_durations_fail_before_recording(tmp_path):
    r = gb("calibrate", "sim://holds", "--profile", "a b", cwd=tmp_path)
    assert r.returncode == 1 and "profile name 'a b'" in r.out
    assert "Relax" not in r.out  # nothing was recorded
    r = gb("calibrate", "sim://holds", "--profile", "ok", "--rest", "0.1", "--mvc", "0.1",
           cwd=tmp_path)
    assert r.returncode == 1 and "--rest 0.1: give at least 2 s" in r.out and "Relax" not in r.out
    r = gb("calibrate", "sim://holds", "--profile", "ok", "--mvc", "1", cwd=tmp_path)
    assert r.returncode == 1 and "--mvc 1: give at least 2 s" in r.out


def test_stream_ending_mid_phase_says_so(tmp_path):
    # holds lasts 49 s: the MVC phase (30 s after a 30 s rest) runs past its end
    r = gb("calibrate", "sim://holds?speed=40", "--profile", "x", "--rest", "30", "--mvc", "30",
           cwd=tmp_path)
    assert r.returncode == 1
    assert "the stream ended during the MVC phase (19.0 s of 30 s recorded, after a complete " \
           "30.0 s rest); nothing saved" in r.out
    assert "no EMG arrived" not in r.out and _profiles(tmp_path) == []


def test_recalibrating_keeps_the_previous_profile(forced, tmp_path):
    d, _ = forced
    for _ in range(2):
        r = gb("calibrate", "sim://holds?speed=20", "--profile", "c", "--rest", "3", "--mvc", "8",
               "--force", cwd=tmp_path)
        assert r.returncode == 0, r.out
    assert "replaced profile c (previous one from 20" in r.out and "kept as c.prev" in r.out
    assert _profiles(tmp_path) == ["c.npz", "c.prev.npz"]
    r = gb("stream", "sim://holds?speed=40", "--profile", "c.prev", "--view", "quiet",
           cwd=tmp_path)
    assert r.returncode == 0, r.out


def test_calibrate_table_states_its_units(forced):
    _, r = forced  # the levels had no unit: a clinician could not tell mV from µV
    head = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("channel"))
    assert head.split()[:7] == ["channel", "rest", "mV", "rest", "SD", "mV", "steady"]
    assert "MVC mV" in head and "EMG envelope levels in mV" in " ".join(r.out.split())
