"""Accuracy of the single-leg stance test on simulated trials with known truth.

Simulated trials (bridge.simulator.sway_model): pelvis IMU, 100/200/500 Hz,
left/right leg, eyes open/closed, sway amplitude x0.7-1.5, 0-2 scripted
touchdowns inside the 30 s countdown with impacts of 0.25-1.0 g (one trial in
six has soft touchdowns, 0.03-0.1 g), quantised like int16 counts, fed in
live-sized blocks (1-16 samples).  Printed: touchdown time error (median,
p90, max), recall, false touchdowns per 20 trials, stance start error,
stance duration error (lift-off to touchdown), time-achieved error.
``--shift-s`` sets how long the weight shift before each lift-off takes
(simulator default 0.5 s; slower shifts are harder to time).

    python benchmarks/balance_eval.py [--trials 120] [--seed 2026] [--stress] [--shift-s 0.5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.balance import SingleLegStanceTest, StanceStarted, Touchdown
from bridge.simulator.sway_model import simulate_stance

MATCH_S = 0.5  # a detection within 0.5 s of a true touchdown counts as that touchdown
GOAL = 30.0


def make_trial(rng, k, stress=False, shift_s=0.5):
    rate = float(rng.choice([100.0, 200.0, 200.0, 500.0]))
    lift = float(rng.uniform(2.0, 4.0))
    n_td = int(rng.choice([0, 1, 1, 2]))
    tds, t = [], lift
    for _ in range(n_td):
        t = t + float(rng.uniform(4.0, 11.0))
        if t > lift + GOAL - 1.0:
            break
        tds.append(t)
        t += 2.0 + shift_s  # relift_after + shift_s: next lift-off
    soft = (k % 6) == 5 if not stress else (k % 2) == 1
    impact = rng.uniform(0.03, 0.1, size=len(tds)) if soft else None
    scale = float(rng.uniform(0.7, 1.5)) if not stress else float(rng.uniform(1.2, 2.2))
    lean = None if not stress else float(rng.uniform(2.5, 4.0))
    kw = dict(rate=rate, duration=lift + GOAL + 3.0, leg=str(rng.choice(["left", "right"])),
              touchdowns=tds, eyes=str(rng.choice(["open", "closed"])),
              seed=int(rng.integers(1 << 30)),
              lift_off=lift, shift_s=shift_s, impact_g=impact, sway_scale=scale, lean_deg=lean,
              quantize=True,
              sensor_tilt_deg=(float(rng.uniform(-15, 15)), float(rng.uniform(-5, 5))))
    return kw


def run_trial(kw, rng, operator=False):
    imu, truth = simulate_stance(**kw)
    test = SingleLegStanceTest(kw["rate"], GOAL, kw["leg"])
    events = []
    i = 0
    n = imu.shape[0]
    lift_i = int(round(truth.lift_offs[0] * kw["rate"]))
    triggered = False
    while i < n:
        step = int(rng.integers(1, 17))
        if operator and not triggered and i <= lift_i < i + step:
            events += test.process(imu[i:lift_i])
            test.start()
            triggered = True
            i = lift_i
            continue
        events += test.process(imu[i:i + step])
        i += step
    return truth, events, test.result


def evaluate(n_trials, seed, operator=False, stress=False, shift_s=0.5):
    rng = np.random.default_rng(seed)
    td_err, start_err, dur_err, ach_err = [], [], [], []
    n_true = n_found = n_false = 0
    missed_starts = 0
    for k in range(n_trials):
        kw = make_trial(rng, k, stress, shift_s)
        truth, events, result = run_trial(kw, np.random.default_rng([seed, k]), operator)
        starts = [e for e in events if isinstance(e, StanceStarted)]
        tds = [e for e in events if isinstance(e, Touchdown)]
        if not starts:
            missed_starts += 1
            n_true += len(truth.touchdowns)
            continue
        t0 = starts[0].t
        start_err.append(t0 - truth.lift_offs[0])
        end = truth.lift_offs[0] + GOAL
        true_tds = [t for t in truth.touchdowns if t < end]
        det = [e.t for e in tds]
        used = set()
        for j, tt in enumerate(true_tds):
            n_true += 1
            cand = [(abs(d - tt), m) for m, d in enumerate(det) if m not in used]
            if cand and min(cand)[0] <= MATCH_S:
                e, m = min(cand)
                used.add(m)
                n_found += 1
                td_err.append(det[m] - tt)
                # duration of the stance segment that ended with this touchdown
                seg_true = truth.stance_segments[j]
                seg_det = [s for s in starts if s.t < det[m]][-1].t
                dur_err.append((det[m] - seg_det) - (seg_true[1] - seg_true[0]))
        n_false += len([d for m, d in enumerate(det) if m not in used and d < t0 + GOAL])
        if result is not None:
            true_ach = min((true_tds[0] if true_tds else end) - truth.lift_offs[0], GOAL)
            ach_err.append(result.time_achieved - true_ach)
    return dict(td=np.array(td_err), start=np.array(start_err), dur=np.array(dur_err),
                ach=np.array(ach_err), n_true=n_true, n_found=n_found, n_false=n_false,
                trials=n_trials, missed_starts=missed_starts)


def _row(name, x, unit="ms", scale=1000.0):
    if x.size == 0:
        return f"| {name:<34} | {'n/a':>8} | {'n/a':>8} | {'n/a':>8} | {'n/a':>8} |"
    a = np.abs(x) * scale
    return (f"| {name:<34} | {np.median(a):8.1f} | {np.percentile(a, 90):8.1f} | {a.max():8.1f} |"
            f" {np.mean(x) * scale:+8.1f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=120)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--stress", action="store_true",
                    help="harder trials: sway x1.2-2.2, lean only 2.5-4 deg, half soft touchdowns")
    ap.add_argument("--shift-s", type=float, default=0.5,
                    help="duration of the weight shift before each lift-off (s)")
    args = ap.parse_args()
    for operator in (False, True):
        t = time.perf_counter()
        r = evaluate(args.trials, args.seed, operator, args.stress, args.shift_s)
        mode = "operator start (start() at true lift-off)" if operator else "automatic start"
        mode += " [stress]" if args.stress else ""
        mode += f" [weight shift {args.shift_s:g} s]" if args.shift_s != 0.5 else ""
        print(f"\n## {mode}: {r['trials']} simulated trials, {time.perf_counter() - t:.1f} s")
        print(f"touchdowns: {r['n_true']} true, {r['n_found']} found, recall "
              f"{r['n_found'] / max(r['n_true'], 1):.3f}; false touchdowns {r['n_false']} "
              f"= {20 * r['n_false'] / r['trials']:.2f} per 20 trials; trials without a "
              f"detected start: {r['missed_starts']}")
        print("| error (|detected - true|)           | median   | p90      | max      "
              "| mean (signed) |")
        print("|------------------------------------|----------|----------|----------|----------|")
        print(_row("touchdown time [ms]", r["td"]))
        if not operator:
            print(_row("stance start vs lift-off [ms]", r["start"]))
        print(_row("stance duration (lift-off..TD) [ms]", r["dur"]))
        print(_row("time achieved [ms]", r["ach"]))


if __name__ == "__main__":
    main()
