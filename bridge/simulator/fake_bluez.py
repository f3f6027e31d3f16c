"""A fake ``org.bluez`` on a private D-Bus: unmodified bleak talks to virtual wearables.

bleak's BlueZ backend only speaks D-Bus, so this module plays bluetoothd:
it owns the name ``org.bluez`` on a private ``dbus-daemon`` and exports, per
virtual wearable, the objects bleak reads (see DESIGN.md, "Testing without
hardware, for real")::

    /org/bluez/hci0                                      Adapter1
    /org/bluez/hci0/dev_XX_XX_XX_XX_XX_XX                Device1
    /org/bluez/hci0/dev_.../service000a                  GattService1 (SERVICE_UUID)
    /org/bluez/hci0/dev_.../service000a/char000b         GattCharacteristic1 data (notify)
    /org/bluez/hci0/dev_.../service000a/char000e         GattCharacteristic1 command (write)

Notifications are paced in real time (or ``speed`` x) from
``VirtualWearable.advance`` and split with the firmware's
:class:`~firmware_protocol.NotificationPacker` at ``min(MTU - 3, max_payload)``;
commands arrive through ``WriteValue`` and their answers go out as
notifications, exactly like the firmware.  Link loss (``drop_link`` or
``Faults.disconnect_at``) sets ``Connected`` False; bleak's
``disconnected_callback`` fires and the same client can connect again.

Typical use (tests, ``glutebridge simulate --serve ble``)::

    with PrivateBus() as bus:                 # starts dbus-daemon, sets DBUS_SYSTEM_BUS_ADDRESS
        async with FakeBluez(bus.address) as bluez:
            dev = bluez.add_wearable(VirtualWearable(signals), speed=1.0)
            async with bridge.open(f"ble://{dev.address}") as conn: ...
"""

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import tempfile
import time

from dbus_fast import BusType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method

import firmware_protocol as fp
from bridge.simulator.device import VirtualWearable

__all__ = ["FakeBluez", "FakeDevice", "PrivateBus", "dbus_daemon_path"]

ADAPTER_PATH_FMT = "/org/bluez/{}"
_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
  </policy>
</busconfig>
"""


def dbus_daemon_path() -> str | None:
    """Path of the ``dbus-daemon`` executable, or None (install Debian's ``dbus-daemon``)."""
    return shutil.which("dbus-daemon")


class PrivateBus:
    """A throw-away ``dbus-daemon`` allowing everything, for a fake BlueZ.

    ``start()`` returns the bus address and (with ``set_env``) points
    ``DBUS_SYSTEM_BUS_ADDRESS`` at it, which is where bleak looks for BlueZ;
    ``stop()`` kills the daemon and restores the variable.
    """

    def __init__(self, set_env: bool = True) -> None:
        self.set_env = set_env
        self.address: str | None = None
        self._proc: subprocess.Popen | None = None
        self._tmp: str | None = None
        self._old_env: str | None = None

    def start(self) -> str:
        exe = dbus_daemon_path()
        if exe is None:
            raise FileNotFoundError("dbus-daemon not found: install it (Debian/Ubuntu: "
                                    "apt-get install dbus-daemon) to run the fake BlueZ")
        self._tmp = tempfile.mkdtemp(prefix="glutebridge-dbus-")
        sock = os.path.join(self._tmp, "bus")
        conf = os.path.join(self._tmp, "bus.conf")
        with open(conf, "w") as f:
            f.write(_BUS_CONFIG.format(socket=sock))
        self._proc = subprocess.Popen(
            [exe, f"--config-file={conf}", "--nofork", "--print-address=1", "--nopidfile"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline().strip()
        if not line:
            err = self._proc.stderr.read() if self._proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"dbus-daemon did not start: {err.strip()}")
        self.address = line
        if self.set_env:
            self._old_env = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = line
        return line

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            for stream in (self._proc.stdout, self._proc.stderr):
                if stream:
                    stream.close()
            self._proc = None
        if self.set_env and self.address is not None:
            if self._old_env is None:
                os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
            else:
                os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self._old_env
        self.address = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "PrivateBus":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- D-Bus objects
# Method and property annotations are D-Bus signatures (dbus-fast reads them).

class _Adapter(ServiceInterface):
    def __init__(self, owner: "FakeBluez", address: str) -> None:
        super().__init__("org.bluez.Adapter1")
        self.owner = owner
        self._address = address
        self.discovering = False
        self.filters: dict = {}

    @method()
    def SetDiscoveryFilter(self, properties: "a{sv}") -> None:  # noqa: N802, F821
        self.filters = dict(properties)

    @method()
    def GetDiscoveryFilters(self) -> "as":  # noqa: N802, F821
        return ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable",
                "Pattern"]

    @method()
    def StartDiscovery(self) -> None:  # noqa: N802
        if self.discovering:
            raise DBusError("org.bluez.Error.InProgress", "Operation already in progress")
        self.discovering = True
        self.emit_properties_changed({"Discovering": True})
        self.owner._start_advertising()

    @method()
    def StopDiscovery(self) -> None:  # noqa: N802
        if not self.discovering:
            raise DBusError("org.bluez.Error.Failed", "No discovery started")
        self.discovering = False
        self.emit_properties_changed({"Discovering": False})
        self.owner._stop_advertising()

    @method()
    def RemoveDevice(self, device: "o") -> None:  # noqa: N802, F821
        pass  # the fake keeps its devices; real BlueZ would forget a cached one

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":  # noqa: N802, F821
        return self._address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> "s":  # noqa: N802, F821
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":  # noqa: N802, F821
        return "glutebridge-fake-adapter"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":  # noqa: N802, F821
        return "glutebridge-fake-adapter"

    @dbus_property(access=PropertyAccess.READ)
    def Powered(self) -> "b":  # noqa: N802, F821
        return self.owner.powered

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> "b":  # noqa: N802, F821
        return self.discovering

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> "as":  # noqa: N802, F821
        return ["central", "peripheral"]

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":  # noqa: N802, F821
        return []


class _Device(ServiceInterface):
    def __init__(self, dev: "FakeDevice") -> None:
        super().__init__("org.bluez.Device1")
        self.dev = dev

    @method()
    def Connect(self) -> None:  # noqa: N802
        if not self.dev.connectable:
            raise DBusError("org.bluez.Error.Failed", "Page Timeout")  # out of range
        self.dev._connect()

    @method()
    def Disconnect(self) -> None:  # noqa: N802
        self.dev._disconnect()

    @method()
    def Pair(self) -> None:  # noqa: N802
        self.dev.paired = True
        self.emit_properties_changed({"Paired": True})

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> "s":  # noqa: N802, F821
        return self.dev.address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> "s":  # noqa: N802, F821
        return "random"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> "s":  # noqa: N802, F821
        return self.dev.name

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> "s":  # noqa: N802, F821
        return self.dev.name

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> "o":  # noqa: N802, F821
        return self.dev.owner.adapter_path

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> "b":  # noqa: N802, F821
        return self.dev.connected

    @dbus_property(access=PropertyAccess.READ)
    def ServicesResolved(self) -> "b":  # noqa: N802, F821
        return self.dev.connected

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> "b":  # noqa: N802, F821
        return self.dev.paired

    @dbus_property(access=PropertyAccess.READ)
    def Bonded(self) -> "b":  # noqa: N802, F821
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Trusted(self) -> "b":  # noqa: N802, F821
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Blocked(self) -> "b":  # noqa: N802, F821
        return False

    @dbus_property(access=PropertyAccess.READ)
    def LegacyPairing(self) -> "b":  # noqa: N802, F821
        return False

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":  # noqa: N802, F821
        return [fp.SERVICE_UUID]

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> "n":  # noqa: N802, F821
        return self.dev.rssi

    @dbus_property(access=PropertyAccess.READ)
    def TxPower(self) -> "n":  # noqa: N802, F821
        return 0

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> "a{qv}":  # noqa: N802, F821
        # 0xFFFF: the company id reserved for tests; payload = serial number.
        return {0xFFFF: Variant("ay", self.dev.wearable.serial.encode()[:20])}

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> "a{sv}":  # noqa: N802, F821
        return {}


class _Service(ServiceInterface):
    def __init__(self, dev: "FakeDevice") -> None:
        super().__init__("org.bluez.GattService1")
        self.dev = dev

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":  # noqa: N802, F821
        return fp.SERVICE_UUID

    @dbus_property(access=PropertyAccess.READ)
    def Device(self) -> "o":  # noqa: N802, F821
        return self.dev.path

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> "b":  # noqa: N802, F821
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Includes(self) -> "ao":  # noqa: N802, F821
        return []


class _Characteristic(ServiceInterface):
    def __init__(self, dev: "FakeDevice", uuid: str, flags: list[str]) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self.dev = dev
        self.uuid = uuid
        self.flags = flags
        self.value = b""
        self.notifying = False

    @method()
    def ReadValue(self, options: "a{sv}") -> "ay":  # noqa: N802, F821
        self.dev._require_connected()
        return self.value

    @method()
    def WriteValue(self, value: "ay", options: "a{sv}") -> None:  # noqa: N802, F821
        self.dev._require_connected()
        kind = options.get("type")
        kind = kind.value if kind is not None else "request"
        needed = "write" if kind == "request" else "write-without-response"
        if needed not in self.flags:
            raise DBusError("org.bluez.Error.NotPermitted", "Write not permitted")
        self.dev._command(bytes(value))

    @method()
    def StartNotify(self) -> None:  # noqa: N802
        self.dev._require_connected()
        if "notify" not in self.flags:
            raise DBusError("org.bluez.Error.NotSupported", "Notify not supported")
        if not self.notifying:
            self.notifying = True
            self.emit_properties_changed({"Notifying": True})

    @method()
    def StopNotify(self) -> None:  # noqa: N802
        if self.notifying:
            self.notifying = False
            self.emit_properties_changed({"Notifying": False})

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":  # noqa: N802, F821
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> "o":  # noqa: N802, F821
        return self.dev.service_path

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> "ay":  # noqa: N802, F821
        return self.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> "b":  # noqa: N802, F821
        return self.notifying

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> "as":  # noqa: N802, F821
        return self.flags

    @dbus_property(access=PropertyAccess.READ)
    def MTU(self) -> "q":  # noqa: N802, F821
        return self.dev.mtu


# --------------------------------------------------------------------------- devices
class FakeDevice:
    """One virtual wearable behind the fake adapter.

    Counters: ``connects``, ``link_drops``, ``notifications_sent``,
    ``bytes_lost`` (produced while disconnected or not subscribed).
    """

    def __init__(self, owner: "FakeBluez", wearable: VirtualWearable, address: str, *,
                 rssi: int, mtu: int, speed: float, tick: float,
                 command_flags: tuple[str, ...] = ("write", "write-without-response"),
                 notification_loss: float = 0.0, seed: int = 0) -> None:
        self.owner = owner
        # Notifications lost on the host side (the BlueZ D-Bus path under load):
        # the counter byte lets the host see the hole.
        self.notification_loss = notification_loss
        self._rng = random.Random(seed)
        self.notifications_dropped = 0
        self.wearable = wearable
        self.address = address.upper()
        self.name = wearable.name
        self.rssi = rssi
        self.mtu = mtu
        self.speed = speed
        self.tick = tick
        self.connected = False
        self.connectable = True
        self.paired = False
        self.path = f"{owner.adapter_path}/dev_{self.address.replace(':', '_')}"
        self.service_path = f"{self.path}/service000a"
        self.data_path = f"{self.service_path}/char000b"
        self.command_path = f"{self.service_path}/char000e"
        self.device_iface = _Device(self)
        self.service_iface = _Service(self)
        self.data_char = _Characteristic(self, fp.DATA_CHAR_UUID, ["notify"])
        self.command_char = _Characteristic(self, fp.COMMAND_CHAR_UUID, list(command_flags))
        self._packer = fp.NotificationPacker(self.payload)
        self._pump_task: asyncio.Task | None = None
        self._last: float | None = None
        self._disconnects = sorted(wearable.faults.disconnect_at)
        self.connects = 0
        self.link_drops = 0
        self.notifications_sent = 0
        self.bytes_lost = 0

    @property
    def payload(self) -> int:
        """Bytes per notification: ATT_MTU - 3, capped by what the firmware announces."""
        return max(2, min(self.mtu - 3, self.wearable.max_payload))

    def _export(self, bus: MessageBus) -> None:
        bus.export(self.path, self.device_iface)
        bus.export(self.service_path, self.service_iface)
        bus.export(self.data_path, self.data_char)
        bus.export(self.command_path, self.command_char)

    def _unexport(self, bus: MessageBus) -> None:
        for path in (self.command_path, self.data_path, self.service_path, self.path):
            bus.unexport(path)

    def _require_connected(self) -> None:
        if not self.connected:
            raise DBusError("org.bluez.Error.NotConnected", "Not Connected")

    # ----------------------------------------------------------- link state
    def _connect(self) -> None:
        if self.connected:
            return
        now = time.monotonic()
        if self._last is not None:
            # The wearable kept sampling while nobody listened.
            self.bytes_lost += len(self.wearable.advance((now - self._last) * self.speed))
        self._last = now
        self._packer = fp.NotificationPacker(self.payload)
        self.connected = True
        self.connects += 1
        self.device_iface.emit_properties_changed({"Connected": True})
        self.device_iface.emit_properties_changed({"ServicesResolved": True})
        self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    def _disconnect(self) -> None:
        if not self.connected:
            return
        self.connected = False
        task, self._pump_task = self._pump_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        for char in (self.data_char, self.command_char):
            if char.notifying:
                char.notifying = False
                char.emit_properties_changed({"Notifying": False})
        self.device_iface.emit_properties_changed({"ServicesResolved": False})
        self.device_iface.emit_properties_changed({"Connected": False})

    def drop_link(self, connectable_after: float = 0.0) -> None:
        """Simulate link loss (supervision timeout): Connected goes False.

        ``connectable_after``: seconds during which Connect fails (device out of range).
        """
        if not self.connected:
            return
        self.link_drops += 1
        self._disconnect()
        if connectable_after > 0:
            self.connectable = False
            asyncio.get_running_loop().call_later(connectable_after,
                                                  setattr, self, "connectable", True)

    # ------------------------------------------------------------- traffic
    def _command(self, data: bytes) -> None:
        self._send(self.wearable.receive(data))

    def _send(self, framed: bytes) -> None:
        if not framed:
            return
        if not self.data_char.notifying:
            self.bytes_lost += len(framed)
            return
        for note in self._packer.push(framed):
            if self.notification_loss and self._rng.random() < self.notification_loss:
                self.notifications_dropped += 1
                continue
            self.data_char.value = note
            self.data_char.emit_properties_changed({"Value": note})
            self.notifications_sent += 1

    async def _pump(self) -> None:
        dev = self.wearable
        while self.connected:
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            dt = (now - self._last) * self.speed
            self._last = now
            if self._disconnects and dev.time + dt >= self._disconnects[0]:
                cut = max(self._disconnects.pop(0) - dev.time, 0.0)
                self._send(dev.advance(cut))
                self.bytes_lost += len(dev.advance(dt - cut))
                self.drop_link(self.owner.reconnect_delay)
                return
            self._send(dev.advance(dt))
            if dev.finished:
                return


class FakeBluez:
    """The fake bluetoothd: owns ``org.bluez`` on ``bus_address`` (default: the system bus
    address in ``DBUS_SYSTEM_BUS_ADDRESS``)."""

    def __init__(self, bus_address: str | None = None, *, adapter: str = "hci0",
                 adapter_address: str = "00:1A:7D:DA:71:13", powered: bool = True,
                 advertise_every: float = 0.1, reconnect_delay: float = 0.0,
                 with_adapter: bool = True) -> None:
        self.bus_address = bus_address
        self.adapter_path = ADAPTER_PATH_FMT.format(adapter)
        self.powered = powered
        self.advertise_every = advertise_every
        self.reconnect_delay = reconnect_delay
        self.with_adapter = with_adapter  # False: a machine without a Bluetooth adapter
        self.bus: MessageBus | None = None
        self.adapter = _Adapter(self, adapter_address)
        self.devices: dict[str, FakeDevice] = {}
        self._adv_task: asyncio.Task | None = None

    async def start(self) -> "FakeBluez":
        if self.bus_address:
            bus = MessageBus(bus_address=self.bus_address)
        else:
            bus = MessageBus(bus_type=BusType.SYSTEM)
        await bus.connect()
        await bus.request_name("org.bluez")
        self.bus = bus
        if self.with_adapter:
            bus.export(self.adapter_path, self.adapter)
        for dev in self.devices.values():
            dev._export(bus)
        return self

    async def stop(self) -> None:
        self._stop_advertising()
        for dev in self.devices.values():
            dev._disconnect()
        if self.bus is not None:
            self.bus.disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.bus.wait_for_disconnect(), 1.0)
            self.bus = None

    async def __aenter__(self) -> "FakeBluez":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def add_wearable(self, wearable: VirtualWearable, *, address: str | None = None,
                     rssi: int = -55, mtu: int = 247, speed: float = 1.0,
                     tick: float = 0.005,
                     command_flags: tuple[str, ...] = ("write", "write-without-response"),
                     notification_loss: float = 0.0, seed: int = 0) -> FakeDevice:
        """Expose a virtual wearable.  ``mtu`` is the negotiated ATT MTU (23-517);
        ``command_flags`` the GATT properties of the command characteristic;
        ``notification_loss`` the chance that a notification never reaches the host."""
        if address is None:
            address = "C0:FF:EE:00:00:%02X" % (len(self.devices) + 1)
        dev = FakeDevice(self, wearable, address, rssi=rssi, mtu=mtu, speed=speed, tick=tick,
                         command_flags=command_flags, notification_loss=notification_loss,
                         seed=seed)
        if dev.address in self.devices:
            raise ValueError(f"a device with address {dev.address} exists already")
        self.devices[dev.address] = dev
        if self.bus is not None:
            dev._export(self.bus)
        return dev

    def remove_wearable(self, address: str) -> None:
        """The device goes away (out of range for good): InterfacesRemoved."""
        dev = self.devices.pop(address.upper())
        dev._disconnect()
        if self.bus is not None:
            dev._unexport(self.bus)

    # -------------------------------------------------------- advertising
    def _start_advertising(self) -> None:
        if self._adv_task is None:
            self._adv_task = asyncio.get_running_loop().create_task(self._advertise())

    def _stop_advertising(self) -> None:
        task, self._adv_task = self._adv_task, None
        if task is not None:
            task.cancel()

    async def _advertise(self) -> None:
        # bleak reports a device when it signals during discovery: emit RSSI.
        k = 0
        while True:
            for dev in list(self.devices.values()):
                if not dev.connected:
                    dev.rssi = dev.rssi + (1 if k % 2 else -1)
                    dev.device_iface.emit_properties_changed({"RSSI": dev.rssi})
            k += 1
            await asyncio.sleep(self.advertise_every)
