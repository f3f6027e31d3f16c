"""glutebridge: a Bluetooth/serial bridge for EMG + IMU wearables.

Data flows one way: transport -> firmware_protocol -> stream -> native core
-> events -> sinks.  Import the pieces you need, e.g. ``bridge.emg`` or
``bridge.balance``.
"""

from bridge.errors import (
    ConfigError,
    DeviceNotFoundError,
    GlutebridgeError,
    ProtocolError,
    RecordingError,
    SignalError,
    TransportError,
)

__version__ = "0.1.0"

def __getattr__(name):
    # bridge.open / bridge.open_many: imported on first use so `import bridge` stays light.
    if name in ("open", "open_many"):
        from bridge import sources
        return getattr(sources, name)
    raise AttributeError(f"module 'bridge' has no attribute {name!r}")


__all__ = [
    "open",
    "open_many",
    "ConfigError",
    "DeviceNotFoundError",
    "GlutebridgeError",
    "ProtocolError",
    "RecordingError",
    "SignalError",
    "TransportError",
    "__version__",
]
