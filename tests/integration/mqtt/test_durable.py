"""QoS 1/2 subscriptions as durable consumers: ack_wait redelivery with DUP, max_ack_pending,
the session's 65535 budget (a filter ending in # counts twice), settings applying to new
subscriptions only, and consumers deleted by UNSUBSCRIBE or a clean session."""

from __future__ import annotations

import time
from pathlib import Path

from gateway.mqtt.packets import Puback, Publish
from gateway.server import Gateway
from tests.integration.mqtt.conftest import GatewayFactory, NatsFactory, RawFactory
from tests.integration.mqtt.helpers import RawSession, payloads


async def client(
    raw: RawFactory, gateway: Gateway, client_id: str, clean: bool = True
) -> RawSession:
    session = await raw(gateway, 4)
    assert (await session.connect(client_id, clean=clean)).reason_code == 0
    return session


async def test_mqtt_3_3_1_1_late_puback_redelivered_with_dup_after_ack_wait(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    """A PUBLISH re-delivered because its PUBACK is late (after ``ack_wait``) has DUP 1 and the
    same packet identifier (3.1.1 [MQTT-2.3.1-3])."""
    gateway = await gateway_factory('mqtt { ack_wait: "1s" }\n')
    sub = await client(raw, gateway, "late-acker")
    assert await sub.subscribe("aw/t", qos=1) == [1]
    pub = await client(raw, gateway, "aw-pub")
    await pub.publish("aw/t", b"slow", qos=1)
    first = await sub.expect(Publish)
    assert first.dup is False
    started = time.monotonic()
    again = await sub.expect(Publish, timeout=4)
    assert time.monotonic() - started >= 0.8
    assert (again.dup, again.packet_id, bytes(again.payload)) == (True, first.packet_id, b"slow")
    sub.send(Puback(again.packet_id))
    await sub.quiet(1.5)  # bounded wait past ack_wait: acknowledged now, no third copy


async def test_max_ack_pending_caps_unacknowledged_messages_in_flight(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    """No more unacknowledged messages are in flight to the client than ``max_ack_pending``."""
    gateway = await gateway_factory("mqtt { max_ack_pending: 3 }\n")
    sub = await client(raw, gateway, "map-sub")
    assert await sub.subscribe("map/t", qos=1) == [1]
    pub = await client(raw, gateway, "map-pub")
    for i in range(8):
        await pub.publish("map/t", str(i).encode(), qos=1)
    first = await sub.publishes(3)
    await sub.quiet()  # bounded wait: 3 in flight, the 4th must wait
    sub.send(Puback(first[0].packet_id))
    fourth = await sub.expect(Publish)
    await sub.quiet()  # bounded wait: one ack frees exactly one slot
    for m in (first[1], first[2], fourth):
        sub.send(Puback(m.packet_id))
    rest = await sub.receive_acked(4)
    assert payloads([*first, fourth, *rest]) == [str(i).encode() for i in range(8)]


async def test_suback_0x80_when_session_max_ack_pending_would_exceed_65535(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    """A QoS 1 SUBACK is 0x80 once the session's summed max_ack_pending would pass 65535; a filter
    ending in # counts twice; QoS 0 subscriptions cost nothing."""
    gateway = await gateway_factory("mqtt { max_ack_pending: 20000 }\n")
    plain = await client(raw, gateway, "budget-plain")
    assert await plain.subscribe("b/1", "b/2", "b/3", qos=1) == [1, 1, 1]  # 60000
    assert await plain.subscribe("b/4", qos=1) == [0x80]  # 80000 > 65535
    assert await plain.subscribe("b/5", qos=0) == [0]
    multi = await client(raw, gateway, "budget-multi")
    assert await multi.subscribe("m/#", qos=1) == [1]  # counts 40000
    assert await multi.subscribe("n", qos=1) == [1]  # 60000
    assert await multi.subscribe("o/#", qos=1) == [0x80]  # 100000
    assert await multi.subscribe("p", qos=1) == [0x80]  # 80000
    assert await multi.unsubscribe("n")
    assert await multi.subscribe("p", qos=1) == [1]  # budget given back by UNSUBSCRIBE


async def test_qos1_subscription_uses_unique_deliver_subject_under_mqtt_sub(
    gateway: Gateway, raw: RawFactory, nats_client: NatsFactory
) -> None:
    """Each QoS 1 subscription is a push consumer delivering on its own `$MQTT.sub.` subject."""
    nc = await nats_client(gateway)
    spy = await nc.subscribe("$MQTT.sub.>")
    await nc.flush()
    sub = await client(raw, gateway, "deliver-subj")
    assert await sub.subscribe("ds/a", "ds/b", qos=1) == [1, 1]
    pub = await client(raw, gateway, "ds-pub")
    await pub.publish("ds/a", b"A", qos=1)
    await pub.publish("ds/b", b"B", qos=1)
    await sub.receive_acked(2)
    seen = {}
    for _ in range(2):
        msg = await spy.next_msg(timeout=5)
        seen[msg.data] = msg.subject
    assert set(seen) == {b"A", b"B"}
    assert seen[b"A"] != seen[b"B"]


async def test_mqtt_3_10_4_1_unsubscribe_deletes_the_durable_consumer(
    gateway: Gateway, raw: RawFactory
) -> None:
    """UNSUBSCRIBE deletes the subscription (and its consumer): nothing is queued for it while
    the persistent session is offline."""
    sub = await client(raw, gateway, "unsub", clean=False)
    assert await sub.subscribe("us/keep", "us/drop", qos=1) == [1, 1]
    await sub.unsubscribe("us/drop")
    await sub.disconnect()
    pub = await client(raw, gateway, "unsub-pub")
    await pub.publish("us/drop", b"dropped", qos=1)
    await pub.publish("us/keep", b"kept", qos=1)
    back = await raw(gateway, 4)
    assert (await back.connect("unsub", clean=False)).session_present
    assert payloads(await back.receive_acked(1)) == [b"kept"]
    await back.quiet()  # bounded wait: the unsubscribed filter queued nothing


async def test_ack_wait_change_applies_to_new_subscriptions_only(
    gateway_factory: GatewayFactory, raw: RawFactory, tmp_path: Path
) -> None:
    """Changing ack_wait applies to subscriptions made afterwards; existing consumers keep theirs."""
    store = tmp_path / "settings-store"
    first = await gateway_factory('mqtt { ack_wait: "1s" }\n', store_dir=store)
    sub = await client(raw, first, "settings", clean=False)
    assert await sub.subscribe("set/old", qos=1) == [1]
    await sub.disconnect()
    await first.stop()
    second = await gateway_factory('mqtt { ack_wait: "30s" }\n', store_dir=store)
    back = await raw(second, 4)
    assert (await back.connect("settings", clean=False)).session_present
    assert await back.subscribe("set/new", qos=1) == [1]
    pub = await client(raw, second, "settings-pub")
    await pub.publish("set/old", b"old", qos=1)
    await pub.publish("set/new", b"new", qos=1)
    got = await back.publishes(2)
    assert {m.topic for m in got} == {"set/old", "set/new"}
    again = await back.expect(Publish, timeout=4)  # the old consumer's 1 s ack_wait
    assert (again.topic, again.dup) == ("set/old", True)
    back.send(Puback(again.packet_id))
    await back.quiet(1.5)  # bounded wait: the new subscription (30 s) redelivers nothing yet
