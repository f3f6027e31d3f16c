"""``sim://`` — an in-process virtual wearable, no transport at all.

The :class:`~bridge.simulator.device.VirtualWearable` is paced on the event
loop (real time, or ``speed`` times faster) and its bytes go through exactly
the same decoder -> assembler -> queue path as every other source.  Link loss
injected with ``Faults(disconnect_at=...)`` behaves like a real link: the
bytes produced while "disconnected" are lost and the connection reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from bridge.errors import ConfigError, TransportError
from bridge.sources._query import query_number
from bridge.sources.base import LinkSink, Transport
from bridge.simulator.device import Faults, Signals, VirtualWearable

__all__ = ["SimTransport", "build_signals"]


def build_signals(scenario: str, seed: int = 0) -> Signals:
    """Signals for a named scenario from :mod:`bridge.simulator.scenarios`."""
    try:
        from bridge.simulator import scenarios
    except ImportError as exc:
        raise ConfigError(
            f"sim://{scenario}: bridge.simulator.scenarios is not available in this build; "
            "pass signals=Signals(...) to bridge.open() instead") from exc
    try:
        return scenarios.build(scenario, seed=seed)
    except (KeyError, ValueError) as exc:
        names = getattr(scenarios, "NAMES", None) or getattr(scenarios, "SCENARIOS", None)
        hint = f"; known scenarios: {', '.join(sorted(names))}" if names else ""
        raise ConfigError(f"sim://{scenario}: unknown scenario{hint}") from exc


class SimTransport(Transport):
    """Pace a VirtualWearable on the running loop.

    ``tick`` is the pacing period in host seconds; each tick advances the
    device by ``elapsed * speed`` seconds of its own time.
    """

    notifications = False

    def __init__(self, device: VirtualWearable, *, url: str = "sim://", speed: float = 1.0,
                 tick: float = 0.005) -> None:
        if not speed > 0:
            raise ConfigError(f"{url}: speed must be > 0, got {speed}")
        if not tick > 0:
            raise ConfigError(f"{url}: tick must be > 0, got {tick}")
        self.device = device
        self.url = url
        self.speed = float(speed)
        self.tick = float(tick)
        self._sink: LinkSink | None = None
        self._task: asyncio.Task | None = None
        self._last: float | None = None
        self._disconnects = sorted(device.faults.disconnect_at)
        self._lost_bytes = 0
        self.opens = 0

    async def open(self, sink: LinkSink) -> None:
        if self._task is not None:
            raise TransportError(f"{self.url}: already open")
        now = time.monotonic()
        if self._last is not None:
            # While "disconnected" the device kept running; what it sent is lost.
            self._lost_bytes += len(self.device.advance((now - self._last) * self.speed))
        self._last = now
        self._sink = sink
        self.opens += 1
        self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        dev = self.device
        sink = self._sink
        while True:
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            dt = (now - self._last) * self.speed
            self._last = now
            if self._disconnects and dev.time + dt >= self._disconnects[0]:
                # Send what was due before the link loss, then drop the link.
                cut = max(self._disconnects.pop(0) - dev.time, 0.0)
                data = dev.advance(cut)
                if data:
                    sink.data_received(data, now)
                self._lost_bytes += len(dev.advance(dt - cut))
                self._task = None
                sink.link_lost(TransportError(f"{self.url}: simulated link loss"))
                return
            data = dev.advance(dt)
            if data:
                sink.data_received(data, now)
            if dev.finished:
                self._task = None
                sink.link_lost(None, final=True)
                return

    async def write(self, data: bytes) -> None:
        if self._sink is None or self._task is None:
            raise TransportError(f"{self.url}: not connected")
        answer = self.device.receive(bytes(data))
        if answer:
            sink = self._sink
            # Deliver on the next loop turn, like bytes coming back over a wire.
            asyncio.get_running_loop().call_soon(
                lambda: self._task is not None and sink.data_received(answer, time.monotonic()))

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def extra_stats(self) -> dict:
        d = self.device
        return {"device_sent_packets": d.sent_packets, "device_dropped_packets": d.dropped_packets,
                "device_flipped_bits": d.flipped_bits, "bytes_lost_while_down": self._lost_bytes,
                "opens": self.opens}


def make(url_rest: str, query: dict, *, signals: Signals | None = None,
         faults: Faults | None = None, wearable: VirtualWearable | None = None,
         speed: float | None = None, seed: int | None = None, **device_kwargs) -> SimTransport:
    """Build a SimTransport from ``sim://scenario?speed=..&seed=..`` and options."""
    url = "sim://" + url_rest
    speed = query_number(url, query, "speed", 1.0) if speed is None else speed
    seed = query_number(url, query, "seed", 0, int) if seed is None else seed
    if query:
        raise ConfigError(f"{url}: unknown option(s) {', '.join(sorted(query))} "
                          "(sim:// takes speed, seed and stall)")
    device = wearable
    if device is None:
        if signals is None:
            if not url_rest:
                raise ConfigError("sim:// needs a scenario name (sim://NAME) or signals=")
            signals = build_signals(url_rest, seed=seed)
        device = VirtualWearable(signals, faults=faults, **device_kwargs)
    return SimTransport(device, url=url, speed=speed)
