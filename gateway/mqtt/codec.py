"""The sans-I/O MQTT decoder: bytes in, packets out (MQTT 3.1, 3.1.1 and 5.0).

One :class:`Decoder` per connection. ``feed(data)`` takes bytes as they come,
in any chunking, and returns the complete packets they finish; encoding is
``packet.encode(version)`` (see :mod:`gateway.mqtt.packets`).

Rules it owns:

* Framing: type and flags, remaining length (a variable byte integer of at
  most 4 bytes, minimally encoded). The whole packet size is checked against
  ``max_packet_size`` as soon as the fixed header is complete, before any of
  the body is buffered, so a hostile length costs nothing (0x95).
* The version is fixed by the CONNECT: a server-side decoder accepts only a
  CONNECT first [MQTT-3.1.0-1] and no second one [MQTT-3.1.0-2], takes its
  protocol level (3, 4 or 5) as ``version``, and parses every later packet
  for it. A CONNECT always ends the batch ``feed`` returns: the bytes after
  it stay buffered until the next ``feed`` call (``feed(b"")`` will do), so
  the session can authenticate and set ``max_packet_size`` first.
* Which packets a side may receive: a server decoder refuses CONNACK,
  SUBACK, ... and a client decoder (``server=False``, version given) the
  reverse. AUTH exists only in 5.0.
* Every field of every packet, as chapter 3 of each specification states it.

With ``feed_grouped`` (what a broker wants), consecutive bare QoS 0
PUBLISHes on one topic (no RETAIN, no DUP, no properties) come out as one
:class:`BarePublishes` instead of one ``Publish`` each: the bulk of traffic,
validated once per run of the same topic and handed on as a list of payloads.

Any violation raises :class:`~gateway.mqtt.errors.MQTTError` carrying the
reason code to answer with; the decoder is then dead and raises the same
error again on every later call. No other exception escapes ``feed``.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.mqtt.errors import MQTTError, malformed, protocol_error
from gateway.mqtt.filters import parse_filter, validate_topic_name
from gateway.mqtt.packets import (
    AckPacket,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from gateway.mqtt.properties import WILL, PacketType, Properties, read_properties
from gateway.mqtt.reason_codes import (
    AUTH_CODES,
    CONNACK_CODES,
    DISCONNECT_CODES,
    PUBACK_CODES,
    PUBREL_CODES,
    SUBACK_CODES,
    SUBACK_FAILURE,
    UNSUBACK_CODES,
    ReasonCode,
    reason_from_connack_return_code,
)
from gateway.mqtt.wire import VARINT_MAX, read_binary, read_string, read_u16

#: The largest packet MQTT can frame: 1 type byte, 4 length bytes, the body.
MAX_PACKET_SIZE = 1 + 4 + VARINT_MAX

_new_properties = Properties.__new__
_SERVER_RECEIVES = frozenset({1, 3, 4, 5, 6, 7, 8, 10, 12, 14, 15})
_CLIENT_RECEIVES = frozenset({2, 3, 4, 5, 6, 7, 9, 11, 13, 14, 15})
# Required fixed-header flags per type [MQTT-2.2.2-1], [MQTT-2.2.2-2];
# PUBLISH (3) has its own.
_FLAGS = (-1, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0)

Parser = Callable[["Decoder", int, bytes, int, int], Packet]


class BarePublishes:
    """Consecutive QoS 0 PUBLISHes on one topic without RETAIN, DUP or properties."""

    __slots__ = ("payloads", "raw_topic", "topic")

    def __init__(self, topic: str, raw_topic: bytes, payloads: list[bytes]) -> None:
        self.topic = topic
        self.raw_topic = raw_topic
        """The topic as it came on the wire (UTF-8), to spot the next one cheaply."""
        self.payloads = payloads

    def publishes(self) -> list[Publish]:
        """The run as ``Publish`` packets."""
        return [Publish(self.topic, payload) for payload in self.payloads]

    def __repr__(self) -> str:
        return f"BarePublishes({self.topic!r}, {len(self.payloads)} payloads)"


class Decoder:
    """Incremental MQTT packet decoder for one connection (see the module docstring).

    ``server=True`` (the default) decodes what a client sends; ``version``
    starts as ``None`` and is set by the CONNECT. ``server=False`` decodes
    what a server sends and needs ``version``. Both ``version`` and
    ``max_packet_size`` may be changed between calls to :meth:`feed`.
    """

    __slots__ = ("_error", "_need", "_partial", "max_packet_size", "server", "version")

    def __init__(
        self,
        *,
        server: bool = True,
        version: int | None = None,
        max_packet_size: int = MAX_PACKET_SIZE,
    ) -> None:
        if version not in (None, 3, 4, 5):
            raise ValueError(f"no MQTT version {version}")
        if not server and version is None:
            raise ValueError("a client-side decoder needs the version it connected with")
        self.server = server
        self.version = version
        self.max_packet_size = max_packet_size
        self._partial = bytearray()
        self._need = 0
        self._error: MQTTError | None = None

    @property
    def buffered(self) -> int:
        """How many received bytes wait for the rest of their packet."""
        return len(self._partial)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Take received bytes; return the packets completed, in order.

        Raises MQTTError on the first violation; the decoder stays failed.
        """
        return self._feed(data, False)  # type: ignore[return-value]

    def feed_grouped(self, data: bytes | bytearray | memoryview) -> list[Packet | BarePublishes]:
        """``feed``, with runs of bare QoS 0 PUBLISHes on one topic as ``BarePublishes``."""
        return self._feed(data, True)

    def _feed(
        self, data: bytes | bytearray | memoryview, group: bool
    ) -> list[Packet | BarePublishes]:
        if self._error is not None:
            self._error.preceding = []
            raise self._error
        partial = self._partial
        if partial:
            partial += data
            if len(partial) < self._need:
                return []
            buf = bytes(partial)
            partial.clear()
        elif type(data) is bytes:
            buf = data
        else:
            buf = bytes(data)
        out: list[Packet | BarePublishes] = []
        try:
            return self._decode(buf, group, out)
        except MQTTError as exc:
            self._error = exc
            exc.preceding = out  # the packets completed before the violation
            partial.clear()
            raise

    def _decode(
        self, data: bytes, group: bool, out: list[Packet | BarePublishes]
    ) -> list[Packet | BarePublishes]:
        append = out.append
        n = len(data)
        pos = 0
        need = 0
        version = self.version
        v5 = version == 5
        server = self.server
        limit = self.max_packet_size
        new_props = _new_properties
        props_class = Properties
        group = group and version is not None
        run: BarePublishes | None = None
        while pos < n:
            if pos + 1 == n:
                need = 2
                break
            b0 = data[pos]
            length = data[pos + 1]
            if length < 0x80:
                start = pos + 2
            else:
                length, start = _long_length(data, pos + 1, n)
                if start < 0:
                    need = n - pos + 1
                    break
            end = start + length
            if end - pos > limit:
                raise MQTTError(
                    ReasonCode.PACKET_TOO_LARGE,
                    f"packet of {end - pos} bytes exceeds the maximum packet size {limit}",
                )
            if end > n:
                need = end - pos
                break
            if b0 >> 4 == 3 and version is not None:
                # PUBLISH, the bulk of traffic, parsed inline (section 3.3).
                p = start + 2
                if p > end:
                    raise malformed("PUBLISH shorter than its topic length")
                tend = p + (data[start] << 8 | data[start + 1])
                if tend > end:
                    raise malformed("PUBLISH topic longer than the packet")
                if b0 == 0x30 and group and (not v5 or (tend < end and not data[tend])):
                    # Bare QoS 0: the topic is checked once per run of one topic.
                    raw = data[p:tend]
                    body = tend + 1 if v5 else tend
                    if run is not None and out[-1] is run and raw == run.raw_topic:
                        run.payloads.append(data[body:end])
                    else:
                        try:
                            topic = raw.decode()
                        except UnicodeDecodeError:
                            raise malformed("PUBLISH topic is not well-formed UTF-8") from None
                        if not topic or "\x00" in topic or "+" in topic or "#" in topic:
                            _check_publish_topic(topic, new_props(props_class), v5)
                        run = BarePublishes(topic, raw, [data[body:end]])
                        append(run)
                    pos = end
                    continue
                qos = b0 >> 1 & 3
                try:
                    topic = data[p:tend].decode()
                except UnicodeDecodeError:
                    raise malformed("PUBLISH topic is not well-formed UTF-8") from None
                if qos:
                    if qos == 3:
                        raise malformed("PUBLISH with QoS 3")  # [MQTT-3.3.1-4]
                    p = tend + 2
                    if p > end:
                        raise malformed("PUBLISH too short for its packet identifier")
                    pid = data[tend] << 8 | data[tend + 1]
                    if not pid:
                        raise protocol_error("PUBLISH with packet identifier 0")
                else:
                    if b0 & 8:
                        raise malformed("DUP set on a QoS 0 PUBLISH")  # [MQTT-3.3.1-2]
                    pid = 0
                    p = tend
                if v5:
                    if p < end and not data[p]:
                        props = new_props(props_class)
                        p += 1
                    else:
                        props, p = read_properties(data, p, end, 3)
                        if server and props.subscription_identifiers:
                            raise protocol_error(
                                "subscription identifier in a PUBLISH from a client"
                            )
                else:
                    props = new_props(props_class)
                if not topic or "\x00" in topic or "+" in topic or "#" in topic:
                    _check_publish_topic(topic, props, v5)
                append(Publish(topic, data[p:end], qos, b0 & 1 == 1, b0 & 8 == 8, pid, props))
                pos = end
                continue
            kind = b0 >> 4
            if kind not in (_SERVER_RECEIVES if server else _CLIENT_RECEIVES):
                if kind == 0:
                    raise malformed("reserved packet type 0")
                raise protocol_error(
                    f"{PacketType(kind).name} is not sent to a {'server' if server else 'client'}"
                )
            if b0 & 15 != _FLAGS[kind] and kind != 3:
                raise malformed(f"bad fixed header flags 0x{b0 & 15:X} for {PacketType(kind).name}")
            if version is None:
                if kind != 1:
                    raise protocol_error("the first packet must be CONNECT")
                append(_parse_connect(self, b0, data, start, end))
                pos = end
                break  # let the session act on the CONNECT first
            if kind == 1:
                raise protocol_error("second CONNECT")
            if kind == 15 and not v5:
                raise malformed("AUTH before MQTT 5.0")
            append(_PARSERS[kind](self, b0, data, start, end))
            pos = end
        if pos < n:
            self._partial += data[pos:]
            self._need = need
        return out


def _long_length(data: bytes, pos: int, n: int) -> tuple[int, int]:
    """A multi-byte remaining length at ``pos``: (length, body start), or (0, -1) if cut."""
    value = 0
    shift = 0
    for i in range(pos, pos + 4):
        if i >= n:
            return 0, -1
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if not byte:
                raise malformed("remaining length not minimally encoded")
            return value, i + 1
        shift += 7
    raise malformed("remaining length longer than 4 bytes")


def _check_publish_topic(topic: str, props: Properties, v5: bool) -> None:
    if topic:
        if "\x00" in topic:
            raise malformed("PUBLISH topic contains U+0000")
        validate_topic_name(topic)  # [MQTT-3.3.2-2]
    elif not v5 or props.topic_alias is None:
        raise protocol_error("PUBLISH with an empty topic and no topic alias")


def _parse_connect(dec: Decoder, b0: int, data: bytes, pos: int, end: int) -> Connect:
    """CONNECT (3.1.1 section 3.1, 5.0 section 3.1), at any protocol level."""
    name, pos = read_string(data, pos, end)
    if pos >= end:
        raise malformed("CONNECT ends after the protocol name")
    level = data[pos]
    if (name, level) not in (("MQTT", 4), ("MQTT", 5), ("MQIsdp", 3)):
        # [MQTT-3.1.2-2]: answered with CONNACK 0x01 / 0x84.
        raise MQTTError(
            ReasonCode.UNSUPPORTED_PROTOCOL_VERSION, f"unsupported protocol {name!r} level {level}"
        )
    if pos + 4 > end:
        raise malformed("CONNECT variable header truncated")
    flags = data[pos + 1]
    keep_alive = data[pos + 2] << 8 | data[pos + 3]
    pos += 4
    if flags & 0x01:
        raise malformed("CONNECT reserved flag set")  # [MQTT-3.1.2-3]
    v5 = level == 5
    if v5:
        props, pos = read_properties(data, pos, end, PacketType.CONNECT)
    else:
        props = _new_properties(Properties)
    client_id, pos = read_string(data, pos, end)
    will_qos = flags >> 3 & 3
    will_retain = flags & 0x20 == 0x20
    will = None
    if flags & 0x04:
        if will_qos == 3:
            raise malformed("Will QoS 3")  # [MQTT-3.1.2-14]
        if v5:
            will_props, pos = read_properties(data, pos, end, WILL)
        else:
            will_props = _new_properties(Properties)
        will_topic, pos = read_string(data, pos, end)
        validate_topic_name(will_topic)
        will_payload, pos = read_binary(data, pos, end)
        will = Will(will_topic, will_payload, will_qos, will_retain, will_props)
    elif will_qos or will_retain:
        raise malformed("Will QoS or retain without the Will flag")  # [MQTT-3.1.2-11..15]
    username = None
    password = None
    if flags & 0x80:
        username, pos = read_string(data, pos, end)
    if flags & 0x40:
        if username is None and not v5:
            raise malformed("password without user name")  # [MQTT-3.1.2-22]
        password, pos = read_binary(data, pos, end)
    if pos != end:
        raise malformed("bytes after the end of the CONNECT payload")
    dec.version = level
    return Connect(
        client_id, flags & 0x02 == 0x02, keep_alive, username, password, will, level, props
    )


def _parse_connack(dec: Decoder, b0: int, data: bytes, pos: int, end: int) -> Connack:
    if end - pos < 2:
        raise malformed("CONNACK shorter than 2 bytes")
    ack_flags = data[pos]
    code = data[pos + 1]
    if dec.version == 3:
        ack_flags = 0  # MQTT 3.1: a reserved byte, with no session present flag
    elif ack_flags & 0xFE:
        raise malformed("CONNACK reserved flags set")  # [MQTT-3.2.2-1]
    if dec.version == 5:
        if code not in CONNACK_CODES:
            raise malformed(f"CONNACK reason code 0x{code:02X}")
        props, pos = read_properties(data, pos + 2, end, PacketType.CONNACK)
    else:
        if end - pos != 2:
            raise malformed("CONNACK remaining length is not 2")
        mapped = reason_from_connack_return_code(code)
        if mapped is None:
            raise malformed(f"CONNACK return code {code}")
        code = mapped
        props = _new_properties(Properties)
        pos += 2
    if ack_flags and code:
        raise protocol_error("session present on a refused connection")
    if pos != end:
        raise malformed("bytes after the end of the CONNACK")
    return Connack(code, ack_flags == 1, props)


def _ack_parser(cls: type[AckPacket], codes: frozenset[ReasonCode]) -> Parser:
    kind = cls.type

    def parse(dec: Decoder, b0: int, data: bytes, pos: int, end: int) -> Packet:
        size = end - pos
        if size < 2:
            raise malformed(f"{kind.name} shorter than 2 bytes")
        pid = data[pos] << 8 | data[pos + 1]
        if not pid:
            raise protocol_error(f"{kind.name} with packet identifier 0")
        if size == 2:
            return cls(pid, 0, _new_properties(Properties))
        if dec.version != 5:
            raise malformed(f"{kind.name} remaining length is not 2")
        code = data[pos + 2]
        if code not in codes:
            raise malformed(f"{kind.name} reason code 0x{code:02X}")
        if size == 3:
            return cls(pid, code, _new_properties(Properties))
        props, pos = read_properties(data, pos + 3, end, kind)
        if pos != end:
            raise malformed(f"bytes after the end of the {kind.name}")
        return cls(pid, code, props)

    return parse


def _read_packet_id(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    pid, pos = read_u16(data, pos, end)
    if not pid:
        raise protocol_error(f"{what} with packet identifier 0")  # [MQTT-2.3.1-1]
    return pid, pos


def _parse_subscribe(dec: Decoder, b0: int, data: bytes, pos: int, end: int) -> Subscribe:
    version = dec.version or 4
    pid, pos = _read_packet_id(data, pos, end, "SUBSCRIBE")
    if version == 5:
        props, pos = read_properties(data, pos, end, PacketType.SUBSCRIBE)
    else:
        props = _new_properties(Properties)
    subs: list[Subscription] = []
    while pos < end:
        topic_filter, pos = read_string(data, pos, end)
        if pos >= end:
            raise malformed("SUBSCRIBE filter without options")
        options = data[pos]
        pos += 1
        shared = parse_filter(topic_filter, version)
        qos = options & 3
        if qos == 3:
            raise malformed("SUBSCRIBE with QoS 3")  # [MQTT-3.8.3-4] / [MQTT-3-8.3-4]
        if version == 5:
            if options & 0xC0:
                raise malformed("SUBSCRIBE reserved option bits set")  # [MQTT-3.8.3-5]
            retain_handling = options >> 4 & 3
            if retain_handling == 3:
                raise protocol_error("retain handling 3")
            no_local = options & 4 == 4
            if no_local and shared.share_name is not None:
                raise protocol_error("no local on a shared subscription")  # [MQTT-3.8.3-4]
            subs.append(
                Subscription(topic_filter, qos, no_local, options & 8 == 8, retain_handling)
            )
        else:
            if options & 0xFC:
                raise malformed("SUBSCRIBE reserved option bits set")
            subs.append(Subscription(topic_filter, qos))
    if not subs:
        raise protocol_error("SUBSCRIBE without a topic filter")  # [MQTT-3.8.3-3]
    return Subscribe(pid, subs, props)


def _parse_suback(dec: Decoder, b0: int, data: bytes, pos: int, end: int) -> Suback:
    pid, pos = _read_packet_id(data, pos, end, "SUBACK")
    if dec.version == 5:
        props, pos = read_properties(data, pos, end, PacketType.SUBACK)
        codes = list(data[pos:end])
        for code in codes:
            if code not in SUBACK_CODES:
                raise malformed(f"SUBACK reason code 0x{code:02X}")
    else:
        props = _new_properties(Properties)
        codes = list(data[pos:end])
        for code in codes:
            if code > 2 and code != SUBACK_FAILURE:
                raise malformed(f"SUBACK return code 0x{code:02X}")
    if not codes:
        raise protocol_error("SUBACK without a reason code")
    return Suback(pid, codes, props)


def _parse_unsubscribe(dec: Decoder, b0: int, data: bytes, pos: int, end: int) -> Unsubscribe:
    version = dec.version or 4
    pid, pos = _read_packet_id(data, pos, end, "UNSUBSCRIBE")
    if version == 5:
        props, pos = read_properties(data, pos, end, PacketType.UNSUBSCRIBE)
    else:
        props = _new_properties(Properties)
    filters: list[str] = []
    while pos < end:
        topic_filter, pos = read_string(data, pos, end)
        parse_filter(topic_filter, version)
        filters.append(topic_filter)
    if not filters:
        raise protocol_error("UNSUBSCRIBE without a topic filter")  # [MQTT-3.10.3-2]
    return Unsubscribe(pid, filters, props)


def _parse_unsuback(dec: Decoder, b0: int, data: bytes, pos: int, end: int) -> Unsuback:
    pid, pos = _read_packet_id(data, pos, end, "UNSUBACK")
    if dec.version != 5:
        if pos != end:
            raise malformed("UNSUBACK remaining length is not 2")
        return Unsuback(pid, (), _new_properties(Properties))
    props, pos = read_properties(data, pos, end, PacketType.UNSUBACK)
    codes = list(data[pos:end])
    if not codes:
        raise protocol_error("UNSUBACK without a reason code")
    for code in codes:
        if code not in UNSUBACK_CODES:
            raise malformed(f"UNSUBACK reason code 0x{code:02X}")
    return Unsuback(pid, codes, props)


def _parse_empty(cls: type[Pingreq] | type[Pingresp]) -> Parser:
    def parse(dec: Decoder, b0: int, data: bytes, pos: int, end: int) -> Packet:
        if pos != end:
            raise malformed(f"{cls.type.name} with a non-zero remaining length")
        return cls()

    return parse


def _parse_disconnect(dec: Decoder, b0: int, data: bytes, pos: int, end: int) -> Disconnect:
    if dec.version != 5:
        if not dec.server:
            raise protocol_error("DISCONNECT from a server before MQTT 5.0")
        if pos != end:
            raise malformed("DISCONNECT with a non-zero remaining length")
        return Disconnect(0, _new_properties(Properties))
    if pos == end:
        return Disconnect(0, _new_properties(Properties))
    code = data[pos]
    if code not in DISCONNECT_CODES:
        raise malformed(f"DISCONNECT reason code 0x{code:02X}")
    if pos + 1 == end:
        return Disconnect(code, _new_properties(Properties))
    props, pos = read_properties(data, pos + 1, end, PacketType.DISCONNECT)
    if pos != end:
        raise malformed("bytes after the end of the DISCONNECT")
    return Disconnect(code, props)


def _parse_auth(dec: Decoder, b0: int, data: bytes, pos: int, end: int) -> Auth:
    if pos == end:
        return Auth(0, _new_properties(Properties))
    code = data[pos]
    if code not in AUTH_CODES:
        raise malformed(f"AUTH reason code 0x{code:02X}")
    props, pos = read_properties(data, pos + 1, end, PacketType.AUTH)
    if pos != end:
        raise malformed("bytes after the end of the AUTH")
    return Auth(code, props)


def _parse_publish(dec: Decoder, b0: int, data: bytes, pos: int, end: int) -> Packet:
    # Only reached through the inline path; kept so the table is complete.
    raise AssertionError("PUBLISH is decoded inline")


_PARSERS: tuple[Parser, ...] = (
    _parse_publish,  # 0: refused before dispatch
    _parse_connect,
    _parse_connack,
    _parse_publish,
    _ack_parser(Puback, PUBACK_CODES),
    _ack_parser(Pubrec, PUBACK_CODES),
    _ack_parser(Pubrel, PUBREL_CODES),
    _ack_parser(Pubcomp, PUBREL_CODES),
    _parse_subscribe,
    _parse_suback,
    _parse_unsubscribe,
    _parse_unsuback,
    _parse_empty(Pingreq),
    _parse_empty(Pingresp),
    _parse_disconnect,
    _parse_auth,
)
