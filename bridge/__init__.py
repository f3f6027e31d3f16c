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

__all__ = [
    "ConfigError",
    "DeviceNotFoundError",
    "GlutebridgeError",
    "ProtocolError",
    "RecordingError",
    "SignalError",
    "TransportError",
    "__version__",
]
