"""MQTT control packets (MQTT 5.0 chapter 3, 3.1.1 chapter 3) and their encoding.

One class per packet type, with ``__slots__`` and one method,
``encode(version) -> bytes``, which builds the packet for protocol level 3
(MQTT 3.1), 4 (3.1.1) or 5 (5.0). Decoding lives in
:mod:`gateway.mqtt.codec`.

The session speaks MQTT 5.0 reason codes whatever the version; encoding for
3.1.1 maps them (CONNACK return codes, SUBACK 0x80) or leaves them out
(PUBACK and the others carry none), and drops properties. Encoding raises
:class:`~gateway.mqtt.errors.MQTTError` rather than put a packet the peer
would have to refuse on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from gateway.mqtt.errors import MQTTError, malformed, protocol_error
from gateway.mqtt.filters import parse_filter, validate_topic_name
from gateway.mqtt.properties import WILL, PacketType, Properties, encode_properties, new_properties
from gateway.mqtt.reason_codes import (
    AUTH_CODES,
    CONNACK_CODES,
    DISCONNECT_CODES,
    PUBACK_CODES,
    PUBREL_CODES,
    SUBACK_CODES,
    UNSUBACK_CODES,
    ConnackReturnCode,
    ReasonCode,
    connack_return_code,
    suback_return_code,
)
from gateway.mqtt.wire import encode_binary, encode_string, fixed_header, pack_u16

_EMPTY_PROPS = b"\x00"


def _check_version(version: int) -> None:
    if version not in (3, 4, 5):
        raise MQTTError(ReasonCode.UNSUPPORTED_PROTOCOL_VERSION, f"no MQTT version {version}")


def _check_packet_id(packet_id: int) -> bytes:
    if not 0 < packet_id <= 0xFFFF:
        raise protocol_error(f"packet identifier {packet_id} not in 1..65535")
    return pack_u16(packet_id)


def _check_code(code: int, allowed: frozenset[ReasonCode], what: str) -> None:
    if code not in allowed:
        raise protocol_error(f"reason code 0x{code:02X} not allowed in {what}")


class Packet:
    """Base of the packet classes: field-wise equality and a readable repr."""

    __slots__ = ()
    type: ClassVar[PacketType]
    _fields: ClassVar[tuple[str, ...]] = ()

    def encode(self, version: int) -> bytes:
        """The packet's bytes for protocol level ``version`` (3, 4 or 5)."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"


class Will:
    """The Will message of a CONNECT (section 3.1.2.5, 3.1.3.2-3.1.3.4)."""

    __slots__ = ("payload", "properties", "qos", "retain", "topic")

    def __init__(
        self,
        topic: str,
        payload: bytes = b"",
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties if properties is not None else new_properties()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Will):
            return NotImplemented
        return (self.topic, bytes(self.payload), self.qos, self.retain, self.properties) == (
            other.topic,
            bytes(other.payload),
            other.qos,
            other.retain,
            other.properties,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Will(topic={self.topic!r}, payload={self.payload!r}, qos={self.qos}, "
            f"retain={self.retain}, properties={self.properties!r})"
        )


class Connect(Packet):
    """CONNECT (section 3.1). ``protocol_level`` is 3 (MQIsdp), 4 or 5.

    ``password`` is binary data; in 3.1.1 it requires a user name
    [MQTT-3.1.2-22], in 5.0 it does not.
    """

    __slots__ = (
        "clean_start",
        "client_id",
        "keep_alive",
        "password",
        "properties",
        "protocol_level",
        "username",
        "will",
    )
    type = PacketType.CONNECT
    _fields = (
        "protocol_level",
        "client_id",
        "clean_start",
        "keep_alive",
        "username",
        "password",
        "will",
        "properties",
    )

    def __init__(
        self,
        client_id: str = "",
        clean_start: bool = True,
        keep_alive: int = 0,
        username: str | None = None,
        password: bytes | None = None,
        will: Will | None = None,
        protocol_level: int = 4,
        properties: Properties | None = None,
    ) -> None:
        self.client_id = client_id
        self.clean_start = clean_start
        self.keep_alive = keep_alive
        self.username = username
        self.password = password
        self.will = will
        self.protocol_level = protocol_level
        self.properties = properties if properties is not None else new_properties()

    def encode(self, version: int | None = None) -> bytes:
        """The CONNECT for ``version``, by default its own ``protocol_level``."""
        level = self.protocol_level if version is None else version
        _check_version(level)
        v5 = level == 5
        name = b"\x00\x06MQIsdp" if level == 3 else b"\x00\x04MQTT"
        flags = 0x02 if self.clean_start else 0
        if not 0 <= self.keep_alive <= 0xFFFF:
            raise malformed(f"keep alive {self.keep_alive} out of range")
        parts = [name, b"", pack_u16(self.keep_alive)]
        if v5:
            parts.append(encode_properties(self.properties, PacketType.CONNECT))
        parts.append(encode_string(self.client_id))
        will = self.will
        if will is not None:
            if will.qos not in (0, 1, 2):
                raise malformed(f"will QoS {will.qos}")
            validate_topic_name(will.topic)
            flags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
            if v5:
                parts.append(encode_properties(will.properties, WILL))
            parts.append(encode_string(will.topic))
            parts.append(encode_binary(bytes(will.payload)))
        if self.username is not None:
            flags |= 0x80
            parts.append(encode_string(self.username))
        if self.password is not None:
            if self.username is None and not v5:
                raise protocol_error("password without user name before MQTT 5.0")
            flags |= 0x40
            parts.append(encode_binary(bytes(self.password)))
        parts[1] = bytes((level, flags))
        body = b"".join(parts)
        return fixed_header(0x10, len(body)) + body


class Connack(Packet):
    """CONNACK (section 3.2). ``reason_code`` is an MQTT 5.0 code, mapped for 3.1.1."""

    __slots__ = ("properties", "reason_code", "session_present")
    type = PacketType.CONNACK
    _fields = ("reason_code", "session_present", "properties")

    def __init__(
        self,
        reason_code: int = ReasonCode.SUCCESS,
        session_present: bool = False,
        properties: Properties | None = None,
    ) -> None:
        self.reason_code = reason_code
        self.session_present = session_present
        self.properties = properties if properties is not None else new_properties()

    def encode(self, version: int) -> bytes:
        _check_version(version)
        _check_code(self.reason_code, CONNACK_CODES, "CONNACK")
        # [MQTT-3.2.2-6] a refusal never has session present; 3.1 has no flag.
        present = 1 if self.session_present and self.reason_code == 0 else 0
        if version == 5:
            props = encode_properties(self.properties, PacketType.CONNACK)
            body = bytes((present, self.reason_code)) + props
            return fixed_header(0x20, len(body)) + body
        code = connack_return_code(self.reason_code)
        if version == 3:
            present = 0
        return bytes((0x20, 2, present if code == ConnackReturnCode.ACCEPTED else 0, code))


class Publish(Packet):
    """PUBLISH (section 3.3). ``packet_id`` is 0 for QoS 0.

    In 5.0 an empty ``topic`` is allowed when ``properties.topic_alias`` is
    set; resolving aliases is the session's job.
    """

    __slots__ = ("dup", "packet_id", "payload", "properties", "qos", "retain", "topic")
    type = PacketType.PUBLISH
    _fields = ("topic", "payload", "qos", "retain", "dup", "packet_id", "properties")

    def __init__(
        self,
        topic: str,
        payload: bytes = b"",
        qos: int = 0,
        retain: bool = False,
        dup: bool = False,
        packet_id: int = 0,
        properties: Properties | None = None,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packet_id = packet_id
        self.properties = properties if properties is not None else new_properties()

    def encode(self, version: int) -> bytes:
        topic = self.topic
        if not topic:
            if version != 5 or self.properties.topic_alias is None:
                raise protocol_error("empty topic name without a topic alias")
        elif "\x00" in topic or "+" in topic or "#" in topic:
            raise malformed(f"wildcard or U+0000 in topic name {topic!r}")
        try:
            raw = topic.encode()
        except UnicodeEncodeError:
            raise malformed("topic contains a surrogate code point") from None
        tlen = len(raw)
        if tlen > 0xFFFF:
            raise malformed("topic longer than 65535 bytes")
        qos = self.qos
        payload = self.payload
        b0 = 0x30 | qos << 1
        if self.retain:
            b0 |= 1
        if qos:
            if qos > 2:
                raise malformed(f"QoS {qos}")
            pid = _check_packet_id(self.packet_id)
            if self.dup:
                b0 |= 8
        elif self.dup or qos < 0:
            raise malformed("DUP set on a QoS 0 PUBLISH" if self.dup else f"QoS {qos}")
        else:
            pid = b""
        if version == 5:
            props = (
                _EMPTY_PROPS
                if not self.properties.__dict__
                else encode_properties(self.properties, PacketType.PUBLISH)
            )
        elif version == 4 or version == 3:
            props = b""
        else:
            raise MQTTError(ReasonCode.UNSUPPORTED_PROTOCOL_VERSION, f"no MQTT version {version}")
        length = 2 + tlen + len(pid) + len(props) + len(payload)
        if length < 0x80:
            return b"".join((bytes((b0, length)), pack_u16(tlen), raw, pid, props, payload))
        return b"".join((fixed_header(b0, length), pack_u16(tlen), raw, pid, props, payload))


class AckPacket(Packet):
    """PUBACK, PUBREC, PUBREL and PUBCOMP: a packet identifier and a reason code."""

    __slots__ = ("packet_id", "properties", "reason_code")
    _fields = ("packet_id", "reason_code", "properties")
    _first: ClassVar[int]
    _codes: ClassVar[frozenset[ReasonCode]]

    def __init__(
        self,
        packet_id: int,
        reason_code: int = ReasonCode.SUCCESS,
        properties: Properties | None = None,
    ) -> None:
        self.packet_id = packet_id
        self.reason_code = reason_code
        self.properties = properties if properties is not None else new_properties()

    def encode(self, version: int) -> bytes:
        pid = _check_packet_id(self.packet_id)
        code = self.reason_code
        if version != 5:
            _check_version(version)
            return bytes((self._first, 2)) + pid
        if not self.properties.__dict__ or not self.properties:
            if code == 0:
                return bytes((self._first, 2)) + pid
            _check_code(code, self._codes, type(self).__name__.upper())
            return bytes((self._first, 3)) + pid + bytes((code,))
        _check_code(code, self._codes, type(self).__name__.upper())
        body = pid + bytes((code,)) + encode_properties(self.properties, self.type)
        return fixed_header(self._first, len(body)) + body


class Puback(AckPacket):
    """PUBACK (section 3.4): the answer to a QoS 1 PUBLISH."""

    __slots__ = ()
    type = PacketType.PUBACK
    _first = 0x40
    _codes = PUBACK_CODES


class Pubrec(AckPacket):
    """PUBREC (section 3.5): first answer to a QoS 2 PUBLISH."""

    __slots__ = ()
    type = PacketType.PUBREC
    _first = 0x50
    _codes = PUBACK_CODES


class Pubrel(AckPacket):
    """PUBREL (section 3.6): the release of a QoS 2 message (fixed header flags 0010)."""

    __slots__ = ()
    type = PacketType.PUBREL
    _first = 0x62
    _codes = PUBREL_CODES


class Pubcomp(AckPacket):
    """PUBCOMP (section 3.7): the end of a QoS 2 exchange."""

    __slots__ = ()
    type = PacketType.PUBCOMP
    _first = 0x70
    _codes = PUBREL_CODES


class Subscription:
    """One topic filter of a SUBSCRIBE with its options (section 3.8.3.1).

    ``topic_filter`` is the whole filter, ``$share/name/`` included; use
    :func:`gateway.mqtt.filters.parse_filter` to split it.
    """

    __slots__ = ("no_local", "qos", "retain_as_published", "retain_handling", "topic_filter")

    def __init__(
        self,
        topic_filter: str,
        qos: int = 0,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
    ) -> None:
        self.topic_filter = topic_filter
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling

    def _key(self) -> tuple[Any, ...]:
        return (
            self.topic_filter,
            self.qos,
            self.no_local,
            self.retain_as_published,
            self.retain_handling,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Subscription):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            "Subscription({!r}, qos={}, no_local={}, retain_as_published={}, "
            "retain_handling={})".format(*self._key())
        )

    def options_byte(self, version: int) -> int:
        """The subscription options byte; in 3.1.1 only the QoS may be set."""
        if self.qos not in (0, 1, 2):
            raise malformed(f"subscription QoS {self.qos}")
        if version != 5:
            if self.no_local or self.retain_as_published or self.retain_handling:
                raise protocol_error("subscription options other than QoS before MQTT 5.0")
            return self.qos
        if self.retain_handling not in (0, 1, 2):
            raise protocol_error(f"retain handling {self.retain_handling}")
        return (
            self.qos
            | (4 if self.no_local else 0)
            | (8 if self.retain_as_published else 0)
            | self.retain_handling << 4
        )


class Subscribe(Packet):
    """SUBSCRIBE (section 3.8): at least one filter with its options."""

    __slots__ = ("packet_id", "properties", "subscriptions")
    type = PacketType.SUBSCRIBE
    _fields = ("packet_id", "subscriptions", "properties")

    def __init__(
        self,
        packet_id: int,
        subscriptions: Iterable[Subscription],
        properties: Properties | None = None,
    ) -> None:
        self.packet_id = packet_id
        self.subscriptions = list(subscriptions)
        self.properties = properties if properties is not None else new_properties()

    def encode(self, version: int) -> bytes:
        _check_version(version)
        if not self.subscriptions:
            raise protocol_error("SUBSCRIBE without a topic filter")
        parts = [_check_packet_id(self.packet_id)]
        if version == 5:
            parts.append(encode_properties(self.properties, PacketType.SUBSCRIBE))
        for sub in self.subscriptions:
            shared = parse_filter(sub.topic_filter, version)
            if sub.no_local and shared.share_name is not None:
                raise protocol_error("no local on a shared subscription")
            parts.append(encode_string(sub.topic_filter))
            parts.append(bytes((sub.options_byte(version),)))
        body = b"".join(parts)
        return fixed_header(0x82, len(body)) + body


class Suback(Packet):
    """SUBACK (section 3.9): one reason code per filter (granted QoS or failure)."""

    __slots__ = ("packet_id", "properties", "reason_codes")
    type = PacketType.SUBACK
    _fields = ("packet_id", "reason_codes", "properties")

    def __init__(
        self,
        packet_id: int,
        reason_codes: Iterable[int],
        properties: Properties | None = None,
    ) -> None:
        self.packet_id = packet_id
        self.reason_codes = list(reason_codes)
        self.properties = properties if properties is not None else new_properties()

    def encode(self, version: int) -> bytes:
        _check_version(version)
        parts = [_check_packet_id(self.packet_id)]
        if not self.reason_codes:
            raise protocol_error("SUBACK without a reason code")
        for code in self.reason_codes:
            _check_code(code, SUBACK_CODES, "SUBACK")
        if version == 5:
            parts.append(encode_properties(self.properties, PacketType.SUBACK))
            parts.append(bytes(self.reason_codes))
        else:
            parts.append(bytes(suback_return_code(c) for c in self.reason_codes))
        body = b"".join(parts)
        return fixed_header(0x90, len(body)) + body


class Unsubscribe(Packet):
    """UNSUBSCRIBE (section 3.10): at least one topic filter."""

    __slots__ = ("packet_id", "properties", "topic_filters")
    type = PacketType.UNSUBSCRIBE
    _fields = ("packet_id", "topic_filters", "properties")

    def __init__(
        self,
        packet_id: int,
        topic_filters: Iterable[str],
        properties: Properties | None = None,
    ) -> None:
        self.packet_id = packet_id
        self.topic_filters = list(topic_filters)
        self.properties = properties if properties is not None else new_properties()

    def encode(self, version: int) -> bytes:
        _check_version(version)
        if not self.topic_filters:
            raise protocol_error("UNSUBSCRIBE without a topic filter")
        parts = [_check_packet_id(self.packet_id)]
        if version == 5:
            parts.append(encode_properties(self.properties, PacketType.UNSUBSCRIBE))
        for topic_filter in self.topic_filters:
            parse_filter(topic_filter, version)
            parts.append(encode_string(topic_filter))
        body = b"".join(parts)
        return fixed_header(0xA2, len(body)) + body


class Unsuback(Packet):
    """UNSUBACK (section 3.11). 5.0 has one reason code per filter; 3.1.1 has none."""

    __slots__ = ("packet_id", "properties", "reason_codes")
    type = PacketType.UNSUBACK
    _fields = ("packet_id", "reason_codes", "properties")

    def __init__(
        self,
        packet_id: int,
        reason_codes: Iterable[int] = (),
        properties: Properties | None = None,
    ) -> None:
        self.packet_id = packet_id
        self.reason_codes = list(reason_codes)
        self.properties = properties if properties is not None else new_properties()

    def encode(self, version: int) -> bytes:
        _check_version(version)
        pid = _check_packet_id(self.packet_id)
        if version != 5:
            return b"\xb0\x02" + pid
        if not self.reason_codes:
            raise protocol_error("UNSUBACK without a reason code")
        for code in self.reason_codes:
            _check_code(code, UNSUBACK_CODES, "UNSUBACK")
        body = (
            pid + encode_properties(self.properties, PacketType.UNSUBACK) + bytes(self.reason_codes)
        )
        return fixed_header(0xB0, len(body)) + body


class Pingreq(Packet):
    """PINGREQ (section 3.12)."""

    __slots__ = ()
    type = PacketType.PINGREQ

    def encode(self, version: int) -> bytes:
        return b"\xc0\x00"


class Pingresp(Packet):
    """PINGRESP (section 3.13)."""

    __slots__ = ()
    type = PacketType.PINGRESP

    def encode(self, version: int) -> bytes:
        return b"\xd0\x00"


class Disconnect(Packet):
    """DISCONNECT (section 3.14). 3.1.1 has no reason code or properties."""

    __slots__ = ("properties", "reason_code")
    type = PacketType.DISCONNECT
    _fields = ("reason_code", "properties")

    def __init__(
        self,
        reason_code: int = ReasonCode.NORMAL_DISCONNECTION,
        properties: Properties | None = None,
    ) -> None:
        self.reason_code = reason_code
        self.properties = properties if properties is not None else new_properties()

    def encode(self, version: int) -> bytes:
        _check_version(version)
        if version != 5:
            return b"\xe0\x00"
        _check_code(self.reason_code, DISCONNECT_CODES, "DISCONNECT")
        if not self.properties:
            if self.reason_code == 0:
                return b"\xe0\x00"
            return bytes((0xE0, 1, self.reason_code))
        body = bytes((self.reason_code,)) + encode_properties(
            self.properties, PacketType.DISCONNECT
        )
        return fixed_header(0xE0, len(body)) + body


class Auth(Packet):
    """AUTH (section 3.15), MQTT 5.0 only: extended authentication exchange."""

    __slots__ = ("properties", "reason_code")
    type = PacketType.AUTH
    _fields = ("reason_code", "properties")

    def __init__(
        self,
        reason_code: int = ReasonCode.SUCCESS,
        properties: Properties | None = None,
    ) -> None:
        self.reason_code = reason_code
        self.properties = properties if properties is not None else new_properties()

    def encode(self, version: int) -> bytes:
        if version != 5:
            raise protocol_error("AUTH exists only in MQTT 5.0")
        _check_code(self.reason_code, AUTH_CODES, "AUTH")
        if self.reason_code == 0 and not self.properties:
            return b"\xf0\x00"
        body = bytes((self.reason_code,)) + encode_properties(self.properties, PacketType.AUTH)
        return fixed_header(0xF0, len(body)) + body


#: The packet classes by type number.
PACKET_CLASSES: dict[int, type[Packet]] = {
    cls.type: cls
    for cls in (
        Connect,
        Connack,
        Publish,
        Puback,
        Pubrec,
        Pubrel,
        Pubcomp,
        Subscribe,
        Suback,
        Unsubscribe,
        Unsuback,
        Pingreq,
        Pingresp,
        Disconnect,
        Auth,
    )
}
