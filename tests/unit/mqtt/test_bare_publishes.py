"""Runs of bare QoS 0 PUBLISHes: ``Decoder.feed_grouped`` and ``encode_qos0_many``.

A broker decodes consecutive QoS 0 PUBLISHes on one topic without RETAIN, DUP
or properties as one ``BarePublishes``; everything else, and every rule of
section 3.3, is unchanged: the grouped and the plain decoding must describe
the same packets, in the same order, and raise the same errors.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt.codec import BarePublishes, Decoder
from gateway.mqtt.errors import MQTTError
from gateway.mqtt.fastpath import encode_qos0, encode_qos0_many
from gateway.mqtt.packets import Connect, Packet, Publish
from gateway.mqtt.properties import Properties
from gateway.mqtt.reason_codes import ReasonCode
from gateway.mqtt.session import MqttSession

VERSIONS = pytest.mark.parametrize("version", [4, 5])


def connected(version: int) -> Decoder:
    dec = Decoder(server=True)
    dec.feed(Connect(client_id="c", protocol_level=version).encode(version))
    return dec


def flatten(items: list[Packet | BarePublishes]) -> list[Packet]:
    out: list[Packet] = []
    for item in items:
        out.extend(item.publishes() if isinstance(item, BarePublishes) else [item])
    return out


@VERSIONS
def test_consecutive_bare_publishes_on_one_topic_form_one_run(version: int) -> None:
    data = b"".join(Publish("a/b", b"%d" % i).encode(version) for i in range(5))
    (run,) = connected(version).feed_grouped(data)
    assert isinstance(run, BarePublishes)
    assert (run.topic, run.payloads) == ("a/b", [b"0", b"1", b"2", b"3", b"4"])


@VERSIONS
def test_a_new_topic_or_another_packet_starts_a_new_run_in_order(version: int) -> None:
    packets: list[Packet] = [
        Publish("a", b"1"),
        Publish("a", b"2"),
        Publish("b", b"3"),
        Publish("b", b"4", retain=True),  # RETAIN: not bare
        Publish("b", b"5"),
        Publish("b", b"6", qos=1, packet_id=7),
        Publish("b", b"7"),
    ]
    data = b"".join(p.encode(version) for p in packets)
    got = connected(version).feed_grouped(data)
    assert [type(x).__name__ for x in got] == [
        "BarePublishes",
        "BarePublishes",
        "Publish",
        "BarePublishes",
        "Publish",
        "BarePublishes",
    ]
    assert flatten(got) == packets


def test_a_5_0_publish_with_properties_is_not_bare() -> None:
    aliased = Publish("t", b"x", properties=Properties(topic_alias=1))
    typed = Publish("t", b"y", properties=Properties(content_type="text/plain"))
    data = aliased.encode(5) + typed.encode(5) + Publish("t", b"z").encode(5)
    got = connected(5).feed_grouped(data)
    assert [type(x).__name__ for x in got] == ["Publish", "Publish", "BarePublishes"]
    assert flatten(got) == [aliased, typed, Publish("t", b"z")]


@VERSIONS
def test_a_run_continues_across_reads(version: int) -> None:
    data = b"".join(Publish("s/1", bytes(200)).encode(version) for _ in range(10))
    dec = connected(version)
    got: list[Packet | BarePublishes] = []
    for i in range(0, len(data), 333):
        got += dec.feed_grouped(data[i : i + 333])
    assert flatten(got) == [Publish("s/1", bytes(200))] * 10


@pytest.mark.parametrize(
    ("topic", "code"),
    [
        ("a/+", ReasonCode.MALFORMED_PACKET),  # [MQTT-3.3.2-2] no wildcards in a topic name
        ("a/#", ReasonCode.MALFORMED_PACKET),
        ("a\x00b", ReasonCode.MALFORMED_PACKET),  # [MQTT-1.5.4-2]
        ("", ReasonCode.PROTOCOL_ERROR),  # empty without an alias
    ],
)
@VERSIONS
def test_bad_topics_are_refused_as_without_grouping(topic: str, code: int, version: int) -> None:
    raw = topic.encode()
    body = len(raw).to_bytes(2, "big") + raw + (b"\x00" if version == 5 else b"") + b"p"
    data = Publish("ok", b"1").encode(version) + bytes((0x30, len(body))) + body
    for grouped in (True, False):
        dec = connected(version)
        with pytest.raises(MQTTError) as err:
            dec.feed_grouped(data) if grouped else dec.feed(data)
        assert err.value.reason_code == code


@VERSIONS
def test_a_topic_that_is_not_utf8_is_malformed(version: int) -> None:
    body = b"\x00\x02\xc3\x28" + (b"\x00" if version == 5 else b"")
    with pytest.raises(MQTTError) as err:
        connected(version).feed_grouped(bytes((0x30, len(body))) + body)
    assert err.value.reason_code == ReasonCode.MALFORMED_PACKET  # [MQTT-1.5.4-1]


def test_dup_on_qos0_is_still_malformed() -> None:
    data = bytearray(Publish("t", b"x").encode(4))
    data[0] |= 0x08
    with pytest.raises(MQTTError) as err:
        connected(4).feed_grouped(bytes(data))
    assert err.value.reason_code == ReasonCode.MALFORMED_PACKET  # [MQTT-3.3.1-2]


def test_a_session_refuses_a_run_before_the_connection_is_accepted() -> None:
    session = MqttSession(max_packet_size=1 << 20)
    session.receive_grouped(Connect(client_id="c").encode(4))
    with pytest.raises(MQTTError) as err:
        session.receive_grouped(Publish("t", b"x").encode(4))
    assert err.value.reason_code == ReasonCode.PROTOCOL_ERROR


topic_char = st.characters(exclude_categories=["Cs"], exclude_characters="\x00+#")
topics = st.text(topic_char, min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "b/c", "é"]), st.binary(max_size=200)), max_size=30),
    st.sampled_from([4, 5]),
)
def test_grouped_decoding_describes_the_same_packets(
    items: list[tuple[str, bytes]], version: int
) -> None:
    packets = [Publish(topic, payload) for topic, payload in items]
    data = b"".join(p.encode(version) for p in packets)
    assert flatten(connected(version).feed_grouped(data)) == connected(version).feed(data)


@settings(max_examples=150, deadline=None)
@given(topics, st.lists(st.binary(max_size=300), min_size=1, max_size=20), st.booleans())
def test_encode_qos0_many_is_encode_qos0_for_each(
    topic: str, payloads: list[bytes], v5: bool
) -> None:
    expected = b"".join(encode_qos0(topic, p, v5) for p in payloads)
    assert encode_qos0_many(topic, payloads, v5) == expected
    same = [b"x" * 130] * len(payloads)  # one length: the single-join path, 2-byte length
    assert encode_qos0_many(topic, same, v5) == b"".join(encode_qos0(topic, p, v5) for p in same)
