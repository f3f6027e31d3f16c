"""Virtual wearable -> fake BlueZ (private dbus-daemon) -> unmodified bleak -> bridge."""

import asyncio
import time

import pytest

import firmware_protocol as fp
from bridge.errors import DeviceNotFoundError, TransportError
from bridge.simulator.device import EMG_STREAM, IMU_STREAM, Faults, VirtualWearable
from bridge.simulator.fake_bluez import FakeBluez, PrivateBus, dbus_daemon_path
from bridge.sources import open as bopen, open_many, scan
from transport_checks import Collected, check_integrity, make_signals

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(dbus_daemon_path() is None,
                       reason="dbus-daemon not installed (apt-get install dbus-daemon)"),
]


@pytest.fixture(scope="module")
def bus():
    with PrivateBus(set_env=True) as b:
        yield b


async def _collect_for(conn, col, seconds):
    async def run():
        async for item in conn:
            col.add(item)
    task = asyncio.create_task(run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _collect_until_finished(conn, col, wearable, timeout=8):
    async def run():
        async for item in conn:
            col.add(item)
    task = asyncio.create_task(run())
    t_end = time.monotonic() + timeout
    while not wearable.finished and time.monotonic() < t_end:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert wearable.finished


async def test_scan_lists_wearables(bus):
    async with FakeBluez(bus.address) as bz:
        a = bz.add_wearable(VirtualWearable(make_signals(1.0), name="left-glute"), rssi=-40)
        b = bz.add_wearable(VirtualWearable(make_signals(1.0), name="right-glute"), rssi=-70)
        found = await scan(0.6)
    assert [(f.address, f.name) for f in found] == [(a.address, "left-glute"),
                                                    (b.address, "right-glute")]
    assert found[0].rssi > found[1].rssi
    assert found[0].url == f"ble://{a.address}"


async def test_notifications_at_the_real_rate_and_exact_samples(bus):
    async with FakeBluez(bus.address) as bz:
        wearable = VirtualWearable(make_signals(4.0))
        dev = bz.add_wearable(wearable, speed=1.0)
        col = Collected()
        async with bopen(f"ble://{dev.address}", scan_timeout=2) as conn:
            assert conn.info.name == "glutebridge-sim"
            assert conn.stats["transport"]["mtu"] == 247
            t0 = time.monotonic()
            await _collect_for(conn, col, 1.5)
            elapsed = time.monotonic() - t0
    rate = col.received(EMG_STREAM) / elapsed
    assert 0.85 * 2000 < rate < 1.15 * 2000, rate
    for stream in (EMG_STREAM, IMU_STREAM):
        check_integrity(col, wearable, stream, allow_loss=False)
    assert not col.gaps
    assert conn.stats["decoder"]["notifications_lost"] == 0
    assert dev.notifications_sent > 0


async def test_by_name_small_mtu_and_commands(bus):
    async with FakeBluez(bus.address) as bz:
        wearable = VirtualWearable(make_signals(3.0), name="pod-7")
        bz.add_wearable(VirtualWearable(make_signals(3.0), name="other"))
        dev = bz.add_wearable(wearable, mtu=23, speed=2.0)
        col = Collected()
        async with bopen("ble://name=pod-7", scan_timeout=2) as conn:
            assert conn.stats["transport"]["mtu"] == 23
            assert (await conn.mark(7)).status == fp.AckStatus.OK
            assert (await conn.get_status()).status == fp.AckStatus.OK
            await _collect_for(conn, col, 0.6)
    assert [m.code for m in col.packets(fp.Marker)] == [7]
    assert len(col.packets(fp.Status)) == 1
    # 20-byte notifications: a 272-byte EMG frame needs 15 of them.
    assert dev.notifications_sent > 10 * len(col.chunks[EMG_STREAM])
    check_integrity(col, wearable, EMG_STREAM, allow_loss=False)


async def test_command_char_without_response_only(bus):
    async with FakeBluez(bus.address) as bz:
        dev = bz.add_wearable(VirtualWearable(make_signals(2.0)),
                              command_flags=("write-without-response",))
        async with bopen(f"ble://{dev.address}", scan_timeout=2) as conn:
            assert (await conn.mark(3)).status == fp.AckStatus.OK


async def test_link_loss_and_reconnect(bus):
    async with FakeBluez(bus.address) as bz:
        wearable = VirtualWearable(make_signals(2.0, seed=2),
                                   faults=Faults(disconnect_at=(0.8,)))
        dev = bz.add_wearable(wearable, speed=2.0)
        col = Collected()
        async with bopen(f"ble://{dev.address}", backoff=(0.05, 0.2), scan_timeout=2) as conn:
            await _collect_until_finished(conn, col, wearable)
    assert dev.link_drops == 1 and dev.connects == 2
    assert conn.stats["reconnects"] == 1
    assert any(g.reason == "disconnect" for g in col.gaps)
    for stream in (EMG_STREAM, IMU_STREAM):
        r = check_integrity(col, wearable, stream, allow_loss=True)
        assert r["lost"] > 0


async def test_out_of_range_for_a_while_then_back(bus):
    async with FakeBluez(bus.address) as bz:
        wearable = VirtualWearable(make_signals(3.0, seed=3))
        dev = bz.add_wearable(wearable, speed=2.0)
        col = Collected()
        async with bopen(f"ble://{dev.address}", backoff=(0.05, 0.1), scan_timeout=2) as conn:
            await asyncio.sleep(0.3)
            dev.drop_link(connectable_after=0.4)  # Connect fails for 0.4 s
            await _collect_until_finished(conn, col, wearable)
    assert conn.stats["reconnect_attempts"] >= 2
    assert conn.stats["reconnects"] == 1
    check_integrity(col, wearable, EMG_STREAM, allow_loss=True)


async def test_bit_errors_and_drops_over_ble(bus):
    async with FakeBluez(bus.address) as bz:
        wearable = VirtualWearable(make_signals(2.0, seed=4),
                                   faults=Faults(bit_error_rate=2e-5, drop_rate=0.02, seed=3))
        dev = bz.add_wearable(wearable, speed=3.0)
        col = Collected()
        async with bopen(f"ble://{dev.address}", scan_timeout=2, handshake_timeout=3) as conn:
            await _collect_until_finished(conn, col, wearable)
    lost = sum(check_integrity(col, wearable, s, allow_loss=True)["lost"]
               for s in (EMG_STREAM, IMU_STREAM))
    assert lost > 0 and wearable.dropped_packets > 0


async def test_lost_notifications_are_seen_by_their_counter(bus):
    # Small MTU: frames span several notifications, so one lost notification
    # costs the frames it touched, which the host reports as gaps.
    async with FakeBluez(bus.address) as bz:
        wearable = VirtualWearable(make_signals(2.0, seed=6))
        dev = bz.add_wearable(wearable, speed=3.0, mtu=64, notification_loss=0.01, seed=5)
        col = Collected()
        async with bopen(f"ble://{dev.address}", scan_timeout=2, handshake_timeout=3) as conn:
            await _collect_until_finished(conn, col, wearable)
    d = conn.stats["decoder"]
    assert dev.notifications_dropped > 0
    # Every dropped notification after the handshake is counted by the host.
    assert 0 < d["notifications_lost"] <= dev.notifications_dropped
    assert d["resyncs"] >= 1
    lost = sum(check_integrity(col, wearable, s, allow_loss=True)["lost"]
               for s in (EMG_STREAM, IMU_STREAM))
    assert lost > 0


async def test_two_wearables_on_one_loop(bus):
    async with FakeBluez(bus.address) as bz:
        ws = [VirtualWearable(make_signals(1.5, seed=i), name=f"pod{i}") for i in range(2)]
        devs = [bz.add_wearable(w, speed=2.0) for w in ws]
        cols = {d.address: Collected() for d in devs}
        urls = {d.address: f"ble://{d.address}" for d in devs}
        async with open_many(urls, scan_timeout=2) as many:
            async def run():
                async for label, item in many:
                    cols[label].add(item)
            task = asyncio.create_task(run())
            while not all(w.finished for w in ws):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    for d, w in zip(devs, ws):
        check_integrity(cols[d.address], w, EMG_STREAM, allow_loss=False)
        assert {c.device for c in cols[d.address].chunks[EMG_STREAM]} == {d.address}


async def test_unknown_address_is_device_not_found(bus):
    async with FakeBluez(bus.address) as bz:
        bz.add_wearable(VirtualWearable(make_signals(1.0)))
        t0 = time.monotonic()
        with pytest.raises(DeviceNotFoundError, match="in range"):
            async with bopen("ble://AA:BB:CC:DD:EE:FF", scan_timeout=0.5):
                pass
        assert time.monotonic() - t0 < 3


async def test_adapter_powered_off_is_transport_error(bus):
    async with FakeBluez(bus.address, powered=False) as bz:
        bz.add_wearable(VirtualWearable(make_signals(1.0)))
        with pytest.raises(TransportError, match="(?i)bluetooth"):
            await scan(0.3)


async def test_no_adapter_is_transport_error(bus):
    async with FakeBluez(bus.address, with_adapter=False):
        with pytest.raises(TransportError, match="(?i)no bluetooth adapters|adapter"):
            await scan(0.3)


async def test_bluez_not_running_is_transport_error(bus):
    with pytest.raises(TransportError, match="BlueZ is not running"):
        await scan(0.3)


async def test_serve_ble_target(bus):
    from bridge.simulator.serve import serve

    ready = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve("ble", make_signals(1.0), speed=2.0, stop=stop,
                                     bus_address=bus.address, on_ready=ready.set_result))
    try:
        info = await asyncio.wait_for(ready, 5)
        assert info["export"] == f"export DBUS_SYSTEM_BUS_ADDRESS={bus.address}"
        col = Collected()
        async with bopen(info["url"], scan_timeout=2) as conn:
            await _collect_for(conn, col, 0.4)
        assert col.received(EMG_STREAM) > 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
