"""``ble://AA:BB:CC:DD:EE:FF`` or ``ble://name=glutebridge-sim`` — a wearable over BLE (bleak).

The device's GATT service (``firmware_protocol.SERVICE_UUID``) has a data
characteristic (notify; each notification = counter byte + slice of the
framed stream, decoded by ``NotificationDecoder``) and a command
characteristic (write with response; framed command packets).  On BlueZ the
ATT MTU is read from the characteristic's ``MTU`` property (bleak reports 23
otherwise); the device announces its own maximum payload in DEVICE_INFO.

Several devices can be open at once on one event loop
(:func:`bridge.sources.open_many`).  Without hardware, run the fake BlueZ in
:mod:`bridge.simulator.fake_bluez`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import socket
import time
import weakref
from dataclasses import dataclass

import firmware_protocol as fp

from bridge.errors import ConfigError, DeviceNotFoundError, TransportError
from bridge.sources.base import LinkSink, Transport

__all__ = ["BleTransport", "FoundDevice", "scan"]

_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


@dataclass(frozen=True, slots=True)
class FoundDevice:
    """A wearable seen while scanning."""

    address: str
    name: str
    rssi: int

    @property
    def url(self) -> str:
        return f"ble://{self.address}"


def _convert(what: str, exc: BaseException) -> TransportError:
    """Turn bleak / D-Bus / OS errors into one clear error saying what to do."""
    from bleak.exc import BleakDeviceNotFoundError, BleakError

    try:
        from bleak.exc import BleakBluetoothNotAvailableError
    except ImportError:  # older bleak
        BleakBluetoothNotAvailableError = ()  # noqa: N806
    if isinstance(exc, TransportError):
        return exc
    bus = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    if _invalid_bus_address(exc):
        # dbus-fast parses the variable as bleak opens the bus: "address did not contain a
        # transport" does not say which address or where it came from
        return TransportError(
            f"{what}: DBUS_SYSTEM_BUS_ADDRESS={bus!r} is not a D-Bus address ({exc}); unset "
            "it to use the system bus, or set it to one like "
            "unix:path=/run/dbus/system_bus_socket")
    if isinstance(exc, BleakDeviceNotFoundError):
        return DeviceNotFoundError(
            f"{what}: no such wearable found; is it powered on, in range and not connected to "
            "another host? `glutebridge scan` lists the wearables in range")
    if BleakBluetoothNotAvailableError and isinstance(exc, BleakBluetoothNotAvailableError):
        return TransportError(f"{what}: Bluetooth is not available ({exc}); plug in or power on "
                              "the adapter (`bluetoothctl power on`)")
    if bus and (isinstance(exc, (FileNotFoundError, ConnectionRefusedError, socket.gaierror))
                or type(exc) is OSError and exc.errno == errno.EINVAL):  # e.g. "unix:path="
        return TransportError(f"{what}: cannot reach the D-Bus system bus at "
                              f"DBUS_SYSTEM_BUS_ADDRESS={bus!r} ({exc}); check that address, "
                              "or unset it to use the system bus")
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        return TransportError(f"{what}: cannot reach BlueZ on the D-Bus system bus ({exc}); is "
                              "bluetoothd running (`systemctl status bluetooth`)?")
    if isinstance(exc, PermissionError):
        return TransportError(f"{what}: permission denied talking to BlueZ ({exc}); add your user "
                              "to the `bluetooth` group")
    if isinstance(exc, asyncio.TimeoutError):
        return TransportError(f"{what}: timed out; move closer or power-cycle the wearable")
    if isinstance(exc, BleakError) and "ServiceUnknown" in str(exc):
        return TransportError(f"{what}: BlueZ is not running (nobody owns org.bluez on the D-Bus "
                              "system bus); start it (`sudo systemctl start bluetooth`)")
    if isinstance(exc, BleakError):
        return TransportError(f"{what}: {exc}")
    return TransportError(f"{what}: {type(exc).__name__}: {exc}")


def _invalid_bus_address(exc: BaseException) -> bool:
    try:
        from dbus_fast.errors import InvalidAddressError
    except ImportError:  # not the BlueZ backend (macOS, Windows)
        return False
    return isinstance(exc, InvalidAddressError)


_SCAN_LOCKS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = \
    weakref.WeakKeyDictionary()


def _scan_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _SCAN_LOCKS.get(loop)
    if lock is None:
        lock = _SCAN_LOCKS[loop] = asyncio.Lock()
    return lock


async def scan(timeout: float = 5.0) -> list[FoundDevice]:
    """Scan for wearables advertising the glutebridge service, strongest first."""
    from bleak import BleakScanner

    try:
        async with _scan_lock():
            found = await BleakScanner.discover(timeout=timeout,
                                                service_uuids=[fp.SERVICE_UUID],
                                                return_adv=True)
    except Exception as exc:
        raise _convert("BLE scan", exc) from exc
    out = [FoundDevice(d.address, adv.local_name or d.name or "", adv.rssi)
           for d, adv in found.values()]
    return sorted(out, key=lambda f: -f.rssi)


class BleTransport(Transport):
    """bleak client for one wearable; the same client reconnects after link loss."""

    notifications = True

    def __init__(self, address: str | None = None, name: str | None = None, *,
                 scan_timeout: float = 10.0, connect_timeout: float = 10.0,
                 adapter: str | None = None) -> None:
        if (address is None) == (name is None):
            raise ConfigError("BleTransport needs exactly one of address or name")
        self.address = address.upper() if address else None
        self.name = name
        self.url = f"ble://{self.address}" if address else f"ble://name={name}"
        self.scan_timeout = scan_timeout
        self.connect_timeout = connect_timeout
        self.adapter = adapter
        self._client = None
        self._sink: LinkSink | None = None
        self.mtu = 23
        self._write_response = True
        self._opening = False

    async def _find(self):
        # BlueZ refuses a second StartDiscovery from the same D-Bus client
        # (InProgress) and bleak shares one bus per loop: scan one at a time.
        async with _scan_lock():
            return await self._find_unlocked()

    async def _find_unlocked(self):
        from bleak import BleakScanner

        kwargs = {"bluez": {"adapter": self.adapter}} if self.adapter else {}
        if self.address:
            dev = await BleakScanner.find_device_by_address(self.address,
                                                            timeout=self.scan_timeout, **kwargs)
        else:
            def match(d, adv):
                return self.name in (adv.local_name, d.name)
            dev = await BleakScanner.find_device_by_filter(match, timeout=self.scan_timeout,
                                                           service_uuids=[fp.SERVICE_UUID],
                                                           **kwargs)
        if dev is None:
            what = f"address {self.address}" if self.address else f"name {self.name!r}"
            raise DeviceNotFoundError(
                f"{self.url}: no wearable with {what} advertised within {self.scan_timeout:g} s; "
                "is it powered on, in range and not connected to another host? "
                "`glutebridge scan` lists the wearables in range")
        return dev

    async def open(self, sink: LinkSink) -> None:
        from bleak import BleakClient

        self._sink = sink
        try:
            if self._client is None:
                dev = await self._find()
                kwargs = {"bluez": {"adapter": self.adapter}} if self.adapter else {}
                self._client = BleakClient(dev, disconnected_callback=self._on_disconnect,
                                           timeout=self.connect_timeout, **kwargs)
            client = self._client
            self._opening = True
            await client.connect()
            data_char = client.services.get_characteristic(fp.DATA_CHAR_UUID)
            cmd_char = client.services.get_characteristic(fp.COMMAND_CHAR_UUID)
            if data_char is None or cmd_char is None:
                await client.disconnect()
                raise TransportError(
                    f"{self.url}: the device has no glutebridge GATT service "
                    f"({fp.SERVICE_UUID}); is it running glutebridge firmware?")
            # BlueZ >= 5.62 exposes the negotiated MTU on the characteristic.
            self.mtu = data_char.max_write_without_response_size + 3
            # Prefer acknowledged writes; firmware may offer write-without-response only.
            self._write_response = "write" in cmd_char.properties
            await client.start_notify(data_char, self._on_notify)
        except TransportError:
            raise
        except Exception as exc:
            raise _convert(self.url, exc) from exc
        finally:
            self._opening = False

    def _on_notify(self, _char, data: bytearray) -> None:
        sink = self._sink
        if sink is not None:
            sink.data_received(bytes(data), time.monotonic())

    def _on_disconnect(self, _client) -> None:
        sink = self._sink
        if sink is not None and not self._opening:
            sink.link_lost(TransportError(f"{self.url}: BLE link lost"))

    async def write(self, data: bytes) -> None:
        client = self._client
        if client is None or not client.is_connected:
            raise TransportError(f"{self.url}: not connected")
        try:
            await client.write_gatt_char(fp.COMMAND_CHAR_UUID, data,
                                         response=self._write_response)
        except Exception as exc:
            raise _convert(self.url, exc) from exc

    async def close(self) -> None:
        client = self._client
        self._sink = None  # a disconnect we asked for is not a link loss
        # Also after the link (or the whole D-Bus connection) is gone: bleak's disconnect()
        # then only releases the client's bus, which collects the bus's own error; skipped,
        # that error surfaced as "Future exception was never retrieved ... EOFError" when
        # bluetoothd or the bus went away.
        if client is not None:
            try:
                await client.disconnect()
            except Exception:
                pass

    def extra_stats(self) -> dict:
        return {"mtu": self.mtu}


def make(rest: str, query: dict, **options) -> BleTransport:
    if query:
        raise ConfigError(f"ble://{rest}: unknown option(s) {', '.join(sorted(query))} "
                          "(ble:// takes stall)")
    if rest.startswith("name="):
        name = rest[5:]
        if not name:
            raise ConfigError("ble://name= needs a device name, e.g. ble://name=glutebridge-sim")
        return BleTransport(name=name, **options)
    if not _ADDRESS.match(rest):
        raise ConfigError(f"ble://{rest}: expected ble://AA:BB:CC:DD:EE:FF or ble://name=NAME")
    return BleTransport(address=rest, **options)
