"""Bursts of bare QoS 0 PUBLISHes: the batched hot path delivers exactly what single ones would.

A burst written in one TCP write reaches the gateway as one read, is decoded
as runs of one topic and published on the bus as batches. Every subscriber
kind must still see every message, in order ([MQTT-4.6.0-6]: ordered per
topic), encoded for its own version and its own options: 3.1.1 and 5.0
subscribers, a 5.0 subscription identifier ([MQTT-3.3.4-3]), a client
Maximum Packet Size that drops only the packets too large for it
([MQTT-3.1.2-25]), a client Topic Alias Maximum, a shared subscription
spreading per message, and a NATS subscriber.
"""

from __future__ import annotations

import asyncio

import nats
import pytest

from gateway.mqtt.packets import Publish, Subscription
from gateway.mqtt.properties import Properties
from gateway.server import Gateway
from tests.integration.mqtt.conftest import RawFactory, nats_url

BURST = 300


def burst(version: int, topics: list[str], sizes: list[int] | None = None) -> bytes:
    """BURST bare QoS 0 PUBLISHes, cycling over ``topics``, as one write."""
    out = []
    for i in range(BURST):
        size = sizes[i % len(sizes)] if sizes else 0
        payload = b"%05d" % i + bytes(size)
        out.append(Publish(topics[i % len(topics)], payload).encode(version))
    return b"".join(out)


@pytest.mark.parametrize("pub_version", [4, 5], ids=["pub311", "pub5"])
async def test_a_burst_reaches_every_kind_of_subscriber_in_order(
    gateway: Gateway, raw: RawFactory, pub_version: int
) -> None:
    v311 = await raw(gateway, 4)
    v5 = await raw(gateway, 5)
    v5_ids = await raw(gateway, 5)
    await v311.connect("b-311")
    await v5.connect("b-5")
    await v5_ids.connect("b-5-ids")
    assert await v311.subscribe("burst/#") == [0]
    assert await v5.subscribe("burst/+") == [0]
    assert await v5_ids.subscribe(
        "burst/#", properties=Properties(subscription_identifiers=(7,))
    ) == [0]
    nc = await nats.connect(nats_url(gateway))
    got_nats: list[tuple[str, bytes]] = []
    done = asyncio.Event()

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        got_nats.append((msg.subject, msg.data))
        if len(got_nats) == BURST:
            done.set()

    await nc.subscribe("burst.>", cb=on_msg)
    await nc.flush()
    try:
        pub = await raw(gateway, pub_version)
        await pub.connect("b-pub")
        topics = ["burst/a", "burst/a", "burst/a", "burst/b"]  # runs of one topic and changes
        pub.send(burst(pub_version, topics))
        expected = [(topics[i % 4], b"%05d" % i) for i in range(BURST)]
        for session in (v311, v5, v5_ids):
            msgs = await session.publishes(BURST)
            assert [(m.topic, bytes(m.payload)) for m in msgs] == expected
            assert all(m.qos == 0 and not m.retain and not m.dup for m in msgs)
        assert {m.properties.subscription_identifiers for m in msgs} == {(7,)}
        await asyncio.wait_for(done.wait(), 5)
        assert got_nats == [(t.replace("/", "."), p) for t, p in expected]
    finally:
        await nc.close()


async def test_subscription_identifier_is_on_every_message_of_a_burst(
    gateway: Gateway, raw: RawFactory
) -> None:
    sub = await raw(gateway, 5)
    await sub.connect("ids-sub")
    assert await sub.subscribe(
        Subscription("sid/t", 0), properties=Properties(subscription_identifiers=(42,))
    ) == [0]
    pub = await raw(gateway, 5)
    await pub.connect("ids-pub")
    pub.send(burst(5, ["sid/t"]))
    msgs = await sub.publishes(BURST)
    assert [m.properties.subscription_identifiers for m in msgs] == [(42,)] * BURST


async def test_maximum_packet_size_drops_only_the_large_packets_of_a_burst(
    gateway: Gateway, raw: RawFactory
) -> None:
    sub = await raw(gateway, 5)
    await sub.connect("mps-sub", properties=Properties(maximum_packet_size=100))
    assert await sub.subscribe("mps/t") == [0]
    pub = await raw(gateway, 4)
    await pub.connect("mps-pub")
    pub.send(burst(4, ["mps/t"], sizes=[0, 200]))  # every other one is too large
    msgs = await sub.publishes(BURST // 2)
    assert [bytes(m.payload) for m in msgs] == [b"%05d" % i for i in range(0, BURST, 2)]
    await sub.quiet()


async def test_topic_aliases_are_used_for_a_burst_when_the_client_allows_them(
    gateway: Gateway, raw: RawFactory
) -> None:
    sub = await raw(gateway, 5)
    await sub.connect("alias-sub", properties=Properties(topic_alias_maximum=4))
    assert await sub.subscribe("alias/t") == [0]
    pub = await raw(gateway, 4)
    await pub.connect("alias-pub")
    pub.send(burst(4, ["alias/t"]))
    msgs = await sub.publishes(BURST)
    assert [bytes(m.payload) for m in msgs] == [b"%05d" % i for i in range(BURST)]
    assert msgs[0].topic == "alias/t" and msgs[0].properties.topic_alias == 1
    assert all(m.topic == "" and m.properties.topic_alias == 1 for m in msgs[1:])


async def test_a_shared_subscription_spreads_a_burst_per_message(
    gateway: Gateway, raw: RawFactory
) -> None:
    members = [await raw(gateway, 5) for _ in range(2)]
    for i, member in enumerate(members):
        await member.connect(f"share-{i}")
        assert await member.subscribe("$share/g/share/t") == [0]
    pub = await raw(gateway, 4)
    await pub.connect("share-pub")
    pub.send(burst(4, ["share/t"]))
    counts = [0, 0]
    while sum(counts) < BURST:
        for i, member in enumerate(members):
            while member.inbox or sum(counts) < BURST:
                try:
                    await member.expect(Publish, timeout=0.3)
                except TimeoutError:
                    break
                counts[i] += 1
    assert sum(counts) == BURST
    assert min(counts) > BURST // 5  # each message picks a member; not one member per burst
