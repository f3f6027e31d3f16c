"""Virtual wearable -> pty -> pyserial-asyncio-fast, and -> TCP, end to end."""

import asyncio
import os
import threading
import time

import pytest

from bridge.errors import TransportError
from bridge.simulator.device import EMG_STREAM, IMU_STREAM, Faults, VirtualWearable
from bridge.simulator.serve import serve
from bridge.sources import open as bopen
from transport_checks import (Collected, aio_timeout, check_integrity, expected_counts,
                              make_signals)

pytestmark = pytest.mark.asyncio


class Served:
    """Run serve() in the background and learn its URL; keep the device for ground truth."""

    def __init__(self, target, signals, faults=None, **kw):
        self.target, self.signals, self.faults, self.kw = target, signals, faults, kw
        self.stop = asyncio.Event()
        self.info = None
        self.wearable = None

    async def __aenter__(self):
        ready = asyncio.get_running_loop().create_future()
        self.wearable = VirtualWearable(self.signals, faults=self.faults)
        self.task = asyncio.create_task(serve(self.target, self.signals, stop=self.stop,
                                              on_ready=ready.set_result,
                                              wearable=self.wearable, **self.kw))
        self.info = await asyncio.wait_for(ready, 5)
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        self.result = await asyncio.wait_for(asyncio.shield(self.task), 5)


async def _drain_until_finished(conn, col, served, timeout=8):
    async def run():
        async for item in conn:
            col.add(item)
    consumer = asyncio.create_task(run())
    # serve() returns once the device has played everything (and drained).
    await asyncio.wait_for(asyncio.shield(served.task), timeout)
    await asyncio.sleep(0.1)
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    for item in conn.get_nowait():
        col.add(item)


@pytest.mark.parametrize("target", ["serial", "tcp://127.0.0.1:0"])
async def test_stream_transports_deliver_every_sample(target):
    async with Served(target, make_signals(1.5), speed=6) as srv:
        col = Collected()
        async with bopen(srv.info["url"]) as conn:
            assert conn.info.serial == "SIM-0001"
            await _drain_until_finished(conn, col, srv)
    for stream in (EMG_STREAM, IMU_STREAM):
        r = check_integrity(col, srv.wearable, stream, allow_loss=False)
        assert r["start"] == 0
    assert not col.gaps
    d = conn.stats["decoder"]
    assert d["crc_errors"] == d["framing_errors"] == d["samples_lost"] == 0


@pytest.mark.parametrize("target", ["serial", "tcp://127.0.0.1:0"])
async def test_served_scenario_end_reaches_a_host_that_lags(target):
    """The wearable's last bytes reach a host that is busy when the scenario
    ends (a pty discards what is unread when it closes: the last seconds were
    lost).  The server runs in its own thread, as `simulate --serve` runs in
    its own process, so blocking this loop makes the host lag."""
    wearable = VirtualWearable(make_signals(1.0, seed=4))
    info, ready = {}, threading.Event()

    def run():
        asyncio.run(serve(target, None, speed=4, wearable=wearable,
                          on_ready=lambda i: (info.update(i), ready.set())))

    server = threading.Thread(target=run)
    server.start()
    assert ready.wait(5)
    col = Collected()
    async with bopen(info["url"], backoff=(0.05, 0.2)) as conn:
        async def consume():
            lagged = False
            async for item in conn:
                col.add(item)
                if not lagged and wearable.time > 0.8:
                    lagged = True
                    time.sleep(0.6)   # the host is busy while the scenario ends
        consumer = asyncio.create_task(consume())
        await asyncio.to_thread(server.join, 15)
        await asyncio.sleep(0.3)
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        for item in conn.get_nowait():
            col.add(item)
    assert not server.is_alive()
    for stream in (EMG_STREAM, IMU_STREAM):
        r = check_integrity(col, wearable, stream, allow_loss=False)
        assert r["start"] == 0 and r["end"] == expected_counts(wearable, stream).shape[0], r


@pytest.mark.parametrize("target", ["serial", "tcp://127.0.0.1:0"])
async def test_a_served_wearable_waits_for_its_host(target):
    """A host that joins late gets the scenario from its start, every sample: the
    device's time runs from the host's first command, not from serving (a pty's late
    host saw the seconds played meanwhile as lost packets; TCP got them as a burst)."""
    async with Served(target, make_signals(2.0, seed=2), speed=4) as srv:
        await asyncio.sleep(0.8)  # longer than the whole scenario at 4x
        assert srv.wearable.time == 0.0 and not srv.task.done()
        col = Collected()
        async with bopen(srv.info["url"]) as conn:
            await _drain_until_finished(conn, col, srv)
    for stream in (EMG_STREAM, IMU_STREAM):
        r = check_integrity(col, srv.wearable, stream, allow_loss=False)
        assert r["start"] == 0 and r["end"] == expected_counts(srv.wearable, stream).shape[0]
    assert not col.gaps and conn.stats["decoder"]["samples_lost"] == 0


async def test_an_autostarting_served_wearable_streams_from_power_up():
    """A serial logger that streams on power-up does not wait for a host."""
    wearable = VirtualWearable(make_signals(2.0), autostart=True)
    ready = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve("serial", None, speed=4, wearable=wearable, stop=stop,
                                     on_ready=ready.set_result))
    await asyncio.wait_for(ready, 5)
    await asyncio.sleep(0.3)
    assert wearable.time > 0.5  # ~1.2 s of device time at 4x, with nobody there
    stop.set()
    result = await asyncio.wait_for(task, 5)
    assert result["bytes_sent"] > 0


@pytest.mark.parametrize("target", ["serial", "tcp://127.0.0.1:0"])
async def test_stream_transports_resync_after_bit_errors(target):
    faults = Faults(bit_error_rate=3e-5, seed=9)
    async with Served(target, make_signals(2.0, seed=3), faults, speed=8) as srv:
        col = Collected()
        async with bopen(srv.info["url"], handshake_timeout=3) as conn:
            await _drain_until_finished(conn, col, srv)
    d = conn.stats["decoder"]
    assert srv.wearable.flipped_bits > 0
    assert d["crc_errors"] + d["framing_errors"] + d["malformed"] > 0
    lost = 0
    for stream in (EMG_STREAM, IMU_STREAM):
        lost += check_integrity(col, srv.wearable, stream, allow_loss=True)["lost"]
    assert lost > 0
    # Each corrupted frame costs that frame only: far fewer blocks lost than bits flipped x 3.
    assert len(col.gaps) <= 3 * srv.wearable.flipped_bits


async def test_serial_unplug_replug_marks_gap_and_continues():
    faults = Faults(disconnect_at=(0.6,))
    async with Served("serial", make_signals(2.0, seed=5), faults, speed=2,
                      replug_after=0.3) as srv:
        link = srv.info["url"].split("://")[1].split("?")[0]
        assert os.path.islink(link)
        col = Collected()
        async with bopen(srv.info["url"], backoff=(0.05, 0.2)) as conn:
            await _drain_until_finished(conn, col, srv)
    stats = conn.stats
    # (a second loss may be the server closing at the end of the recording)
    assert stats["link_losses"] in (1, 2) and stats["reconnects"] == 1
    assert stats["reconnect_attempts"] >= 2  # the port was gone for a while
    assert any(g.reason == "disconnect" for g in col.gaps)
    for stream in (EMG_STREAM, IMU_STREAM):
        r = check_integrity(col, srv.wearable, stream, allow_loss=True)
        assert r["end"] > 0.9 * (srv.signals.emg.shape[0] if stream == EMG_STREAM
                                 else srv.signals.imu.shape[0])


async def test_tcp_server_drop_reconnects():
    faults = Faults(disconnect_at=(0.5,))
    async with Served("tcp://127.0.0.1:0", make_signals(1.5, seed=6), faults, speed=2) as srv:
        col = Collected()
        async with bopen(srv.info["url"], backoff=(0.05, 0.2)) as conn:
            await _drain_until_finished(conn, col, srv)
    assert conn.stats["reconnects"] == 1
    assert srv.result["links"] == 2
    for stream in (EMG_STREAM, IMU_STREAM):
        check_integrity(col, srv.wearable, stream, allow_loss=True)


async def test_reconnect_gives_up_after_timeout():
    async with Served("tcp://127.0.0.1:0", make_signals(3.0), speed=1) as srv:
        url = srv.info["url"]
        conn_cm = bopen(url, backoff=(0.05, 0.1), reconnect_timeout=0.3)
        conn = await conn_cm.__aenter__()
        try:
            srv.stop.set()  # the server goes away for good
            with pytest.raises(TransportError, match="not back after"):
                async with aio_timeout(5):
                    async for _ in conn:
                        pass
        finally:
            await conn_cm.__aexit__(None, None, None)


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions")
async def test_serial_permission_denied(tmp_path):
    p = tmp_path / "ttyLOCKED"
    p.write_bytes(b"")
    p.chmod(0)
    with pytest.raises(TransportError, match="permission denied"):
        async with bopen(f"serial://{p}", reconnect=False):
            pass
