"""Sources: open a wearable by URL and iterate over its stream items.

>>> async with bridge.sources.open("sim://single-leg?speed=4") as conn:
...     print(conn.info.name)
...     async for item in conn:          # SampleChunk | Gap | DeviceEvent
...         ...

URLs
----
``ble://AA:BB:CC:DD:EE:FF``         a BLE wearable by address (BlueZ via bleak)
``ble://name=glutebridge-sim``      the first BLE wearable advertising that name
``serial:///dev/ttyACM0?baud=921600``  USB-CDC / UART / pty
``tcp://host:port``                 the framed byte stream over TCP
``sim://scenario-name?speed=1&seed=0``  an in-process virtual wearable
``replay://path/to/file.gbrec?speed=0``  a recording (speed 0 = as fast as possible)

Live URLs (all but replay://) also take ``?stall=S``: the no-data watchdog's
timeout (``stall_timeout``; 0 = off).

Every source shares one path (bytes -> decoder -> StreamAssembler -> queue);
see :mod:`bridge.sources.base`.  Keyword options go to :class:`Connection`
(``queue_size``, ``handshake_timeout``, ``command_timeout``, ``reconnect``,
``backoff``, ``reconnect_timeout``, ``autostart``, ``link_events``, ``clock_factory``,
``device``, ``stall_timeout``) or to the transport (e.g. ``signals``/``faults``/``speed``/``wearable`` for
``sim://``, ``baud`` for serial, ``scan_timeout``/``connect_timeout`` for BLE).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator
from urllib.parse import parse_qsl, unquote

from bridge.errors import ConfigError
from bridge.sources.base import Connection, LinkSink, Transport

__all__ = ["Connection", "FoundDevice", "LinkSink", "Transport", "make_transport", "open",
           "open_many", "scan"]

_CONNECTION_OPTIONS = {"device", "queue_size", "handshake_timeout", "command_timeout",
                       "reconnect", "backoff", "reconnect_timeout", "autostart", "clock_factory",
                       "link_events", "stall_timeout"}
_SCHEMES = ("ble", "serial", "tcp", "sim", "replay")


def make_transport(url: str, **options) -> Transport:
    """Build (but do not open) the transport for ``url``."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"{url!r} is not a source URL; use one of "
                          "ble://ADDRESS, ble://name=NAME, serial:///dev/ttyACM0?baud=921600, "
                          "tcp://HOST:PORT, sim://SCENARIO")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    path_part, _, query_str = rest.partition("?")
    try:
        query = dict(parse_qsl(query_str, keep_blank_values=True, strict_parsing=bool(query_str)))
    except ValueError as exc:
        raise ConfigError(f"{url}: bad query string ({exc})") from None
    path_part = unquote(path_part)
    stall = None
    if scheme != "replay":
        from bridge.sources._query import query_number
        stall = query_number(url, query, "stall", None)
        if stall is not None and stall < 0:
            raise ConfigError(f"{url}: stall={stall:g} must be >= 0 seconds (0 = off)")
    transport = _make(url, scheme, path_part, query, options)
    if stall is not None:
        transport.stall_timeout = stall
    return transport


def _make(url: str, scheme: str, path_part: str, query: dict, options: dict) -> Transport:
    if scheme == "sim":
        from bridge.sources import sim
        return sim.make(path_part, query, **options)
    if scheme == "tcp":
        from bridge.sources import tcp
        return tcp.make(path_part, query, **options)
    if scheme == "serial":
        from bridge.sources import serial
        return serial.make(path_part, query, **options)
    if scheme == "ble":
        from bridge.sources import ble
        return ble.make(path_part, query, **options)
    if scheme == "replay":
        from bridge.sources.replay import ReplayTransport
        from bridge.sources._query import query_number
        speed = query_number(url, query, "speed", options.pop("speed", 0.0))
        if query:
            raise ConfigError(f"{url}: unknown option(s) {', '.join(sorted(query))} "
                              "(replay:// takes speed)")
        return ReplayTransport(path_part, speed=speed)
    raise ConfigError(f"{url}: unknown scheme {scheme!r}; expected one of "
                      + ", ".join(s + "://" for s in _SCHEMES))


@contextlib.asynccontextmanager
async def open(url: str, **options) -> AsyncIterator[Connection]:  # noqa: A001 (bridge.open)
    """Open a wearable by URL: an async context manager yielding a :class:`Connection`.

    The connection is handshaken (``.info`` is the DeviceInfo) and, unless
    ``autostart=False``, streaming.  Errors are :class:`~bridge.errors.ConfigError`
    (bad URL/option), :class:`~bridge.errors.DeviceNotFoundError`,
    :class:`~bridge.errors.TransportError` or :class:`~bridge.errors.ProtocolError`.
    """
    conn_opts = {k: options.pop(k) for k in list(options) if k in _CONNECTION_OPTIONS}
    if isinstance(url, str) and url.lower().startswith("replay://"):
        # A recording already holds the device's answers; START would wait for an ACK
        # to a command the recording never saw.
        conn_opts.setdefault("autostart", False)
    transport = make_transport(url, **options)
    conn = Connection(transport, **conn_opts)
    await conn.open()
    try:
        yield conn
    finally:
        await conn.close()


class _Many:
    """Several connections merged into one async iterator of ``(device, item)``."""

    def __init__(self, conns: dict[str, Connection]) -> None:
        self.connections = conns
        self._queue: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._live = len(conns)

    def _start(self) -> None:
        for label, conn in self.connections.items():
            self._tasks.append(asyncio.get_running_loop().create_task(self._pump(label, conn)))

    async def _pump(self, label: str, conn: Connection) -> None:
        try:
            async for item in conn:
                await self._queue.put((label, item))
        except Exception as exc:  # surfaced to the consumer, tagged with its device
            await self._queue.put((label, exc))
        finally:
            await self._queue.put((label, _DONE))

    def __aiter__(self):
        return self

    async def __anext__(self):
        while self._live:
            label, item = await self._queue.get()
            if item is _DONE:
                self._live -= 1
                continue
            if isinstance(item, Exception):
                raise item
            return label, item
        raise StopAsyncIteration

    @property
    def stats(self) -> dict:
        return {label: c.stats for label, c in self.connections.items()}

    async def _close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in self.connections.values()),
                             return_exceptions=True)


_DONE = object()


@contextlib.asynccontextmanager
async def open_many(urls, **options):
    """Open several wearables on one event loop; iterate ``(device, item)`` pairs.

    ``urls`` is a list of URLs (each device is labelled by its URL) or a dict
    ``{label: url}``.  All are opened concurrently; if any fails to open, the
    others are closed and the first error is raised.  ``.connections`` maps
    labels to :class:`Connection`, ``.stats`` gives every connection's stats.
    """
    pairs = dict(urls) if isinstance(urls, dict) else {u: u for u in urls}
    if not pairs:
        raise ConfigError("open_many needs at least one URL")
    conn_opts = {k: options.pop(k) for k in list(options) if k in _CONNECTION_OPTIONS}
    conn_opts.pop("device", None)
    conns = {label: Connection(make_transport(url, **options), device=label, **conn_opts)
             for label, url in pairs.items()}
    results = await asyncio.gather(*(c.open() for c in conns.values()), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    many = _Many(conns)
    if errors:
        await many._close()
        raise errors[0]
    many._start()
    try:
        yield many
    finally:
        await many._close()


def __getattr__(name):
    # scan/FoundDevice live in the BLE module; import bleak only when asked.
    if name in ("scan", "FoundDevice"):
        from bridge.sources import ble
        return getattr(ble, name)
    raise AttributeError(name)
