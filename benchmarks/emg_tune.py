"""Parameter grid for the contraction detector (how the defaults were chosen).

Runs glutebridge alone over a grid of ContractionDetector keyword arguments
and prints one line per combination: simulator onset error / recall / false
activations (first N trials of emg_eval's simulator set), UCI reps found /
false onsets per rep / onsets per rep (distinct files), and BioSPPy emg_1
(found, false, onsets) and emg.txt onset counts.

Example:
    python benchmarks/emg_tune.py '{"k_on": [6, 8, 10], "min_length": [0.1, 0.15, 0.2]}'

``--holdout`` adds the UCI figures per subject group (files 1*/2* and
3*/4*): pick parameters on one group, read the other as held-out data.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from scipy import signal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import emg_eval as E  # noqa: E402
from bridge.emg import detect_contractions  # noqa: E402


def load_sets(data: Path, trials: int, rate: float):
    sim = [E.sim_trial(1000 + s, rate) for s in range(trials)]
    uci, seen = [], set()
    folder = data / "emg" / "uci_lower_limb"
    for f in sorted(p for p in folder.glob("*.txt") if p.stem[-3:] in E.UCI_PRIME):
        a = E.load_uci(f)
        key = hashlib.sha1(a.tobytes()).hexdigest()
        if key in seen:
            continue
        seen.add(key)
        for _, ch in E.UCI_PRIME[f.stem[-3:]].items():
            x = a[:, ch]
            env = signal.sosfiltfilt(signal.butter(2, 2, fs=1000, output="sos"),
                                     np.abs(E._bandpass(x, 1000)))
            uci.append((x, E.reps_from_fx(a[:, 4], 1000, env), f.stem[0]))
    b = data / "emg" / "biosppy"
    b1 = np.loadtxt(b / "emg_1.txt") if (b / "emg_1.txt").exists() else None
    b0 = np.loadtxt(b / "emg.txt") if (b / "emg.txt").exists() else None
    return sim, uci, b1, b0


def _uci_score(fn, uci, subjects=None):
    reps = found = fo = ons = 0
    for x, r, subject in uci:
        if subjects is not None and subject not in subjects:
            continue
        h, f, o = E.score_reps(fn(x, 1000.0), r)
        reps += len(r)
        found += h
        fo += f
        ons += o
    return f"{found}/{reps}", fo / max(reps, 1), ons / max(reps, 1)


def evaluate(params, sim, uci, b1, b0, rate, holdout=False):
    def fn(x, r):
        return [(c.onset, c.offset) for c in detect_contractions(x, r, **params)]

    err, hits, n, false, rest = [], 0, 0, 0, 0.0
    for x, truth, _ in sim:
        e, h, _, f, rm = E.score_sim(fn(x, rate), truth, len(x) / rate)
        err += e
        hits += h
        n += len(truth)
        false += f
        rest += rm
    e = np.abs(np.array(err)) * 1000
    out = dict(med=np.median(e), p90=np.percentile(e, 90), recall=hits / n, fpm=false / rest)
    if uci:
        found, fpr, opr = _uci_score(fn, uci)
        out.update(uci=found, false_per_rep=fpr, onsets_per_rep=opr)
        if holdout:
            for group in ("12", "34"):
                found, fpr, opr = _uci_score(fn, uci, group)
                out[f"uci_s{group}"] = f"{found},{fpr:.3f},{opr:.2f}"

    if b1 is not None:
        h, f, o = E.score_reps(fn(b1, 1000.0), E.BIOSPPY_BURSTS, pre=0.6, post=0.5)
        out["emg_1"] = f"{h}/3 false {f} onsets {o}"
    if b0 is not None:
        out["emg.txt onsets"] = len(fn(b0, 1000.0))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid", help="JSON object: parameter -> list of values")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--holdout", action="store_true",
                    help="also print UCI found,false/rep,onsets/rep per subject group")
    args = ap.parse_args(argv)
    grid = json.loads(args.grid)
    sets = load_sets(args.data, args.trials, args.rate)
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, values))
        r = evaluate(params, *sets, args.rate, holdout=args.holdout)
        print(params, " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in r.items()), flush=True)


if __name__ == "__main__":
    main()
