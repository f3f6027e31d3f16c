"""`analyze` of an exported CSV: lost samples stay holes on the timeline, names lose the unit."""

from __future__ import annotations

import numpy as np

from bridge.commands.files import analyze
from bridge.export import StreamData, to_csv
from bridge.simulator.emg_model import Burst, simulate_emg

RATE = 2000.0
LABELS = ("glute_max_L", "hamstring_L", "glute_med_L")
ONSETS = [2.0 + 4.0 * k for k in range(10)]
GLUTE_DELAY = 0.15  # the glute fires 150 ms after the hamstring


def _export(tmp_path):
    bursts = [Burst(1, t, t + 2.0, 0.3, 0.08, 0.1) for t in ONSETS]
    bursts += [Burst(0, t + GLUTE_DELAY, t + 2.0, 0.4, 0.1, 0.1) for t in ONSETS]
    # glute_med (channel 2) stays at rest: noise, hum and baseline wander only
    x, _ = simulate_emg(RATE, 42.0, bursts, channels=3, noise_rms=0.01, hum=0.02,
                        wander=0.1, seed=11)
    x[:, 2] = 0.01 * np.random.default_rng(3).standard_normal(len(x)) + 0.05 * np.sin(
        2 * np.pi * 0.3 * np.arange(len(x)) / RATE)
    x = x.copy()
    # 30 holes of 40 lost samples (20 ms each: short, bridged live), as an export leaves them
    for k in range(30):
        a = int((1.0 + 1.3 * k) * RATE)
        x[a:a + 40] = np.nan
    s = StreamData("pod", 1, "emg", LABELS, ("mV",) * 3, RATE, 0, x)
    return to_csv([s], [], tmp_path / "out")[0]


def test_analyze_of_an_exported_csv_keeps_the_timeline_and_the_muscle_names(tmp_path):
    path = _export(tmp_path)
    assert path.read_text().splitlines()[0] == \
        "time_s,glute_max_L [mV],hamstring_L [mV],glute_med_L [mV]"
    results, _ = analyze(path, progress=False)
    dev = results["devices"]["pod_emg1"]
    assert dev["channels"] == dict(enumerate(LABELS))
    # the lost samples are gaps on the timeline, not spliced out
    assert [(g["first_sample"], g["n_samples"]) for g in dev["gaps"]] == [
        (int((1.0 + 1.3 * k) * RATE), 40) for k in range(30)]
    cs = dev["contractions"]
    ham = [c["onset"] for c in cs if c["muscle"] == "hamstring_L"]
    glute = [c["onset"] for c in cs if c["muscle"] == "glute_max_L"]
    assert len(ham) == len(glute) == 10
    # onsets on the true timeline (spliced, the k-th came k x ~60 ms early: 0.56 s at the
    # last); the detector's own scatter on this noise is a few ms, one onset in 20 ~80 ms
    for got, true in ((ham, ONSETS), (glute, np.add(ONSETS, GLUTE_DELAY))):
        err = np.abs(np.array(got) - true)
        assert np.median(err) < 0.02 and err.max() < 0.12, err
    # a resting muscle shows no contraction at the holes (a splice's step read as one)
    assert not [c for c in cs if c["muscle"] == "glute_med_L"]
    # names without the unit pair into a side: the firing order and latency are there
    firing = dev["summary"]["left"]["firing"]
    assert firing["reference"] == "glute_max_L"
    lat = firing["latency"]["hamstring_L"]["median"]
    assert abs(lat + GLUTE_DELAY) < 0.04
    # --columns takes the header or the muscle name
    for cols in (["hamstring_L [mV]", "glute_med_L"], ["hamstring_L", "glute_med_L [mV]"]):
        sub, _ = analyze(path, columns=cols, progress=False)
        assert sub["devices"]["pod_emg1"]["channels"] == {0: "hamstring_L", 1: "glute_med_L"}


def test_a_csv_whose_rows_all_miss_a_cell_is_refused(tmp_path):
    import pytest

    from bridge.errors import ConfigError

    p = tmp_path / "holes.csv"
    p.write_text("time_s,a [mV],b [mV]\n0.000,1,\n0.001,,2\n0.002,3,\n")
    with pytest.raises(ConfigError, match="no row has a number in every column"):
        analyze(p, progress=False)
