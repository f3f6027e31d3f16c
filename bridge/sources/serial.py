"""``serial:///dev/ttyACM0?baud=921600`` — the framed byte stream over a serial port.

Uses pyserial-asyncio-fast.  When the port vanishes (USB unplug, the pty of a
simulator closing) the link is lost; :class:`~bridge.sources.base.Connection`
then retries opening the same path with backoff until it is back (replug).
"""

from __future__ import annotations

import asyncio
import errno
import time

from bridge.errors import ConfigError, DeviceNotFoundError, TransportError
from bridge.sources.base import LinkSink, Transport

__all__ = ["SerialTransport"]


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: "SerialTransport", sink: LinkSink) -> None:
        self.owner = owner
        self.sink = sink

    def data_received(self, data: bytes) -> None:
        self.sink.data_received(data, time.monotonic())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner._proto is not self:
            return  # closed on purpose
        self.owner._proto = None
        self.owner._transport = None
        if exc is None:
            exc = TransportError(f"{self.owner.url}: the port closed")
        else:
            # pyserial's words ("device reports readiness to read but returned no data...")
            # don't tell a user what happened; keep them as the cause.
            err = TransportError(f"{self.owner.url}: the port went away (unplugged, or the "
                                 "device switched off or reset)")
            err.__cause__ = exc
            exc = err
        self.sink.link_lost(exc)


class SerialTransport(Transport):
    """A serial port (USB-CDC, UART, or a pty)."""

    notifications = False

    def __init__(self, port: str, baud: int = 921600) -> None:
        if baud <= 0:
            raise ConfigError(f"serial://{port}: baud must be > 0, got {baud}")
        self.port = port
        self.baud = baud
        self.url = f"serial://{port}?baud={baud}"
        self._transport = None
        self._proto: _Protocol | None = None

    async def open(self, sink: LinkSink) -> None:
        import serial
        import serial_asyncio_fast

        loop = asyncio.get_running_loop()
        proto = _Protocol(self, sink)
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                loop, lambda: proto, self.port, baudrate=self.baud)
        except serial.SerialException as exc:
            raise _convert(self.port, exc) from exc
        except OSError as exc:
            raise _convert(self.port, exc) from exc
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


def _convert(port: str, exc: BaseException) -> TransportError:
    """Turn pyserial/OS errors into one clear error saying what to do."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or "No such file" in text or "could not open port" in text and \
            "[Errno 2]" in text:
        return DeviceNotFoundError(
            f"serial port {port} does not exist: is the wearable plugged in? "
            "List ports with `python -m serial.tools.list_ports`")
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text or "[Errno 13]" in text:
        return TransportError(
            f"permission denied opening {port}: add your user to the port's group "
            "(e.g. `sudo usermod -aG dialout $USER`, then log in again)")
    if code == errno.EBUSY or "[Errno 16]" in text:
        return TransportError(f"{port} is busy: another program has it open; close it")
    what = _not_a_port(port, code, text)
    if what:
        return DeviceNotFoundError(
            f"{port} {what}: give the wearable's port (e.g. serial:///dev/ttyACM0; list "
            "ports with `python -m serial.tools.list_ports`)"
            + ("; to play a recording use replay://FILE" if "regular file" in what else ""))
    return TransportError(f"cannot open serial port {port}: {text}")


def _not_a_port(port: str, code, text: str) -> str | None:
    """What is wrong when ``port`` exists but is no serial device (pyserial only says
    "Inappropriate ioctl for device" or "Is a directory"); None when it may be one."""
    import os
    import stat

    try:
        mode = os.stat(port).st_mode
    except OSError:
        mode = None
    if mode is not None:
        if stat.S_ISDIR(mode):
            return "is a directory, not a serial device"
        if stat.S_ISREG(mode):
            return "is a regular file, not a serial device"
    if code == errno.EISDIR or "[Errno 21]" in text:
        return "is a directory, not a serial device"
    if code == errno.ENOTTY or "Inappropriate ioctl" in text or "(25," in text:
        return "is not a serial device (it refuses serial port settings)"
    return None


def make(path: str, query: dict, baud: int | None = None) -> SerialTransport:
    if not path:
        raise ConfigError("serial:// needs a port, e.g. serial:///dev/ttyACM0?baud=921600")
    if baud is None:
        raw = query.pop("baud", "921600")
        try:
            baud = int(raw)
        except ValueError:
            raise ConfigError(f"serial://{path}: baud must be an integer, got {raw!r}") from None
    if query:
        raise ConfigError(f"serial://{path}: unknown option(s) {', '.join(sorted(query))} "
                          "(serial:// takes baud and stall)")
    return SerialTransport(path, baud)
