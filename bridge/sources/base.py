"""Shared connection logic: one path from bytes to items for every transport.

A :class:`Transport` only moves bytes (serial, TCP, BLE notifications, an
in-process virtual wearable).  :class:`Connection` does everything else, the
same way for all of them::

    bytes -> firmware_protocol decoder -> bridge.stream.StreamAssembler -> bounded queue

plus the capability handshake (HELLO -> DEVICE_INFO), START, commands with
ACKs, reconnect with exponential backoff (the hole is marked by the assembler
as a ``Gap(reason="disconnect")``) and queue-overflow accounting (the hole is
marked as a ``Gap(reason="overflow")``), so a consumer never sees a silent
loss.  A link that stays "connected" but delivers nothing (a hung device, a
stale BLE connection, a wedged USB-serial adapter, a TCP peer that stopped
sending) is caught by a no-data watchdog (``stall_timeout``) and goes through
the same reconnect path as any other link loss.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import firmware_protocol as fp
from firmware_protocol import handshake as hs

from bridge.errors import ConfigError, GlutebridgeError, ProtocolError, TransportError

log = logging.getLogger(__name__)

__all__ = ["Connection", "Transport", "LinkSink", "LinkState"]


@dataclass(frozen=True, slots=True)
class LinkState:
    """The link to the device changed state (never silent).

    A :class:`Connection` puts one into its item stream, as the ``packet`` of a
    ``DeviceEvent`` (host-side, no device time), in order with the data: when
    the link drops (``"lost"``), after each failed reconnect attempt
    (``"retrying"``), when the handshake succeeded again
    (``"reconnected"``; the samples missed meanwhile follow as a
    ``Gap(reason="disconnect")``) and when it stops trying (``"gave_up"``;
    the iterator then raises :class:`~bridge.errors.TransportError`).
    """

    device: str
    state: str  # "lost" | "retrying" | "reconnected" | "gave_up"
    host_time: float  # time.monotonic() of the change
    reason: str = ""  # why the link dropped / the last attempt failed
    attempt: int = 0  # reconnect attempts made so far (lost: 0)
    retry_in: float | None = None  # s until the next attempt (lost, retrying)
    down_for: float = 0.0  # s since the link was lost
    give_up_after: float | None = None  # the connection's reconnect_timeout; None = keeps trying


class LinkSink(abc.ABC):
    """What a transport reports to (implemented by :class:`Connection`)."""

    @abc.abstractmethod
    def data_received(self, data: bytes, host_time: float) -> None:
        """Bytes (or one BLE notification) arrived at ``host_time`` (time.monotonic)."""

    @abc.abstractmethod
    def link_lost(self, exc: BaseException | None, final: bool = False) -> None:
        """The link dropped.  ``final``: the source ended for good (no reconnect)."""


class Transport(abc.ABC):
    """Moves bytes to and from one device.  Subclasses: sim, tcp, serial, ble.

    ``open`` raises :class:`~bridge.errors.TransportError` (or a subclass)
    with a message saying what to do; it may be called again after the link
    was lost (reconnect).
    """

    #: URL this transport was opened from (for messages).
    url: str = ""
    #: True when each ``data_received`` call is one BLE notification
    #: (counter byte + slice of the framed stream), False for a byte stream.
    notifications: bool = False
    #: ``?stall=S`` from the URL (None: not given): the default of
    #: ``Connection(stall_timeout=...)``.
    stall_timeout: float | None = None

    @abc.abstractmethod
    async def open(self, sink: LinkSink) -> None: ...

    @abc.abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    def extra_stats(self) -> dict[str, Any]:
        """Transport-specific counters (MTU, reconnect attempts...)."""
        return {}

    @property
    def reports_link(self) -> bool:
        """Default of ``Connection(link_events=...)``: report link changes as items?

        True for links to a device (tcp, serial, ble, also when recorded).
        False for the in-process sources: ``replay://`` (a recording's link
        losses are history, marked by their disconnect Gap, and a replay must
        yield exactly the items of the live run) and ``sim://`` (its scripted
        disconnects are part of that live run, and are over at the first
        reconnect).
        """
        return not self.url.startswith(("replay://", "sim://"))

    @property
    def can_stall(self) -> bool:
        """Can this link look up but deliver nothing (the no-data watchdog applies)?

        False for ``replay://``: its bytes carry recorded arrival times and a
        recording's link losses, stalls included, are replayed where they
        happened.
        """
        return not self.url.startswith("replay://")

    def host_dropped(self, exc: BaseException) -> None:
        """The connection declared the link lost itself (no data for too long).

        Called before the connection closes the transport.  Nothing to do for
        a plain transport; a recorder notes the loss, so a replay drops the
        link at the same point.
        """


#: Stall watchdog when nothing else is said: at least this many seconds...
STALL_MIN = 2.0
#: ...and at least this many packet periods of the device's fastest stream.
STALL_PERIODS = 20


def _stall_option(value, where: str = "stall_timeout"):
    """``"auto"``, None (off) or seconds > 0; 0 and inf mean off."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return value
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a number of seconds, 0/None (off) or 'auto', "
                          f"got {value!r}") from None
    if math.isnan(value) or value < 0:
        raise ConfigError(f"{where} must be >= 0 seconds (0 = off), got {value:g}")
    return None if value == 0 or math.isinf(value) else value


_END = object()


class Connection(LinkSink):
    """An open wearable: an async iterator of stream items.

    Items are what :class:`bridge.stream.StreamAssembler` returns
    (``SampleChunk``, ``Gap``, and ``DeviceEvent`` wrapping DeviceInfo,
    Status, Marker or Ack packets), in arrival order, plus ``DeviceEvent`` items
    wrapping a :class:`LinkState` when the link drops, each failed reconnect
    attempt, when it is back and when the connection gives up.  Use as an
    async context manager (see
    :func:`bridge.sources.open`)::

        async with bridge.open("tcp://127.0.0.1:7777") as conn:
            print(conn.info.name)
            async for item in conn:
                ...

    Parameters
    ----------
    transport: the byte mover.
    device: label put into every ``SampleChunk``/``Gap`` (default: the URL).
    queue_size: items buffered for a slow consumer; beyond it the newest
        sample chunks are dropped, counted in ``stats["queue_dropped"]`` and
        the hole is reported as ``Gap(reason="overflow")``; control events
        (DeviceInfo, Status, Marker, Ack) are never dropped.
    handshake_timeout: seconds to wait for DEVICE_INFO (HELLO is re-sent
        every ``command_timeout`` seconds meanwhile, since it may be lost).
    command_timeout: seconds to wait for an ACK.
    reconnect: reopen the transport after link loss (with backoff).
    backoff: (first delay, max delay) in seconds between reconnect attempts.
    reconnect_timeout: give up (the iterator raises TransportError) after
        this many seconds without a link; None = keep trying.
    autostart: send START after the handshake.
    link_events: put a ``DeviceEvent(packet=LinkState(...))`` into the items
        when the link drops, after each failed reconnect attempt, when it is
        back and when giving up; None = ``transport.reports_link`` (on for
        tcp/serial/ble, off for sim/replay).
    clock_factory: passed to the StreamAssembler (device->host clock fit).
    stall_timeout: the no-data watchdog: when nothing at all has arrived for
        this many seconds while the link is up and streaming was asked for,
        the link counts as lost (``LinkState("lost", reason="no data for X s
        (link stalled)")``): the transport is closed and reconnected like
        after any other link loss, and the samples missed are a
        ``Gap(reason="disconnect")``.  ``"auto"`` (default): the URL's
        ``?stall=S`` if given, else ``max(2 s, 20 packet periods of the
        fastest stream)`` (the period = samples per block / declared rate,
        as received) on tcp/serial/ble and off for sim/replay.  0 or None:
        off.  Never on for ``replay://`` (a recorded stall replays as the
        link loss it caused).  It watches the transport's arrivals, not the
        consumer: a slow or paused consumer does not trip it.
    """

    def __init__(self, transport: Transport, *, device: str | None = None,
                 queue_size: int = 4096, handshake_timeout: float = 5.0,
                 command_timeout: float = 1.0, reconnect: bool = True,
                 backoff: tuple[float, float] = (0.05, 2.0),
                 reconnect_timeout: float | None = None, autostart: bool = True,
                 link_events: bool | None = None, clock_factory=None,
                 stall_timeout: float | str | None = "auto") -> None:
        from bridge.stream import StreamAssembler

        if queue_size < 1:
            from bridge.errors import ConfigError
            raise ConfigError(f"queue_size must be >= 1, got {queue_size}")
        self.transport = transport
        self.device = device or transport.url
        kwargs = {} if clock_factory is None else {"clock_factory": clock_factory}
        self.assembler = StreamAssembler(self.device, **kwargs)
        self._decoder = fp.NotificationDecoder() if transport.notifications else fp.StreamDecoder()
        self.queue_size = queue_size
        self.handshake_timeout = handshake_timeout
        self.command_timeout = command_timeout
        self.reconnect = reconnect
        self.backoff = backoff
        self.reconnect_timeout = reconnect_timeout
        self.autostart = autostart
        self.link_events = transport.reports_link if link_events is None else bool(link_events)
        stall = _stall_option(stall_timeout)
        if stall == "auto":
            url_stall = _stall_option(transport.stall_timeout, f"{transport.url}: stall")
            stall = url_stall if transport.stall_timeout is not None else (
                "auto" if transport.reports_link else None)
        #: The watchdog's setting: seconds, "auto" (derived from the stream) or None (off).
        self.stall_timeout = stall if transport.can_stall else None
        self._rx_at = 0.0  # time.monotonic() of the last bytes from the transport
        self._watch_handle: asyncio.TimerHandle | None = None
        self._watch_due = 0.0
        self._watch_deferred = False
        self._close_task: asyncio.Task | None = None
        self.info: fp.DeviceInfo | None = None
        self._queue: collections.deque = collections.deque()
        self._wake = asyncio.Event()
        self._cmd_seq = 0
        self._pending_acks: dict[int, asyncio.Future] = {}
        self._info_waiter: asyncio.Future | None = None
        self._ready = False  # handshake done on the current link
        self._announced = False  # DEVICE_INFO seen on the current link: data can be scaled
        self._streaming_wanted = autostart
        self._closing = False
        self._opened = False
        self._ended = False
        self._error: BaseException | None = None
        self._reconnect_task: asyncio.Task | None = None
        self._lost_at: float | None = None  # time.monotonic() the link dropped (reconnecting)
        self._attempt = 0  # reconnect attempts since then
        self._overflow: dict[int, list] = {}  # stream -> [first_sample, n, host_time]
        self._counts = collections.Counter()
        #: time.monotonic() at which the bytes of the item last returned by
        #: the iterator arrived (None for synthesised items): for latency checks.
        self.last_arrival: float | None = None

    # ------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> "Connection":
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the transport, run the handshake and (with autostart) START."""
        try:
            await self._establish()
        except BaseException:
            await self._shutdown_transport()
            raise
        self._opened = True  # from now on a lost link is reconnected

    async def _establish(self, handshake_timeout: float | None = None) -> None:
        self._ready = False
        self._announced = False
        self._decoder.reset()
        await self.transport.open(self)
        self.info = await self._handshake(handshake_timeout)
        self._ready = True
        self._announce_back()  # (normally done already, as the DEVICE_INFO arrived)
        if self._streaming_wanted:
            await self._command(hs.start(self._next_seq()), retries=3)
            self._arm_watchdog()

    def _announce_back(self) -> None:
        """Say "reconnected" once per outage, before the first samples of the new link.

        Called as a valid DEVICE_INFO arrives: a device that was still streaming
        sends samples right behind it, in the same read, before the handshake's
        await resumes, and those must not come before the announcement (nor
        their disconnect Gap)."""
        if self._lost_at is None:
            return
        now = time.monotonic()
        self._link_state("reconnected", now, attempt=self._attempt,
                         down_for=now - self._lost_at)
        # counted where it is announced: a stop (Ctrl-C) before START's
        # ack must not leave "reconnected" shown but not counted
        self._counts["reconnects"] += 1
        self._lost_at = None

    async def close(self) -> None:
        """Stop streaming (best effort) and close the transport."""
        if self._closing:
            return
        self._closing = True
        self._disarm_watchdog()
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reconnect_task
        if self._ready:
            with contextlib.suppress(GlutebridgeError, asyncio.TimeoutError, OSError):
                await self._command(hs.stop(self._next_seq()), timeout=0.3)
        await self._shutdown_transport()
        self._end()

    async def _shutdown_transport(self) -> None:
        self._ready = False
        self._fail_waiters(TransportError(f"{self.transport.url}: connection closed"))
        with contextlib.suppress(Exception):
            await self.transport.close()

    # -------------------------------------------------------------- commands
    def _next_seq(self) -> int:
        seq = self._cmd_seq
        self._cmd_seq = (seq + 1) % 65536
        return seq

    async def _handshake(self, timeout: float | None = None) -> fp.DeviceInfo:
        loop = asyncio.get_running_loop()
        timeout = self.handshake_timeout if timeout is None else timeout
        deadline = loop.time() + timeout
        while True:
            self._info_waiter = loop.create_future()
            await self.transport.write(fp.encode(hs.hello(self._next_seq())))
            wait = min(self.command_timeout, deadline - loop.time())
            try:
                packet = await asyncio.wait_for(self._info_waiter, max(wait, 0.001))
            except asyncio.TimeoutError:
                if loop.time() >= deadline:
                    raise TransportError(
                        f"{self.transport.url}: no DEVICE_INFO within {timeout:g} s "
                        "after HELLO; is this a glutebridge wearable with firmware running? "
                        "Power-cycle it or check the port/address") from None
                continue
            finally:
                self._info_waiter = None
            try:
                return fp.check_device_info(packet)
            except fp.FirmwareProtocolError as exc:
                raise ProtocolError(str(exc)) from exc

    async def command(self, packet: fp.Command, timeout: float | None = None,
                      retries: int = 0) -> fp.Ack:
        """Send a command and wait for its ACK (returned; check ``.status``).

        The packet's ``seq`` is replaced by the connection's own command
        counter so that ACKs can be matched.  Raises TransportError when no
        ACK arrives in time.
        """
        if not self._ready:
            raise TransportError(f"{self.transport.url}: not connected (handshake not done)")
        return await self._command(packet, timeout=timeout, retries=retries)

    async def _command(self, packet: fp.Command, timeout: float | None = None,
                       retries: int = 0) -> fp.Ack:
        loop = asyncio.get_running_loop()
        timeout = self.command_timeout if timeout is None else timeout
        for attempt in range(retries + 1):
            seq = self._next_seq()
            cmd = fp.Command(seq, packet.opcode, packet.args)
            fut = loop.create_future()
            self._pending_acks[seq] = fut
            try:
                await self.transport.write(fp.encode(cmd))
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                if attempt == retries:
                    raise TransportError(
                        f"{self.transport.url}: no ACK to {cmd.opcode.name} within {timeout:g} s "
                        "(link too lossy or device busy); try again") from None
            finally:
                self._pending_acks.pop(seq, None)
        raise AssertionError("unreachable")

    async def start(self, stream: int | None = None) -> fp.Ack:
        """Ask the device to stream (all streams, or one)."""
        self._streaming_wanted = True
        ack = await self.command(hs.start(0, stream), retries=2)
        self._arm_watchdog()
        return ack

    async def stop(self, stream: int | None = None) -> fp.Ack:
        """Ask the device to stop streaming."""
        self._streaming_wanted = False
        return await self.command(hs.stop(0, stream), retries=2)

    async def mark(self, code: int) -> fp.Ack:
        """Ask the device to put a Marker with ``code`` on its own timeline."""
        return await self.command(hs.mark(0, code))

    async def get_status(self) -> fp.Ack:
        """Ask for a Status packet (it arrives as an item)."""
        return await self.command(hs.get_status(0))

    # ------------------------------------------------------- transport side
    def data_received(self, data: bytes, host_time: float) -> None:
        # The watchdog measures arrivals here, on the transport's side of the queue
        # (``host_time`` may be a recorded time; this is now).
        self._rx_at = time.monotonic()
        try:
            packets = self._decoder.feed(data)
        except Exception:  # the decoders never raise on bad bytes; be safe anyway
            log.exception("decoder failed")
            return
        for p in packets:
            self._packet(p, host_time)

    def _packet(self, p, host_time: float) -> None:
        if isinstance(p, (fp.DeviceInfo, fp.IncompatibleDevice)):
            w = self._info_waiter
            if w is not None and not w.done():
                w.set_result(p)
            if isinstance(p, fp.IncompatibleDevice):
                return
        elif isinstance(p, fp.Ack):
            fut = self._pending_acks.get(p.cmd_seq)
            if fut is not None and not fut.done():
                fut.set_result(p)
        elif isinstance(p, fp.Command):
            return  # echo of our own command on a loopback: ignore
        if isinstance(p, fp.DeviceInfo):
            self._announced = True
            if self._lost_at is not None and self._info_waiter is not None:
                try:
                    fp.check_device_info(p)
                except fp.FirmwareProtocolError:
                    pass  # the handshake refuses it and says why
                else:
                    self._announce_back()
        elif not self._announced:
            # Data from an autostarting device before our handshake finished:
            # the assembler cannot scale it without DEVICE_INFO.
            self._counts["before_handshake"] += 1
            return
        try:
            items = self.assembler.handle(p, host_time)
        except Exception:
            log.exception("stream assembler failed on %r", type(p).__name__)
            self._counts["assembler_errors"] += 1
            return
        for item in items:
            self._put(item, host_time)

    def _put(self, item, arrival: float | None = None) -> None:
        stream = getattr(item, "stream", None)
        first = getattr(item, "first_sample", None)
        n = _n_samples(item)
        if len(self._queue) >= self.queue_size and first is not None and n:
            # Only sample data is dropped (and reported as a Gap later); the
            # rare control events (DeviceInfo, markers, status) always queue.
            self._counts["queue_dropped"] += 1
            self._counts["samples_dropped"] += n
            hole = self._overflow.get(stream)
            if hole is None:
                self._overflow[stream] = [first, n, item.host_time]
            else:
                hole[1] = first + n - hole[0]
            return
        if stream in self._overflow and first is not None:
            self._flush_overflow(stream)
        self._queue.append((arrival, item))
        self._wake.set()

    def _flush_overflow(self, stream=None) -> None:
        # The consumer caught up: report the dropped samples as a Gap in order.
        from bridge.stream import Gap

        for s in [stream] if stream is not None else list(self._overflow):
            f0, n0, t0 = self._overflow.pop(s)
            self._queue.append((None, Gap(self.device, s, f0, n0, t0, "overflow")))

    def link_lost(self, exc: BaseException | None, final: bool = False) -> None:
        if self._closing or self._ended:
            return
        now = time.monotonic()
        was_ready = self._ready
        self._ready = False
        self._announced = False
        self._disarm_watchdog()
        self._fail_waiters(TransportError(f"{self.transport.url}: link lost ({exc})"))
        if final:
            self._end()
            return
        if not self._opened:
            return  # the first open() fails by itself (its waiters just failed)
        if was_ready:
            # Counted once per outage: the link was up until now.  A second
            # report of the same outage (the watchdog dropped a stalled link,
            # then the peer's close arrives) or a failed reconnect attempt
            # (counted in reconnect_attempts) is not another loss.
            self.assembler.disconnected(now)
            self._counts["link_losses"] += 1
        if self.reconnect:
            if self._reconnect_task is None or self._reconnect_task.done():
                self._lost_at = now
                self._attempt = 0
                self._link_state("lost", now, reason=self._reason(exc),
                                 retry_in=self.backoff[0])
                self._reconnect_task = asyncio.get_running_loop().create_task(
                    self._reconnect_loop(exc))
        else:
            self._fail(TransportError(f"{self.transport.url}: link lost: {exc}"))

    async def _reconnect_loop(self, cause: BaseException | None) -> None:
        delay = self.backoff[0]
        last: BaseException | None = cause
        # Close at once: a link the watchdog gave up on is still open, and its
        # late bytes must not reach the next link's decoder.
        with contextlib.suppress(Exception):
            await self.transport.close()
        while not self._closing:
            await asyncio.sleep(delay)
            self._counts["reconnect_attempts"] += 1
            self._attempt += 1
            try:
                with contextlib.suppress(Exception):
                    await self.transport.close()
                await self._establish(self._attempt_handshake_timeout())
                return
            except asyncio.CancelledError:
                raise
            except (GlutebridgeError, OSError) as exc:
                last = exc
                self._ready = False
                log.info("%s: reconnect failed: %s", self.transport.url, exc)
            now = time.monotonic()
            if self._lost_at is None:  # the handshake worked, START did not: down again
                self._lost_at = now
            down = now - self._lost_at
            if self.reconnect_timeout is not None and down > self.reconnect_timeout:
                self._link_state("gave_up", now, reason=self._reason(last),
                                 attempt=self._attempt, down_for=down)
                self._fail(TransportError(
                    f"{self.transport.url}: link lost and not back after "
                    f"{self.reconnect_timeout:g} s (last error: {last})"))
                return
            delay = min(delay * 2, self.backoff[1])
            self._link_state("retrying", now, reason=self._reason(last), attempt=self._attempt,
                             retry_in=delay, down_for=down)

    def _attempt_handshake_timeout(self) -> float:
        """A reconnect attempt's wait for DEVICE_INFO: not past the give-up time.

        A device that accepts the link but does not answer (hung) would
        otherwise hold each attempt for the full ``handshake_timeout``; at
        least one HELLO round (``command_timeout``) is always allowed.
        """
        if self.reconnect_timeout is None or self._lost_at is None:
            return self.handshake_timeout
        left = self._lost_at + self.reconnect_timeout - time.monotonic()
        return min(self.handshake_timeout, max(left, self.command_timeout))

    # ------------------------------------------------------- stall watchdog
    @property
    def stall_limit(self) -> float | None:
        """Seconds without any arrival after which the link counts as lost (None: off)."""
        setting = self.stall_timeout
        if setting != "auto":
            return setting
        # 20 packet periods of the fastest stream (block size as received / declared rate).
        info = self.assembler.info
        period = None
        if info is not None:
            counters = getattr(self.assembler, "counters", {}) or {}
            for s in info.streams:
                c = counters.get(s.stream_id)
                if c is not None and c.chunks and s.rate > 0:
                    p = c.received / c.chunks / s.rate
                    period = p if period is None else min(period, p)
        return STALL_MIN if period is None else max(STALL_MIN, STALL_PERIODS * period)

    def _arm_watchdog(self) -> None:
        """(Re)start the watchdog from now: the link is up and streaming was asked for."""
        self._disarm_watchdog()
        if self.stall_timeout is None or self._closing or self._ended:
            return
        self._rx_at = time.monotonic()
        self._watch_deferred = False
        self._schedule_watch(self.stall_limit)

    def _disarm_watchdog(self) -> None:
        handle, self._watch_handle = self._watch_handle, None
        if handle is not None:
            handle.cancel()

    def _schedule_watch(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._watch_due = time.monotonic() + delay
        self._watch_handle = loop.call_later(delay, self._watch)

    def _watch(self) -> None:
        self._watch_handle = None
        limit = self.stall_limit
        if (limit is None or not self._ready or not self._streaming_wanted or self._closing
                or self._ended):
            return  # re-armed by the next START / reconnect
        now = time.monotonic()
        silent = now - self._rx_at
        if silent < limit:
            self._watch_deferred = False
            self._schedule_watch(self._rx_at + limit - now)
            return
        if now - self._watch_due > 0.1 and not self._watch_deferred:
            # This check ran late: the event loop was busy (a consumer blocking it),
            # not necessarily the link.  Let bytes waiting behind us in first.
            self._watch_deferred = True
            self._schedule_watch(0.02)
            return
        self._stalled(silent)

    def _stalled(self, silent: float) -> None:
        """No data for ``silent`` s on a link that looks up: lose it like any other."""
        self._counts["stalls"] += 1
        exc = TransportError(f"{self.transport.url}: no data for {silent:.1f} s (link stalled)")
        log.info("%s", exc)
        with contextlib.suppress(Exception):
            self.transport.host_dropped(exc)
        self.link_lost(exc)
        if not self.reconnect:
            # No reconnect loop to close it: do it here.
            self._close_task = asyncio.get_running_loop().create_task(
                self._shutdown_transport())

    def _reason(self, exc: BaseException | None) -> str:
        """An exception as a short reason (without the URL every message starts with)."""
        if exc is None:
            return "connection closed"
        text = str(exc) or type(exc).__name__
        prefix = f"{self.transport.url}: "
        return text[len(prefix):] if text.startswith(prefix) else text

    def _link_state(self, state: str, now: float, **fields) -> None:
        if not self.link_events:
            return
        # Wrapped in a DeviceEvent: consumers keep seeing SampleChunk | Gap | DeviceEvent.
        from bridge.stream import DeviceEvent

        change = LinkState(self.device, state, now, give_up_after=self.reconnect_timeout,
                           **fields)
        self._queue.append((None, DeviceEvent(self.device, now, change)))
        self._wake.set()

    def _fail_waiters(self, exc: BaseException) -> None:
        for fut in list(self._pending_acks.values()):
            if not fut.done():
                fut.set_exception(exc)
        w = self._info_waiter
        if w is not None and not w.done():
            w.set_exception(exc)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._end()

    def _end(self) -> None:
        self._ended = True
        self._wake.set()

    # ---------------------------------------------------------- consumer side
    def __aiter__(self) -> "Connection":
        return self

    async def __anext__(self):
        while True:
            if self._queue:
                self.last_arrival, item = self._queue.popleft()
                return item
            if self._overflow:
                self._flush_overflow()
                continue
            if self._ended:
                if self._error is not None:
                    err, self._error = self._error, None
                    raise err
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()

    def get_nowait(self) -> list:
        """Take every queued item without waiting (for polling consumers)."""
        if self._overflow:
            self._flush_overflow()
        out = [item for _, item in self._queue]
        self._queue.clear()
        return out

    @property
    def connected(self) -> bool:
        """True while the link is up and the handshake done."""
        return self._ready

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: decoder, per-stream assembler counters, queue and link."""
        counters = getattr(self.assembler, "counters", {}) or {}
        return {
            "decoder": self._decoder.stats.as_dict(),
            "streams": {k: _as_dict(v) for k, v in counters.items()},
            "queue_len": len(self._queue),
            "queue_dropped": self._counts["queue_dropped"],
            "samples_dropped": self._counts["samples_dropped"],
            "before_handshake": self._counts["before_handshake"],
            "link_losses": self._counts["link_losses"],
            "reconnect_attempts": self._counts["reconnect_attempts"],
            "reconnects": self._counts["reconnects"],
            "stalls": self._counts["stalls"],
            "stall_timeout": self.stall_limit,
            "assembler_errors": self._counts["assembler_errors"],
            "transport": self.transport.extra_stats(),
        }


def _n_samples(item) -> int:
    samples = getattr(item, "samples", None)
    if samples is not None:
        return int(samples.shape[0])
    return int(getattr(item, "n_samples", 0) or 0)


def _as_dict(obj) -> dict:
    if isinstance(obj, dict):
        return dict(obj)
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses
        return dataclasses.asdict(obj)
    return {"value": obj}
