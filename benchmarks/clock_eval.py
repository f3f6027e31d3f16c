"""Device->host clock fit: error after 10/30/60 s under BLE-like jitter and drift.

Each block's first sample is mapped to host time with the clock as it is when
the block arrives (online), and compared with the true host time of that
sample.  The error includes the fixed host-stack latency of the model
(0.2 ms), which no fit can remove.  Errors are taken over the blocks that
arrive in the second before each checkpoint, for 10 seeds (each seed draws
the connection-event phase, misses and jitter).

    python benchmarks/clock_eval.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.clock import DeviceClock  # noqa: E402
from bridge.simulator.link_timing import LinkModel, simulate  # noqa: E402

CHECKPOINTS = (10.0, 30.0, 60.0)


def run(model: LinkModel, seed: int, duration: float = 61.0, clock_factory=DeviceClock):
    sim = simulate(model, duration, seed)
    clock = clock_factory()
    err = np.empty(sim["arrival"].size)
    for i, (df, dl, arr, tf) in enumerate(zip(sim["dev_first"], sim["dev_last"], sim["arrival"],
                                              sim["true_first"])):
        clock.update(dl, arr)
        err[i] = clock.to_host(df) - tf
    t = sim["arrival"] - sim["arrival"][0]
    out = {}
    for cp in CHECKPOINTS:
        sel = (t >= cp - 1.0) & (t < cp)
        e = np.abs(err[sel]) * 1e3
        out[cp] = (np.median(e), np.percentile(e, 99), e.max())
    return out, err


def run_shared(models, seed: int, duration: float = 61.0, report: int = 1):
    """Several streams of one device feeding one clock (as StreamAssembler does).

    The same seed gives the same connection-event grid for every stream;
    blocks are fed in arrival order; the error is reported for ``models[report]``.
    """
    sims = [simulate(m, duration, seed) for m in models]
    order = np.argsort(np.concatenate([s["arrival"] for s in sims]), kind="stable")
    cols = {k: np.concatenate([s[k] for s in sims]) for k in sims[0]}
    which = np.concatenate([np.full(s["arrival"].size, i) for i, s in enumerate(sims)])
    clock = DeviceClock()
    t_all, err = [], []
    t0 = cols["arrival"].min()
    for j in order:
        clock.update(cols["dev_last"][j], cols["arrival"][j])
        if which[j] == report:
            err.append(clock.to_host(cols["dev_first"][j]) - cols["true_first"][j])
            t_all.append(cols["arrival"][j] - t0)
    t_all, err = np.array(t_all), np.array(err)
    out = {}
    for cp in CHECKPOINTS:
        e = np.abs(err[(t_all >= cp - 1.0) & (t_all < cp)]) * 1e3
        out[cp] = (np.median(e), np.percentile(e, 99), e.max())
    return out, err


class ArrivalStamp:
    """Baseline: stamp with arrival time (what BrainFlow does)."""

    def update(self, device_s, host_s):
        self.off = host_s - device_s

    def to_host(self, device_s):
        return device_s + self.off


def main() -> None:
    settings = [
        ("7.5 ms, 0 ppm", LinkModel(interval=0.0075, drift_ppm=0.0, per_event=3)),
        ("7.5 ms, 100 ppm", LinkModel(interval=0.0075, drift_ppm=100.0, per_event=3)),
        ("15 ms, -100 ppm", LinkModel(interval=0.015, drift_ppm=-100.0, per_event=4)),
        ("30 ms, 100 ppm", LinkModel(interval=0.030, drift_ppm=100.0)),
        ("50 ms, 100 ppm", LinkModel(interval=0.050, drift_ppm=100.0, per_event=8)),
        ("50 ms, 100 ppm, 5% miss", LinkModel(interval=0.050, drift_ppm=100.0, per_event=12,
                                              miss_rate=0.05)),
        ("50 ms, 100 ppm, stalls", LinkModel(interval=0.050, drift_ppm=100.0, per_event=8,
                                             stall_rate=0.02)),
        ("IMU 200 Hz/4, 50 ms, 100 ppm", LinkModel(rate=200.0, block=4, interval=0.050,
                                                   drift_ppm=100.0)),
        ("50 ms, 300 ppm", LinkModel(interval=0.050, drift_ppm=300.0, per_event=8)),
    ]
    seeds = range(10)
    print("DeviceClock host-time error |to_host - truth| in ms, blocks arriving in the second "
          "before t;")
    print("10 seeds: median of the per-seed medians / worst p99 / worst max; last column: "
          "share of seeds whose max error at 60 s is < 1 ms")
    head = f"{'setting':32s}" + "".join(f"{f't={cp:.0f}s med/p99/max':>26s}" for cp in CHECKPOINTS)
    print(head + f"{'<1ms@60s':>10s}")

    def row(name, results):
        cells = []
        for cp in CHECKPOINTS:
            med = float(np.median([r[cp][0] for r in results]))
            p99 = max(r[cp][1] for r in results)
            mx = max(r[cp][2] for r in results)
            cells.append(f"{med:8.3f}{p99:8.3f}{mx:9.3f} ")
        ok = np.mean([r[60.0][2] < 1.0 for r in results])
        print(f"{name:32s}" + "".join(cells) + f"{ok:>9.0%}")

    for name, model in settings:
        row(name, [run(model, seed)[0] for seed in seeds])
    emg = LinkModel(interval=0.050, drift_ppm=100.0, per_event=8)
    imu = LinkModel(rate=200.0, block=4, interval=0.050, drift_ppm=100.0)
    row("IMU blocks, clock shared w/ EMG", [run_shared([emg, imu], seed)[0] for seed in seeds])
    print()
    print("Baseline: stamping with arrival time (no fit), same settings, t=60s med/p99/max ms")
    for name, model in settings[:5]:
        res, _ = run(model, 0, clock_factory=ArrivalStamp)
        m, p, x = res[60.0]
        print(f"{name:32s}{m:8.3f}{p:8.3f}{x:9.3f}")


if __name__ == "__main__":
    main()
