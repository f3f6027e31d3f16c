"""The no-data watchdog: a link that looks up but delivers nothing is a link loss.

A virtual wearable that hangs (``Faults.stall_at``: the link stays open, nothing is
sent, commands go unanswered) served over a real pty, TCP and the fake BlueZ; the
Connection must say ``lost`` with the stall as the reason, reconnect once the device
answers again and mark the missed samples as one ``Gap(reason="disconnect")``.  And
it must not trip on a paused or blocking consumer, on fast sim:// or on replay://.
"""

import asyncio
import math
import time

import numpy as np
import pytest

from bridge.errors import ConfigError, TransportError
from bridge.recording import RecordingWriter
from bridge.simulator.device import EMG_STREAM, IMU_STREAM, Faults, Signals, VirtualWearable
from bridge.simulator.fake_bluez import FakeBluez, PrivateBus, dbus_daemon_path
from bridge.sources import Connection, make_transport, open as bopen
from bridge.sources.base import LinkState
from bridge.sources.replay import RecordingTransport, ReplayTransport, recording_meta
from bridge.stream import DeviceEvent, Gap, SampleChunk
from test_transport_stream import Served
from transport_checks import Collected, aio_timeout, check_integrity, make_signals

STALL = 0.4  # watchdog timeout in these tests (s)


class Watched:
    """Consume a connection, noting when each item was taken and each arrival."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.col = Collected()
        self.items: list = []  # (item, arrival time of its bytes or None)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for item in self.conn:
            self.col.add(item)
            self.items.append((item, self.conn.last_arrival))

    def changes(self) -> list[LinkState]:
        return [i.packet for i, _ in self.items
                if isinstance(i, DeviceEvent) and isinstance(i.packet, LinkState)]

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        for item in self.conn.get_nowait():
            self.col.add(item)
            self.items.append((item, None))


def _check_stall_then_back(w: Watched, wearable, stall_at: float, stall_for: float,
                           limit: float) -> dict:
    """lost (stall reason) -> reconnected -> the hole is one disconnect Gap per stream."""
    ch = w.changes()
    states = [c.state for c in ch]
    # one loss, then back (an attempt may fail first while the device is still hung
    # or the machine is busy: "retrying" in between is fine, another "lost" is not)
    assert states[0] == "lost" and "reconnected" in states, states
    k_back = states.index("reconnected")
    assert set(states[1:k_back]) <= {"retrying"}, states
    lost, back = ch[0], ch[k_back]
    assert lost.reason == f"no data for {limit:.1f} s (link stalled)"
    assert not lost.reason.startswith(("tcp:", "serial:", "ble:"))
    items = [i for i, _ in w.items]
    i_lost = next(k for k, i in enumerate(items) if getattr(i, "packet", None) is lost)
    i_back = next(k for k, i in enumerate(items) if getattr(i, "packet", None) is back)
    # The watchdog measured the transport's silence: at least the limit, not much more.
    last = max(t for i, t in w.items[:i_lost] if isinstance(i, SampleChunk))
    silence = lost.host_time - last
    assert limit <= silence < limit + 1.0, silence
    # Nothing between lost and reconnected; the hole follows as disconnect Gaps.
    assert not any(isinstance(i, (SampleChunk, Gap)) for i in items[i_lost:i_back])
    gaps = [i for i in items[i_back:] if isinstance(i, Gap)]
    assert {g.stream for g in gaps} == {EMG_STREAM, IMU_STREAM}
    assert {g.reason for g in gaps} == {"disconnect"}
    rate = wearable.signals.emg_rate
    emg_gap = next(g for g in gaps if g.stream == EMG_STREAM)
    # Every sample of the hang is inside the gap (up to the block in flight at each end).
    block = wearable.emg_block
    assert emg_gap.first_sample <= stall_at * rate + block
    assert emg_gap.first_sample + emg_gap.n_samples >= (stall_at + stall_for) * rate - block
    for stream in (EMG_STREAM, IMU_STREAM):
        check_integrity(w.col, wearable, stream, allow_loss=True)
    return {"silence": silence, "down": back.down_for}


@pytest.mark.parametrize("target", ["serial", "tcp://127.0.0.1:0"])
async def test_a_hung_device_is_a_lost_link_then_reconnects(target):
    faults = Faults(stall_at=(0.7,), stall_for=1.2)
    async with Served(target, make_signals(3.0, seed=7), faults, speed=1) as srv:
        async with bopen(srv.info["url"], stall_timeout=STALL, backoff=(0.05, 0.2)) as conn:
            assert conn.stall_limit == STALL
            w = Watched(conn)
            await asyncio.wait_for(asyncio.shield(srv.task), 10)
            await asyncio.sleep(0.1)
            await w.stop()
    r = _check_stall_then_back(w, srv.wearable, 0.7, 1.2, STALL)
    # Back within a HELLO round (command_timeout) of the device answering again.
    assert r["down"] < 1.2 - STALL + 1.0 + 0.5, r
    stats = conn.stats
    assert stats["stalls"] == 1 and stats["reconnects"] == 1
    assert stats["link_losses"] in (1, 2)  # (2: the server closing at the end)
    assert srv.wearable.stalled_packets > 0 and srv.wearable.ignored_commands >= 1


@pytest.mark.skipif(dbus_daemon_path() is None,
                    reason="dbus-daemon not installed (apt-get install dbus-daemon)")
async def test_a_hung_ble_device_is_a_lost_link_then_reconnects():
    with PrivateBus(set_env=True) as bus:
        async with FakeBluez(bus.address) as bz:
            wearable = VirtualWearable(make_signals(3.0, seed=8),
                                       faults=Faults(stall_at=(0.7,), stall_for=1.2))
            dev = bz.add_wearable(wearable, speed=1.0)
            # The timeout from the URL this time.
            async with bopen(f"ble://{dev.address}?stall={STALL}", scan_timeout=2,
                             backoff=(0.05, 0.2)) as conn:
                assert conn.stall_limit == STALL
                w = Watched(conn)
                t_end = time.monotonic() + 10
                while not wearable.finished and time.monotonic() < t_end:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.1)
                await w.stop()
    _check_stall_then_back(w, wearable, 0.7, 1.2, STALL)
    assert conn.stats["stalls"] == 1 and conn.stats["reconnects"] == 1
    assert dev.connects == 2


async def test_still_hung_gives_up_on_time_and_the_iterator_raises():
    faults = Faults(stall_at=(0.5,))  # hangs for good
    async with Served("tcp://127.0.0.1:0", make_signals(6.0), faults, speed=1) as srv:
        async with bopen(srv.info["url"], stall_timeout=STALL, backoff=(0.05, 0.2),
                         reconnect_timeout=0.5) as conn:
            items = []
            with pytest.raises(TransportError, match="not back after 0.5 s"):
                async with aio_timeout(8):
                    async for item in conn:
                        items.append(item)
    ch = [i.packet for i in items if isinstance(i, DeviceEvent)
          and isinstance(i.packet, LinkState)]
    assert ch[0].state == "lost" and "link stalled" in ch[0].reason
    assert ch[-1].state == "gave_up" and "no DEVICE_INFO" in ch[-1].reason
    # The device accepts the link but never answers: each attempt's HELLO wait is cut to
    # the time left (at least one command_timeout), not the 5 s handshake_timeout.
    assert ch[-1].down_for < 0.5 + 1.0 + 0.6, ch[-1]


async def test_without_reconnect_a_stall_ends_the_iterator():
    faults = Faults(stall_at=(0.5,))
    async with Served("tcp://127.0.0.1:0", make_signals(4.0), faults, speed=1) as srv:
        async with bopen(srv.info["url"], stall_timeout=STALL, reconnect=False) as conn:
            with pytest.raises(TransportError, match=r"no data for 0\.4 s \(link stalled\)"):
                async with aio_timeout(5):
                    async for _ in conn:
                        pass
            await asyncio.sleep(0.05)
            assert conn.stats["stalls"] == 1 and not conn.connected


# ------------------------------------------------------------- no false alarms
async def test_a_paused_or_blocking_consumer_does_not_trip_it():
    async with Served("tcp://127.0.0.1:0", make_signals(3.0), speed=1) as srv:
        async with bopen(srv.info["url"], stall_timeout=STALL) as conn:
            await asyncio.sleep(3 * STALL)  # nobody iterates: the queue fills, no stall
            time.sleep(2.5 * STALL)  # a consumer blocking the event loop: no stall either
            col = Collected()
            async with aio_timeout(3):
                async for item in conn:
                    col.add(item)
                    if col.received(EMG_STREAM) >= 2.4 * 2000:
                        break
            assert conn.stats["stalls"] == 0 and conn.stats["link_losses"] == 0
    assert not col.gaps and not col.packets(LinkState)
    check_integrity(col, srv.wearable, EMG_STREAM, allow_loss=False)


async def test_not_streaming_is_not_a_stall():
    async with Served("tcp://127.0.0.1:0", make_signals(4.0), speed=1) as srv:
        async with bopen(srv.info["url"], stall_timeout=STALL, autostart=False) as conn:
            await asyncio.sleep(2 * STALL)  # handshaken, never started: silence is expected
            assert conn.connected and conn.stats["stalls"] == 0
            await conn.start()
            await asyncio.sleep(2 * STALL)
            await conn.stop()
            await asyncio.sleep(2.5 * STALL)  # stopped on purpose: silence again
            assert conn.connected
            assert conn.stats["stalls"] == 0 and conn.stats["link_losses"] == 0
            assert conn.get_nowait()  # the samples of the started part arrived


async def test_fast_sim_does_not_trip_it_and_is_off_by_default():
    sig = make_signals(30.0)
    async with bopen("sim://t", signals=sig, speed=20, stall_timeout=0.2) as conn:
        assert conn.stall_limit == 0.2
        col = Collected()
        async with aio_timeout(10):
            async for item in conn:
                col.add(item)
    assert conn.stats["stalls"] == 0 and not col.gaps
    assert Connection(make_transport("sim://t", signals=sig)).stall_limit is None


async def _collect_all(conn: Connection) -> Collected:
    """Open ``conn``, collect its items until the source ends (10 s at most), close it."""
    col = Collected()
    await conn.open()
    try:
        async with aio_timeout(10):
            async for item in conn:
                col.add(item)
    finally:
        await conn.close()
    return col


async def test_a_stall_on_sim_is_recorded_and_replays_to_the_same_items(tmp_path):
    # sim:// takes the watchdog when asked; the recording notes the loss the host
    # declared, so the replay loses the link at the same point (it has no watchdog).
    path = tmp_path / "stall.gbrec"
    faults = Faults(stall_at=(1.0,), stall_for=2.0)
    inner = make_transport("sim://t", signals=make_signals(4.0, seed=2), faults=faults,
                           speed=2)
    with RecordingWriter(path, recording_meta(inner)) as writer:
        conn = Connection(RecordingTransport(inner, writer), device="pod", stall_timeout=0.3,
                          backoff=(0.02, 0.05), command_timeout=0.2)
        live = await _collect_all(conn)
    assert conn.stats["stalls"] == 1 and conn.stats["reconnects"] == 1
    assert [g.reason for g in live.gaps] == ["disconnect"] * 2

    for speed in (0.0, 4.0):
        replay = Connection(ReplayTransport(path, speed=speed), device="pod", autostart=False,
                            stall_timeout=0.05)
        assert replay.stall_limit is None  # never on for a replay
        rep = await _collect_all(replay)
        assert replay.stats["stalls"] == 0
        assert [repr(g) for g in rep.gaps] == [repr(g) for g in live.gaps]
        for stream in (EMG_STREAM, IMU_STREAM):
            a, b = live.chunks[stream], rep.chunks[stream]
            assert [(c.first_sample, c.host_time) for c in a] == \
                   [(c.first_sample, c.host_time) for c in b]


# ----------------------------------------------------------------- settings
async def test_default_is_twenty_packet_periods_but_at_least_two_seconds():
    async with Served("tcp://127.0.0.1:0", make_signals(2.0), speed=1) as srv:
        async with bopen(srv.info["url"]) as conn:
            assert conn.stall_timeout == "auto"
            await asyncio.sleep(0.2)
            assert conn.stall_limit == 2.0  # 16-sample blocks at 2 kHz: 8 ms x 20 < 2 s
            assert conn.stats["stall_timeout"] == 2.0
    # A slow device: 16-sample EMG blocks at 50 Hz and no IMU: 0.32 s x 20 = 6.4 s.
    n = 50 * 4
    slow = Signals(np.zeros((n, 2)), 50.0, ("a", "b"), np.empty((0, 6)), 50.0)
    async with Served("tcp://127.0.0.1:0", slow, speed=4) as srv:
        async with bopen(srv.info["url"]) as conn:
            assert conn.stall_limit == 2.0  # no block seen yet
            async with aio_timeout(5):
                async for item in conn:
                    if isinstance(item, SampleChunk):
                        break
            assert conn.stall_limit == pytest.approx(6.4)


@pytest.mark.parametrize("value, expected", [(1.5, 1.5), (0, None), (None, None),
                                             (math.inf, None), ("auto", "auto")])
def test_stall_timeout_values(value, expected):
    conn = Connection(make_transport("tcp://127.0.0.1:9"), stall_timeout=value)
    assert conn.stall_timeout == expected


def test_stall_from_the_url_and_bad_values():
    assert Connection(make_transport("tcp://127.0.0.1:9?stall=0.7")).stall_timeout == 0.7
    assert Connection(make_transport("serial:///dev/x?stall=0")).stall_timeout is None
    sig = make_signals(0.5)
    assert Connection(make_transport("sim://t?stall=1", signals=sig)).stall_timeout == 1.0
    # An explicit option wins over the URL.
    t = make_transport("tcp://127.0.0.1:9?stall=0.7")
    assert Connection(t, stall_timeout=3).stall_timeout == 3.0
    with pytest.raises(ConfigError, match="stall='x' is not a number"):
        make_transport("tcp://127.0.0.1:9?stall=x")
    with pytest.raises(ConfigError, match="must be >= 0"):
        make_transport("tcp://127.0.0.1:9?stall=-1")
    with pytest.raises(ConfigError, match="must be >= 0"):
        Connection(make_transport("tcp://127.0.0.1:9"), stall_timeout=-2)
    with pytest.raises(ConfigError, match="takes speed, seed and stall"):
        make_transport("sim://t?stal=1", signals=sig)
