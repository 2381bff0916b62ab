"""QoS 1 subscriptions as real JetStream consumers, read back and exercised on a nats-server.

Each QoS 1/2 filter is a durable push consumer on ``$MQTT_msgs`` per NATS
subject (``a/#``: ``a.>`` and ``a``) with the ``mqtt`` block's ``ack_wait``
and ``max_ack_pending``. The tests read the settings back with nats-py's
JetStream management API, watch JetStream redeliver an unacknowledged message
with DUP after ``ack_wait``, watch ``max_ack_pending`` hold deliveries back,
and check the session-wide ``max_ack_pending`` budget of 65535 (SUBACK 0x80).
"""

from __future__ import annotations

import pytest
from nats.js.api import AckPolicy, ConsumerInfo, RetentionPolicy

from gateway.mqtt.packets import Puback, Publish
from gateway.mqtt.properties import Properties
from tests.conftest import NatsServer
from tests.integration.upstream.conftest import (
    ClientFactory,
    GatewayFactory,
    JetStreamFactory,
    OfflineFactory,
    RawFactory,
)

pytestmark = pytest.mark.integration

MSGS = "$MQTT_msgs"


def by_filter(infos: list[ConsumerInfo]) -> dict[str, ConsumerInfo]:
    """Consumers keyed by filter subject, without the ``$MQTT.msgs.`` prefix."""
    out: dict[str, ConsumerInfo] = {}
    for info in infos:
        subject = info.config.filter_subject or ""
        assert subject.startswith("$MQTT.msgs."), subject
        out[subject.removeprefix("$MQTT.msgs.")] = info
    return out


async def test_streams_and_consumer_settings_read_back(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    jetstream: JetStreamFactory,
    go_offline: OfflineFactory,
) -> None:
    """``ack_wait``, ``max_ack_pending``, durable names and ``$MQTT.sub.`` deliver subjects."""
    gateway = await gateways(nats_server.url, "max_ack_pending: 7")
    js = await jetstream(nats_server.url)
    streams = {s.config.name: s.config for s in await js.streams_info()}
    assert {"$MQTT_msgs", "$MQTT_rmsgs", "$MQTT_sess", "$MQTT_qos2in"} <= set(streams)
    assert streams[MSGS].retention == RetentionPolicy.INTEREST
    assert streams[MSGS].subjects == ["$MQTT.msgs.>"]

    client = await mqtt_client(gateway, "settings", clean=False)
    assert await client.subscribe("c/#", qos=1) == [1]
    assert await client.subscribe("d", qos=1) == [1]
    assert await client.subscribe("e", qos=0) == [0]  # QoS 0: no consumer

    consumers = by_filter(await js.consumers_info(MSGS))
    assert set(consumers) == {"c.>", "c", "d"}
    for info in consumers.values():
        config = info.config
        assert config.durable_name, "MQTT consumers are durable"
        assert info.name == config.durable_name
        assert config.ack_policy == AckPolicy.EXPLICIT
        assert config.ack_wait == pytest.approx(1.0)
        assert config.max_ack_pending == 7
        assert (config.deliver_subject or "").startswith("$MQTT.sub.")
        # Read back one by one, too.
        one = (await js.consumer_info(MSGS, info.name)).config
        assert (one.durable_name, one.ack_wait, one.max_ack_pending, one.deliver_subject) == (
            config.durable_name,
            config.ack_wait,
            config.max_ack_pending,
            config.deliver_subject,
        )
    # Both consumers of c/# push to the one deliver subject of that subscription.
    assert consumers["c.>"].config.deliver_subject == consumers["c"].config.deliver_subject
    assert consumers["c"].config.deliver_subject != consumers["d"].config.deliver_subject

    # A persistent session keeps its consumers while offline; UNSUBSCRIBE deletes them.
    await go_offline(client, "settings", nats_server.url)
    assert set(by_filter(await js.consumers_info(MSGS))) == {"c.>", "c", "d"}
    back = await mqtt_client(gateway, "settings", clean=False)
    await back.unsubscribe("c/#")
    assert set(by_filter(await js.consumers_info(MSGS))) == {"d"}
    await go_offline(back, "settings", nats_server.url)
    # A clean session ends the stored one, consumers included.
    await (await mqtt_client(gateway, "settings", clean=True)).disconnect()
    assert await js.consumers_info(MSGS) == []


async def test_unacknowledged_delivery_comes_again_with_dup_after_ack_wait(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
) -> None:
    """A 3.1.1 client that does not PUBACK gets the message again after ack_wait (1 s), DUP set."""
    gateway = await gateways(nats_server.url)
    sub = await mqtt_client(gateway, "no-puback", clean=False)
    assert await sub.subscribe("redo/+", qos=1) == [1]
    pub = await mqtt_client(gateway, "redo-pub")
    await pub.publish("redo/a", b"again", qos=1)

    first = await sub.expect(Publish)
    assert (first.topic, first.payload, first.qos, first.dup) == ("redo/a", b"again", 1, False)
    # No PUBACK: JetStream redelivers after ack_wait; the gateway reuses the packet id.
    second = await sub.expect(Publish, timeout=5)
    assert (second.topic, second.payload, second.qos) == ("redo/a", b"again", 1)
    assert second.dup, "a redelivery must have DUP set [MQTT-3.3.1-1]"
    assert second.packet_id == first.packet_id
    sub.send(Puback(second.packet_id))
    await sub.quiet(2.0)  # more than ack_wait: the acknowledged message is not sent again


async def test_max_ack_pending_holds_deliveries_back(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    jetstream: JetStreamFactory,
) -> None:
    """With max_ack_pending 5, at most 5 unacknowledged messages are in flight to a subscriber."""
    gateway = await gateways(nats_server.url, 'max_ack_pending: 5, ack_wait: "30s"')
    sub = await mqtt_client(gateway, "stalled", clean=False)
    assert await sub.subscribe("stall", qos=1) == [1]
    pub = await mqtt_client(gateway, "stall-pub")
    sent = [f"s{i}".encode() for i in range(12)]
    for body in sent:
        await pub.publish("stall", body, qos=1)

    first = await sub.publishes(5)
    assert [bytes(p.payload) for p in first] == sent[:5]
    await sub.quiet()  # the sixth is held back by JetStream
    js = await jetstream(nats_server.url)
    [info] = await js.consumers_info(MSGS)
    assert (info.num_ack_pending, info.num_pending) == (5, 7)

    for p in first[:2]:  # two acknowledgements free two places
        sub.send(Puback(p.packet_id))
    more = await sub.publishes(2)
    assert [bytes(p.payload) for p in more] == sent[5:7]
    await sub.quiet()

    for p in [*first[2:], *more]:
        sub.send(Puback(p.packet_id))
    rest = await sub.receive_acked(5)
    assert [bytes(p.payload) for p in rest] == sent[7:]
    assert not any(p.dup for p in [*first, *more, *rest])


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])
async def test_session_max_ack_pending_budget(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    raw: RawFactory,
    mqtt_client: ClientFactory,
    jetstream: JetStreamFactory,
    go_offline: OfflineFactory,
    version: int,
) -> None:
    """max_ack_pending 20000: the 4th plain QoS 1 filter or the 2nd ``#`` filter is refused (0x80)."""
    extra = "max_ack_pending: 20000"
    a = await gateways(nats_server.url, extra)
    b = await gateways(nats_server.url, extra)
    refused = 0x80 if version == 4 else 0x97  # 5.0: Quota exceeded
    js = await jetstream(nats_server.url)

    keep = Properties(session_expiry_interval=3600) if version == 5 else None
    plain = await mqtt_client(a, "budget-plain", version, clean=False, properties=keep)
    assert await plain.subscribe("p1", "p2", "p3", qos=1) == [1, 1, 1]  # 60000
    assert await plain.subscribe("p4", qos=1) == [refused]  # 80000 > 65535
    assert await plain.subscribe("p5", qos=0) == [0]  # QoS 0 costs nothing
    assert await plain.subscribe("p1", qos=1) == [1]  # a renewal is not counted twice

    multi = await mqtt_client(a, "budget-multi", version)
    assert await multi.subscribe("x/#", qos=1) == [1]  # x.> and x: 40000
    assert await multi.subscribe("y/#", qos=1) == [refused]  # 80000
    assert await multi.subscribe("z", qos=1) == [1]  # 60000

    filters = sorted(i.config.filter_subject or "" for i in await js.consumers_info(MSGS))
    assert filters == sorted(f"$MQTT.msgs.{s}" for s in ("p1", "p2", "p3", "x.>", "x", "z")), (
        "a refused filter must leave no consumer behind"
    )

    # The budget is the session's: resumed on gateway B, the stored subscriptions still count.
    await go_offline(plain, "budget-plain", nats_server.url)
    resumed = await raw(b, version)
    assert (await resumed.connect("budget-plain", clean=False, properties=keep)).session_present
    assert await resumed.subscribe("p6", qos=1) == [refused]
    await resumed.unsubscribe("p3")
    assert await resumed.subscribe("p6", qos=1) == [1]
