"""Recording and replay at the transport level: bytes in, bytes out, same path after.

:class:`RecordingTransport` wraps any transport and appends what it moves to
a :class:`~bridge.recording.RecordingWriter`: every chunk or notification the
device sent (with its host receive time), every byte the host wrote, link
losses.  :class:`ReplayTransport` plays such a file back into a
:class:`~bridge.sources.base.Connection`, with the recorded host times, so
the decoder, stream assembler, clock fit and cores see exactly what they saw
live — a replay gives the same events as the live session.

The recorder never drops: it sits before the consumer queue, so a slow
consumer loses items (counted) but the file keeps every byte.
"""

from __future__ import annotations

import asyncio
import time

from bridge.errors import TransportError
from bridge.recording import Kind, RecordingReader, RecordingWriter
from bridge.sources.base import LinkSink, Transport

#: Bytes of a recorded byte-stream read fed at a time at speed 0 (a few dozen packets: far
#: below what the connection's queue holds, whatever the frame size).
_SLICE = 4096


class _RecordingSink(LinkSink):
    def __init__(self, sink: LinkSink, writer: RecordingWriter) -> None:
        self.sink = sink
        self.writer = writer

    def data_received(self, data: bytes, host_time: float) -> None:
        self.writer.data_in(data, host_time)
        self.sink.data_received(data, host_time)

    def link_lost(self, exc, final: bool = False) -> None:
        # ``final``: the source ended (a sim:// scenario played out).  That is the
        # end of the data, i.e. the end of the file, not a link loss: nothing to record.
        if not final:
            self.writer.write(Kind.LINK_LOST, (str(exc or "") or "link lost").encode(),
                              time.monotonic())
        self.sink.link_lost(exc, final)


class RecordingTransport(Transport):
    """A transport that records everything it moves (see module docstring)."""

    def __init__(self, inner: Transport, writer: RecordingWriter) -> None:
        self.inner = inner
        self.writer = writer
        self.url = inner.url
        self.notifications = inner.notifications
        self.stall_timeout = inner.stall_timeout

    async def open(self, sink: LinkSink) -> None:
        await self.inner.open(_RecordingSink(sink, self.writer))
        self.writer.write(Kind.LINK_UP, b"", time.monotonic())

    def host_dropped(self, exc: BaseException) -> None:
        # The connection gave up on a link that delivered nothing: record the loss
        # (the transport reports none), so a replay drops the link at this point too.
        self.writer.write(Kind.LINK_LOST, str(exc).encode(), time.monotonic())
        self.inner.host_dropped(exc)

    async def write(self, data: bytes) -> None:
        self.writer.data_out(data, time.monotonic())
        await self.inner.write(data)

    async def close(self) -> None:
        try:
            await self.inner.close()
        finally:
            self.writer.flush(sync=True)

    def extra_stats(self) -> dict:
        stats = dict(self.inner.extra_stats())
        stats["recorded_records"] = self.writer.records
        stats["recorded_bytes"] = self.writer.bytes
        return stats


def recording_meta(transport: Transport, **extra) -> dict:
    """Header metadata for a recording of ``transport``."""
    meta = {"url": transport.url,
            "transport": "notifications" if transport.notifications else "stream"}
    meta.update(extra)
    return meta


class ReplayTransport(Transport):
    """Play a recording back as if the device were connected.

    Device bytes are delivered with their recorded host times.  Playback is
    driven by the connection's own requests: it starts at the first write
    (the HELLO of the handshake) and, at a recorded link loss, reports the
    loss and waits for the connection to reconnect, so the handshake and
    reconnect logic run as they did live.  The end of the file is the end of
    the data (the source ended, or the host stopped), not a link loss.
    ``speed``: 1 = real time, N = N times faster, 0 = as fast as possible.
    """

    notifications = False

    def __init__(self, path, speed: float = 0.0) -> None:
        self.reader = RecordingReader(path)
        self.url = f"replay://{path}"
        self.notifications = self.reader.meta.get("transport") == "notifications"
        self.speed = speed
        self._records = self.reader.records()
        self._sink: LinkSink | None = None
        self._go = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._done = False
        self.delivered = 0
        self.position = 0  # file offset of the last record played (progress bars)

    async def open(self, sink: LinkSink) -> None:
        if self._done:
            raise TransportError(f"{self.url}: the recording has ended")
        self._sink = sink
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._play())

    async def write(self, data: bytes) -> None:
        # The recording holds the device's answers; a request only resumes playback.
        self._go.set()

    async def close(self) -> None:
        if self._done and self._task is not None and not self._task.done():
            self._task.cancel()

    async def _play(self) -> None:
        await self._go.wait()
        wall0 = first = None
        for rec in _ends_without_loss(self._records):
            self.position = rec.offset
            if rec.kind == Kind.DATA_IN:
                if self.speed > 0:
                    if first is None:
                        wall0, first = time.monotonic(), rec.host_time
                    delay = wall0 + (rec.host_time - first) / self.speed - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if self.speed > 0 or self.notifications:
                    self._sink.data_received(rec.payload, rec.host_time)
                    if self.speed <= 0:
                        await asyncio.sleep(0)  # let the consumer drain: never overflows
                else:
                    # As fast as possible, but no faster than the consumer: one recorded
                    # read of a byte stream can hold thousands of packets (a host that fell
                    # behind reads ~0.5 MB at once; a --speed 100 demo records such reads),
                    # and the connection's queue drops sample chunks beyond its size (the
                    # analyze of a demo recording lost the hold and both stance trials).
                    # Slices of a few KiB, each followed by a yield, let the consumer drain
                    # the queue in between; every slice keeps the record's host time, so
                    # the decoder sees the same bytes at the same times.
                    data = rec.payload
                    for at in range(0, len(data), _SLICE):
                        self._sink.data_received(data[at:at + _SLICE], rec.host_time)
                        await asyncio.sleep(0)
                self.delivered += 1
            elif rec.kind == Kind.LINK_LOST:
                self._go.clear()
                self._sink.link_lost(TransportError(rec.payload.decode(errors="replace")
                                                    or "link lost (recorded)"))
                await self._go.wait()  # the connection reconnects and says HELLO again
        self._done = True
        self._sink.link_lost(None, final=True)

    def extra_stats(self) -> dict:
        r = self.reader
        return {"records_delivered": self.delivered, "truncated_bytes": r.truncated_bytes,
                "corrupt_records": r.corrupt_records, "skipped_bytes": r.skipped_bytes}


def damage_note(stats: dict | None) -> str | None:
    """One line saying what a damaged recording lost, from a replay's ``conn.stats``
    (None when it read whole, or the stats are not a replay's).

    The reader skips damaged records and a torn tail without raising: the user must
    still learn that the file, not the link, lost those bytes.
    """
    t = (stats or {}).get("transport") or {}
    corrupt, skipped, torn = (int(t.get(k) or 0) for k in
                              ("corrupt_records", "skipped_bytes", "truncated_bytes"))
    parts = []
    if corrupt:
        parts.append(f"{corrupt} record{'s' if corrupt > 1 else ''} skipped "
                     f"({skipped} bytes; samples in {'them' if corrupt > 1 else 'it'} are "
                     "missing, marked as gaps)")
    if torn:
        parts.append(f"its last {torn} bytes are an unfinished record (the recording was "
                     "cut off while writing) and are left out")
    return "the recording is damaged: " + "; ".join(parts) if parts else None


def _ends_without_loss(records):
    """The records, minus a reason-less LINK_LOST that is the last record of the file.

    Recordings made before the end of a source was told apart from a link
    loss end with such a record (the sim:// scenario finished); it is the end
    of the data, not a loss.  Recorded losses always carry a reason.
    """
    held = None
    for rec in records:
        if held is not None:
            yield held
            held = None
        if rec.kind == Kind.LINK_LOST and not rec.payload:
            held = rec
        else:
            yield rec
