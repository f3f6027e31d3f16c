"""Run a session over a source of stream items: the loop shared by every command.

``run_items`` drives a :class:`~bridge.session.Session` from any async
iterator of stream items (live transports, replay) and hands events to
sinks.  ``virtual_items`` is the in-process virtual wearable: device ->
framed bytes -> the real decoder -> StreamAssembler, paced in simulated real
time (``speed`` x; 0 = as fast as possible).
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Callable

import firmware_protocol as fp
from bridge.session import Session
from bridge.simulator.device import Faults, Signals, VirtualWearable
from bridge.stream import StreamAssembler


async def virtual_items(signals: Signals, *, speed: float = 1.0, faults: Faults | None = None,
                        device: str = "sim", step: float = 0.02,
                        stats: dict | None = None) -> AsyncIterator:
    """Stream items from an in-process virtual wearable through the real decode path."""
    wearable = VirtualWearable(signals, faults=faults)
    decoder = fp.StreamDecoder()
    assembler = StreamAssembler(device)
    if stats is not None:
        stats["decoder"] = decoder.stats
        stats["streams"] = assembler.counters
        stats["wearable"] = wearable
    t_sim = 0.0
    wall0 = time.monotonic()
    seq = 0
    for cmd in (fp.handshake.hello, fp.handshake.start):
        for packet in decoder.feed(wearable.receive(fp.encode(cmd(seq)))):
            for item in assembler.handle(packet, t_sim):
                yield item
        seq += 1
    if stats is not None:
        stats["streams"] = assembler.counters
    while not wearable.finished:
        data = wearable.advance(step)
        t_sim += step
        # Host time: the simulated clock when racing, the real one when paced.
        now = t_sim if speed <= 0 else (time.monotonic() - wall0) * speed
        for packet in decoder.feed(data):
            for item in assembler.handle(packet, now):
                yield item
        if speed > 0:
            delay = wall0 + t_sim / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif int(t_sim / step) % 50 == 0:
            await asyncio.sleep(0)  # stay cooperative when racing


async def run_items(items: AsyncIterator, session: Session,
                    sinks: list[Callable[[object], None]]) -> None:
    """Feed every item to the session and every event to every sink."""
    async for item in items:
        for ev in session.handle(item):
            for sink in sinks:
                sink(ev)
    for ev in session.finish():
        for sink in sinks:
            sink(ev)
