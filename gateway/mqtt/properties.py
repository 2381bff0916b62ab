"""MQTT 5.0 properties (section 2.2.2): every property, its type, and where it may appear.

:class:`Properties` holds the properties of one packet (or of a Will) as
attributes named after the specification; an absent property reads as
``None`` (or ``()`` for the two that may repeat). User properties keep their
order and duplicates; a PUBLISH may carry several subscription identifiers.

:data:`PROPERTY_SPECS` is the table of section 2.2.2.2: identifier, name,
data type, and the packets allowed to carry it. Decoding enforces it: an
identifier unknown or not allowed in the packet, or a value of the wrong
type, is a malformed packet (0x81); a property that may appear once but
appears twice, or a value out of its range, is a protocol error (0x82).
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import IntEnum
from typing import Any, NamedTuple

from gateway.mqtt.errors import MQTTError, malformed, protocol_error
from gateway.mqtt.reason_codes import ReasonCode
from gateway.mqtt.wire import (
    encode_binary,
    encode_string,
    encode_varint,
    pack_u16,
    pack_u32,
    read_binary,
    read_string,
    read_u8,
    read_u16,
    read_u32,
    read_varint,
)


class PacketType(IntEnum):
    """The MQTT control packet types (fixed header bits 7-4)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


#: The property context of a Will (CONNECT payload), not a packet type.
WILL = 0


class PropertyType(IntEnum):
    """The data types of section 1.5 that properties use."""

    BYTE = 1
    TWO_BYTE = 2
    FOUR_BYTE = 3
    VARINT = 4
    STRING = 5
    BINARY = 6
    STRING_PAIR = 7


class PropertySpec(NamedTuple):
    """One row of the property table of section 2.2.2.2."""

    identifier: int
    name: str
    type: PropertyType
    contexts: frozenset[int]


_P = PacketType
_T = PropertyType
_ACKS = (_P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP)


def _spec(identifier: int, name: str, kind: PropertyType, *where: int) -> PropertySpec:
    return PropertySpec(identifier, name, kind, frozenset(where))


PROPERTY_SPECS: tuple[PropertySpec, ...] = (
    _spec(0x01, "payload_format_indicator", _T.BYTE, _P.PUBLISH, WILL),
    _spec(0x02, "message_expiry_interval", _T.FOUR_BYTE, _P.PUBLISH, WILL),
    _spec(0x03, "content_type", _T.STRING, _P.PUBLISH, WILL),
    _spec(0x08, "response_topic", _T.STRING, _P.PUBLISH, WILL),
    _spec(0x09, "correlation_data", _T.BINARY, _P.PUBLISH, WILL),
    _spec(0x0B, "subscription_identifiers", _T.VARINT, _P.PUBLISH, _P.SUBSCRIBE),
    _spec(0x11, "session_expiry_interval", _T.FOUR_BYTE, _P.CONNECT, _P.CONNACK, _P.DISCONNECT),
    _spec(0x12, "assigned_client_identifier", _T.STRING, _P.CONNACK),
    _spec(0x13, "server_keep_alive", _T.TWO_BYTE, _P.CONNACK),
    _spec(0x15, "authentication_method", _T.STRING, _P.CONNECT, _P.CONNACK, _P.AUTH),
    _spec(0x16, "authentication_data", _T.BINARY, _P.CONNECT, _P.CONNACK, _P.AUTH),
    _spec(0x17, "request_problem_information", _T.BYTE, _P.CONNECT),
    _spec(0x18, "will_delay_interval", _T.FOUR_BYTE, WILL),
    _spec(0x19, "request_response_information", _T.BYTE, _P.CONNECT),
    _spec(0x1A, "response_information", _T.STRING, _P.CONNACK),
    _spec(0x1C, "server_reference", _T.STRING, _P.CONNACK, _P.DISCONNECT),
    _spec(
        0x1F,
        "reason_string",
        _T.STRING,
        _P.CONNACK,
        *_ACKS,
        _P.SUBACK,
        _P.UNSUBACK,
        _P.DISCONNECT,
        _P.AUTH,
    ),
    _spec(0x21, "receive_maximum", _T.TWO_BYTE, _P.CONNECT, _P.CONNACK),
    _spec(0x22, "topic_alias_maximum", _T.TWO_BYTE, _P.CONNECT, _P.CONNACK),
    _spec(0x23, "topic_alias", _T.TWO_BYTE, _P.PUBLISH),
    _spec(0x24, "maximum_qos", _T.BYTE, _P.CONNACK),
    _spec(0x25, "retain_available", _T.BYTE, _P.CONNACK),
    _spec(
        0x26,
        "user_properties",
        _T.STRING_PAIR,
        _P.CONNECT,
        _P.CONNACK,
        _P.PUBLISH,
        WILL,
        *_ACKS,
        _P.SUBSCRIBE,
        _P.SUBACK,
        _P.UNSUBSCRIBE,
        _P.UNSUBACK,
        _P.DISCONNECT,
        _P.AUTH,
    ),
    _spec(0x27, "maximum_packet_size", _T.FOUR_BYTE, _P.CONNECT, _P.CONNACK),
    _spec(0x28, "wildcard_subscription_available", _T.BYTE, _P.CONNACK),
    _spec(0x29, "subscription_identifier_available", _T.BYTE, _P.CONNACK),
    _spec(0x2A, "shared_subscription_available", _T.BYTE, _P.CONNACK),
)

SPEC_BY_ID: dict[int, PropertySpec] = {s.identifier: s for s in PROPERTY_SPECS}
SPEC_BY_NAME: dict[str, PropertySpec] = {s.name: s for s in PROPERTY_SPECS}

USER_PROPERTY = 0x26
SUBSCRIPTION_IDENTIFIER = 0x0B
TOPIC_ALIAS = 0x23

# Properties whose value must be 0 or 1, and those that must not be 0
# (sections 3.1.2.11, 3.2.2.3, 3.3.2.3); out of range is a protocol error.
_ZERO_OR_ONE = frozenset({0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A})
_NOT_ZERO = frozenset({0x0B, 0x21, 0x23, 0x27})
_RANGE = {
    _T.BYTE: 0xFF,
    _T.TWO_BYTE: 0xFFFF,
    _T.FOUR_BYTE: 0xFFFFFFFF,
    _T.VARINT: 268_435_455,
}

# Per identifier: (attribute name, type, bit mask of allowed contexts).
_DECODE: list[tuple[str, PropertyType, int] | None] = [None] * 128
for _s in PROPERTY_SPECS:
    _DECODE[_s.identifier] = (_s.name, _s.type, sum(1 << c for c in _s.contexts))


class Properties:
    """The MQTT 5.0 properties of one packet or Will.

    Attributes are the property names of :data:`PROPERTY_SPECS`; unset ones
    read as ``None``, and ``user_properties`` / ``subscription_identifiers``
    as ``()``. ``Properties()`` is empty and cheap: values live in the
    instance only once set. Equality compares the set values.
    """

    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    subscription_identifiers: tuple[int, ...] = ()
    session_expiry_interval: int | None = None
    assigned_client_identifier: str | None = None
    server_keep_alive: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    request_problem_information: int | None = None
    will_delay_interval: int | None = None
    request_response_information: int | None = None
    response_information: str | None = None
    server_reference: str | None = None
    reason_string: str | None = None
    receive_maximum: int | None = None
    topic_alias_maximum: int | None = None
    topic_alias: int | None = None
    maximum_qos: int | None = None
    retain_available: int | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    maximum_packet_size: int | None = None
    wildcard_subscription_available: int | None = None
    subscription_identifier_available: int | None = None
    shared_subscription_available: int | None = None

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            if name not in SPEC_BY_NAME:
                raise TypeError(f"unknown MQTT property {name!r}")
            if name in ("user_properties", "subscription_identifiers"):
                value = tuple(value)
            setattr(self, name, value)

    def items(self) -> Iterator[tuple[PropertySpec, Any]]:
        """The set properties, in identifier order, with their specs."""
        values = self.__dict__
        for spec in PROPERTY_SPECS:
            value = values.get(spec.name)
            if value is not None and value != ():
                yield spec, value

    def __bool__(self) -> bool:
        return any(True for _ in self.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Properties):
            return NotImplemented
        return dict(self._pairs()) == dict(other._pairs())

    __hash__ = None  # type: ignore[assignment]

    def _pairs(self) -> Iterator[tuple[str, Any]]:
        for spec, value in self.items():
            yield spec.name, value

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self._pairs())
        return f"Properties({inner})"


def new_properties() -> Properties:
    """An empty :class:`Properties`, without running ``__init__`` (hot path)."""
    return Properties.__new__(Properties)


def read_properties(data: bytes, pos: int, end: int, context: int) -> tuple[Properties, int]:
    """The property block at ``pos`` (length, then properties) of a packet type or WILL."""
    length, pos = read_varint(data, pos, end)
    stop = pos + length
    if stop > end:
        raise malformed("property length beyond the end of the packet")
    props = Properties.__new__(Properties)
    if not length:
        return props, stop
    values = props.__dict__
    bit = 1 << context
    seen = 0
    users: list[tuple[str, str]] = []
    sub_ids: list[int] = []
    while pos < stop:
        ident = data[pos]
        pos += 1
        row = _DECODE[ident] if ident < 128 else None
        if row is None:
            raise malformed(f"unknown property identifier 0x{ident:02X}")
        name, kind, contexts = row
        if not contexts & bit:
            raise malformed(f"property {name} not allowed in this packet")
        value: Any
        if kind == _T.STRING_PAIR:
            key, pos = read_string(data, pos, stop)
            text, pos = read_string(data, pos, stop)
            users.append((key, text))
            continue
        if kind == _T.BYTE:
            value, pos = read_u8(data, pos, stop)
        elif kind == _T.TWO_BYTE:
            value, pos = read_u16(data, pos, stop)
        elif kind == _T.FOUR_BYTE:
            value, pos = read_u32(data, pos, stop)
        elif kind == _T.VARINT:
            value, pos = read_varint(data, pos, stop)
        elif kind == _T.STRING:
            value, pos = read_string(data, pos, stop)
        else:
            value, pos = read_binary(data, pos, stop)
        if ident in _ZERO_OR_ONE and value > 1:
            raise protocol_error(f"property {name} must be 0 or 1, got {value}")
        if ident in _NOT_ZERO and value == 0:
            if ident == TOPIC_ALIAS:
                raise MQTTError(ReasonCode.TOPIC_ALIAS_INVALID, "topic alias 0")
            raise protocol_error(f"property {name} must not be 0")
        if ident == SUBSCRIPTION_IDENTIFIER:
            # Several in a PUBLISH to a client (3.3.4), one in a SUBSCRIBE.
            if sub_ids and context != PacketType.PUBLISH:
                raise protocol_error("subscription identifier included more than once")
            sub_ids.append(value)
            continue
        if seen >> ident & 1:
            raise protocol_error(f"property {name} included more than once")
        seen |= 1 << ident
        values[name] = value
    if "authentication_data" in values and "authentication_method" not in values:
        raise protocol_error("authentication data without an authentication method")
    if users:
        values["user_properties"] = tuple(users)
    if sub_ids:
        values["subscription_identifiers"] = tuple(sub_ids)
    return props, stop


def _encode_value(spec: PropertySpec, value: Any) -> bytes:
    kind = spec.type
    if kind == _T.STRING:
        if not isinstance(value, str):
            raise malformed(f"property {spec.name} must be a str, not {type(value).__name__}")
        return encode_string(value)
    if kind == _T.BINARY:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise malformed(f"property {spec.name} must be bytes, not {type(value).__name__}")
        return encode_binary(bytes(value))
    if not isinstance(value, int) or not 0 <= value <= _RANGE[kind]:
        raise malformed(f"property {spec.name} value {value!r} out of range")
    if kind == _T.BYTE:
        return bytes((value,))
    if kind == _T.TWO_BYTE:
        return pack_u16(value)
    if kind == _T.FOUR_BYTE:
        return pack_u32(value)
    return encode_varint(value)


def encode_properties(props: Properties, context: int) -> bytes:
    """The property block (length included) for a packet type or WILL.

    Raises ``MQTTError`` for a property not allowed in ``context`` or a value
    that does not fit its type, so a session bug never puts a malformed
    packet on the wire.
    """
    if not props.__dict__:
        return b"\x00"
    parts: list[bytes] = []
    for spec, value in props.items():
        if context not in spec.contexts:
            raise protocol_error(f"property {spec.name} not allowed in this packet")
        ident = bytes((spec.identifier,))
        if spec.type == _T.STRING_PAIR:
            for key, text in value:
                parts.append(ident + encode_string(key) + encode_string(text))
        elif spec.identifier == SUBSCRIPTION_IDENTIFIER:
            if len(value) > 1 and context != PacketType.PUBLISH:
                raise protocol_error("one subscription identifier per SUBSCRIBE")
            for sub_id in value:
                if sub_id == 0:
                    raise protocol_error("subscription identifier 0")
                parts.append(ident + _encode_value(spec, sub_id))
        else:
            if (spec.identifier in _ZERO_OR_ONE and value not in (0, 1)) or (
                spec.identifier in _NOT_ZERO and value == 0
            ):
                raise protocol_error(f"property {spec.name} value {value!r} not allowed")
            parts.append(ident + _encode_value(spec, value))
    body = b"".join(parts)
    return encode_varint(len(body)) + body
