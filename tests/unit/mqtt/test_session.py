"""``MqttSession``: the connection rules on top of the codec, driven with bytes, no event loop.

Every client stream is fed whole and one byte at a time, and must give the
same packets. What the session sends is decoded with a client-side
``Decoder`` for the connection's version.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt.codec import Decoder
from gateway.mqtt.errors import MQTTError
from gateway.mqtt.packets import (
    Connack,
    Connect,
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
)
from gateway.mqtt.properties import Properties
from gateway.mqtt.reason_codes import ReasonCode
from gateway.mqtt.session import MqttSession, Qos2Resent, State

WHOLE = 0
STEPS = pytest.mark.parametrize("step", [WHOLE, 1], ids=["whole", "bytewise"])

Out = list[Packet | Qos2Resent]


def connect(version: int = 5, **props: int) -> bytes:
    """A client's CONNECT at ``version`` with CONNECT properties ``props`` (5.0)."""
    return Connect("client", protocol_level=version, properties=Properties(**props)).encode()


def new_session(**kwargs: int) -> MqttSession:
    return MqttSession(max_packet_size=kwargs.pop("max_packet_size", 1 << 20), **kwargs)


def feed(session: MqttSession, data: bytes, step: int, accept: bool = True) -> Out:
    """Feed ``data`` in chunks of ``step`` (whole if 0); accept the CONNECT when it comes."""
    out: Out = []
    size = step or max(1, len(data))
    for i in range(0, len(data), size):
        packets = session.receive_data(data[i : i + size])
        out.extend(packets)
        if accept and any(isinstance(p, Connect) for p in packets):
            session.accept()
    out.extend(session.resume())
    return out


def open_session(version: int = 5, **kwargs: int) -> MqttSession:
    """A session past its CONNECT (client properties from ``client_*`` keys), accepted."""
    client = {k[len("client_") :]: v for k, v in kwargs.items() if k.startswith("client_")}
    own = {k: v for k, v in kwargs.items() if not k.startswith("client_")}
    session = new_session(**own)
    packets = feed(session, connect(version, **client), WHOLE)
    assert [type(p) for p in packets] == [Connect]
    assert session.state is State.CONNECTED
    return session


def sent(session: MqttSession) -> list[Packet]:
    """What the session queued, decoded as the client would."""
    return Decoder(server=False, version=session.version).feed(session.data_to_send())


def pub(topic: str, qos: int = 0, pid: int = 0, **props: int) -> Publish:
    return Publish(topic, b"data", qos, packet_id=pid, properties=Properties(**props))


def stream(version: int, *packets: Packet) -> bytes:
    return b"".join(p.encode(version) for p in packets)


@contextlib.contextmanager
def raises(code: int) -> Iterator[None]:
    """Expect an ``MQTTError`` carrying reason code ``code``."""
    with pytest.raises(MQTTError) as info:
        yield
    assert info.value.reason_code == code


# -- CONNECT first, once --------------------------------------------------------


@STEPS
@pytest.mark.parametrize("version", [3, 4, 5])
def test_mqtt_3_1_0_1_connect_then_packets_in_order(step: int, version: int) -> None:
    session = new_session()
    data = connect(version) + stream(
        version, pub("a/b"), pub("a/c", 1, 1), Pingreq(), Subscribe(2, [Subscription("x/#")])
    )
    out = feed(session, data, step)
    assert [type(p) for p in out] == [Connect, Publish, Publish, Pingreq, Subscribe]
    assert session.version == version
    assert session.v5 is (version == 5)
    assert [p.topic for p in out if isinstance(p, Publish)] == ["a/b", "a/c"]


@STEPS
def test_mqtt_3_1_0_1_first_packet_must_be_connect(step: int) -> None:
    session = new_session()
    with raises(ReasonCode.PROTOCOL_ERROR):
        feed(session, Pingreq().encode(4), step)


@STEPS
def test_mqtt_3_1_0_2_a_second_connect_is_a_protocol_error(step: int) -> None:
    session = new_session()
    with raises(ReasonCode.PROTOCOL_ERROR):
        feed(session, connect(5) + connect(5), step)
    assert session.state is State.CONNECTED


def test_mqtt_3_1_0_2_a_second_connect_before_accept_is_a_protocol_error() -> None:
    session = new_session()
    assert [type(p) for p in session.receive_data(connect(4) + connect(4))] == [Connect]
    assert session.state is State.CONNECTING
    with raises(ReasonCode.PROTOCOL_ERROR):
        session.resume()


def test_bytes_behind_the_connect_wait_for_resume() -> None:
    session = new_session()
    out = session.receive_data(connect(4) + pub("t").encode(4))
    assert [type(p) for p in out] == [Connect]
    assert session.decoder.buffered > 0
    session.accept()
    assert session.resume() == [Publish("t", b"data")]
    assert session.resume() == []


@STEPS
def test_publish_before_accept_is_a_protocol_error(step: int) -> None:
    session = new_session()
    with raises(ReasonCode.PROTOCOL_ERROR):
        feed(session, connect(5) + pub("t").encode(5), step, accept=False)


def test_connect_limits_are_read_from_a_5_0_connect() -> None:
    session = open_session(
        5, client_receive_maximum=3, client_maximum_packet_size=99, client_topic_alias_maximum=4
    )
    assert session.outbound.receive_maximum == 3
    assert session.client_max_packet_size == 99
    assert session.client_topic_alias_maximum == 4


def test_closed_session_takes_no_input() -> None:
    session = open_session(4)
    session.close()
    assert session.state is State.CLOSED
    assert session.receive_data(pub("t").encode(4)) == []


# -- inbound topic aliases (5.0) -----------------------------------------------------


@STEPS
def test_mqtt_3_3_2_12_alias_set_then_reused(step: int) -> None:
    session = open_session(5, topic_alias_maximum=3)
    data = stream(
        5,
        pub("a/b", topic_alias=2),
        pub("", topic_alias=2),
        pub("c/d", topic_alias=2),  # the mapping changes
        pub("", topic_alias=2),
        pub("e", topic_alias=3),
        pub("", topic_alias=3),
    )
    out = feed(session, data, step)
    assert [p.topic for p in out if isinstance(p, Publish)] == [
        "a/b",
        "a/b",
        "c/d",
        "c/d",
        "e",
        "e",
    ]


@STEPS
def test_mqtt_3_3_2_8_topic_alias_0_is_invalid(step: int) -> None:
    session = open_session(5, topic_alias_maximum=3)
    good = pub("a", topic_alias=1).encode(5)
    # Topic alias property 0x23 with value 0 (the encoder refuses to write it).
    assert good.endswith(b"\x03\x23\x00\x01data")
    bad = good[:-8] + b"\x03\x23\x00\x00data"
    with raises(ReasonCode.TOPIC_ALIAS_INVALID):
        feed(session, bad, step)


@STEPS
def test_mqtt_3_3_2_9_alias_above_our_topic_alias_maximum_is_invalid(step: int) -> None:
    session = open_session(5, topic_alias_maximum=3)
    with raises(ReasonCode.TOPIC_ALIAS_INVALID):
        feed(session, pub("a", topic_alias=4).encode(5), step)


def test_mqtt_3_3_2_9_no_alias_allowed_when_our_maximum_is_0() -> None:
    session = open_session(5, topic_alias_maximum=0)
    with raises(ReasonCode.TOPIC_ALIAS_INVALID):
        session.receive_data(pub("a", topic_alias=1).encode(5))


@STEPS
def test_mqtt_3_3_2_3_4_empty_topic_with_an_unset_alias_is_a_protocol_error(step: int) -> None:
    session = open_session(5, topic_alias_maximum=3)
    data = stream(5, pub("a", topic_alias=1), pub("", topic_alias=2))
    with raises(ReasonCode.PROTOCOL_ERROR):
        feed(session, data, step)


def test_mqtt_3_3_2_7_aliases_do_not_carry_over_to_a_new_connection() -> None:
    first = open_session(5)
    first.receive_data(pub("a", topic_alias=1).encode(5))
    second = open_session(5)
    with raises(ReasonCode.PROTOCOL_ERROR):
        second.receive_data(pub("", topic_alias=1).encode(5))


# -- our Receive Maximum ---------------------------------------------------------------


@STEPS
def test_mqtt_3_3_4_7_more_qos1_publishes_than_receive_maximum_is_0x93(step: int) -> None:
    session = open_session(5, receive_maximum=2)
    data = stream(5, pub("t", 1, 1), pub("t", 2, 2), pub("t", 0), pub("t", 1, 3))
    with raises(ReasonCode.RECEIVE_MAXIMUM_EXCEEDED):
        feed(session, data, step)


@STEPS
def test_mqtt_3_3_4_7_qos0_publishes_do_not_count(step: int) -> None:
    session = open_session(5, receive_maximum=1)
    data = stream(5, pub("t", 1, 1), *[pub("t") for _ in range(5)])
    assert len(feed(session, data, step)) == 6


def test_mqtt_3_3_4_7_puback_frees_a_place() -> None:
    session = open_session(5, receive_maximum=1)
    assert session.receive_data(pub("t", 1, 1).encode(5)) == [pub("t", 1, 1)]
    assert session.send(Puback(1))
    assert session.receive_data(pub("t", 1, 2).encode(5)) == [pub("t", 1, 2)]
    with raises(ReasonCode.RECEIVE_MAXIMUM_EXCEEDED):
        session.receive_data(pub("t", 1, 3).encode(5))


def test_mqtt_3_3_4_7_qos2_holds_its_place_until_pubcomp() -> None:
    session = open_session(5, receive_maximum=1)
    session.receive_data(pub("t", 2, 1).encode(5))
    session.send(Pubrec(1))  # a successful PUBREC does not end the exchange
    with raises(ReasonCode.RECEIVE_MAXIMUM_EXCEEDED):
        session.receive_data(pub("t", 1, 2).encode(5))


def test_mqtt_3_3_4_7_pubcomp_frees_a_place() -> None:
    session = open_session(5, receive_maximum=1)
    session.receive_data(pub("t", 2, 1).encode(5))
    session.send(Pubrec(1))
    assert session.receive_data(Pubrel(1).encode(5)) == [Pubrel(1)]
    session.send(Pubcomp(1))
    assert session.receive_data(pub("t", 2, 2).encode(5)) == [pub("t", 2, 2)]


def test_mqtt_3_3_4_7_a_failed_pubrec_frees_a_place() -> None:
    session = open_session(5, receive_maximum=1)
    session.receive_data(pub("t", 2, 1).encode(5))
    session.send(Pubrec(1, ReasonCode.NOT_AUTHORIZED))
    assert session.receive_data(pub("t", 1, 2).encode(5)) == [pub("t", 1, 2)]


@STEPS
def test_a_3_1_1_client_is_not_refused_for_more_in_flight_than_our_maximum(step: int) -> None:
    # 3.1.1 has no Receive Maximum: the client was told none (the connection paces it).
    session = open_session(4, receive_maximum=2)
    data = stream(4, *[pub("t", 1, pid) for pid in range(1, 6)], pub("t", 2, 6))
    assert len(feed(session, data, step)) == 6


# -- QoS 2 duplicates ------------------------------------------------------------------


@STEPS
def test_mqtt_4_3_3_10_qos2_publish_awaiting_pubrel_is_resent_not_redelivered(step: int) -> None:
    session = open_session(5)
    dup = Publish("t", b"data", 2, dup=True, packet_id=7)
    data = stream(5, pub("t", 2, 7), dup, Pubrel(7), pub("t", 2, 7))
    out = feed(session, data, step)
    assert out == [pub("t", 2, 7), Qos2Resent(7), Pubrel(7), pub("t", 2, 7)]
    assert session.inbound.awaiting_pubrel == 1


def test_mqtt_4_3_3_9_after_a_failed_pubrec_the_same_id_is_a_new_message() -> None:
    session = open_session(5)
    session.receive_data(pub("t", 2, 7).encode(5))
    session.send(Pubrec(7, ReasonCode.NOT_AUTHORIZED))
    # [MQTT-2.2.1] the identifier is free again after a PUBREC >= 0x80: a new message.
    assert session.receive_data(pub("u", 2, 7).encode(5)) == [pub("u", 2, 7)]


# -- output ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 4, 5])
def test_send_encodes_for_the_connection_version(version: int) -> None:
    session = open_session(version)
    assert session.send(Connack(ReasonCode.SUCCESS, False))
    assert session.send(Puback(3, ReasonCode.NO_MATCHING_SUBSCRIBERS))
    assert session.has_output
    data = session.data_to_send()
    assert not session.has_output
    assert session.data_to_send() == b""
    expected = Connack().encode(version) + Puback(3, 0x10).encode(version)
    assert data == expected
    packets = Decoder(server=False, version=version).feed(data)
    assert packets[1] == Puback(3, 0x10 if version == 5 else 0)


def test_mqtt_3_12_4_1_pong_answers_in_order() -> None:
    session = open_session(4)
    session.send(Puback(1))
    session.pong()
    session.send(Puback(2))
    assert sent(session) == [Puback(1), Pingresp(), Puback(2)]


def test_mqtt_3_1_2_25_a_publish_over_the_client_maximum_is_dropped() -> None:
    session = open_session(5, client_maximum_packet_size=32)
    small = Publish("t", b"x" * 10)
    big = Publish("t", b"x" * 40)
    assert len(small.encode(5)) <= 32 < len(big.encode(5))
    assert session.send(big) is False
    assert not session.has_output
    assert session.send(small) is True
    assert sent(session) == [small]


def test_mqtt_3_1_2_25_exactly_the_client_maximum_is_sent() -> None:
    packet = Publish("t", b"x" * 20)
    size = len(packet.encode(5))
    session = open_session(5, client_maximum_packet_size=size)
    assert session.send(packet) is True
    assert len(session.data_to_send()) == size


def test_mqtt_3_1_2_25_send_raw_respects_the_client_maximum() -> None:
    session = open_session(5, client_maximum_packet_size=16)
    assert session.send_raw(b"\x30" + bytes([20]) + b"\x00" * 20) is False
    assert not session.has_output
    raw = Publish("t", b"ok").encode(5)
    assert session.send_raw(raw) is True
    assert session.data_to_send() == raw


def test_mqtt_3_4_2_3_reason_string_and_user_properties_dropped_to_fit() -> None:
    session = open_session(5, client_maximum_packet_size=16)
    props = Properties(reason_string="r" * 40, user_properties=[("k", "v" * 40)])
    assert session.send(Puback(5, ReasonCode.NOT_AUTHORIZED, props)) is True
    data = session.data_to_send()
    assert len(data) <= 16
    assert Decoder(server=False, version=5).feed(data) == [Puback(5, ReasonCode.NOT_AUTHORIZED)]


def test_mqtt_3_4_2_3_properties_kept_when_they_fit() -> None:
    session = open_session(5, client_maximum_packet_size=100)
    props = Properties(reason_string="why")
    session.send(Puback(5, ReasonCode.NOT_AUTHORIZED, props))
    assert sent(session) == [Puback(5, ReasonCode.NOT_AUTHORIZED, Properties(reason_string="why"))]


def test_no_limit_on_3_1_1_connections() -> None:
    session = open_session(4)
    assert session.send(Publish("t", b"x" * 100_000)) is True
    assert len(session.data_to_send()) > 100_000


def test_mqtt_3_1_2_24_nothing_larger_than_the_client_maximum_is_sent() -> None:
    session = open_session(5, client_maximum_packet_size=8)
    session.send(Suback(1, [0, 1, 2, 0, 1, 2]))  # 11 bytes, nothing to drop
    assert all(len(p.encode(5)) <= 8 for p in sent(session))


# -- outbound topic aliases ------------------------------------------------------------


def test_no_outbound_alias_without_a_client_topic_alias_maximum() -> None:
    for version in (4, 5):
        session = open_session(version)
        assert session.outbound_topic("a/b") == ("a/b", None)
        assert session.outbound_topic("a/b") == ("a/b", None)


def test_mqtt_3_3_2_11_outbound_aliases_reused_least_recently_used_first() -> None:
    session = open_session(5, client_topic_alias_maximum=2)
    assert session.outbound_topic("a") == ("a", 1)
    assert session.outbound_topic("a") == ("", 1)
    assert session.outbound_topic("b") == ("b", 2)
    assert session.outbound_topic("a") == ("", 1)  # a is now the most recently used
    assert session.outbound_topic("c") == ("c", 2)  # b's alias is reused
    assert session.outbound_topic("a") == ("", 1)
    assert session.outbound_topic("b") == ("b", 2)  # c's turn to go


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4),
    st.lists(st.sampled_from(["a", "b/c", "d", "e/f/g", "h", "i"]), min_size=1, max_size=40),
)
def test_mqtt_3_3_2_11_client_resolves_every_outbound_alias(
    maximum: int, topics: list[str]
) -> None:
    session = open_session(5, client_topic_alias_maximum=maximum)
    for topic in topics:
        send_topic, alias = session.outbound_topic(topic)
        assert alias is not None and 1 <= alias <= maximum
        session.send(Publish(send_topic, b"", properties=Properties(topic_alias=alias)))
    # The client: a PUBLISH with a topic sets the alias, one without uses it.
    aliases: dict[int, str] = {}
    resolved = []
    for packet in sent(session):
        assert isinstance(packet, Publish)
        alias = packet.properties.topic_alias
        assert alias is not None
        if packet.topic:
            aliases[alias] = packet.topic
        resolved.append(aliases[alias])
    assert resolved == topics


def test_mqtt_3_3_2_11_an_alias_whose_publish_was_dropped_is_not_used_bare() -> None:
    session = open_session(5, client_topic_alias_maximum=4, client_maximum_packet_size=64)
    topic, alias = session.outbound_topic("a/b")
    assert (topic, alias) == ("a/b", 1)
    dropped = Publish(topic, b"x" * 100, properties=Properties(topic_alias=alias))
    assert session.send(dropped) is False
    assert session.outbound_topic("a/b")[0] == "a/b"


# -- packets before a violation in the same read -----------------------------------


@pytest.mark.parametrize("version", [4, 5])
def test_packets_decoded_before_a_malformed_one_come_with_the_error(version: int) -> None:
    session = open_session(version)
    good = stream(version, pub("a/b", 1, 1), pub("a/c", 0), pub("a/c", 0))
    with pytest.raises(MQTTError) as info:
        session.receive_grouped(good + b"\x30\x03\x00\x05a")  # topic longer than the packet
    assert info.value.reason_code == ReasonCode.MALFORMED_PACKET
    assert len(info.value.preceding) == 2  # the PUBLISH, then the run of two QoS 0


def test_the_error_carries_the_packets_before_it() -> None:
    session = open_session(5)
    with pytest.raises(MQTTError) as info:
        session.receive_data(stream(5, pub("a/b", 1, 1), pub("a/c", 0)) + b"\x30\x03\x00\x05a")
    assert [(type(p), getattr(p, "topic", None)) for p in info.value.preceding] == [
        (Publish, "a/b"),
        (Publish, "a/c"),
    ]
    # The decoder stays failed, and a repeat does not hand the same packets again.
    with pytest.raises(MQTTError) as again:
        session.receive_data(b"")
    assert again.value.preceding == []


def test_a_session_level_violation_keeps_the_packets_before_it() -> None:
    session = open_session(5, receive_maximum=1)
    with pytest.raises(MQTTError) as info:
        session.receive_data(stream(5, pub("a", 1, 1), pub("b", 1, 2), pub("c", 0)))
    assert info.value.reason_code == ReasonCode.RECEIVE_MAXIMUM_EXCEEDED
    assert [p.topic for p in info.value.preceding if isinstance(p, Publish)] == ["a"]
