"""Window features and session analytics: agreement, speed and accuracy figures.

Prints markdown tables:

1. Agreement with libemg's MATLAB reference values (tests/data/libemg: 13 windows x 8 channels
   of emg_data_myo.csv, window 200, step 25), per feature, in units of the 5th significant
   digit that MATLAB's csvwrite kept.
2. Speed of bridge.features.window_features (offline) and SlidingWindowFeatures (streaming) on
   2 min of 8-channel noise at 2 kHz, window 200 / step 25; with ``--peer``, also libemg's
   FeatureExtractor (get_windows + extract_features) on the same data, and how far its Python
   MNF/MDF are from ours.  libemg is heavy (sklearn, librosa, matplotlib...), so run the peer
   from a separate venv:  PYTHONPATH=. /tmp/peervenv/bin/python benchmarks/features_analytics.py --peer
3. Fatigue accuracy: reps of simulated sEMG (Shwedyk spectrum) whose spectrum is compressed by
   a known factor each rep, so the true MDF per rep is known; bias and spread of the per-rep
   MDF/MNF estimate and of the Hz-per-rep slope.
4. End to end (if bridge.emg and the simulator import): simulated glute/hamstring/erector reps
   with known onset lags and left/right levels -> bridge.emg.detect_contractions -> analytics;
   measured vs true rep/set counts, firing order, latencies and symmetry index.

Usage: python benchmarks/features_analytics.py [--peer] [--trials 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bridge.analytics import fatigue_trend, summarize  # noqa: E402
from bridge.features import FEATURES, SlidingWindowFeatures, window_features  # noqa: E402

LIBEMG_DATA = REPO / "tests" / "data" / "libemg"


def _best(fn, repeat=3):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


# --------------------------------------------------------------------------- 1


def agreement() -> None:
    data = np.loadtxt(LIBEMG_DATA / "emg_data_myo.csv", delimiter=",")
    r = window_features(data, 200, 25, rate=1000, freq_axis="toolbox")
    rb = window_features(data, 200, 25, rate=1000, freq_axis="bins")
    print("## 1. Agreement with libemg's MATLAB reference (13 windows x 8 channels)\n")
    print("| feature | max abs diff | max rel diff | max diff / half-unit of 5th digit | "
          "bins axis: max rel diff |")
    print("|---|---|---|---|---|")
    for f in FEATURES:
        m = np.loadtxt(LIBEMG_DATA / f"matlab_{f}.csv", delimiter=",")
        d = np.abs(r[f] - m)
        half = 0.5 * 10.0 ** (np.floor(np.log10(np.abs(m))) - 4)
        rel_b = np.max(np.abs(rb[f] - m) / np.abs(m))
        print(f"| {f} | {d.max():.3g} | {np.max(d / np.abs(m)):.2g} | {np.max(d / half):.2f} | "
              f"{rel_b:.2g} |")
    print()


# --------------------------------------------------------------------------- 2


def _load_libemg_fe():
    spec = importlib.util.find_spec("libemg")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "feature_extractor.py"
    # libemg/__init__ imports its GUI/environment stack; load only the feature module
    s = importlib.util.spec_from_file_location("libemg_feature_extractor", path)
    mod = importlib.util.module_from_spec(s)
    s.loader.exec_module(mod)
    return mod.FeatureExtractor


def speed(peer: bool) -> None:
    rate, seconds, ch, w, st = 2000.0, 120, 8, 200, 25
    x = np.random.default_rng(0).standard_normal((int(rate * seconds), ch))
    n_ch_samples = x.size
    nw = (x.shape[0] - w) // st + 1
    rows = []
    for label, feats in (("all 9", FEATURES),
                         ("time domain (7)", FEATURES[:7]),
                         ("MNF+MDF", ("MNF", "MDF"))):
        t = _best(lambda f=feats: window_features(x, w, st, rate=rate, features=f))
        rows.append(("glutebridge window_features", label, t))
    for block in (32, 256):
        def stream(b=block):
            sw = SlidingWindowFeatures(ch, w, st, rate=rate)
            for i in range(0, x.shape[0], b):
                sw.process(x[i:i + b])
        rows.append((f"glutebridge SlidingWindowFeatures, {block}-sample blocks", "all 9",
                     _best(stream, 1)))
    extra = []
    if peer:
        FE = _load_libemg_fe()
        if FE is None:
            extra.append("libemg not importable: peer skipped")
        else:
            fe = FE()
            names = ["RMS", "MAV", "IAV", "WL", "ZC", "SSC", "WAMP", "MNF", "MDF"]

            def lib_windows():
                # libemg.utils.get_windows copies every window into an (nw, ch, w) array
                return np.stack([x[i * st:i * st + w].T for i in range(nw)])

            fs = {"MNF_fs": rate, "MDF_fs": rate}

            def lib_all():
                fe.extract_features(names, lib_windows(), fs)

            rows.append(("libemg 2.0.3 get_windows + extract_features", "all 9", _best(lib_all, 1)))
            win = lib_windows()
            t = _best(lambda: fe.extract_features(names[:7], win), 1)
            rows.append(("libemg 2.0.3 extract_features (windows given)", "time domain (7)", t))
            t = _best(lambda: fe.extract_features(["MNF", "MDF"], win, fs), 1)
            rows.append(("libemg 2.0.3 extract_features (windows given)", "MNF+MDF", t))
            lib = fe.extract_features(["MNF", "MDF", "RMS", "WAMP"], win, fs)
            ours = window_features(x, w, st, rate=rate, wamp_threshold=2e-3)
            for f in ("MNF", "MDF", "RMS"):
                diff = np.max(np.abs(lib[f] - ours[f]) / np.abs(ours[f]))
                extra.append(f"libemg Python {f} vs glutebridge (bins axis, fs {rate:g}): "
                             f"max rel diff {diff:.2g}")
            extra.append("libemg Python WAMP (> 2e-3) equal to ours: "
                         f"{bool(np.array_equal(lib['WAMP'], ours['WAMP']))}")
    print(f"## 2. Speed: {seconds} s x {ch} channels at {rate:g} Hz, window {w}, step {st} "
          f"({nw} windows), best of runs, this machine\n")
    print("| implementation | features | time (s) | M channel-samples/s | windows/s |")
    print("|---|---|---|---|---|")
    for name, label, t in rows:
        print(f"| {name} | {label} | {t:.3f} | {n_ch_samples / t / 1e6:.1f} | {nw / t:,.0f} |")
    for e in extra:
        print(f"\n- {e}")
    print()


# --------------------------------------------------------------------------- 3


def _shwedyk(f, fl, fh):
    f2 = f * f
    return fh ** 4 * f2 / ((f2 + fl * fl) * (f2 + fh * fh) ** 2)


def _true_mdf_mnf(fl, fh, band=(20.0, 450.0)):
    f = np.linspace(band[0], band[1], 200001)
    p = _shwedyk(f, fl, fh)
    c = np.cumsum(p)
    return float(np.interp(c[-1] / 2, c, f)), float((p * f).sum() / p.sum())


def _shaped(rng, n, rate, fl, fh):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate)
    x = np.fft.irfft(spec * np.sqrt(_shwedyk(f, fl, fh)), n)
    return x / x.std()


def fatigue_accuracy(trials: int) -> None:
    rate, reps, rep_s, rest_s, drop = 2000.0, 10, 2.0, 2.0, 0.015  # 1.5 % compression per rep
    fl0, fh0 = 60.0, 120.0
    truth = [_true_mdf_mnf(fl0 * (1 - drop) ** k, fh0 * (1 - drop) ** k) for k in range(reps)]
    t_mdf = np.array([t[0] for t in truth])
    t_mnf = np.array([t[1] for t in truth])
    true_slope = np.polyfit(np.arange(reps), t_mdf, 1)[0]
    err_mdf, err_mnf, slopes, r2 = [], [], [], []
    for trial in range(trials):
        rng = np.random.default_rng(100 + trial)
        n_rep, n_rest = int(rep_s * rate), int(rest_s * rate)
        parts, segs = [], []
        for k in range(reps):
            parts.append(_shaped(rng, n_rep, rate, fl0 * (1 - drop) ** k, fh0 * (1 - drop) ** k))
            parts.append(0.05 * rng.standard_normal(n_rest))  # rest: amplifier noise
            segs.append((k * (rep_s + rest_s), k * (rep_s + rest_s) + rep_s))
        raw = np.concatenate(parts) + 0.05 * rng.standard_normal(reps * (n_rep + n_rest))
        tr = fatigue_trend(raw, rate, segs)
        err_mdf += [s.mdf - t for s, t in zip(tr.segments, t_mdf, strict=True)]
        err_mnf += [s.mnf - t for s, t in zip(tr.segments, t_mnf, strict=True)]
        slopes.append(tr.mdf_per_index.slope)
        r2.append(tr.mdf_per_index.r2)
    em, en, sl = np.array(err_mdf), np.array(err_mnf), np.array(slopes)
    print(f"## 3. Fatigue: {reps} reps of {rep_s:g} s at {rate:g} Hz, spectrum compressed "
          f"{drop * 100:.1f} %/rep, SNR 26 dB, {trials} trials\n")
    print(f"True MDF {t_mdf[0]:.1f} -> {t_mdf[-1]:.1f} Hz (slope {true_slope:.3f} Hz/rep); "
          f"true MNF {t_mnf[0]:.1f} -> {t_mnf[-1]:.1f} Hz\n")
    print("| quantity | bias | SD | p95 abs error |")
    print("|---|---|---|---|")
    print(f"| MDF per rep (Hz) | {em.mean():+.2f} | {em.std():.2f} | {np.percentile(np.abs(em), 95):.2f} |")
    print(f"| MNF per rep (Hz) | {en.mean():+.2f} | {en.std():.2f} | {np.percentile(np.abs(en), 95):.2f} |")
    print(f"| MDF slope (Hz/rep) | {sl.mean() - true_slope:+.3f} | {sl.std():.3f} | "
          f"{np.percentile(np.abs(sl - true_slope), 95):.3f} |")
    print(f"\nMDF slope r^2: median {np.median(r2):.2f}; slope < 0 in {np.mean(sl < 0) * 100:.0f} % "
          "of trials\n")


# --------------------------------------------------------------------------- 4


def end_to_end() -> None:
    try:
        from bridge.emg import detect_contractions
        from bridge.simulator.emg_model import Burst, simulate_emg
    except Exception as exc:  # the detector is another helper's work
        print(f"## 4. End to end: skipped ({exc})\n")
        return
    rate = 2000.0
    names = {0: "glute_max_L", 1: "glute_max_R", 2: "hamstrings_L", 3: "lumbar_erectors_L"}
    lag = {0: 0.0, 1: 0.03, 2: -0.04, 3: -0.08}  # s relative to glute_max_L
    level = {0: 0.40, 1: 0.25, 2: 0.30, 3: 0.20}
    sets, reps, rep_s, rest_s, set_rest = 3, 10, 2.0, 2.0, 40.0
    bursts, t = [], 2.0
    for _ in range(sets):
        for _ in range(reps):
            for ch in names:
                bursts.append(Burst(ch, t + lag[ch] + 0.1, t + rep_s, level[ch], rise=0.08, fall=0.08))
            t += rep_s + rest_s
        t += set_rest
    duration = t + 2.0
    try:
        x, _ = simulate_emg(rate, duration, bursts, channels=4, snr_db=15, hum=0.02, ecg=0.03,
                            wander=0.1, seed=7)
        cs = detect_contractions(x, rate)
    except Exception as exc:  # e.g. the native module is being rebuilt
        print(f"## 4. End to end: skipped, detector failed: {type(exc).__name__}: {exc}\n")
        return
    print(f"## 4. End to end: simulated {sets} x {reps} reps of {rep_s:g} s on 4 muscles, "
          f"SNR 15 dB, detector defaults ({len(cs)} contractions; truth {sets * reps * 4})\n")
    print("Analytics via summarize(); the last column drops contractions shorter than 0.5 s "
          "(short false activations, if the detector reports any, would fall there).\n")
    side = {k: v for k, v in names.items() if k != 1}
    truth_order = " > ".join(names[k] for k in sorted(side, key=lambda k: lag[k]))
    si_true = (level[0] - level[1]) / ((level[0] + level[1]) / 2) * 100
    cols = [summarize(cs, names, firing_muscles=list(side.values()), reference="glute_max_L",
                      min_duration=md) for md in (0.0, 0.5)]

    def lat(s, m):
        st_ = s.firing.latency[m]
        return "n/a" if st_.median is None else f"{st_.median * 1000:+.0f} ms (n={st_.n})"

    rows = [("glute_max_L reps per set", str((reps,) * sets),
             [str(s.muscle("glute_max_L").reps.reps_per_set) for s in cols]),
            ("lumbar_erectors_L reps per set", str((reps,) * sets),
             [str(s.muscle("lumbar_erectors_L").reps.reps_per_set) for s in cols]),
            ("dominant order", truth_order,
             [f"{' > '.join(s.firing.dominant_order)} ({s.firing.dominant_count}/{s.firing.n_reps})"
              for s in cols])]
    for ch in (2, 3):
        rows.append((f"median latency {names[ch]} vs glute_max_L", f"{lag[ch] * 1000:+.0f} ms",
                     [lat(s, names[ch]) for s in cols]))
    rows.append(("SI glute_max L/R mean amplitude (%)", f"{si_true:+.0f}",
                 [f"{s.symmetry[0].metrics['mean'].si:+.0f}" for s in cols]))
    rows.append(("SI glute_max L/R count (%)", "+0",
                 [f"{s.symmetry[0].metrics['count'].si:+.0f}" for s in cols]))
    print("| quantity | truth | measured | measured, min_duration 0.5 s |")
    print("|---|---|---|---|")
    for q, t_, (m0, m1) in rows:
        print(f"| {q} | {t_} | {m0} | {m1} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer", action="store_true", help="also time libemg (must be importable)")
    ap.add_argument("--trials", type=int, default=20)
    a = ap.parse_args()
    agreement()
    speed(a.peer)
    fatigue_accuracy(a.trials)
    end_to_end()


if __name__ == "__main__":
    main()
