"""Retained messages: set, replace, clear, delivery on subscribe, 5.0 retain handling and
retain-as-published, the ``$`` rule on replays, and retained messages surviving a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.mqtt.packets import Publish, Subscription
from gateway.server import Gateway
from tests.integration.mqtt.conftest import GatewayFactory, RawFactory
from tests.integration.mqtt.helpers import RawSession

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


async def client(raw: RawFactory, gateway: Gateway, client_id: str, version: int) -> RawSession:
    session = await raw(gateway, version)
    assert (await session.connect(client_id)).reason_code == 0
    return session


@VERSIONS
async def test_mqtt_3_3_1_6_retained_message_sent_to_new_subscriber_with_retain_1(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A new subscription receives the topic's retained message, with RETAIN 1 [MQTT-3.3.1-8];
    an established subscription receives the live publish with RETAIN 0 [MQTT-3.3.1-9]."""
    live = await client(raw, gateway, "ret-live", version)
    assert await live.subscribe("ret/t", qos=1) == [1]
    pub = await client(raw, gateway, "ret-pub", version)
    await pub.publish("ret/t", b"kept", qos=1, retain=True)
    msg = (await live.receive_acked(1))[0]
    assert (bytes(msg.payload), msg.retain) == (b"kept", False)
    late = await client(raw, gateway, "ret-late", version)
    assert await late.subscribe("ret/#", qos=1) == [1]
    replay = (await late.receive_acked(1))[0]
    assert (replay.topic, bytes(replay.payload), replay.retain, replay.qos) == (
        "ret/t",
        b"kept",
        True,
        1,
    )


@VERSIONS
async def test_mqtt_3_3_1_5_retained_message_replaced(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A new retained PUBLISH replaces the stored one; a non-retained one leaves it alone."""
    pub = await client(raw, gateway, "rep-pub", version)
    await pub.publish("rep/t", b"old", qos=1, retain=True)
    await pub.publish("rep/t", b"new", qos=1, retain=True)
    await pub.publish("rep/t", b"not retained", qos=1)  # [MQTT-3.3.1-8] (5.0) / -12 (3.1.1)
    sub = await client(raw, gateway, "rep-sub", version)
    assert await sub.subscribe("rep/t", qos=1) == [1]
    assert [bytes(m.payload) for m in await sub.receive_acked(1)] == [b"new"]
    await sub.quiet()  # bounded wait: exactly one retained message per topic


@VERSIONS
async def test_mqtt_3_3_1_10_empty_retained_payload_clears_retained_message(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A retained PUBLISH with an empty payload removes the retained message and is not stored
    itself (3.1.1 [MQTT-3.3.1-10], [MQTT-3.3.1-11]; 5.0 [MQTT-3.3.1-6], [MQTT-3.3.1-7])."""
    pub = await client(raw, gateway, "clr-pub", version)
    await pub.publish("clr/t", b"gone soon", qos=1, retain=True)
    live = await client(raw, gateway, "clr-live", version)
    assert await live.subscribe("clr/t", qos=1) == [1]
    assert [bytes(m.payload) for m in await live.receive_acked(1)] == [b"gone soon"]
    await pub.publish("clr/t", b"", qos=1, retain=True)
    cleared = (await live.receive_acked(1))[0]  # still delivered to live subscribers
    assert bytes(cleared.payload) == b""
    fresh = await client(raw, gateway, "clr-fresh", version)
    assert await fresh.subscribe("clr/#", qos=1) == [1]
    await fresh.quiet()  # bounded wait: no retained message remains


async def test_mqtt5_3_3_1_9_to_11_retain_handling_options(
    gateway: Gateway, raw: RawFactory
) -> None:
    """Retain Handling 0 sends retained messages on every SUBSCRIBE, 1 only when the subscription
    is new, 2 never."""
    pub = await client(raw, gateway, "rh-pub", 5)
    await pub.publish("rh/t", b"r", qos=1, retain=True)
    sub = await client(raw, gateway, "rh-sub", 5)
    for handling, first, second in ((0, 1, 1), (1, 1, 0), (2, 0, 0)):
        for expected in (first, second):
            assert await sub.subscribe(Subscription("rh/t", 1, retain_handling=handling)) == [1]
            if expected:
                assert [bytes(m.payload) for m in await sub.receive_acked(1)] == [b"r"]
            else:
                await sub.quiet()  # bounded wait: this option forbids the replay
        await sub.unsubscribe("rh/t")


async def test_mqtt5_3_3_1_12_and_13_retain_as_published(gateway: Gateway, raw: RawFactory) -> None:
    """Retain As Published 1 forwards the RETAIN flag as published; 0 forwards RETAIN 0."""
    rap = await client(raw, gateway, "rap-1", 5)
    plain = await client(raw, gateway, "rap-0", 5)
    assert await rap.subscribe(Subscription("rap/t", 1, retain_as_published=True)) == [1]
    assert await plain.subscribe(Subscription("rap/t", 1)) == [1]
    pub = await client(raw, gateway, "rap-pub", 5)
    await pub.publish("rap/t", b"flagged", qos=1, retain=True)
    assert (await rap.receive_acked(1))[0].retain is True
    assert (await plain.receive_acked(1))[0].retain is False


@VERSIONS
async def test_mqtt_4_7_2_1_retained_dollar_topics_not_replayed_to_wildcards(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """Filters starting with a wildcard do not match topics starting with "$" -- for retained
    replays too (the NATS server replays them: a known upstream bug)."""
    pub = await client(raw, gateway, "dollar-pub", version)
    await pub.publish("$app/status", b"hidden", qos=1, retain=True)
    await pub.publish("app/status", b"visible", qos=1, retain=True)
    sub = await client(raw, gateway, "dollar-sub", version)
    assert await sub.subscribe("#", "+/status", qos=1) == [1, 1]
    got = await sub.receive_acked(2)  # one replay of app/status per filter
    assert {m.topic for m in got} == {"app/status"}
    await sub.quiet()  # bounded wait: the $app/status replay must not come
    explicit = await client(raw, gateway, "dollar-explicit", version)
    assert await explicit.subscribe("$app/#", qos=1) == [1]
    assert [m.topic for m in await explicit.receive_acked(1)] == ["$app/status"]


@VERSIONS
async def test_mqtt_3_3_1_5_retained_messages_survive_a_restart(
    gateway_factory: GatewayFactory, raw: RawFactory, tmp_path: Path, version: int
) -> None:
    """Retained messages are kept in the log: a gateway restarted on the same store replays them."""
    store = tmp_path / "retained-store"
    first = await gateway_factory(store_dir=store)
    pub = await client(raw, first, "restart-pub", version)
    await pub.publish("keep/a", b"A", qos=1, retain=True)
    await pub.publish("keep/b", b"B", qos=0, retain=True)
    await pub.publish("keep/c", b"C", qos=1, retain=True)
    await pub.publish("keep/c", b"", qos=1, retain=True)  # cleared before the restart
    await pub.disconnect()
    await first.stop()
    second = await gateway_factory(store_dir=store)
    sub = await client(raw, second, "restart-sub", version)
    assert await sub.subscribe("keep/#", qos=1) == [1]
    got = await sub.receive_acked(2)
    assert sorted((m.topic, bytes(m.payload)) for m in got) == [("keep/a", b"A"), ("keep/b", b"B")]
    assert all(m.retain for m in got)
    await sub.quiet()  # bounded wait: the cleared keep/c stays cleared


async def test_mqtt_3_3_1_8_retained_qos_is_minimum_of_stored_and_granted(
    gateway: Gateway, raw: RawFactory
) -> None:
    """A retained replay is delivered at the lower of its stored QoS and the granted QoS."""
    pub = await client(raw, gateway, "rq-pub", 4)
    await pub.publish("rq/t", b"q2", qos=2, retain=True)
    sub = await client(raw, gateway, "rq-sub", 4)
    assert await sub.subscribe("rq/t", qos=1) == [1]
    msg = await sub.expect(Publish)
    assert (msg.qos, msg.retain) == (1, True)
