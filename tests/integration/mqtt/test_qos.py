"""QoS 0, 1 and 2 in both directions, packet identifiers, in-flight windows, DUP and order."""

from __future__ import annotations

import contextlib

import pytest

from gateway.mqtt.packets import (
    Disconnect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
)
from gateway.mqtt.properties import Properties
from gateway.mqtt.session import DEFAULT_RECEIVE_MAXIMUM
from gateway.server import Gateway
from tests.integration.mqtt.conftest import PahoFactory, RawFactory
from tests.integration.mqtt.helpers import payloads

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


@VERSIONS
async def test_mqtt_4_3_1_1_qos0_delivered_with_dup_0(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """QoS 0 goes out as a QoS 0 PUBLISH with DUP 0 and no packet identifier."""
    sub = await raw(gateway, version)
    pub = await raw(gateway, version)
    await sub.connect("q0-sub")
    await pub.connect("q0-pub")
    assert await sub.subscribe("q0/t", qos=2) == [2]
    await pub.publish("q0/t", b"zero", qos=0)
    msg = await sub.expect(Publish)
    assert (msg.topic, bytes(msg.payload), msg.qos, msg.dup, msg.packet_id) == (
        "q0/t",
        b"zero",
        0,
        False,
        0,
    )


@VERSIONS
async def test_mqtt_4_3_2_4_qos1_both_directions(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """QoS 1: PUBACK carries the PUBLISH's identifier; delivery has a non-zero id and DUP 0."""
    sub = await raw(gateway, version)
    pub = await raw(gateway, version)
    await sub.connect("q1-sub")
    await pub.connect("q1-pub")
    assert await sub.subscribe("q1/t", qos=1) == [1]
    ack = await pub.publish("q1/t", b"one", qos=1)
    assert isinstance(ack, Puback) and ack.reason_code in (0x00, 0x10)
    msg = await sub.expect(Publish)
    assert (msg.qos, msg.dup, bytes(msg.payload)) == (1, False, b"one")
    assert msg.packet_id != 0
    sub.send(Puback(msg.packet_id))
    await sub.quiet()  # acknowledged: no redelivery within the bounded wait


@VERSIONS
async def test_mqtt_4_3_3_10_qos2_inbound_is_exactly_once(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """Until PUBREL, a re-sent QoS 2 PUBLISH with the same id is answered PUBREC, not delivered twice."""
    sub = await raw(gateway, version)
    pub = await raw(gateway, version)
    await sub.connect("q2-sub")
    await pub.connect("q2-pub")
    assert await sub.subscribe("q2/t", qos=2) == [2]
    pub.send(Publish("q2/t", b"once", qos=2, packet_id=7))
    assert (await pub.expect(Pubrec)).packet_id == 7
    pub.send(Publish("q2/t", b"once", qos=2, packet_id=7, dup=True))
    assert (await pub.expect(Pubrec)).packet_id == 7
    pub.send(Pubrel(7))
    assert (await pub.expect(Pubcomp)).packet_id == 7
    # Outbound QoS 2: PUBLISH -> PUBREC -> PUBREL (same id) -> PUBCOMP.
    msg = await sub.expect(Publish)
    assert (msg.qos, bytes(msg.payload)) == (2, b"once")
    sub.send(Pubrec(msg.packet_id))
    rel = await sub.expect(Pubrel)
    assert rel.packet_id == msg.packet_id
    sub.send(Pubcomp(msg.packet_id))
    await sub.quiet()  # bounded wait: the duplicate PUBLISH produced no second delivery


@VERSIONS
async def test_mqtt_3_8_4_8_delivered_qos_is_minimum_of_published_and_granted(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """The QoS of a delivery is the lower of the published QoS and the granted QoS."""
    sub = await raw(gateway, version)
    pub = await raw(gateway, version)
    await sub.connect("minq-sub")
    await pub.connect("minq-pub")
    assert await sub.subscribe("minq/one", qos=1) == [1]
    assert await sub.subscribe("minq/two", qos=2) == [2]
    await pub.publish("minq/one", b"a", qos=2)
    await pub.publish("minq/two", b"b", qos=0)
    got = {m.topic: m.qos for m in await sub.receive_acked(2)}
    assert got == {"minq/one": 1, "minq/two": 0}


@VERSIONS
async def test_mqtt_2_2_1_4_in_flight_packet_identifiers_are_unique(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """Each new QoS>0 PUBLISH from the server uses a non-zero identifier not currently in use."""
    sub = await raw(gateway, version)
    pub = await raw(gateway, version)
    await sub.connect("pid-sub")
    await pub.connect("pid-pub")
    assert await sub.subscribe("pid/t", qos=1) == [1]
    for i in range(10):
        await pub.publish("pid/t", str(i).encode(), qos=1)
    got = await sub.publishes(10)  # none acknowledged yet
    ids = [m.packet_id for m in got]
    assert 0 not in ids and len(set(ids)) == 10


async def test_mqtt_3_3_4_9_server_respects_client_receive_maximum(
    gateway: Gateway, raw: RawFactory
) -> None:
    """The server sends no more unacknowledged QoS 1/2 PUBLISHes than the client's Receive Maximum."""
    sub = await raw(gateway, 5)
    pub = await raw(gateway, 5)
    await sub.connect("rm-sub", properties=Properties(receive_maximum=2))
    await pub.connect("rm-pub")
    assert await sub.subscribe("rm/t", qos=1) == [1]
    for i in range(6):
        await pub.publish("rm/t", str(i).encode(), qos=1)
    first = await sub.publishes(2)
    await sub.quiet()  # bounded wait: the window of 2 is full, nothing more may come
    sub.send(Puback(first[0].packet_id))
    third = await sub.expect(Publish)
    await sub.quiet()  # exactly one slot was freed
    rest = [third]
    for m in [first[1], third]:
        sub.send(Puback(m.packet_id))
    rest += await sub.receive_acked(3)
    assert payloads(first + rest) == [str(i).encode() for i in range(6)]


async def test_mqtt5_3_3_4_receive_maximum_exceeded_disconnects_0x93(
    gateway: Gateway, raw: RawFactory
) -> None:
    """A client with more unacknowledged QoS 2 PUBLISHes than the server's Receive Maximum is
    disconnected with 0x93 (Receive Maximum exceeded)."""
    session = await raw(gateway, 5)
    connack = await session.connect("rm-flood")
    limit = connack.properties.receive_maximum
    assert limit is not None, "the server must announce its Receive Maximum"
    assert limit <= 10000, f"Receive Maximum {limit} too large to exercise here"
    # QoS 2 flows stay open until PUBREL: never send it.
    session.send(*(Publish("rm/flood", b"x", qos=2, packet_id=i + 1) for i in range(limit + 1)))
    seen = await session.closed(timeout=15)
    assert [p.reason_code for p in seen if isinstance(p, Disconnect)] == [0x93]


async def test_a_3_1_1_client_may_keep_more_qos1_in_flight_than_our_receive_maximum(
    gateway: Gateway, raw: RawFactory
) -> None:
    """3.1.1 has no Receive Maximum: a client is not told one, so it is not disconnected for
    keeping more QoS 1 PUBLISHes unacknowledged than 5.0 clients may; it is paced."""
    await qos1_flood(gateway, raw, 4 * DEFAULT_RECEIVE_MAXIMUM)


async def qos1_flood(gateway: Gateway, raw: RawFactory, count: int) -> None:
    """``count`` QoS 1 PUBLISHes from a 3.1.1 client at once: every PUBACK in order, every
    message delivered, nobody disconnected."""
    sub = await raw(gateway, 4)
    await sub.connect("flood-sub")
    assert await sub.subscribe("flood/t", qos=1) == [1]
    pub = await raw(gateway, 4)
    await pub.connect("flood-pub")
    pub.send(*(Publish("flood/t", b"%d" % i, qos=1, packet_id=i + 1) for i in range(count)))
    acks = [(await pub.expect(Puback)).packet_id for _ in range(count)]
    assert acks == list(range(1, count + 1))
    got = await sub.receive_acked(count)
    assert payloads(got) == [b"%d" % i for i in range(count)]
    await pub.disconnect()


@VERSIONS
async def test_mqtt_4_6_0_6_messages_on_a_topic_are_delivered_in_order(
    gateway: Gateway, paho_client: PahoFactory, version: int
) -> None:
    """Every topic is an ordered topic: messages from one client arrive in publish order."""
    sub = paho_client(gateway, version, client_id=f"order-sub-{version}")
    pub = paho_client(gateway, version, client_id=f"order-pub-{version}")
    await sub.connect()
    await pub.connect()
    await sub.subscribe("order/t", 1)
    for i in range(50):
        pub.client.publish("order/t", str(i).encode(), qos=1)
    await pub.publish("order/t", b"end", qos=1)
    got = [(await sub.next_message()).payload for _ in range(51)]
    assert got == [str(i).encode() for i in range(50)] + [b"end"]


@VERSIONS
async def test_mqtt_4_6_0_5_qos0_messages_keep_their_order(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """Messages of the same QoS from one client are forwarded in the order received."""
    sub = await raw(gateway, version)
    pub = await raw(gateway, version)
    await sub.connect("order0-sub")
    await pub.connect("order0-pub")
    assert await sub.subscribe("order0/t") == [0]
    pub.send(*(Publish("order0/t", str(i).encode()) for i in range(100)))
    got = await sub.publishes(100)
    assert payloads(got) == [str(i).encode() for i in range(100)]


@VERSIONS
async def test_mqtt_3_3_5_overlapping_subscriptions_each_deliver(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """With overlapping subscriptions the message is delivered respecting the highest granted QoS."""
    sub = await raw(gateway, version)
    pub = await raw(gateway, version)
    await sub.connect("overlap-sub")
    await pub.connect("overlap-pub")
    assert await sub.subscribe("ov/+", qos=0) == [0]
    assert await sub.subscribe("ov/#", qos=1) == [1]
    await pub.publish("ov/t", b"m", qos=1)
    copies = await sub.receive_acked(1)
    # A second copy (one per subscription) is allowed: wait a bounded time for it.
    with contextlib.suppress(TimeoutError):
        copies += await sub.receive_acked(1, timeout=0.5)
    assert max(m.qos for m in copies) == 1
    assert len(copies) <= 2
