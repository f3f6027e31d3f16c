"""Real recordings: small attributed excerpts in tests/data, plus the full
shared data set when it is present (skipped cleanly otherwise)."""

import os
from pathlib import Path

import numpy as np
import pytest

from bridge.emg import detect_contractions

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parent.parent


def shared_data() -> Path | None:
    for p in (os.environ.get("GLUTEBRIDGE_SHARED_DATA"), REPO.parent / "shared" / "data"):
        if p and (Path(p) / "emg").is_dir():
            return Path(p)
    return None


def knee_reps(fx, rate):
    """Flexion phases: the knee angle more than 30 % of its range from rest
    (rest = the first second's angle in this excerpt)."""
    rest = np.median(fx[:int(rate)])
    far = np.abs(fx - rest) > 0.3 * np.ptp(fx)
    edges = np.flatnonzero(np.diff(far.astype(int)))
    return list(zip(edges[0::2] / rate, edges[1::2] / rate))


def test_uci_excerpt_one_contraction_per_rep():
    a = np.loadtxt(DATA / "emg_uci_4Npie_BF_FX_0-10s.txt")
    rate = 1000.0
    reps = knee_reps(a[:, 1], rate)
    assert len(reps) == 3
    found = detect_contractions(a[:, 0], rate)
    assert len(found) == 3
    for (start, end), c in zip(reps, found):
        # EMG leads the knee movement and fades as the leg comes back
        assert start - 1.0 < c.onset < start + 0.3
        assert c.offset > start and c.offset < end + 1.0


def test_biosppy_excerpt_burst_near_1_5_s():
    x = np.loadtxt(DATA / "emg_biosppy_emg_1_0-4s.txt")       # 12-bit ADC counts
    found = detect_contractions(x, 1000.0)
    assert len(found) == 1
    assert 1.3 < found[0].onset < 1.6 and found[0].offset < 2.5
    assert found[0].mean > 5 * np.std(x[200:1000])


@pytest.mark.skipif(shared_data() is None, reason="shared data set not available")
def test_biosppy_full_recording_finds_the_three_bursts():
    x = np.loadtxt(shared_data() / "emg" / "biosppy" / "emg_1.txt")
    found = detect_contractions(x, 1000.0)
    for lo, hi in ((1.0, 2.0), (15.0, 17.0), (25.0, 27.0)):
        assert any(lo <= c.onset <= hi for c in found), (lo, hi)
    # every strong contraction is one of the three documented bursts
    strong = [c for c in found if c.mean > 0.5 * max(c.mean for c in found)]
    assert all(any(lo - 0.5 <= c.onset <= hi for lo, hi in ((1.0, 2.0), (15.0, 17.0), (25.0, 27.0)))
               for c in strong)


@pytest.mark.skipif(shared_data() is None, reason="shared data set not available")
def test_uci_1nsen_reps_split_without_full_rest():
    """1Nsen RF: between reps 1 and 2 the muscle stays at ~2.5x its initial
    rest level (above the onset threshold); the dip below the contraction's
    own level must still end rep 1, and rep 2 must start near its own rise."""
    path = shared_data() / "emg" / "uci_lower_limb" / "1Nsen.txt"
    if not path.exists():
        pytest.skip("1Nsen.txt not in the shared data")
    rows = [ln.split("\t") for ln in path.read_text().splitlines()[7:]]
    a = np.array([[float(v) for v in r] for r in rows if len(r) == 5 and all(v.strip() for v in r)])
    found = detect_contractions(a[:, 0], 1000.0)
    assert len(found) == 4
    # knee extensions (goniometer) start near 1.5, 4.7, 8.1 and 11.5 s
    for c, start in zip(found, (1.48, 4.72, 8.14, 11.52)):
        assert start - 1.0 < c.onset < start + 0.2
    assert found[0].offset < 4.0


def _uci(name):
    path = shared_data() / "emg" / "uci_lower_limb" / f"{name}.txt"
    if not path.exists():
        pytest.skip(f"{name}.txt not in the shared data")
    rows = [ln.split("\t") for ln in path.read_text().splitlines()[7:]]
    return np.array([[float(v) for v in r] for r in rows if len(r) == 5 and all(v.strip() for v in r)])


@pytest.mark.skipif(shared_data() is None, reason="shared data set not available")
def test_uci_1asen_starts_mid_contraction():
    """1Asen RF fires from the first sample (knee already extending): the
    first rep is reported from 0 with a censored onset, ending before the
    knee flexes back (goniometer: below -48 deg at 3.75 s)."""
    a = _uci("1Asen")
    found = detect_contractions(a[:, 0], 1000.0)
    assert found[0].censored_onset and found[0].onset == 0.0
    assert 2.0 < found[0].offset < 4.0
    assert not any(c.censored_onset for c in found[1:])
    assert 5.0 < found[1].onset < 5.5


@pytest.mark.skipif(shared_data() is None, reason="shared data set not available")
def test_uci_rest_starts_are_not_censored():
    """No other UCI prime-mover channel is contracting at its first sample
    (4Asen's knee is still moving at 0 s, but RF's envelope there is at the
    level it rests at later): no censored onset anywhere else."""
    folder = shared_data() / "emg" / "uci_lower_limb"
    chans = {"sen": (0,), "pie": (1, 3)}
    checked = 0
    for path in sorted(folder.glob("*.txt")):
        kind = path.stem[-3:]
        if kind not in chans or path.stem == "1Asen":
            continue
        a = _uci(path.stem)
        for ch in chans[kind]:
            assert not any(c.censored_onset for c in detect_contractions(a[:, ch], 1000.0)), \
                (path.stem, ch)
            checked += 1
    assert checked >= 20
