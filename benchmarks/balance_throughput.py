"""Throughput of the IMU balance chain on one core, next to numpy/scipy.

Native chain = tilt filter (gyro + accelerometer) + heading-frame projection
+ 4th-order Butterworth low-pass on AP/ML + stance state machine (lean and
impact features, thresholds, events), i.e. ``bridge._sway.StanceCore``;
measured raw and through the validated Python API
(``SingleLegStanceTest.process``) with large blocks and live-sized blocks.

numpy/scipy version of the same per-sample signals: gravity direction by a
first-order low-pass of the accelerometer (``lfilter``; a gyro-aided
complementary filter is recursive and cannot be vectorised), the same
heading-frame projection, ``sosfilt`` low-pass, lean and |a| features with
``lfilter`` - but no state machine (not vectorisable), so it does less work.
Also: ``sway_metrics`` (scipy, whole trial) vs the native sliding window.

Workload (the same for every row): ``--seconds / --trial-s`` trials (default
5 x 600 s at 200 Hz), each after a reset, with a countdown of trial_s - 5 s
that stays active until the last ~2 s of the recording and then completes
(so the API rows include ``_finish``/``sway_metrics``).  The recording is a
60 s simulation (lift-off at 3 s, touchdowns at 20 and 40 s) tiled: 30
lift-offs per 600 s trial, each refined by the weight-shift fit.  Block 1
rows use the first 100 s of one trial (active, no completion).

    python benchmarks/balance_throughput.py [--seconds 3000] [--trial-s 600] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import signal as sig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.balance import SingleLegStanceTest, SwayWindow, sway_metrics  # noqa: E402
from bridge.simulator.sway_model import simulate_stance  # noqa: E402

G = 9.80665


def best_of(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def numpy_chain(imu, rate):
    acc = imu[:, :3]
    b, a = sig.butter(1, 1.0 / (2 * np.pi * 2.0), fs=rate)  # tau 2 s
    zi = sig.lfilter_zi(b, a)[:, None] * acc[:1]
    u, _ = sig.lfilter(b, a, acc, axis=0, zi=zi)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    f = np.column_stack([1 - u[:, 0] ** 2, -u[:, 0] * u[:, 1], -u[:, 0] * u[:, 2]])
    f /= np.sqrt(f[:, :1])
    left = np.cross(u, f)
    ap = np.einsum("ij,ij->i", acc, f) * G
    ml = np.einsum("ij,ij->i", acc, left) * G
    sos = sig.butter(4, 3.5, fs=rate, output="sos")
    apml = sig.sosfilt(sos, np.column_stack([ap, ml]), axis=0)
    lean = sig.lfilter([1 - np.exp(-1 / (0.1 * rate))], [1, -np.exp(-1 / (0.1 * rate))], -u[:, 1])
    norm = np.linalg.norm(acc, axis=1)
    k = 1 - np.exp(-2 * np.pi * 5 / rate)
    r = np.abs(norm - sig.lfilter([k], [1, -(1 - k)], norm))
    return apml, lean, r > 0.12


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3000.0,
                    help="simulated seconds at 200 Hz, run as trials of --trial-s each")
    ap.add_argument("--trial-s", type=float, default=600.0,
                    help="length of one trial recording (s, 60-605)")
    ap.add_argument("--repeat", type=int, default=5, help="best of N")
    args = ap.parse_args()
    rate = 200.0
    one, _ = simulate_stance(rate, 60.0, "left", touchdowns=[20.0, 40.0], seed=1, quantize=True)
    trial = np.ascontiguousarray(np.tile(one, (int(np.ceil(args.trial_s / 60.0)), 1))
                                 [: int(args.trial_s * rate)])
    m = trial.shape[0]
    n_trials = max(1, int(round(args.seconds / args.trial_s)))
    n = n_trials * m
    # Same workload for every row: n_trials trials of trial_s seconds, each
    # with a reset before it, countdown = trial_s - 5 s.  The recording is the
    # 60 s simulation (lift-off at 3 s, touchdowns at 20 and 40 s, relift 2 s
    # later) tiled, so the countdown starts ~3 s in and ends ~2 s before the
    # end of the recording: the state machine is active (no "done" shortcut)
    # and each trial ends with TrialCompleted, i.e. _finish and sway_metrics.
    duration = args.trial_s - 5.0
    chk = SingleLegStanceTest(rate, duration, "left")
    evs = chk.process(trial)
    done_at = evs[-1].sample if evs and type(evs[-1]).__name__ == "TrialCompleted" else None
    if done_at is None or done_at < m - 3 * rate:
        raise SystemExit("benchmark workload broken: the trial must complete in its last 3 s")
    n_lift = sum(type(e).__name__ == "StanceStarted" for e in evs)
    R = args.repeat
    print(f"IMU chain throughput, one core, best of {R}: {n_trials} trial(s) x {m:,} samples "
          f"({args.trial_s:.0f} s at {rate:.0f} Hz) = {n:,} samples.\n"
          f"Every row: reset, then one {duration:.0f} s countdown that stays active until "
          f"{done_at / rate:.1f} s (TrialCompleted), {n_lift} lift-offs per trial "
          "(each with a weight-shift fit).\n")
    print("| implementation                                   | block     | M samples/s |")
    print("|--------------------------------------------------|-----------|-------------|")

    def row(name, block, secs, count=n):
        print(f"| {name:<48} | {block:<9} | {count / secs / 1e6:11.2f} |", flush=True)

    def core_run(block, count):
        t = SingleLegStanceTest(rate, duration, "left")
        core = t._core
        b = min(block, count)
        out = np.empty((b, 4))
        ev = np.empty((b // 8 + 8, 5))
        x = trial[:count]

        def go():
            for _ in range(n_trials if count == m else 1):
                core.reset()
                for i in range(0, count, b):
                    core.process(x[i:i + b], out, ev)
        return go

    def api_run(block, count):
        t = SingleLegStanceTest(rate, duration, "left")
        x = trial[:count]

        def go():
            for _ in range(n_trials if count == m else 1):
                t.reset()
                for i in range(0, count, block):
                    t.process(x[i:i + block])
        return go

    row("native StanceCore (raw, no validation)", "whole", best_of(core_run(m, m), R))
    row("SingleLegStanceTest.process (validated API)", "whole", best_of(api_run(m, m), R))
    row("numpy/scipy per-sample signals (no state mach.)", "whole",
        best_of(lambda: [numpy_chain(trial, rate) for _ in range(n_trials)], R))
    for block in (256, 32, 8, 1):
        # one whole trial (block 1: its first 100 s, still active, no _finish)
        cnt = m if block > 1 else min(m, int(100 * rate))
        reps = n_trials if cnt == m else 1
        x = trial[:cnt]

        def np_small(block=block, x=x):
            for i in range(0, x.shape[0], block):
                numpy_chain(x[i:i + block], rate)

        row("native StanceCore (raw)", str(block), best_of(core_run(block, cnt), R), cnt * reps)
        row("SingleLegStanceTest.process", str(block), best_of(api_run(block, cnt), R), cnt * reps)
        row("numpy/scipy per-sample signals (stateless!)", str(block), best_of(np_small, 1), cnt)

    # whole-trial metrics vs the native sliding window
    apml = numpy_chain(trial[:12000], rate)[0]
    print("\nSway metrics on a 60 s trial (12,000 samples):")
    t_np = best_of(lambda: sway_metrics(apml[:, 0], apml[:, 1], rate, signal="acceleration"), 5)
    w = SwayWindow(rate, 10.0)
    t_w = best_of(lambda: (w.reset(), w.process(apml[:, 0], apml[:, 1])), 5)
    print(f"- sway_metrics (numpy/scipy, one whole-trial result incl. Welch): {t_np * 1e3:.2f} ms")
    print(f"- SwayWindow (native, 10 s window, a full metric set every sample): {t_w * 1e3:.2f} ms "
          f"= {12000 / t_w / 1e6:.1f} M samples/s")


if __name__ == "__main__":
    main()
