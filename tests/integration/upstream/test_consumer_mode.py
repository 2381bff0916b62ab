"""``mqtt { consumer_mode }`` against a real nats-server: consumers per subscription or per session.

In the default ``subscription`` mode each QoS 1 subscription has its own durable
consumer on ``$MQTT_msgs``; in ``session`` mode the session's QoS 1
subscriptions share one, ``<hash8>_session``, with a filter subject each, and
SUBSCRIBE/UNSUBSCRIBE change its filters. Counted with nats-py's JetStream API.
"""

from __future__ import annotations

import pytest

from gateway.mqtt.packets import Subscription
from gateway.mqtt.store import hash8
from tests.conftest import NatsServer
from tests.integration.upstream.conftest import (
    ClientFactory,
    GatewayFactory,
    JetStreamFactory,
    OfflineFactory,
)

pytestmark = pytest.mark.integration

MSGS = "$MQTT_msgs"
COUNT = 200


def _filters(info: object) -> set[str]:
    config = info.config  # type: ignore[attr-defined]
    subjects = list(config.filter_subjects or [])
    if config.filter_subject:
        subjects.append(config.filter_subject)
    return {s.removeprefix("$MQTT.msgs.") for s in subjects}


@pytest.mark.parametrize(("mode", "expected"), [("subscription", COUNT), ("session", 1)])
async def test_consumers_created_for_many_qos1_subscriptions(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    jetstream: JetStreamFactory,
    mode: str,
    expected: int,
) -> None:
    gateway = await gateways(nats_server.url, f"consumer_mode: {mode}, max_ack_pending: 100")
    js = await jetstream(nats_server.url)
    client = await mqtt_client(gateway, f"many-{mode}", clean=False)
    batch = 50
    for start in range(0, COUNT, batch):
        subs = [Subscription(f"many/{i}", 1) for i in range(start, start + batch)]
        assert await client.subscribe(*subs) == [1] * batch
    consumers = await js.consumers_info(MSGS)
    assert len(consumers) == expected
    if mode == "session":
        (info,) = consumers
        assert info.name == f"{hash8(f'many-{mode}')}_session"
        assert _filters(info) == {f"many.{i}" for i in range(COUNT)}
    # Every subscription delivers.
    publisher = await mqtt_client(gateway, f"many-{mode}-pub")
    for i in (0, COUNT // 2, COUNT - 1):
        await publisher.publish(f"many/{i}", b"%d" % i, qos=1)
        (got,) = await client.receive_acked(1)
        assert (got.topic, got.payload) == (f"many/{i}", b"%d" % i)


async def test_session_consumer_follows_subscribe_unsubscribe_and_resume(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    jetstream: JetStreamFactory,
    go_offline: OfflineFactory,
) -> None:
    gateway = await gateways(nats_server.url, "consumer_mode: session")
    js = await jetstream(nats_server.url)
    name = f"{hash8('follow')}_session"
    client = await mqtt_client(gateway, "follow", clean=False)
    assert await client.subscribe("a/#", qos=1) == [1]
    assert await client.subscribe("b", qos=1) == [1]
    assert await client.subscribe("z", qos=0) == [0]  # QoS 0: no filter
    (info,) = await js.consumers_info(MSGS)
    assert info.name == name
    assert _filters(info) == {"a.>", "a", "b"}

    await client.unsubscribe("a/#")
    (info,) = await js.consumers_info(MSGS)
    assert _filters(info) == {"b"}
    publisher = await mqtt_client(gateway, "follow-pub")
    await publisher.publish("a/x", b"gone", qos=1)
    await publisher.publish("b", b"kept", qos=1)
    (got,) = await client.receive_acked(1)
    assert got.payload == b"kept"

    # Offline: the consumer keeps what arrives; it is delivered on resume.
    await go_offline(client, "follow", nats_server.url)
    await publisher.publish("b", b"while away", qos=1)
    back = await mqtt_client(gateway, "follow", clean=False)
    (got,) = await back.receive_acked(1)
    assert got.payload == b"while away"
    assert [c.name for c in await js.consumers_info(MSGS)] == [name]

    # Unsubscribing the last QoS 1 filter deletes the consumer.
    await back.unsubscribe("b")
    assert await js.consumers_info(MSGS) == []

    # A clean start ends the stored session, its consumer included.
    assert await back.subscribe("c", qos=1) == [1]
    assert [c.name for c in await js.consumers_info(MSGS)] == [name]
    await go_offline(back, "follow", nats_server.url)
    await (await mqtt_client(gateway, "follow", clean=True)).disconnect()
    assert await js.consumers_info(MSGS) == []


async def test_overlapping_filters_share_the_session_consumer(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    jetstream: JetStreamFactory,
) -> None:
    """JetStream refuses overlapping filter subjects: they are merged, deliveries routed."""
    gateway = await gateways(nats_server.url, "consumer_mode: session")
    js = await jetstream(nats_server.url)
    client = await mqtt_client(gateway, "overlap")
    assert await client.subscribe("o/+", "o/#", qos=1) == [1, 1]
    assert await client.subscribe("p/+/c", "p/b/+", qos=1) == [1, 1]
    (info,) = await js.consumers_info(MSGS)
    assert _filters(info) == {"o", "o.>", "p.>"}
    publisher = await mqtt_client(gateway, "overlap-pub")
    await publisher.publish("p/x/y", b"no subscription", qos=1)
    for topic in ("o/1", "p/b/c", "p/a/c", "p/b/d", "o"):
        await publisher.publish(topic, topic.encode(), qos=1)
    got = await client.receive_acked(5)
    assert [m.topic for m in got] == ["o/1", "p/b/c", "p/a/c", "p/b/d", "o"]
    await client.quiet()
    info = await js.consumer_info(MSGS, info.name)
    assert info.num_ack_pending == 0
