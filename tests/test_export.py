"""Exports opened with the real readers: csv module, pyedflib (EDF+/BDF+), ezc3d (C3D)."""

from __future__ import annotations

import asyncio
import csv
import re

import numpy as np
import pytest

from bridge.errors import ConfigError
from bridge.export import Collector, annotations_from, to_c3d, to_csv, to_edf
from bridge.runner import virtual_items
from bridge.session import Session
from bridge.simulator.device import Faults, Signals
from bridge.simulator.emg_model import Burst, simulate_emg


@pytest.fixture(scope="module")
def session_export():
    emg, truth = simulate_emg(2000, 12, [Burst(0, 3, 5, 0.4), Burst(1, 7, 9, 0.3)], channels=2,
                              snr_db=18, seed=3)
    rng = np.random.default_rng(0)
    imu = np.column_stack([rng.normal(0, 0.01, 2400), rng.normal(0, 0.01, 2400),
                           1 + rng.normal(0, 0.01, 2400), rng.normal(0, 1, (2400, 3))])
    sig = Signals(emg, 2000.0, ("glute_max_L", "glute_max_R"), imu, 200.0,
                  markers=((0.0, 1, "rest"), (2.5, 1, "reps:bridge")))
    session, col = Session(), Collector()

    async def run():
        async for item in virtual_items(sig, speed=0, faults=Faults(drop_rate=0.01, seed=2)):
            col.add(item)
            session.handle(item)
        session.finish()

    asyncio.run(run())
    return session, col, sig


def test_collector_marks_losses_as_nan(session_export):
    _, col, sig = session_export
    emg = next(s for s in col.streams() if s.kind == "emg")
    lost = sum(g.n_samples for g in col.gaps if g.stream == emg.stream)
    assert lost > 0
    assert np.isnan(emg.samples[:, 0]).sum() == lost
    ok = ~np.isnan(emg.samples[:, 0])
    ref = sig.emg[emg.first_sample:emg.first_sample + len(ok)][ok]
    np.testing.assert_allclose(emg.samples[ok], ref, atol=0.0005 / 2 + 1e-9)  # quantisation


def test_csv_export(session_export, tmp_path):
    session, col, sig = session_export
    ann = annotations_from(session, col)
    files = to_csv(col.streams(), ann, tmp_path)
    with open(files[0]) as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["time_s", "glute_max_L [mV]", "glute_max_R [mV]"]
    assert any(r[1] == "" for r in rows[1:])  # lost samples stay empty
    assert float(rows[2][0]) == pytest.approx(1 / 2000)
    with open(files[-1]) as fh:
        events = list(csv.DictReader(fh))
    texts = [e["event"] for e in events]
    assert "contraction glute_max_L" in texts and any(t.startswith("gap:") for t in texts)


def test_csv_samples_have_the_precision_of_the_data(session_export, tmp_path):
    """Each sample is written to the precision it has (a count of the device's quantum),
    not as a 17-digit float64 repr: same counts back, a fraction of the size."""
    from bridge.simulator.device import ACC_SCALE_G, EMG_SCALE_MV, GYRO_SCALE_DPS

    session, col, _ = session_export
    streams = col.streams()
    files = to_csv(streams, [], tmp_path)
    quanta = {"emg": [EMG_SCALE_MV] * 2, "imu": [ACC_SCALE_G] * 3 + [GYRO_SCALE_DPS] * 3}
    for s, path in zip(streams, files):
        with open(path) as fh:
            rows = list(csv.reader(fh))[1:]
        back = np.array([[float(v) if v else np.nan for v in r[1:]] for r in rows])
        assert np.array_equal(np.isnan(back), np.isnan(s.samples))
        q = np.float32(quanta[s.kind]).astype(float)  # the scale as announced (float32)
        ok = ~np.isnan(s.samples)
        # The same device counts come back, far inside half a quantum.
        np.testing.assert_array_equal(np.rint(back / q)[ok], np.rint(s.samples / q)[ok])
        assert np.nanmax(np.abs(back - s.samples) / q) < 0.01
        longest = max(len(v) for r in rows for v in r[1:])
        assert longest <= 13, longest  # sign, "0.", 7 digits, e-XX at most
    # Several times smaller than the float64 reprs the export used to write.
    emg = next(s for s in streams if s.kind == "emg")
    old = sum(len(repr(float(v))) + 1 for v in emg.samples[~np.isnan(emg.samples)])
    new = sum(len(v) + 1 for r in csv.reader(files[0].read_text().splitlines()) for v in r[1:])
    assert new * 2.5 < old, (new, old)


def test_csv_export_without_overwrite_writes_nothing_over_existing_files(session_export,
                                                                         tmp_path):
    session, col, _ = session_export
    ann = annotations_from(session, col)
    files = to_csv(col.streams(), ann, tmp_path)
    files[0].write_text("mine")
    files[-1].unlink()  # events.csv gone: the stream file alone must stop the export
    with pytest.raises(ConfigError,
                       match=rf"already holds {re.escape(files[0].name)}.*; pass --force"):
        to_csv(col.streams(), ann, tmp_path, overwrite=False)
    assert files[0].read_text() == "mine" and not files[-1].exists()
    assert to_csv(col.streams(), ann, tmp_path) == files  # the default (library) overwrites
    assert files[0].read_text() != "mine"


@pytest.mark.parametrize("bdf", [False, True])
def test_edf_bdf_export_read_back_with_pyedflib(session_export, tmp_path, bdf):
    pyedflib = pytest.importorskip("pyedflib")
    session, col, sig = session_export
    streams = col.streams()
    path = to_edf(streams, annotations_from(session, col), tmp_path / ("s.bdf" if bdf else "s.edf"),
                  bdf=bdf)
    r = pyedflib.EdfReader(str(path))
    try:
        labels = r.getSignalLabels()
        assert labels[:2] == ["glute_max_L", "glute_max_R"] and "acc_x" in labels
        assert r.getSampleFrequency(0) == 2000 and r.getSampleFrequency(2) == 200
        assert r.getPhysicalDimension(0) == "mV" and r.getPhysicalDimension(5) == "deg/s"
        x = r.readSignal(0)
        emg = streams[0].samples[:, 0]
        ok = ~np.isnan(emg)
        # 16-bit EDF resolution over this channel's range; BDF is 256x finer.
        step = (np.nanmax(emg) - np.nanmin(emg)) * 1.02 / (2 ** (24 if bdf else 16))
        assert np.max(np.abs(x[:len(emg)][ok] - emg[ok])) <= step
        onsets, durations, texts = r.readAnnotations()
        c = [(o, d) for o, d, t in zip(onsets, durations, texts) if t == "contraction glute_max_L"]
        assert len(c) == 1 and 2.8 < c[0][0] < 3.3 and 1.5 < c[0][1] < 2.5
        assert any(t.startswith("gap:") for t in texts)
    finally:
        r.close()


def test_c3d_export_read_back_with_ezc3d(session_export, tmp_path):
    ezc3d = pytest.importorskip("ezc3d")
    session, col, _ = session_export
    streams = col.streams()
    path = to_c3d(streams, annotations_from(session, col), tmp_path / "s.c3d")
    c = ezc3d.c3d(str(path))
    labels = c["parameters"]["ANALOG"]["LABELS"]["value"]
    assert labels[:2] == ["glute_max_L", "glute_max_R"] and labels[2] == "acc_x"
    assert c["parameters"]["ANALOG"]["RATE"]["value"][0] == 2000
    assert c["parameters"]["ANALOG"]["UNITS"]["value"][0] == "mV"
    analogs = c["data"]["analogs"][0]
    emg = streams[0].samples[:, 0]
    ok = ~np.isnan(emg)
    n = min(analogs.shape[1], len(emg))
    np.testing.assert_allclose(analogs[0, :n][ok[:n]], emg[:n][ok[:n]], atol=1e-5)
    ev = c["parameters"]["EVENT"]["LABELS"]["value"]
    assert "contraction glute_max_L" in ev
