"""Serve a virtual wearable over a real transport: a pty (serial), TCP, or a fake BlueZ.

This is what ``glutebridge simulate --serve TARGET`` runs.  The CLI calls::

    import asyncio
    from bridge.simulator.serve import serve
    asyncio.run(serve("tcp://127.0.0.1:7777", signals, faults, speed=1.0))

``TARGET`` is one of

- ``serial`` (or ``serial:///path/to/link``): makes a pty pair and a stable
  symlink to its slave side (default in a temp dir) and prints
  ``serial://LINK?baud=921600`` to open.  A scheduled disconnect
  (``Faults.disconnect_at``) "unplugs" the port (the pty is closed and the
  link removed) and "replugs" it ``replug_after`` seconds later (new pty, same
  link path), like a USB-CDC device re-enumerating.
- ``tcp://HOST:PORT`` (PORT 0 = any free port): listens; one client at a time.
  A scheduled disconnect closes the client's connection.
- ``ble``: starts a private ``dbus-daemon`` (unless ``bus_address`` is given)
  and the fake BlueZ, prints ``export DBUS_SYSTEM_BUS_ADDRESS=...`` and the
  ``ble://ADDRESS`` URL; run bleak programs with that variable set.

The device is paced in real time, or ``speed`` times faster, from the first
command of the first host (its HELLO): a wearable served and joined by a host
17 s later plays from its start, as on every target, instead of sending (on a
pty: losing) 17 s of data nobody asked for.  An ``autostart`` wearable (a
serial logger that streams on power-up) plays from the moment it is served.
``serve``
returns when the recording has been played (unless ``loop=True``) or when
``stop`` (an ``asyncio.Event``) is set, or is cancelled (Ctrl-C): like a
wearable switched off, it closes the link, so a connected host sees the link
lost (and keeps trying to reconnect); client handlers end before it returns
(no stray tasks for the event loop's shutdown).  ``on_ready(info)`` is called once the
target is up with ``{"url": ..., ...}``; by default the info is printed.
"""

import array
import asyncio
import contextlib
import errno
import fcntl
import os
import tempfile
import termios
import time
import tty
from collections.abc import Callable

from bridge.errors import ConfigError
from bridge.simulator.device import Faults, Signals, VirtualWearable

__all__ = ["serve"]


async def serve(target: str, signals: Signals, faults: Faults | None = None, *,
                speed: float = 1.0, loop: bool = False, name: str = "glutebridge-sim",
                autostart: bool = False, tick: float = 0.005, replug_after: float = 0.5,
                stop: asyncio.Event | None = None,
                on_ready: Callable[[dict], None] | None = None,
                bus_address: str | None = None, address: str | None = None,
                mtu: int = 247, wearable: VirtualWearable | None = None) -> dict:
    """Run a virtual wearable on ``target`` until it has played everything (see module doc).

    ``wearable``: a ready VirtualWearable to serve instead of building one from
    ``signals``/``faults``/``name``/``loop``/``autostart`` (tests keep it for ground truth).
    Returns counters (bytes sent, bytes lost while no host listened, links).
    """
    if not speed > 0:
        raise ConfigError(f"speed must be > 0, got {speed}")
    device = wearable or VirtualWearable(signals, name=name, faults=faults, loop=loop,
                                         autostart=autostart)
    stop = stop or asyncio.Event()
    on_ready = on_ready or _print_info
    if target == "ble" or target.startswith("ble://"):
        return await _serve_ble(device, speed, tick, stop, on_ready, bus_address, address, mtu)
    if target.startswith("tcp://"):
        host, _, port = target[6:].rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{target}: expected tcp://HOST:PORT (PORT 0 picks a free one)")
        link = _TcpLink(host.strip("[]"), int(port))
    elif target == "serial" or target.startswith("serial://"):
        path = target[len("serial://"):] if target.startswith("serial://") else ""
        link = _PtyLink(path or None, replug_after)
    else:
        raise ConfigError(f"cannot serve on {target!r}: use serial, serial:///LINK, "
                          "tcp://HOST:PORT or ble")
    pacer = _Pacer(device, link, speed, tick)
    await link.start(pacer)
    try:
        on_ready(link.info())
        await pacer.run(stop)
    finally:
        await link.close()
    return pacer.stats()


def _print_info(info: dict) -> None:
    for key, value in info.items():
        if key == "export":
            print(value, flush=True)
        else:
            print(f"{key}: {value}", flush=True)


class _Pacer:
    """Advance the device in (scaled) real time and push its bytes through the link."""

    def __init__(self, device: VirtualWearable, link, speed: float, tick: float) -> None:
        self.device = device
        self.link = link
        self.speed = speed
        self.tick = tick
        self.sent = 0
        self.lost = 0
        self._disconnects = sorted(device.faults.disconnect_at)
        #: Set by the first host's first command: the device's time runs from then.
        self.host = asyncio.Event()

    def command(self, data: bytes) -> None:
        self.host.set()
        answer = self.device.receive(data)
        if answer:
            self._out(answer)

    def _out(self, data: bytes) -> None:
        if self.link.send(data):
            self.sent += len(data)
        else:
            self.lost += len(data)

    async def _wait_for_host(self, stop: asyncio.Event) -> None:
        """Until a host says something (or ``stop``): the device's time stands still.

        Its playback starts with the session, as over TCP or BLE when the host
        connects; waiting with the clock running would make a pty's first host
        receive (a FIFO's worth of) everything played meanwhile, the rest lost.
        An autostarting device streams from power-up: no wait."""
        if self.device.streaming or self.host.is_set():
            return
        waits = [asyncio.ensure_future(e.wait()) for e in (self.host, stop)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        dev = self.device
        await self._wait_for_host(stop)
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            dt = (now - last) * self.speed
            last = now
            if self._disconnects and dev.time + dt >= self._disconnects[0]:
                cut = max(self._disconnects.pop(0) - dev.time, 0.0)
                self._out(dev.advance(cut))
                dt -= cut
                await self.link.drop()
            self._out(dev.advance(dt))
            if dev.finished:
                # Let the last bytes reach the host before the link closes.
                await self.link.drain()
                return

    def stats(self) -> dict:
        return {"bytes_sent": self.sent, "bytes_lost": self.lost,
                "links": getattr(self.link, "links", 0),
                "device_sent_packets": self.device.sent_packets}


class _TcpLink:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._server: asyncio.base_events.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pacer: _Pacer | None = None
        self._clients: set[asyncio.Task] = set()
        self.links = 0

    async def start(self, pacer: _Pacer) -> None:
        self._pacer = pacer
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def info(self) -> dict:
        return {"url": f"tcp://{self.host}:{self.port}"}

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:
            self._writer.close()  # one host at a time: the newest wins
        self._writer = writer
        self.links += 1
        task = asyncio.current_task()
        self._clients.add(task)
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                self._pacer.command(data)
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            # Shutting down (scenario over or Ctrl-C): end quietly.  A handler task left
            # cancelled makes asyncio's stream callback log a CancelledError traceback.
            pass
        finally:
            self._clients.discard(task)
            if self._writer is writer:
                self._writer = None
            writer.close()

    def send(self, data: bytes) -> bool:
        w = self._writer
        if w is None or w.is_closing():
            return False
        w.write(data)
        return True

    async def drain(self) -> None:
        """Flush what is buffered for the host (closing also flushes; this
        keeps the pacing the same as for the pty)."""
        w = self._writer
        if w is not None and not w.is_closing():
            with contextlib.suppress(ConnectionError, OSError):
                await asyncio.wait_for(w.drain(), 2.0)
        await asyncio.sleep(0.05)

    async def drop(self) -> None:
        w, self._writer = self._writer, None
        if w is not None:
            w.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()  # no new clients
        await self.drop()
        # The client handlers see EOF and return; don't leave them pending (or cancelled)
        # for the event loop's shutdown to find.
        clients = list(self._clients)
        if clients:
            _, pending = await asyncio.wait(clients, timeout=0.5)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=0.5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


class _PtyLink:
    """A pty whose slave side is reached through a stable symlink (survives replug)."""

    #: Bytes kept for a host that is not reading (a UART would drop them).
    MAX_BACKLOG = 1 << 16

    def __init__(self, link: str | None, replug_after: float) -> None:
        self._tmp = None
        if link is None:
            self._tmp = tempfile.mkdtemp(prefix="glutebridge-pty-")
            link = os.path.join(self._tmp, "tty")
        self.link = link
        self.replug_after = replug_after
        self._master: int | None = None
        self._slave: int | None = None
        self._backlog = bytearray()
        self._pacer: _Pacer | None = None
        self._replug: asyncio.TimerHandle | None = None
        self.links = 0

    async def start(self, pacer: _Pacer) -> None:
        self._pacer = pacer
        self._plug()

    def info(self) -> dict:
        return {"url": f"serial://{self.link}?baud=921600", "pty": os.ttyname(self._slave)}

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp_link = self.link + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_link)
        os.symlink(os.ttyname(slave), tmp_link)
        os.replace(tmp_link, self.link)  # atomic: the host never sees a half-made link
        asyncio.get_running_loop().add_reader(master, self._readable)
        self.links += 1

    def _unplug(self) -> None:
        if self._master is None:
            return
        asyncio.get_running_loop().remove_reader(self._master)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.link)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = None
        self._backlog.clear()

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            return
        if data:
            self._pacer.command(data)

    def send(self, data: bytes) -> bool:
        if self._master is None:
            return False
        self._backlog += data
        try:
            n = os.write(self._master, self._backlog)
            del self._backlog[:n]
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.EAGAIN):
                raise
        if len(self._backlog) > self.MAX_BACKLOG:
            # Nobody reads: drop the oldest bytes like a UART FIFO would.
            del self._backlog[:len(self._backlog) - self.MAX_BACKLOG]
        return True

    #: drain() gives up when the host has read nothing for this long (s).
    DRAIN_PATIENCE = 1.0

    def _unread(self) -> int:
        """Bytes written to the pty that the host has not read yet."""
        buf = array.array("i", [0])
        try:
            fcntl.ioctl(self._slave, termios.FIONREAD, buf)
        except OSError:
            return 0
        return buf[0]

    async def drain(self) -> None:
        """Wait until the host has read everything sent: closing a pty
        discards what is still in it, so a host lagging behind at the end of
        the scenario (a busy live view, a fast --speed) lost its last
        seconds.  Gives up after DRAIN_PATIENCE s without progress (nobody
        reading), like a wearable switched off with bytes in its FIFO."""
        last, since = -1, time.monotonic()
        empty = 0
        while self._master is not None:
            if self._backlog:
                self.send(b"")
            left = len(self._backlog) + self._unread()
            # The kernel hands bytes written to the master over to the reading side
            # asynchronously (the tty flip buffer): just after a write the slave may
            # still count 0 unread.  So "all read" must hold across a few checks.
            empty = empty + 1 if left == 0 else 0
            if empty >= 3:
                return
            now = time.monotonic()
            if left != last:
                last, since = left, now
            elif now - since > self.DRAIN_PATIENCE:
                return
            await asyncio.sleep(0.01)

    async def drop(self) -> None:
        self._unplug()
        if self.replug_after >= 0:
            self._replug = asyncio.get_running_loop().call_later(self.replug_after, self._plug)

    async def close(self) -> None:
        if self._replug is not None:
            self._replug.cancel()
        self._unplug()
        if self._tmp:
            with contextlib.suppress(OSError):
                os.rmdir(self._tmp)


async def _serve_ble(device, speed, tick, stop, on_ready, bus_address, address, mtu) -> dict:
    from bridge.simulator.fake_bluez import FakeBluez, PrivateBus

    private = None
    if bus_address is None:
        private = PrivateBus(set_env=True)
        bus_address = private.start()
    try:
        async with FakeBluez(bus_address) as bluez:
            dev = bluez.add_wearable(device, address=address, speed=speed, tick=tick, mtu=mtu)
            on_ready({"url": f"ble://{dev.address}", "bus": bus_address,
                      "export": f"export DBUS_SYSTEM_BUS_ADDRESS={bus_address}"})
            while not stop.is_set() and not device.finished:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.1)
            await asyncio.sleep(0.05)
            return {"notifications_sent": dev.notifications_sent, "bytes_lost": dev.bytes_lost,
                    "links": dev.connects, "device_sent_packets": device.sent_packets}
    finally:
        if private is not None:
            private.stop()
