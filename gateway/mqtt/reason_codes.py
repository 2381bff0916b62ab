"""Reason codes of MQTT 5.0, CONNACK return codes of 3.1.1, and their mapping.

The session speaks MQTT 5.0 reason codes only; when a packet is encoded for a
3.1.1 (or 3.1) peer the codec translates them (:func:`connack_return_code`,
:func:`suback_return_code`), and when a 3.1.1 CONNACK is decoded its return
code is translated back (:func:`reason_from_connack_return_code`).

The ``*_CODES`` sets say which reason codes each MQTT 5.0 packet may carry
(MQTT 5.0 sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3,
3.11.3, 3.14.2.1, 3.15.2.1); a decoded packet with any other code is
malformed.
"""

from __future__ import annotations

from enum import IntEnum


class ReasonCode(IntEnum):
    """MQTT 5.0 reason codes (section 2.4), with their specification names."""

    SUCCESS = 0x00
    NORMAL_DISCONNECTION = 0x00
    GRANTED_QOS_0 = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL_MESSAGE = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


class ConnackReturnCode(IntEnum):
    """MQTT 3.1.1 CONNACK return codes (section 3.2.2.3); 3.1 uses the same."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USER_NAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


#: The 3.1.1 SUBACK return code for a refused subscription (section 3.9.3).
SUBACK_FAILURE = 0x80

_R = ReasonCode

CONNACK_CODES = frozenset(
    {
        _R.SUCCESS,
        _R.UNSPECIFIED_ERROR,
        _R.MALFORMED_PACKET,
        _R.PROTOCOL_ERROR,
        _R.IMPLEMENTATION_SPECIFIC_ERROR,
        _R.UNSUPPORTED_PROTOCOL_VERSION,
        _R.CLIENT_IDENTIFIER_NOT_VALID,
        _R.BAD_USER_NAME_OR_PASSWORD,
        _R.NOT_AUTHORIZED,
        _R.SERVER_UNAVAILABLE,
        _R.SERVER_BUSY,
        _R.BANNED,
        _R.BAD_AUTHENTICATION_METHOD,
        _R.TOPIC_NAME_INVALID,
        _R.PACKET_TOO_LARGE,
        _R.QUOTA_EXCEEDED,
        _R.PAYLOAD_FORMAT_INVALID,
        _R.RETAIN_NOT_SUPPORTED,
        _R.QOS_NOT_SUPPORTED,
        _R.USE_ANOTHER_SERVER,
        _R.SERVER_MOVED,
        _R.CONNECTION_RATE_EXCEEDED,
    }
)
PUBACK_CODES = frozenset(
    {
        _R.SUCCESS,
        _R.NO_MATCHING_SUBSCRIBERS,
        _R.UNSPECIFIED_ERROR,
        _R.IMPLEMENTATION_SPECIFIC_ERROR,
        _R.NOT_AUTHORIZED,
        _R.TOPIC_NAME_INVALID,
        _R.PACKET_IDENTIFIER_IN_USE,
        _R.QUOTA_EXCEEDED,
        _R.PAYLOAD_FORMAT_INVALID,
    }
)
PUBREC_CODES = PUBACK_CODES
PUBREL_CODES = frozenset({_R.SUCCESS, _R.PACKET_IDENTIFIER_NOT_FOUND})
PUBCOMP_CODES = PUBREL_CODES
SUBACK_CODES = frozenset(
    {
        _R.GRANTED_QOS_0,
        _R.GRANTED_QOS_1,
        _R.GRANTED_QOS_2,
        _R.UNSPECIFIED_ERROR,
        _R.IMPLEMENTATION_SPECIFIC_ERROR,
        _R.NOT_AUTHORIZED,
        _R.TOPIC_FILTER_INVALID,
        _R.PACKET_IDENTIFIER_IN_USE,
        _R.QUOTA_EXCEEDED,
        _R.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
        _R.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
        _R.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
    }
)
UNSUBACK_CODES = frozenset(
    {
        _R.SUCCESS,
        _R.NO_SUBSCRIPTION_EXISTED,
        _R.UNSPECIFIED_ERROR,
        _R.IMPLEMENTATION_SPECIFIC_ERROR,
        _R.NOT_AUTHORIZED,
        _R.TOPIC_FILTER_INVALID,
        _R.PACKET_IDENTIFIER_IN_USE,
    }
)
DISCONNECT_CODES = frozenset(
    {
        _R.NORMAL_DISCONNECTION,
        _R.DISCONNECT_WITH_WILL_MESSAGE,
        _R.UNSPECIFIED_ERROR,
        _R.MALFORMED_PACKET,
        _R.PROTOCOL_ERROR,
        _R.IMPLEMENTATION_SPECIFIC_ERROR,
        _R.NOT_AUTHORIZED,
        _R.SERVER_BUSY,
        _R.SERVER_SHUTTING_DOWN,
        _R.KEEP_ALIVE_TIMEOUT,
        _R.SESSION_TAKEN_OVER,
        _R.TOPIC_FILTER_INVALID,
        _R.TOPIC_NAME_INVALID,
        _R.RECEIVE_MAXIMUM_EXCEEDED,
        _R.TOPIC_ALIAS_INVALID,
        _R.PACKET_TOO_LARGE,
        _R.MESSAGE_RATE_TOO_HIGH,
        _R.QUOTA_EXCEEDED,
        _R.ADMINISTRATIVE_ACTION,
        _R.PAYLOAD_FORMAT_INVALID,
        _R.RETAIN_NOT_SUPPORTED,
        _R.QOS_NOT_SUPPORTED,
        _R.USE_ANOTHER_SERVER,
        _R.SERVER_MOVED,
        _R.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
        _R.CONNECTION_RATE_EXCEEDED,
        _R.MAXIMUM_CONNECT_TIME,
        _R.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
        _R.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
    }
)
AUTH_CODES = frozenset({_R.SUCCESS, _R.CONTINUE_AUTHENTICATION, _R.RE_AUTHENTICATE})

_CONNACK_TO_311: dict[int, int] = {
    _R.SUCCESS: ConnackReturnCode.ACCEPTED,
    _R.UNSUPPORTED_PROTOCOL_VERSION: ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION,
    _R.CLIENT_IDENTIFIER_NOT_VALID: ConnackReturnCode.IDENTIFIER_REJECTED,
    _R.SERVER_UNAVAILABLE: ConnackReturnCode.SERVER_UNAVAILABLE,
    _R.SERVER_BUSY: ConnackReturnCode.SERVER_UNAVAILABLE,
    _R.USE_ANOTHER_SERVER: ConnackReturnCode.SERVER_UNAVAILABLE,
    _R.SERVER_MOVED: ConnackReturnCode.SERVER_UNAVAILABLE,
    _R.CONNECTION_RATE_EXCEEDED: ConnackReturnCode.SERVER_UNAVAILABLE,
    _R.BAD_USER_NAME_OR_PASSWORD: ConnackReturnCode.BAD_USER_NAME_OR_PASSWORD,
    _R.BAD_AUTHENTICATION_METHOD: ConnackReturnCode.BAD_USER_NAME_OR_PASSWORD,
    _R.NOT_AUTHORIZED: ConnackReturnCode.NOT_AUTHORIZED,
    _R.BANNED: ConnackReturnCode.NOT_AUTHORIZED,
}
_CONNACK_FROM_311: dict[int, int] = {
    ConnackReturnCode.ACCEPTED: _R.SUCCESS,
    ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION: _R.UNSUPPORTED_PROTOCOL_VERSION,
    ConnackReturnCode.IDENTIFIER_REJECTED: _R.CLIENT_IDENTIFIER_NOT_VALID,
    ConnackReturnCode.SERVER_UNAVAILABLE: _R.SERVER_UNAVAILABLE,
    ConnackReturnCode.BAD_USER_NAME_OR_PASSWORD: _R.BAD_USER_NAME_OR_PASSWORD,
    ConnackReturnCode.NOT_AUTHORIZED: _R.NOT_AUTHORIZED,
}


def connack_return_code(reason_code: int) -> int:
    """The 3.1.1 CONNACK return code for an MQTT 5.0 CONNACK reason code.

    Codes with no 3.1.1 counterpart (malformed packet, quota exceeded, ...)
    become "server unavailable" (3), the 3.1.1 code for a refusal that is
    not the client's credentials or identifier.
    """
    return _CONNACK_TO_311.get(reason_code, ConnackReturnCode.SERVER_UNAVAILABLE)


def reason_from_connack_return_code(return_code: int) -> int | None:
    """The MQTT 5.0 reason code for a 3.1.1 CONNACK return code, or None."""
    return _CONNACK_FROM_311.get(return_code)


def suback_return_code(reason_code: int) -> int:
    """The 3.1.1 SUBACK return code: the granted QoS, or 0x80 for any failure."""
    return reason_code if reason_code < 0x80 else SUBACK_FAILURE
