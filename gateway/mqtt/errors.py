"""The one error type of the MQTT codec and topic mapping.

Every violation the codec detects (malformed bytes, protocol errors, limits)
raises :class:`MQTTError`; it carries the MQTT 5.0 reason code the session
answers with (CONNACK or DISCONNECT; for 3.1.1 peers, the session closes or
maps the code) and a message meant for logs, never for the peer.
"""

from __future__ import annotations

from typing import Any

from gateway.mqtt.reason_codes import ReasonCode


class MQTTError(Exception):
    """A violation of the MQTT specification, with the reason code to answer.

    ``reason_code`` is an MQTT 5.0 reason code (``0x81`` malformed packet,
    ``0x82`` protocol error, ``0x95`` packet too large, ``0x84`` unsupported
    protocol version, ...). ``message`` says what was wrong, for logs.
    ``preceding`` holds what was received before the violation in the same
    read (decoded packets, for the decoder and the session), so that the
    connection acts on them before it closes, as if they had come alone.
    """

    __slots__ = ("message", "preceding", "reason_code")

    def __init__(self, reason_code: int, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.preceding: list[Any] = []

    def __repr__(self) -> str:
        return f"MQTTError(0x{self.reason_code:02X}, {self.message!r})"


def malformed(message: str) -> MQTTError:
    """An error for bytes that cannot be parsed (reason code 0x81)."""
    return MQTTError(ReasonCode.MALFORMED_PACKET, message)


def protocol_error(message: str) -> MQTTError:
    """An error for a parsed packet the protocol does not allow (0x82)."""
    return MQTTError(ReasonCode.PROTOCOL_ERROR, message)
