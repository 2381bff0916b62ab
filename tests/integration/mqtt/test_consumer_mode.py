"""``mqtt { consumer_mode: session }`` on the embedded log: one consumer serves the session.

A delivery matching several QoS >= 1 subscriptions goes out once, at the
highest granted QoS, with every matching subscription identifier; SUBSCRIBE
and UNSUBSCRIBE change the consumer's filters without losing what is in
flight; sessions resume after a restart; a session stored in subscription
mode resumes in session mode on the session consumer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.bus.subjects import is_literal, subject_matches, subjects_overlap
from gateway.mqtt.packets import Puback, Publish, Subscription
from gateway.mqtt.properties import Properties
from gateway.mqtt.store import MSGS_STREAM, hash8
from gateway.mqtt.subscriptions import disjoint_filters
from gateway.server import Gateway
from tests.integration.mqtt.conftest import GatewayFactory, RawFactory
from tests.integration.mqtt.helpers import RawSession

SESSION = "mqtt { consumer_mode: session }\n"


async def client(
    raw: RawFactory, gateway: Gateway, client_id: str, version: int = 4, clean: bool = True
) -> RawSession:
    session = await raw(gateway, version)
    assert (await session.connect(client_id, clean=clean)).reason_code == 0
    return session


async def consumer_names(gateway: Gateway) -> list[str]:
    broker = gateway.broker
    assert broker is not None
    return await broker.store._log.consumer_names(MSGS_STREAM)


async def test_overlapping_subscriptions_deliver_once_at_the_highest_qos(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    gateway = await gateway_factory(SESSION)
    sub = await client(raw, gateway, "overlap", version=5)
    assert await sub.subscribe(
        Subscription("o/+", 1), properties=Properties(subscription_identifiers=(3,))
    ) == [1]
    assert await sub.subscribe(
        Subscription("o/#", 2), properties=Properties(subscription_identifiers=(7,))
    ) == [2]
    assert await consumer_names(gateway) == [f"{hash8('overlap')}_session"]
    pub = await client(raw, gateway, "overlap-pub")
    await pub.publish("o/x", b"both", qos=2)
    (got,) = await sub.receive_acked(1)
    assert (got.topic, got.payload, got.qos) == ("o/x", b"both", 2)
    assert set(got.properties.subscription_identifiers or ()) == {3, 7}
    await pub.publish("o", b"hash only", qos=1)
    (got,) = await sub.receive_acked(1)
    assert (got.payload, got.qos) == (b"hash only", 1)
    assert tuple(got.properties.subscription_identifiers or ()) == (7,)
    await sub.quiet()


async def test_unsubscribe_keeps_in_flight_deliveries_of_other_filters(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    gateway = await gateway_factory(SESSION)
    sub = await client(raw, gateway, "inflight", clean=False)
    assert await sub.subscribe("k/1", "k/2", qos=1) == [1, 1]
    pub = await client(raw, gateway, "inflight-pub")
    await pub.publish("k/1", b"one", qos=1)
    first = await sub.expect(Publish)  # not acknowledged yet
    assert first.payload == b"one"
    await sub.unsubscribe("k/2")
    await pub.publish("k/2", b"gone", qos=1)
    await pub.publish("k/1", b"two", qos=1)
    second = await sub.expect(Publish)
    assert second.payload == b"two"
    sub.send(Puback(first.packet_id), Puback(second.packet_id))
    await sub.quiet()
    # QoS 1 -> 0 on the last filter: the consumer goes.
    assert await sub.subscribe("k/1", qos=0) == [0]
    assert await consumer_names(gateway) == []


async def test_session_consumer_resumes_after_restart(
    gateway_factory: GatewayFactory, raw: RawFactory, tmp_path: Path
) -> None:
    store = tmp_path / "session-store"
    first = await gateway_factory(SESSION, store_dir=store)
    sub = await client(raw, first, "resume", clean=False)
    assert await sub.subscribe("r/a", "r/b/#", qos=1) == [1, 1]
    await sub.disconnect()
    pub = await client(raw, first, "resume-pub")
    await pub.publish("r/a", b"a", qos=1)
    await pub.publish("r/b/c", b"c", qos=1)
    await pub.disconnect()
    await first.stop()
    second = await gateway_factory(SESSION, store_dir=store)
    back = await raw(second, 4)
    assert (await back.connect("resume", clean=False)).session_present
    got = await back.receive_acked(2)
    assert [m.payload for m in got] == [b"a", b"c"]
    assert await consumer_names(second) == [f"{hash8('resume')}_session"]


async def test_a_subscription_mode_session_resumes_on_the_session_consumer(
    gateway_factory: GatewayFactory, raw: RawFactory, tmp_path: Path
) -> None:
    store = tmp_path / "switch-store"
    first = await gateway_factory(store_dir=store)
    sub = await client(raw, first, "switch", clean=False)
    assert await sub.subscribe("s/a", "s/b", qos=1) == [1, 1]
    assert len(await consumer_names(first)) == 2
    await sub.disconnect()
    await first.stop()
    second = await gateway_factory(SESSION, store_dir=store)
    back = await raw(second, 4)
    assert (await back.connect("switch", clean=False)).session_present
    assert await consumer_names(second) == [f"{hash8('switch')}_session"]
    pub = await client(raw, second, "switch-pub")
    await pub.publish("s/b", b"b", qos=1)
    (got,) = await back.receive_acked(1)
    assert got.payload == b"b"


async def test_the_budget_counts_the_session_consumer_once(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    gateway = await gateway_factory("mqtt { consumer_mode: session, max_ack_pending: 30000 }\n")
    sub = await client(raw, gateway, "budget")
    # Subscription mode refuses the third filter (3 x 30000 > 65535); one consumer does not.
    assert await sub.subscribe("b/1", "b/2", "b/3", "b/4/#", qos=1) == [1, 1, 1, 1]
    # Shared groups keep their own consumers, each counted.
    assert await sub.subscribe("$share/g/b/5", qos=1) == [1]
    assert await sub.subscribe("$share/g/b/6", qos=1) == [0x80]


@pytest.mark.parametrize(
    ("subjects", "filters"),
    [
        (["a", "b"], ("a", "b")),
        (["a.b", "a.>", "a"], ("a", "a.>")),
        (["a.*", "a.b", "a.>"], ("a.>",)),
        (["a.*.c", "a.b.*", "x"], ("a.>", "x")),
        (["*.b", "a.*", "c.d"], (">",)),
        (["a.*", "b.*", "a.x", "b"], ("a.*", "b", "b.*")),
        (["a.*.c.>", "a.*.d", "a.b.c.e"], ("a.*.c.>", "a.*.d")),
    ],
)
def test_session_consumer_filters_never_overlap(
    subjects: list[str], filters: tuple[str, ...]
) -> None:
    assert disjoint_filters(subjects) == filters
    for i, a in enumerate(filters):
        for b in filters[i + 1 :]:
            assert not subjects_overlap(a, b)
    for subject in subjects:
        if is_literal(subject):
            assert any(subject_matches(f, subject) for f in filters)
