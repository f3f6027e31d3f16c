"""Hardware-in-loop: the same checks against a real wearable (skipped without one).

Needs the options from ``tests/conftest_hw.py`` (--ble-address / --serial-port).
"""

import time

import pytest

import firmware_protocol as fp
from bridge.sources import open as bopen
from bridge.stream import DeviceEvent, Gap, SampleChunk

pytestmark = pytest.mark.asyncio


def _option(request, name):
    try:
        return request.config.getoption(name)
    except ValueError:  # plugin not loaded: behave like "not given"
        return None


async def _check_device(url: str, seconds: float = 3.0) -> None:
    async with bopen(url) as conn:
        info = conn.info
        assert info.streams, "device announced no streams"
        assert (await conn.mark(1234)).status == fp.AckStatus.OK
        received = {s.stream_id: 0 for s in info.streams}
        markers = []
        t0 = time.monotonic()
        async for item in conn:
            if isinstance(item, SampleChunk):
                received[item.stream] += item.n_samples
            elif isinstance(item, DeviceEvent) and isinstance(item.packet, fp.Marker):
                markers.append(item.packet.code)
            elif isinstance(item, Gap):
                print("gap:", item)
            if time.monotonic() - t0 > seconds:
                break
        elapsed = time.monotonic() - t0
        print("stats:", conn.stats)
    assert 1234 in markers
    for s in info.streams:
        rate = received[s.stream_id] / elapsed
        assert rate > 0.8 * s.rate, f"stream {s.stream_id}: {rate:.0f}/s, announced {s.rate}"


async def test_real_ble_wearable(request):
    addr = _option(request, "--ble-address")
    if not addr:
        pytest.skip("needs a real wearable: pass --ble-address (tests/conftest_hw.py plugin)")
    await _check_device(f"ble://{addr}")


async def test_real_serial_wearable(request):
    port = _option(request, "--serial-port")
    if not port:
        pytest.skip("needs a real wearable: pass --serial-port (tests/conftest_hw.py plugin)")
    baud = _option(request, "--serial-baud") or 921600
    await _check_device(f"serial://{port}?baud={baud}")
