"""MQTT 5.0 features: topic aliases both ways, message expiry, subscription identifiers,
no-local, property pass-through, maximum packet size, reason strings, enhanced authentication."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Publish,
    Suback,
    Subscribe,
    Subscription,
)
from gateway.mqtt.properties import Properties
from gateway.server import Gateway
from tests.integration.mqtt.conftest import PahoFactory, RawFactory
from tests.integration.mqtt.helpers import RawSession, payloads, publish_properties


async def client(
    raw: RawFactory, gateway: Gateway, client_id: str, props: Properties | None = None
) -> tuple[RawSession, Connack]:
    session = await raw(gateway, 5)
    connack = await session.connect(client_id, properties=props)
    assert connack.reason_code == 0
    return session, connack


async def test_mqtt5_3_3_2_12_server_accepts_topic_aliases(
    gateway: Gateway, raw: RawFactory
) -> None:
    """The server accepts every Topic Alias from 1 to the maximum it returned in CONNACK."""
    sub, _ = await client(raw, gateway, "alias-sub")
    assert await sub.subscribe("alias/#") == [0]
    pub, connack = await client(raw, gateway, "alias-pub")
    maximum = connack.properties.topic_alias_maximum
    assert maximum, "the server must accept topic aliases (Topic Alias Maximum > 0)"
    pub.send(Publish("alias/one", b"1", properties=Properties(topic_alias=maximum)))
    pub.send(Publish("", b"2", properties=Properties(topic_alias=maximum)))
    pub.send(Publish("alias/two", b"3", properties=Properties(topic_alias=maximum)))  # remapped
    pub.send(Publish("", b"4", properties=Properties(topic_alias=maximum)))
    got = await sub.publishes(4)
    assert [(m.topic, bytes(m.payload)) for m in got] == [
        ("alias/one", b"1"),
        ("alias/one", b"2"),
        ("alias/two", b"3"),
        ("alias/two", b"4"),
    ]


async def test_mqtt5_3_2_2_17_topic_alias_over_maximum_disconnects_0x94(
    gateway: Gateway, raw: RawFactory
) -> None:
    """A Topic Alias above the server's Topic Alias Maximum is answered DISCONNECT 0x94."""
    pub, connack = await client(raw, gateway, "alias-over")
    maximum = connack.properties.topic_alias_maximum or 0
    pub.send(Publish("alias/x", b"x", properties=Properties(topic_alias=maximum + 1)))
    seen = await pub.closed()
    assert [p.reason_code for p in seen if isinstance(p, Disconnect)] == [0x94]


async def test_mqtt5_3_3_2_7_unknown_alias_with_empty_topic_is_protocol_error(
    gateway: Gateway, raw: RawFactory
) -> None:
    """Aliases do not carry over connections: an empty topic with an alias never set on this
    connection is a protocol error (DISCONNECT 0x82)."""
    first, _ = await client(raw, gateway, "alias-carry")
    first.send(Publish("alias/set", b"x", properties=Properties(topic_alias=1)))
    await first.disconnect()
    again, _ = await client(raw, gateway, "alias-carry")
    again.send(Publish("", b"y", properties=Properties(topic_alias=1)))
    seen = await again.closed()
    assert [p.reason_code for p in seen if isinstance(p, Disconnect)] in ([0x82], [0x94])


async def test_mqtt5_3_1_2_26_server_aliases_stay_within_client_maximum(
    gateway: Gateway, raw: RawFactory
) -> None:
    """The server sends no Topic Alias above the client's Topic Alias Maximum, and every
    aliased PUBLISH resolves to the right topic."""
    sub, _ = await client(raw, gateway, "alias-rx", Properties(topic_alias_maximum=2))
    assert await sub.subscribe("rx/#") == [0]
    pub, _ = await client(raw, gateway, "alias-tx")
    topics = [f"rx/topic-number-{i % 4}" for i in range(12)]
    for i, topic in enumerate(topics):
        await pub.publish(topic, str(i).encode())
    aliases: dict[int, str] = {}
    resolved = []
    for msg in await sub.publishes(12):
        alias = msg.properties.topic_alias
        if alias is not None:
            assert 1 <= alias <= 2
            if msg.topic:
                aliases[alias] = msg.topic
            resolved.append(aliases[alias] if not msg.topic else msg.topic)
        else:
            assert msg.topic
            resolved.append(msg.topic)
    assert resolved == topics


async def test_mqtt5_3_1_2_27_no_aliases_without_client_maximum(
    gateway: Gateway, raw: RawFactory
) -> None:
    """With no Topic Alias Maximum in CONNECT the server sends no Topic Aliases at all."""
    sub, _ = await client(raw, gateway, "alias-none")
    assert await sub.subscribe("none/t") == [0]
    pub, _ = await client(raw, gateway, "alias-none-pub")
    for i in range(5):
        await pub.publish("none/t", str(i).encode())
    for msg in await sub.publishes(5):
        assert msg.properties.topic_alias is None and msg.topic == "none/t"


async def test_mqtt5_3_3_2_5_expired_message_not_delivered_and_interval_reduced(
    gateway: Gateway, raw: RawFactory
) -> None:
    """An expired message is not delivered [MQTT-3.3.2-5]; a delivered one carries its expiry
    interval minus the time it waited in the server [MQTT-3.3.2-6]."""
    props = Properties(session_expiry_interval=60)
    sub = await raw(gateway, 5)
    await sub.connect("expiry-sub", clean=False, properties=props)
    assert await sub.subscribe("exp/t", qos=1) == [1]
    await sub.disconnect()
    pub, _ = await client(raw, gateway, "expiry-pub")
    await pub.publish("exp/t", b"short", qos=1, properties=Properties(message_expiry_interval=1))
    await pub.publish("exp/t", b"long", qos=1, properties=Properties(message_expiry_interval=100))
    await asyncio.sleep(2.2)  # message expiry itself is under test: let the 1 s interval pass
    back = await raw(gateway, 5)
    assert (await back.connect("expiry-sub", clean=False, properties=props)).session_present
    got = await back.receive_acked(1)
    assert payloads(got) == [b"long"]
    remaining = got[0].properties.message_expiry_interval
    assert remaining is not None and remaining <= 98
    await back.quiet()  # bounded wait: the expired message must not follow


async def test_mqtt5_3_3_4_3_subscription_identifiers_sent_with_matching_messages(
    gateway: Gateway, raw: RawFactory
) -> None:
    """Messages carry the Subscription Identifier of each matching subscription that has one."""
    sub, _ = await client(raw, gateway, "subid")
    assert await sub.subscribe("sid/+", properties=Properties(subscription_identifiers=[7])) == [0]
    assert await sub.subscribe("sid/b", properties=Properties(subscription_identifiers=[9])) == [0]
    assert await sub.subscribe("sid/#") == [0]  # no identifier
    pub, _ = await client(raw, gateway, "subid-pub")
    await pub.publish("sid/b", b"x")
    got = await sub.publishes(1)
    try:  # one copy per subscription is allowed: collect what comes within a bounded wait
        while True:
            got.append(await sub.expect(Publish, timeout=0.5))
    except TimeoutError:
        pass
    ids = sorted(i for m in got for i in m.properties.subscription_identifiers)
    assert ids == [7, 9]


async def test_mqtt5_3_8_3_3_no_local_suppresses_own_messages(
    gateway: Gateway, raw: RawFactory
) -> None:
    """With No Local, messages are not forwarded to the connection that published them."""
    me, _ = await client(raw, gateway, "nolocal")
    assert await me.subscribe(Subscription("nl/t", 1, no_local=True)) == [1]
    await me.publish("nl/t", b"mine", qos=1)
    await me.quiet()  # bounded wait: my own message must not come back
    other, _ = await client(raw, gateway, "nolocal-other")
    await other.publish("nl/t", b"theirs", qos=1)
    assert payloads(await me.receive_acked(1)) == [b"theirs"]


async def test_mqtt5_3_3_2_15_to_20_publish_properties_forwarded_unaltered(
    gateway: Gateway, raw: RawFactory
) -> None:
    """Response topic [-15], correlation data [-16], user properties in order [-17, -18],
    content type [-20] and payload format indicator [-4] are forwarded unaltered."""
    sub, _ = await client(raw, gateway, "props-sub")
    assert await sub.subscribe("props/t", qos=1) == [1]
    pub, _ = await client(raw, gateway, "props-pub")
    sent = Properties(
        payload_format_indicator=1,
        content_type="application/json; charset=utf-8",
        response_topic="props/reply",
        correlation_data=b"\xff\x00id-42",
        user_properties=[("z", "1"), ("a", "2"), ("z", "3")],
    )
    await pub.publish("props/t", b'{"k": 1}', qos=1, properties=sent)
    got = (await sub.receive_acked(1))[0].properties
    assert got.payload_format_indicator == 1
    assert got.content_type == "application/json; charset=utf-8"
    assert got.response_topic == "props/reply"
    assert got.correlation_data == b"\xff\x00id-42"
    assert list(got.user_properties) == [("z", "1"), ("a", "2"), ("z", "3")]


async def test_mqtt5_request_response_with_paho(gateway: Gateway, paho_client: PahoFactory) -> None:
    """Request/response: a responder answers on the Response Topic with the Correlation Data."""
    responder = paho_client(gateway, 5, client_id="responder")
    requester = paho_client(gateway, 5, client_id="requester")
    await responder.connect()
    await requester.connect()
    await responder.subscribe("svc/req", 1)
    await requester.subscribe("svc/reply/requester", 1)
    await requester.publish(
        "svc/req",
        b"ping",
        qos=1,
        properties=publish_properties(ResponseTopic="svc/reply/requester", CorrelationData=b"c1"),
    )
    request = await responder.next_message()
    req_props: Any = request.properties
    assert req_props.ResponseTopic == "svc/reply/requester"
    await responder.publish(
        req_props.ResponseTopic,
        b"pong",
        qos=1,
        properties=publish_properties(CorrelationData=req_props.CorrelationData),
    )
    reply = await requester.next_message()
    reply_props: Any = reply.properties
    assert (reply.payload, reply_props.CorrelationData) == (b"pong", b"c1")


async def test_mqtt5_3_1_2_25_too_large_packets_for_client_are_discarded(
    gateway: Gateway, raw: RawFactory
) -> None:
    """The server never sends a packet over the client's Maximum Packet Size [MQTT-3.1.2-24]; it
    discards it and goes on as if it had been sent [MQTT-3.1.2-25]."""
    sub, _ = await client(raw, gateway, "small-sub", Properties(maximum_packet_size=256))
    assert await sub.subscribe("mps/t", qos=1) == [1]
    pub, _ = await client(raw, gateway, "mps-pub")
    await pub.publish("mps/t", b"x" * 1000, qos=1)
    await pub.publish("mps/t", b"fits", qos=1)
    assert payloads(await sub.receive_acked(1)) == [b"fits"]
    await sub.quiet()  # bounded wait: the oversized message is dropped, not retried


async def test_mqtt5_3_1_2_29_reason_string_only_when_problem_information_requested(
    gateway: Gateway, raw: RawFactory
) -> None:
    """A refused SUBSCRIBE carries a reason string by default; with Request Problem Information 0
    the server sends none on packets other than PUBLISH, CONNACK and DISCONNECT."""
    chatty, _ = await client(raw, gateway, "chatty")
    pid = chatty.packet_id()
    chatty.send(Subscribe(pid, [Subscription("$MQTT/#", 1)]))
    suback = await chatty.expect(Suback)
    assert suback.reason_codes[0] >= 0x80
    assert suback.properties.reason_string, "a refusal should say why"
    quiet, _ = await client(raw, gateway, "quiet", Properties(request_problem_information=0))
    quiet.send(Subscribe(pid, [Subscription("$MQTT/#", 1)]))
    suback = await quiet.expect(Suback)
    assert suback.reason_codes[0] >= 0x80
    assert suback.properties.reason_string is None
    assert not suback.properties.user_properties


async def test_mqtt5_4_12_0_1_unknown_authentication_method_is_refused_0x8c(
    gateway: Gateway, raw: RawFactory
) -> None:
    """An unsupported Authentication Method gets CONNACK 0x8C (or 0x87) and the connection closed."""
    session = await raw(gateway, 5)
    session.send(
        Connect(
            "enhanced",
            protocol_level=5,
            properties=Properties(authentication_method="SCRAM-SHA-256", authentication_data=b"n"),
        )
    )
    seen = await session.closed()
    codes = [p.reason_code for p in seen if isinstance(p, Connack)]
    assert codes == [0x8C]
    assert not any(isinstance(p, Auth) for p in seen)


async def test_mqtt5_4_12_0_7_auth_without_authentication_method_is_protocol_error(
    gateway: Gateway, raw: RawFactory
) -> None:
    """A client that gave no Authentication Method must not send AUTH: DISCONNECT 0x82, close."""
    session, _ = await client(raw, gateway, "stray-auth")
    session.send(Auth(0x19, Properties(authentication_method="X")))
    seen = await session.closed()
    assert [p.reason_code for p in seen if isinstance(p, Disconnect)] in ([], [0x82])
