"""Data representations, the property table, reason code mapping, and encode-side checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt.errors import MQTTError
from gateway.mqtt.filters import SharedFilter, parse_filter
from gateway.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Puback,
    Publish,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from gateway.mqtt.properties import (
    PROPERTY_SPECS,
    WILL,
    PacketType,
    Properties,
    PropertyType,
    encode_properties,
    read_properties,
)
from gateway.mqtt.reason_codes import (
    ConnackReturnCode,
    ReasonCode,
    connack_return_code,
    reason_from_connack_return_code,
    suback_return_code,
)
from gateway.mqtt.wire import VARINT_MAX, encode_string, encode_varint, read_string, read_varint

R = ReasonCode


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (VARINT_MAX, b"\xff\xff\xff\x7f"),
    ],
)
def test_varint_boundaries(value: int, raw: bytes) -> None:
    # MQTT 5.0 table 1-1 / 3.1.1 table 2.4
    assert encode_varint(value) == raw
    assert read_varint(raw, 0, len(raw)) == (value, len(raw))


@pytest.mark.parametrize("raw", [b"\x80", b"\xff\xff\xff\xff\x01", b"\x80\x00", b"\xff\x80\x00"])
def test_varint_refused(raw: bytes) -> None:
    with pytest.raises(MQTTError) as info:
        read_varint(raw, 0, len(raw))
    assert info.value.reason_code == R.MALFORMED_PACKET


def test_varint_out_of_range_on_encode() -> None:
    for value in (-1, VARINT_MAX + 1):
        with pytest.raises(MQTTError):
            encode_varint(value)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, VARINT_MAX))
def test_varint_round_trip(value: int) -> None:
    raw = encode_varint(value)
    assert read_varint(raw + b"\xff", 0, len(raw) + 1) == (value, len(raw))


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=50))
def test_string_round_trip(text: str) -> None:
    raw = encode_string(text)
    assert read_string(raw, 0, len(raw)) == (text, len(raw))


@pytest.mark.parametrize("text", ["a\x00", "\ud800", "x" * 65536])
def test_string_refused_on_encode(text: str) -> None:
    with pytest.raises(MQTTError):
        encode_string(text)


def test_string_with_bom_and_noncharacters_is_kept() -> None:
    # [MQTT-1.5.4-3]: U+FEFF is kept, not stripped; non-characters MAY be accepted.
    for text in ("\ufeffa", "\uffff", "\U0010ffff"):
        raw = encode_string(text)
        assert read_string(raw, 0, len(raw))[0] == text


def test_property_table_is_complete() -> None:
    # MQTT 5.0 section 2.2.2.2 lists 27 properties.
    assert len(PROPERTY_SPECS) == 27
    assert len({s.identifier for s in PROPERTY_SPECS}) == 27
    kinds = {s.name: s.type for s in PROPERTY_SPECS}
    assert kinds["user_properties"] == PropertyType.STRING_PAIR
    assert kinds["subscription_identifiers"] == PropertyType.VARINT
    assert kinds["correlation_data"] == PropertyType.BINARY
    for spec in PROPERTY_SPECS:
        assert hasattr(Properties(), spec.name)


@pytest.mark.parametrize("spec", PROPERTY_SPECS, ids=[s.name for s in PROPERTY_SPECS])
def test_each_property_only_where_allowed(spec: object) -> None:
    from gateway.mqtt.properties import PropertySpec

    assert isinstance(spec, PropertySpec)
    sample = {
        PropertyType.BYTE: 1,
        PropertyType.TWO_BYTE: 1,
        PropertyType.FOUR_BYTE: 1,
        PropertyType.VARINT: [1],
        PropertyType.STRING: "s",
        PropertyType.BINARY: b"b",
        PropertyType.STRING_PAIR: [("k", "v")],
    }[spec.type]
    props = Properties(**{spec.name: sample})
    if spec.name == "authentication_data":
        props.authentication_method = "m"
    for context in (WILL, *PacketType):
        if context in spec.contexts:
            raw = encode_properties(props, context)
            assert read_properties(raw, 0, len(raw), context) == (props, len(raw))
        else:
            with pytest.raises(MQTTError):
                encode_properties(props, context)
            raw = encode_properties(props, next(iter(spec.contexts)))
            with pytest.raises(MQTTError) as info:
                read_properties(raw, 0, len(raw), context)
            assert info.value.reason_code == R.MALFORMED_PACKET


def test_user_properties_keep_order_and_duplicates() -> None:
    pairs = [("b", "1"), ("a", "2"), ("b", "1"), ("b", "0")]
    raw = encode_properties(Properties(user_properties=pairs), PacketType.PUBLISH)
    props, _ = read_properties(raw, 0, len(raw), PacketType.PUBLISH)
    assert props.user_properties == tuple(pairs)


def test_properties_api() -> None:
    props = Properties(topic_alias=3)
    assert props.topic_alias == 3
    assert props.reason_string is None
    assert props.user_properties == ()
    assert props
    assert not Properties()
    assert Properties() == Properties(reason_string=None)
    assert Properties(topic_alias=3) != Properties(topic_alias=4)
    assert "topic_alias=3" in repr(props)
    with pytest.raises(TypeError):
        Properties(no_such_property=1)


def test_connack_codes_map_both_ways() -> None:
    assert connack_return_code(R.SUCCESS) == ConnackReturnCode.ACCEPTED
    assert connack_return_code(R.UNSUPPORTED_PROTOCOL_VERSION) == 1
    assert connack_return_code(R.CLIENT_IDENTIFIER_NOT_VALID) == 2
    assert connack_return_code(R.SERVER_UNAVAILABLE) == 3
    assert connack_return_code(R.BAD_USER_NAME_OR_PASSWORD) == 4
    assert connack_return_code(R.NOT_AUTHORIZED) == 5
    assert connack_return_code(R.QUOTA_EXCEEDED) == 3
    for code in ConnackReturnCode:
        mapped = reason_from_connack_return_code(code)
        assert mapped is not None and connack_return_code(mapped) == code
    assert reason_from_connack_return_code(6) is None
    assert [suback_return_code(c) for c in (0, 1, 2, 0x87, 0xA2)] == [0, 1, 2, 0x80, 0x80]


def test_connack_311_from_50_codes() -> None:
    assert Connack(R.BANNED).encode(4) == b"\x20\x02\x00\x05"
    assert Connack(R.NOT_AUTHORIZED, session_present=True).encode(4) == b"\x20\x02\x00\x05"
    assert Connack(0, session_present=True).encode(3) == b"\x20\x02\x00\x00"


def test_311_drops_what_it_cannot_carry() -> None:
    props = Properties(reason_string="x")
    assert Puback(1, R.QUOTA_EXCEEDED, props).encode(4) == b"\x40\x02\x00\x01"
    assert Disconnect(R.SERVER_SHUTTING_DOWN).encode(4) == b"\xe0\x00"
    assert Unsuback(1, [0x11]).encode(4) == b"\xb0\x02\x00\x01"
    assert Suback(1, [0x87]).encode(4) == b"\x90\x03\x00\x01\x80"


@pytest.mark.parametrize(
    ("packet", "version"),
    [
        (Publish("a/+"), 4),
        (Publish("a\x00"), 4),
        (Publish(""), 4),
        (Publish("", properties=Properties(topic_alias=1)), 4),
        (Publish("a", qos=3, packet_id=1), 4),
        (Publish("a", qos=1, packet_id=0), 4),
        (Publish("a", dup=True), 4),
        (Publish("\ud800"), 4),
        (Publish("a"), 6),
        (Publish("a", properties=Properties(session_expiry_interval=1)), 5),
        (Publish("a", properties=Properties(topic_alias=70000)), 5),
        (Publish("a", properties=Properties(topic_alias=0)), 5),
        (Publish("a", properties=Properties(payload_format_indicator=2)), 5),
        (Puback(0), 4),
        (Puback(1, R.GRANTED_QOS_1), 5),
        (Pubrel(1, R.QUOTA_EXCEEDED), 5),
        (Connack(R.NO_MATCHING_SUBSCRIBERS), 5),
        (Connect("c", password=b"p"), 4),
        (Connect("c", keep_alive=70000), 4),
        (Connect("c", will=Will("a/#")), 4),
        (Connect("c", will=Will("a", qos=3)), 4),
        (Subscribe(1, []), 4),
        (Subscribe(1, [Subscription("a/b#")]), 4),
        (Subscribe(1, [Subscription("a", no_local=True)]), 4),
        (Subscribe(1, [Subscription("$share/g/a", no_local=True)]), 5),
        (Subscribe(1, [Subscription("a", qos=3)]), 5),
        (Subscribe(1, [Subscription("a", retain_handling=3)]), 5),
        (Subscribe(1, [Subscription("a")], Properties(subscription_identifiers=[1, 2])), 5),
        (Subscribe(1, [Subscription("a")], Properties(subscription_identifiers=[0])), 5),
        (Suback(1, []), 4),
        (Suback(1, [R.NO_MATCHING_SUBSCRIBERS]), 5),
        (Unsubscribe(1, []), 4),
        (Unsubscribe(1, ["#/a"]), 4),
        (Unsuback(1, []), 5),
        (Unsuback(1, [R.GRANTED_QOS_1]), 5),
        (Disconnect(R.GRANTED_QOS_1), 5),
        (Auth(), 4),
        (Auth(R.NOT_AUTHORIZED), 5),
    ],
)
def test_encode_refuses_what_the_peer_would_refuse(packet: Packet, version: int) -> None:
    with pytest.raises(MQTTError):
        packet.encode(version)


def test_a_property_of_the_wrong_type_is_refused() -> None:
    # Compiled (mypyc) Properties refuse it when it is set; pure Python when it is encoded.
    with pytest.raises((TypeError, MQTTError)):
        Publish("a", properties=Properties(content_type=5)).encode(5)


def test_shared_filters() -> None:
    assert parse_filter("$share/g/a/+", 5) == SharedFilter("g", "a/+")
    assert parse_filter("$share/g/a/+", 4) == SharedFilter(None, "$share/g/a/+")
    assert parse_filter("$sharex/g", 5) == SharedFilter(None, "$sharex/g")


def test_packet_equality_and_repr() -> None:
    assert Publish("a", b"x") == Publish("a", b"x")
    assert Publish("a", b"x") != Publish("a", b"y")
    assert Publish("a") != Puback(1)
    assert "Publish(topic='a'" in repr(Publish("a"))
    assert "Subscription('a'" in repr(Subscription("a"))
    assert Will("a") == Will("a") and Will("a") != Will("b")
    assert "Will(topic='a'" in repr(Will("a"))
