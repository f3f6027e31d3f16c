"""``tcp://host:port`` — the framed byte stream over TCP (asyncio)."""

from __future__ import annotations

import asyncio
import socket
import time

from bridge.errors import ConfigError, TransportError
from bridge.sources.base import LinkSink, Transport

__all__ = ["TcpTransport"]


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: "TcpTransport", sink: LinkSink) -> None:
        self.owner = owner
        self.sink = sink

    def data_received(self, data: bytes) -> None:
        self.sink.data_received(data, time.monotonic())

    def eof_received(self):
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner._proto is not self:
            return  # closed on purpose
        self.owner._proto = None
        self.owner._transport = None
        self.sink.link_lost(exc or TransportError(
            f"{self.owner.url}: the device closed the connection"))


class TcpTransport(Transport):
    """Connect to a device (or ``glutebridge simulate --serve tcp://...``)."""

    notifications = False

    def __init__(self, host: str, port: int, *, connect_timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.url = f"tcp://{host}:{port}"
        self.connect_timeout = connect_timeout
        self._transport: asyncio.Transport | None = None
        self._proto: _Protocol | None = None

    async def open(self, sink: LinkSink) -> None:
        loop = asyncio.get_running_loop()
        proto = _Protocol(self, sink)
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: proto, self.host, self.port), self.connect_timeout)
        except asyncio.TimeoutError:
            raise TransportError(f"{self.url}: no answer within {self.connect_timeout:g} s; "
                                 "check host, port and firewall") from None
        except ConnectionRefusedError as exc:
            raise TransportError(
                f"{self.url}: connection refused (nothing listens there); start the device or "
                f"`glutebridge simulate --serve {self.url}`") from exc
        except socket.gaierror as exc:
            raise TransportError(f"{self.url}: unknown host {self.host!r} ({exc})") from exc
        except OSError as exc:
            raise TransportError(f"{self.url}: cannot connect: {exc}") from exc
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Sample blocks are small; don't let Nagle hold them back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._transport = transport
        self._proto = proto

    async def write(self, data: bytes) -> None:
        if self._transport is None:
            raise TransportError(f"{self.url}: not connected")
        self._transport.write(data)

    async def close(self) -> None:
        t, self._transport, self._proto = self._transport, None, None
        if t is not None:
            t.close()


def make(netloc: str, query: dict, **options) -> TcpTransport:
    if query:
        raise ConfigError(f"tcp://{netloc}: unknown option(s) {', '.join(sorted(query))} "
                          "(tcp:// takes stall)")
    host, sep, port = netloc.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"tcp://{netloc}: expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:7777")
    return TcpTransport(host.strip("[]"), int(port), **options)
