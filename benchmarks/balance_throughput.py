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

    python benchmarks/balance_throughput.py [--seconds 3000]
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
    ap.add_argument("--seconds", type=float, default=3000.0, help="simulated seconds at 200 Hz")
    args = ap.parse_args()
    rate = 200.0
    one, _ = simulate_stance(rate, 60.0, "left", touchdowns=[20.0, 40.0], seed=1, quantize=True)
    reps = max(1, int(args.seconds / 60.0))
    imu = np.ascontiguousarray(np.tile(one, (reps, 1)))
    n = imu.shape[0]
    print(f"IMU chain throughput, {n:,} samples ({n / rate:.0f} s at {rate:.0f} Hz), one core, "
          "best of 3\n")
    print("| implementation                                   | block     | M samples/s |")
    print("|--------------------------------------------------|-----------|-------------|")

    def row(name, block, secs, count=n):
        print(f"| {name:<48} | {block:<9} | {count / secs / 1e6:11.2f} |")

    def core_run(block):
        t = SingleLegStanceTest(rate, 30.0, "left")
        core = t._core
        if block >= n:
            out = np.empty((n, 4))
            ev = np.empty((n // 8 + 8, 5))
            return lambda: (core.reset(), core.process(imu, out, ev))
        out = np.empty((block, 4))
        ev = np.empty((block // 8 + 8, 5))

        def go():
            core.reset()
            for i in range(0, n, block):
                core.process(imu[i:i + block], out, ev)
        return go

    row("native StanceCore (raw, no validation)", "whole", best_of(core_run(n)))

    def api(block):
        def go():
            t = SingleLegStanceTest(rate, 600.0, "left")
            if block >= n:
                t.process(imu)
            else:
                for i in range(0, n, block):
                    t.process(imu[i:i + block])
        return go

    row("SingleLegStanceTest.process (validated API)", "whole", best_of(api(n)))
    row("numpy/scipy per-sample signals (no state mach.)", "whole",
        best_of(lambda: numpy_chain(imu, rate)))
    small = imu[: min(n, 200_000)]
    for block in (256, 32, 8, 1):
        m = small.shape[0] if block > 1 else 20_000

        def core_small(block=block, m=m):
            t = SingleLegStanceTest(rate, 30.0, "left")
            core = t._core
            out = np.empty((block, 4))
            ev = np.empty((block // 8 + 8, 5))
            for i in range(0, m, block):
                core.process(small[i:i + block], out, ev)

        def api_small(block=block, m=m):
            t = SingleLegStanceTest(rate, 600.0, "left")
            for i in range(0, m, block):
                t.process(small[i:i + block])

        def np_small(block=block, m=m):
            for i in range(0, m, block):
                numpy_chain(small[i:i + block], rate)

        row("native StanceCore (raw)", str(block), best_of(core_small), m)
        row("SingleLegStanceTest.process", str(block), best_of(api_small), m)
        row("numpy/scipy per-sample signals (stateless!)", str(block), best_of(np_small, 1), m)

    # whole-trial metrics vs the native sliding window
    apml = numpy_chain(imu[:12000], rate)[0]
    print("\nSway metrics on a 60 s trial (12,000 samples):")
    t_np = best_of(lambda: sway_metrics(apml[:, 0], apml[:, 1], rate, signal="acceleration"), 5)
    w = SwayWindow(rate, 10.0)
    t_w = best_of(lambda: (w.reset(), w.process(apml[:, 0], apml[:, 1])), 5)
    print(f"- sway_metrics (numpy/scipy, one whole-trial result incl. Welch): {t_np * 1e3:.2f} ms")
    print(f"- SwayWindow (native, 10 s window, a full metric set every sample): {t_w * 1e3:.2f} ms "
          f"= {12000 / t_w / 1e6:.1f} M samples/s")


if __name__ == "__main__":
    main()
