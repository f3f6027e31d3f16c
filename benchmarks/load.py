"""Load test: N virtual wearables through the full host stack on one event loop.

Each wearable streams 8 EMG channels at 2 kHz (16-sample blocks) + a 6-axis
IMU at 200 Hz (4-sample blocks).  With ``--transport tcp`` (default) the
wearables run in a child process (``bridge.simulator.serve``) and this
process only does the host side: TCP -> decoder -> StreamAssembler -> queue
-> consumer, plus ``bridge.emg.ContractionDetector`` on every EMG chunk when
it is importable.  With ``--transport sim`` the wearables run in-process
(one loop does both sides: a pessimistic figure).  With ``--transport ble``
they sit behind the fake BlueZ (private dbus-daemon) in a child process and
this process runs unmodified bleak: the cost of the D-Bus notification path.

Printed per N: host CPU (% of one core, process time / wall time), the
fraction of real time delivered, and latency from bytes received to chunk
available to the consumer, and to detector output (chunk processed).

    python benchmarks/load.py                 # N = 1, 4, 8, 16, 10 s each
    python benchmarks/load.py -n 16 -d 20 --transport sim
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.simulator.device import Signals, VirtualWearable  # noqa: E402
from bridge.sources import Connection, make_transport  # noqa: E402
from bridge.sources.sim import SimTransport  # noqa: E402
from bridge.stream import SampleChunk  # noqa: E402

try:
    from bridge.emg import ContractionDetector
except ImportError:  # the EMG core is another module; the benchmark runs without it
    ContractionDetector = None


def make_signals(seconds: float, seed: int) -> Signals:
    """Noise with 1.5 s bursts every 4 s (contractions for the detector)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 2000)
    t = np.arange(n) / 2000.0
    env = 0.02 + 0.5 * (((t + seed * 0.3) % 4.0) > 2.5)
    emg = rng.normal(0, 1, (n, 8)) * env[:, None]
    m = int(seconds * 200)
    imu = np.column_stack([rng.normal(0, 0.02, (m, 3)) + [0, 0, 1], rng.normal(0, 3, (m, 3))])
    return Signals(emg, 2000.0, tuple(f"emg{i}" for i in range(8)), imu, 200.0)


CHILD = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from benchmarks.load import make_signals
from bridge.simulator.serve import serve
n, seconds = int(sys.argv[2]), float(sys.argv[3])
async def main():
    urls = []
    tasks = []
    for i in range(n):
        fut = asyncio.get_running_loop().create_future()
        tasks.append(asyncio.create_task(serve("tcp://127.0.0.1:0", make_signals(seconds, i),
                                               on_ready=fut.set_result)))
        urls.append((await fut)["url"])
    print(json.dumps(urls), flush=True)
    await asyncio.gather(*tasks)
asyncio.run(main())
"""


CHILD_BLE = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from benchmarks.load import make_signals
from bridge.simulator.device import VirtualWearable
from bridge.simulator.fake_bluez import FakeBluez
n, seconds, address = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
async def main(address):
    async with FakeBluez(address) as bz:
        devs = [bz.add_wearable(VirtualWearable(make_signals(seconds, i), name=f"pod{i}"))
                for i in range(n)]
        print(json.dumps({"bus": address, "urls": [f"ble://{d.address}" for d in devs]}),
              flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
asyncio.run(main(address))
"""


async def consume(conns_iter, n: int, seconds: float, detect: bool):
    detectors = {}
    lat_chunk: list[float] = []
    lat_detect: list[float] = []
    samples = 0
    events = 0
    cpu0 = time.process_time()
    t0 = time.monotonic()
    warm = t0 + 1.0  # skip handshake / first-bin clock effects
    cpu_warm = None
    t_warm = None
    expected = int(seconds * 2000) // 16 * 16 * n  # whole 16-sample blocks per device
    async for label, item, arrival in conns_iter:
        now = time.monotonic()
        if now - t0 > seconds + 10:
            break  # something stalled: report what arrived
        if cpu_warm is None and now >= warm:
            cpu_warm, t_warm = time.process_time(), now
        if not isinstance(item, SampleChunk):
            continue
        if arrival is not None and now >= warm:
            lat_chunk.append(now - arrival)
        if item.kind == "emg":
            samples += item.samples.shape[0]
            if detect:
                det = detectors.get(label)
                if det is None:
                    det = detectors[label] = ContractionDetector(item.samples.shape[1], item.rate)
                out = det.process(item.samples)
                events += len(out) if out is not None else 0
                if arrival is not None and now >= warm:
                    lat_detect.append(time.monotonic() - arrival)
            if samples >= expected:
                break  # every device has played its signal
    t1 = time.monotonic()
    cpu1 = time.process_time()
    if cpu_warm is None:
        cpu_warm, t_warm = cpu0, t0
    return {
        "cpu_pct": 100.0 * (cpu1 - cpu_warm) / max(t1 - t_warm, 1e-9),
        "realtime": samples / (n * 2000.0 * seconds),
        "lat_chunk": np.array(lat_chunk) * 1e3,
        "lat_detect": np.array(lat_detect) * 1e3,
        "events": events,
    }


async def _merge(conns: dict[str, Connection]):
    """Merge connections into (label, item, arrival) with the per-item receive time."""
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump(label, conn):
        try:
            async for item in conn:
                queue.put_nowait((label, item, conn.last_arrival))
        finally:
            queue.put_nowait(done)

    tasks = [asyncio.create_task(pump(k, c)) for k, c in conns.items()]
    live = len(tasks)
    try:
        while live:
            try:
                x = await asyncio.wait_for(queue.get(), 1.0)
            except asyncio.TimeoutError:
                yield None, None, None  # a tick, so the consumer can give up on a stall
                continue
            if x is done:
                live -= 1
                continue
            yield x
    finally:
        for t in tasks:
            t.cancel()


async def run_tcp(n: int, seconds: float, detect: bool) -> dict:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT), str(n), str(seconds)],
                             stdout=subprocess.PIPE, text=True)
    try:
        urls = json.loads(child.stdout.readline())
        conns = {f"dev{i}": Connection(make_transport(u), device=f"dev{i}", reconnect=False)
                 for i, u in enumerate(urls)}
        await asyncio.gather(*(c.open() for c in conns.values()))
        try:
            res = await consume(_merge(conns), n, seconds, detect)
        finally:
            await asyncio.gather(*(c.close() for c in conns.values()), return_exceptions=True)
        res["stats"] = {k: c.stats for k, c in conns.items()}
        return res
    finally:
        child.wait(10)


async def run_ble(n: int, seconds: float, detect: bool) -> dict:
    # One private dbus-daemon for all runs (started in main); bleak finds it
    # through DBUS_SYSTEM_BUS_ADDRESS.
    child = subprocess.Popen([sys.executable, "-c", CHILD_BLE, str(ROOT), str(n), str(seconds),
                              os.environ["DBUS_SYSTEM_BUS_ADDRESS"]],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        meta = json.loads(child.stdout.readline())
        conns = {f"dev{i}": Connection(make_transport(u, scan_timeout=5), device=f"dev{i}",
                                       reconnect=False)
                 for i, u in enumerate(meta["urls"])}
        await asyncio.gather(*(c.open() for c in conns.values()))
        try:
            res = await consume(_merge(conns), n, seconds, detect)
        finally:
            await asyncio.gather(*(c.close() for c in conns.values()), return_exceptions=True)
        res["stats"] = {k: c.stats for k, c in conns.items()}
        return res
    finally:
        child.stdin.close()
        child.wait(15)


async def run_sim(n: int, seconds: float, detect: bool) -> dict:
    conns = {f"dev{i}": Connection(SimTransport(VirtualWearable(make_signals(seconds, i)),
                                                url=f"sim://dev{i}"), device=f"dev{i}")
             for i in range(n)}
    await asyncio.gather(*(c.open() for c in conns.values()))
    try:
        res = await consume(_merge(conns), n, seconds, detect)
    finally:
        await asyncio.gather(*(c.close() for c in conns.values()), return_exceptions=True)
    res["stats"] = {k: c.stats for k, c in conns.items()}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, action="append", help="devices (repeatable)")
    ap.add_argument("-d", "--duration", type=float, default=10.0, help="seconds per run")
    ap.add_argument("--transport", choices=("tcp", "sim", "ble"), default="tcp",
                    help="ble: fake BlueZ in a child process (needs dbus-daemon)")
    ap.add_argument("--no-detector", action="store_true")
    args = ap.parse_args()
    ns = args.n or [1, 4, 8, 16]
    detect = ContractionDetector is not None and not args.no_detector
    print(f"transport={args.transport}  duration={args.duration:g} s  "
          f"detector={'bridge.emg.ContractionDetector' if detect else 'off'}  "
          f"cores={os.cpu_count()}  load average before={os.getloadavg()[0]:.2f}")
    print(f"{'N':>3} {'host CPU %':>10} {'realtime':>9} {'chunk p50 ms':>13} {'p99':>7} "
          f"{'max':>7} {'detect p50 ms':>14} {'p99':>7} {'q.drop':>7} {'lost':>6}")
    bus = None
    if args.transport == "ble":
        from bridge.simulator.fake_bluez import PrivateBus
        bus = PrivateBus(set_env=True)
        bus.start()
    try:
        _runs(ns, args, detect)
    finally:
        if bus is not None:
            bus.stop()


def _runs(ns, args, detect) -> None:
    for n in ns:
        runner = {"tcp": run_tcp, "sim": run_sim, "ble": run_ble}[args.transport]
        r = asyncio.run(runner(n, args.duration, detect))
        lc, ld = r["lat_chunk"], r["lat_detect"]
        drops = sum(s["queue_dropped"] for s in r["stats"].values())
        lost = sum(v["lost"] for s in r["stats"].values() for v in s["streams"].values())
        p = (lambda a, q: float(np.percentile(a, q)) if a.size else float("nan"))
        print(f"{n:>3} {r['cpu_pct']:>10.1f} {r['realtime']:>9.3f} {p(lc, 50):>13.3f} "
              f"{p(lc, 99):>7.3f} {lc.max() if lc.size else float('nan'):>7.2f} "
              f"{p(ld, 50):>14.3f} {p(ld, 99):>7.3f} {drops:>7d} {lost:>6d}")
    print(f"load average after={os.getloadavg()[0]:.2f} (other processes share these cores; "
          "latency tails grow with it)")


if __name__ == "__main__":
    main()
