"""Errors raised by the wire-protocol package.

``StreamDecoder.feed`` never raises for bad *input bytes*: corruption is
counted in ``stats`` and skipped.  These exceptions are for programming
errors on the encode side (a value that does not fit its field) and for the
handshake (a device speaking a protocol newer than this host understands).
"""

from __future__ import annotations


class FirmwareProtocolError(Exception):
    """Root of every error this package raises."""


class EncodeError(FirmwareProtocolError, ValueError):
    """A packet field does not fit the wire format (the message names it)."""


class ProtocolVersionError(FirmwareProtocolError):
    """The device speaks a protocol version this host does not understand."""

    def __init__(self, device_version: int, supported: int, firmware: str = "?") -> None:
        self.device_version = device_version
        self.supported = supported
        self.firmware = firmware
        super().__init__(
            f"the wearable (firmware {firmware}) speaks glutebridge protocol v{device_version}, "
            f"but this host understands up to v{supported}: upgrade glutebridge "
            f"(pip install -U glutebridge) or flash firmware that speaks v{supported}"
        )


class HandshakeError(FirmwareProtocolError):
    """The capability handshake did not complete (no or malformed DEVICE_INFO)."""
