"""Gait without a rest phase: the UCI lower-limb walking files (``*mar.txt``).

Not part of ``emg_eval.py`` table 2 (walking has no repetition truth of the kind
the seated/standing tasks have), but the honest check of a known limit: with
the automatic noise floor the quietest 0.5 s windows of a walk still hold
activity.  Prints, per file and muscle, the strides counted from the knee
angle (peaks of the 3 Hz low-passed goniometer, >= 0.6 s apart) and the
contractions found (a) with defaults, (b) with ``baseline_sub_keep=2``,
(c) with ``calibrate_rest`` on the quietest second of the same subject's
seated file (``*sen.txt``, where the hamstrings rest) and (d) the same with
``rearm_rest=0`` (a seated rest level: nearly every stride ends above it,
"without rest", and the dip between strides is short).  One contraction per
stride and muscle is the rough expectation.

Usage: python benchmarks/emg_gait.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import signal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bridge.emg import ContractionDetector, detect_contractions  # noqa: E402
from emg_eval import load_uci  # noqa: E402

RATE = 1000.0
MUSCLES = ("RF", "BF", "VM", "ST")


def strides(fx: np.ndarray) -> int:
    smooth = signal.sosfiltfilt(signal.butter(2, 3, fs=RATE, output="sos"), fx)
    peaks, _ = signal.find_peaks(np.abs(smooth - np.median(smooth)), distance=int(0.6 * RATE),
                                 prominence=0.4 * np.ptp(smooth))
    return len(peaks)


def quietest_second(x: np.ndarray) -> np.ndarray:
    w, step = int(RATE), int(RATE) // 4
    starts = range(0, len(x) - w, step)
    rms = [np.std(x[i:i + w]) for i in starts]
    i = list(starts)[int(np.argmin(rms))]
    return x[i:i + w]


def with_rest(x: np.ndarray, rest: np.ndarray, **kw) -> int:
    det = ContractionDetector(1, RATE, **kw)
    det.calibrate_rest(rest[:, None])
    events = det.process(x[:, None]) + det.finish()
    return sum(e.kind == "onset" for e in events)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args(argv)
    folder = args.data / "emg" / "uci_lower_limb"
    files = sorted(folder.glob("*mar.txt"))
    if not files:
        print(f"UCI gait files not found under {folder}; skipped")
        return
    print("| file | strides | muscle | defaults | baseline_sub_keep=2 | calibrate_rest "
          "| calibrate_rest, rearm_rest=0 |")
    print("|---|---|---|---|---|---|---|")
    for f in files:
        walk = load_uci(f)
        seated = folder / f.name.replace("mar", "sen")
        rest_data = load_uci(seated) if seated.exists() else None
        n = strides(walk[:, 4])
        for ch, name in enumerate(MUSCLES):
            x = walk[:, ch]
            cells = [len(detect_contractions(x, RATE)),
                     len(detect_contractions(x, RATE, baseline_sub_keep=2))]
            for kw in ({}, {"rearm_rest": 0.0}):
                cells.append("-" if rest_data is None
                             else with_rest(x, quietest_second(rest_data[:, ch]), **kw))
            print(f"| {f.stem} | ~{n} | {name} | " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
