"""Recording and replay figures.

1. Replay speed: a long recording (default 60 min of 8 EMG channels at 2 kHz + IMU at
   200 Hz, written exactly as the live path records it: one record per link read) replayed
   as fast as possible through the live path (ReplayTransport -> Connection -> decoder ->
   StreamAssembler -> Session with the contraction detectors).  Prints minutes of
   recording per second of replay.
2. Recording overhead: N virtual wearables (default 16) streamed in process through
   Connection + Session for the same simulated time, with and without recording every
   byte; prints the host CPU time of both and the overhead, and the time spent inside the
   writer's calls (the recording cost measured directly).  Target: < 10 %.

    python benchmarks/recording.py [--minutes 60] [--devices 16] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import firmware_protocol as fp  # noqa: E402
from bridge.recording import RecordingWriter  # noqa: E402
from bridge.session import Session  # noqa: E402
from bridge.simulator.device import Signals, VirtualWearable  # noqa: E402
from bridge.sources.base import Connection  # noqa: E402
from bridge.sources.replay import RecordingTransport, ReplayTransport  # noqa: E402
from bridge.sources.sim import SimTransport  # noqa: E402


def signals(seconds: float, seed: int = 0) -> Signals:
    """Noise with a 2 s burst every 6 s on each channel (work for the detectors)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 2000)
    t = np.arange(n) / 2000.0
    env = 0.01 + 0.3 * ((t % 6.0) > 4.0)
    emg = rng.normal(0, 1, (n, 8)) * env[:, None]
    m = int(seconds * 200)
    imu = np.column_stack([rng.normal(0, 0.01, (m, 3)) + [0, 0, 1], rng.normal(0, 1, (m, 3))])
    return Signals(emg, 2000.0, tuple(f"emg{i}" for i in range(8)), imu, 200.0)


def write_long_recording(path: Path, minutes: float) -> float:
    """Record ``minutes`` of one wearable as the live path does (reads every 20 ms)."""
    piece = signals(60.0)
    with RecordingWriter(path, {"url": "sim://bench", "transport": "stream",
                                "device": "bench"}) as w:
        dev = VirtualWearable(piece, loop=True)
        t = 1000.0
        w.data_out(fp.encode(fp.handshake.hello(0)), t)
        w.data_in(dev.receive(fp.encode(fp.handshake.hello(0))), t)
        dev.streaming = True
        steps = int(minutes * 60 / 0.02)
        for _ in range(steps):
            t += 0.02
            w.data_in(dev.advance(0.02), t)
    return path.stat().st_size / 1e6


async def replay(path: Path) -> tuple[float, int, Session]:
    session = Session()
    conn = Connection(ReplayTransport(path, speed=0), autostart=False, device="bench")
    t0 = time.perf_counter()
    await conn.open()
    n = 0
    async for item in conn:
        session.handle(item)
        n += 1
    session.finish()
    await conn.close()
    return time.perf_counter() - t0, n, session


class TimedWriter(RecordingWriter):
    """A RecordingWriter that adds up the CPU and wall time of its own calls on the loop thread.

    CPU is the recording's cost; wall time beyond it is time the event loop was blocked.
    """

    cpu = 0.0
    wall = 0.0

    def write(self, kind, payload, host_time) -> None:
        c0, t0 = time.thread_time(), time.perf_counter()
        super().write(kind, payload, host_time)
        TimedWriter.cpu += time.thread_time() - c0
        TimedWriter.wall += time.perf_counter() - t0


async def stream_many(n: int, seconds: float, record_dir: str | None) -> float:
    """CPU seconds to stream ``n`` in-process wearables for ``seconds`` of device time."""
    sig = signals(seconds + 2.0)
    writers = []
    conns = []
    for i in range(n):
        transport = SimTransport(VirtualWearable(sig), url=f"sim://{i}", speed=1.0)
        if record_dir:
            w = TimedWriter(Path(record_dir) / f"dev{i}.gbrec", {"transport": "stream"})
            writers.append(w)
            transport = RecordingTransport(transport, w)
        conns.append(Connection(transport, device=f"dev{i}"))
    await asyncio.gather(*(c.open() for c in conns))
    sessions = [Session() for _ in conns]

    async def consume(conn, session):
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        async for item in conn:
            session.handle(item)
            if loop.time() >= end:
                break

    c0 = time.process_time()
    await asyncio.gather(*(consume(c, s) for c, s in zip(conns, sessions)))
    cpu = time.process_time() - c0
    await asyncio.gather(*(c.close() for c in conns))
    for w in writers:
        w.close()
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the replayed file")
    ap.add_argument("--devices", type=int, default=16, help="wearables for the overhead run")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the overhead run")
    ap.add_argument("--repeats", type=int, default=3, help="runs with and without recording")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.gbrec"
        t0 = time.perf_counter()
        mb = write_long_recording(path, args.minutes)
        print(f"recording: {args.minutes:g} min, {mb:.0f} MB written in "
              f"{time.perf_counter() - t0:.1f} s")
        dt, items, session = asyncio.run(replay(path))
        print(f"replay as fast as possible through the live path: {dt:.1f} s for "
              f"{args.minutes:g} min ({args.minutes * 60 / dt:.0f}x real time, {items:,} items, "
              f"{len(session.contractions()):,} contractions)")
        # Alternate runs with and without recording; the medians damp a busy machine.
        base, rec, spent = [], [], []
        for k in range(args.repeats):
            base.append(asyncio.run(stream_many(args.devices, args.seconds, None)))
            d = Path(tmp) / f"run{k}"
            d.mkdir()
            TimedWriter.cpu = TimedWriter.wall = 0.0
            rec.append(asyncio.run(stream_many(args.devices, args.seconds, str(d))))
            spent.append((TimedWriter.cpu, TimedWriter.wall))
        size = sum(os.path.getsize(d / f"dev{i}.gbrec") for i in range(args.devices))
        b, r = float(np.median(base)), float(np.median(rec))
        print(f"{args.devices} wearables for {args.seconds:g} s (median of {args.repeats}): "
              f"CPU {b:.2f} s without recording ({100 * b / args.seconds:.0f} % of a core), "
              f"{r:.2f} s recording every byte ({size / 1e6:.1f} MB per run): overhead "
              f"{100 * (r - b) / b:+.1f} % relative, {100 * (r - b) / args.seconds:+.1f} "
              "points of a core")
        # The difference of two noisy CPU totals is itself noisy; the CPU spent inside the
        # writer's own calls is the recording cost measured directly.
        cpu, wall = (float(np.median([x[i] for x in spent])) for i in (0, 1))
        print(f"inside the recording writer's calls (median of {args.repeats}): CPU {cpu:.3f} s "
              f"= {100 * cpu / b:.1f} % of the CPU of streaming without recording "
              f"({100 * cpu / args.seconds:.2f} points of a core); event loop blocked "
              f"{1000 * wall:.0f} ms in {args.seconds:g} s (fsync runs on a background thread)")

if __name__ == "__main__":
    main()
