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
from bridge.errors import TransportError
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


def _chunks_only(fn):
    from bridge.stream import SampleChunk

    def on_item(item) -> None:
        if isinstance(item, SampleChunk):
            fn(item)
    return on_item


def _split_sinks(sinks) -> tuple[list, list, list]:
    """Sinks are callables (events) or objects with on_item / on_event / close."""
    items, events, closers = [], [], []
    for s in sinks:
        if hasattr(s, "on_item"):
            items.append(s.on_item)
        elif hasattr(s, "on_chunk"):
            items.append(_chunks_only(s.on_chunk))
        if hasattr(s, "on_event"):
            events.append(s.on_event)
        elif callable(s):
            events.append(s)
    return items, events, closers


async def run_items(items: AsyncIterator, session: Session, sinks,
                    on_tick: Callable[[], None] | None = None, tick: float = 0.1, *,
                    stop_on_cancel: bool = False) -> bool:
    """Feed every item to the session and the sinks, every event to the sinks.

    ``on_tick`` (e.g. a screen redraw) is called at most every ``tick`` s.
    With ``stop_on_cancel``, cancelling the task running this (asyncio.run does
    so on the first Ctrl-C) ends the stream as the end of data would: the source
    is closed, the session finished and its last events delivered, and True is
    returned (the cancellation is absorbed).  Returns False when the data ended.
    """
    item_fns, event_fns, _ = _split_sinks(sinks)
    last = time.monotonic()
    interrupted = False
    lost: TransportError | None = None
    try:
        async for item in items:
            for f in item_fns:
                f(item)
            for ev in session.handle(item):
                for f in event_fns:
                    f(ev)
            if on_tick is not None:
                now = time.monotonic()
                if now - last >= tick:
                    last = now
                    on_tick()
    except TransportError as exc:
        # The source gave up (device gone for good): what arrived is still a session.
        lost = exc
    except asyncio.CancelledError:
        if not stop_on_cancel:
            raise
        interrupted = True
        uncancel = getattr(asyncio.current_task(), "uncancel", None)  # Python >= 3.11
        if uncancel is not None:
            uncancel()
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()  # close the source now (disconnect, stop the device)
    for ev in session.finish(now=time.monotonic()):
        for f in event_fns:
            f(ev)
    if on_tick is not None:
        on_tick()
    if lost is not None:
        raise SourceEnded(str(lost)) from lost
    return interrupted


class SourceEnded(TransportError):
    """The source gave up mid-session; the session was finished and its events delivered."""
