"""The exception hierarchy: one root, typed subclasses carrying fields.

Third-party errors (bleak, pyserial, OS errors) are converted where they
arrive, e.g. ``raise TransportError(...) from exc``.  Protocol errors live in
:mod:`firmware_protocol.errors` and share nothing but the idea; the bridge
re-raises them as :class:`ProtocolError` where they cross into the bridge.
"""

from __future__ import annotations


class GlutebridgeError(Exception):
    """Root of every error glutebridge raises on purpose."""


class ConfigError(GlutebridgeError, ValueError):
    """A parameter, URL, shape or dtype is wrong; the message says how to fix it."""


class SignalError(GlutebridgeError, ValueError):
    """Input samples are unusable (NaN/inf, too short, saturated...)."""


class TransportError(GlutebridgeError):
    """Opening, reading or writing a transport (BLE, serial, TCP, file) failed."""


class DeviceNotFoundError(TransportError):
    """No wearable matched the address or name that was asked for."""


class ProtocolError(GlutebridgeError):
    """The device spoke something this host cannot understand."""


class RecordingError(GlutebridgeError):
    """A recording file is truncated, corrupt or not a glutebridge recording."""
