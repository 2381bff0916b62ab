"""Hypothesis strategies for valid MQTT packets of a given protocol version and direction."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from gateway.mqtt.packets import (
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
from gateway.mqtt.properties import PROPERTY_SPECS, WILL, PacketType, Properties
from gateway.mqtt.reason_codes import (
    AUTH_CODES,
    CONNACK_CODES,
    DISCONNECT_CODES,
    PUBACK_CODES,
    PUBREL_CODES,
    SUBACK_CODES,
    UNSUBACK_CODES,
    ReasonCode,
)

T = PacketType
_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
_LEVEL_CHARS = st.characters(codec="utf-8", exclude_characters="\x00/+#")
text = st.text(_CHARS, max_size=12)
level = st.text(_LEVEL_CHARS, max_size=6)
topic_names = st.lists(level, min_size=1, max_size=4).map("/".join).filter(bool)
binary = st.binary(max_size=12)
packet_ids = st.integers(1, 0xFFFF)


@st.composite
def topic_filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.one_of(level, st.just("+")), min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    result = "/".join(levels)
    return result if result else "+"


_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "payload_format_indicator": st.integers(0, 1),
    "message_expiry_interval": st.integers(0, 0xFFFFFFFF),
    "content_type": text,
    "response_topic": topic_names,
    "correlation_data": binary,
    "subscription_identifiers": st.lists(st.integers(1, 268_435_455), min_size=1, max_size=3),
    "session_expiry_interval": st.integers(0, 0xFFFFFFFF),
    "assigned_client_identifier": text,
    "server_keep_alive": st.integers(0, 0xFFFF),
    "authentication_method": text,
    "authentication_data": binary,
    "request_problem_information": st.integers(0, 1),
    "will_delay_interval": st.integers(0, 0xFFFFFFFF),
    "request_response_information": st.integers(0, 1),
    "response_information": text,
    "server_reference": text,
    "reason_string": text,
    "receive_maximum": st.integers(1, 0xFFFF),
    "topic_alias_maximum": st.integers(0, 0xFFFF),
    "topic_alias": st.integers(1, 0xFFFF),
    "maximum_qos": st.integers(0, 1),
    "retain_available": st.integers(0, 1),
    "user_properties": st.lists(st.tuples(text, text), min_size=1, max_size=3),
    "maximum_packet_size": st.integers(1, 0xFFFFFFFF),
    "wildcard_subscription_available": st.integers(0, 1),
    "subscription_identifier_available": st.integers(0, 1),
    "shared_subscription_available": st.integers(0, 1),
}


@st.composite
def properties(
    draw: st.DrawFn, context: int, version: int, exclude: tuple[str, ...] = ()
) -> Properties:
    if version != 5:
        return Properties()
    values: dict[str, Any] = {}
    for spec in PROPERTY_SPECS:
        if context in spec.contexts and spec.name not in exclude and draw(st.integers(0, 4)) == 0:
            value = draw(_VALUES[spec.name])
            if spec.name == "subscription_identifiers" and context != T.PUBLISH:
                value = value[:1]
            values[spec.name] = value
    if "authentication_data" in values:
        values.setdefault("authentication_method", "m")
    return Properties(**values)


def codes(allowed: frozenset[ReasonCode]) -> st.SearchStrategy[int]:
    return st.sampled_from(sorted({int(c) for c in allowed}))


@st.composite
def connects(draw: st.DrawFn, version: int) -> Connect:
    will = None
    if draw(st.booleans()):
        will = Will(
            draw(topic_names),
            draw(binary),
            draw(st.integers(0, 2)),
            draw(st.booleans()),
            draw(properties(WILL, version)),
        )
    username = draw(st.none() | text)
    password = draw(st.none() | binary)
    if username is None and version != 5:
        password = None
    return Connect(
        draw(text),
        draw(st.booleans()),
        draw(st.integers(0, 0xFFFF)),
        username,
        password,
        will,
        version,
        draw(properties(T.CONNECT, version)),
    )


@st.composite
def connacks(draw: st.DrawFn, version: int) -> Connack:
    if version == 5:
        code = draw(codes(CONNACK_CODES))
    else:
        code = draw(st.sampled_from([0, 0x84, 0x85, 0x88, 0x86, 0x87]))
    present = draw(st.booleans()) and code == 0 and version != 3
    return Connack(code, present, draw(properties(T.CONNACK, version)))


@st.composite
def publishes(draw: st.DrawFn, version: int, to_server: bool) -> Publish:
    qos = draw(st.integers(0, 2))
    exclude = ("subscription_identifiers",) if to_server else ()
    props = draw(properties(T.PUBLISH, version, exclude))
    topic = draw(topic_names)
    if props.topic_alias is not None and draw(st.booleans()):
        topic = ""
    return Publish(
        topic,
        draw(st.binary(max_size=300)),
        qos,
        draw(st.booleans()),
        qos > 0 and draw(st.booleans()),
        draw(packet_ids) if qos else 0,
        props,
    )


@st.composite
def acks(draw: st.DrawFn, version: int) -> Packet:
    cls = draw(st.sampled_from([Puback, Pubrec, Pubrel, Pubcomp]))
    allowed = PUBREL_CODES if cls in (Pubrel, Pubcomp) else PUBACK_CODES
    if version != 5:
        return cls(draw(packet_ids))
    return cls(draw(packet_ids), draw(codes(allowed)), draw(properties(cls.type, version)))


@st.composite
def subscribes(draw: st.DrawFn, version: int) -> Subscribe:
    subs = []
    for _ in range(draw(st.integers(1, 3))):
        topic_filter = draw(topic_filters())
        if version == 5 and draw(st.booleans()):
            share = draw(st.text(_LEVEL_CHARS, min_size=1, max_size=5))
            subs.append(
                Subscription(
                    f"$share/{share}/{topic_filter}",
                    draw(st.integers(0, 2)),
                    False,
                    draw(st.booleans()),
                    draw(st.integers(0, 2)),
                )
            )
        elif version == 5:
            subs.append(
                Subscription(
                    topic_filter,
                    draw(st.integers(0, 2)),
                    draw(st.booleans()),
                    draw(st.booleans()),
                    draw(st.integers(0, 2)),
                )
            )
        else:
            subs.append(Subscription(topic_filter, draw(st.integers(0, 2))))
    return Subscribe(draw(packet_ids), subs, draw(properties(T.SUBSCRIBE, version)))


@st.composite
def subacks(draw: st.DrawFn, version: int) -> Suback:
    allowed = (
        SUBACK_CODES
        if version == 5
        else frozenset({ReasonCode(0), ReasonCode(1), ReasonCode(2), ReasonCode(0x80)})
    )
    return Suback(
        draw(packet_ids),
        draw(st.lists(codes(allowed), min_size=1, max_size=4)),
        draw(properties(T.SUBACK, version)),
    )


@st.composite
def unsubscribes(draw: st.DrawFn, version: int) -> Unsubscribe:
    return Unsubscribe(
        draw(packet_ids),
        draw(st.lists(topic_filters(), min_size=1, max_size=3)),
        draw(properties(T.UNSUBSCRIBE, version)),
    )


@st.composite
def unsubacks(draw: st.DrawFn, version: int) -> Unsuback:
    if version != 5:
        return Unsuback(draw(packet_ids))
    return Unsuback(
        draw(packet_ids),
        draw(st.lists(codes(UNSUBACK_CODES), min_size=1, max_size=4)),
        draw(properties(T.UNSUBACK, version)),
    )


@st.composite
def disconnects(draw: st.DrawFn, version: int) -> Disconnect:
    if version != 5:
        return Disconnect()
    return Disconnect(draw(codes(DISCONNECT_CODES)), draw(properties(T.DISCONNECT, version)))


@st.composite
def auths(draw: st.DrawFn) -> Auth:
    return Auth(draw(codes(AUTH_CODES)), draw(properties(T.AUTH, 5)))


def to_server(version: int) -> st.SearchStrategy[Packet]:
    """Packets a client sends after its CONNECT."""
    options: list[st.SearchStrategy[Packet]] = [
        publishes(version, True),
        acks(version),
        subscribes(version),
        unsubscribes(version),
        st.just(Pingreq()),
        disconnects(version),
    ]
    if version == 5:
        options.append(auths())
    return st.one_of(options)


def to_client(version: int) -> st.SearchStrategy[Packet]:
    """Packets a server sends."""
    options: list[st.SearchStrategy[Packet]] = [
        connacks(version),
        publishes(version, False),
        acks(version),
        subacks(version),
        unsubacks(version),
        st.just(Pingresp()),
    ]
    if version == 5:
        options += [disconnects(version), auths()]
    return st.one_of(options)
