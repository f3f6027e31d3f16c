"""How fast the BLE path (fake BlueZ -> dbus-daemon -> bleak -> bridge) can go.

Plays one virtual wearable (8 EMG ch @ 2 kHz + IMU @ 200 Hz) at ``speed`` x
real time through the fake BlueZ and unmodified bleak, and prints samples/s
delivered, notifications/s, and losses.  Needs ``dbus-daemon``.

    python benchmarks/fake_bluez_throughput.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.simulator.device import EMG_STREAM, VirtualWearable  # noqa: E402
from bridge.simulator.fake_bluez import FakeBluez, PrivateBus, dbus_daemon_path  # noqa: E402
from bridge.sources import open as bopen  # noqa: E402
from bridge.stream import SampleChunk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import make_signals  # noqa: E402


async def run(speed: float, mtu: int, seconds: float = 3.0) -> tuple:
    async with FakeBluez() as bz:
        w = VirtualWearable(make_signals(seconds * speed + 2, 0), loop=True)
        dev = bz.add_wearable(w, speed=speed, mtu=mtu)
        n = 0
        async with bopen(f"ble://{dev.address}", scan_timeout=3) as conn:
            notes0 = dev.notifications_sent
            t0 = time.monotonic()
            async for item in conn:
                if isinstance(item, SampleChunk) and item.stream == EMG_STREAM:
                    n += item.n_samples
                if time.monotonic() - t0 > seconds:
                    break
            dt = time.monotonic() - t0
            notes = dev.notifications_sent - notes0
            st = conn.stats
    lost = sum(v["lost"] for v in st["streams"].values())
    return n / dt, notes / dt, lost, st["decoder"]["notifications_lost"], st["link_losses"]


def main() -> None:
    if dbus_daemon_path() is None:
        print("dbus-daemon not installed; nothing to measure")
        return
    print(f"{'speed':>6} {'MTU':>4} {'EMG samples/s':>14} {'notifications/s':>16} "
          f"{'samples lost':>13} {'notif. lost':>12} {'link losses':>12}")
    with PrivateBus():
        for speed, mtu in ((1, 247), (1, 23), (4, 247), (8, 247), (16, 247)):
            r = asyncio.run(run(speed, mtu))
            print(f"{speed:>6g} {mtu:>4d} {r[0]:>14.0f} {r[1]:>16.0f} {r[2]:>13d} {r[3]:>12d} "
                  f"{r[4]:>12d}")


if __name__ == "__main__":
    main()
