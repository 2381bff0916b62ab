"""Sessions that end with their connection, in embedded mode: no stored record, nothing left.

With only this gateway on the store, a clean session (3.1.1 Clean Session 1,
5.0 Clean Start with Session Expiry 0) needs no session record: takeover is
local and nothing of it outlives the connection ([MQTT-3.1.2-6], 3.1.2.11.2).
Its QoS 1 subscriptions still are durable consumers while it lasts, deleted
when it ends, and consumers such a session left behind in a crash are deleted
at the next start, as are QoS 2 messages it staged (it purges its own only
if it staged any). Persistent sessions are stored as before.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from gateway.mqtt.connection import MqttConnection
from gateway.mqtt.packets import Pubcomp, Publish, Pubrec, Pubrel
from gateway.mqtt.properties import Properties
from gateway.mqtt.store import StagedMessage, hash8
from gateway.server import Gateway
from tests.integration.mqtt.conftest import GatewayFactory, RawFactory
from tests.integration.mqtt.helpers import RawSession

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


async def stored_clients(gateway: Gateway) -> list[str]:
    assert gateway.broker is not None
    return sorted(record.client_id for record in await gateway.broker.store.sessions())


async def consumers(gateway: Gateway) -> list[str]:
    assert gateway.broker is not None
    return await gateway.broker.store.consumer_names()


@VERSIONS
async def test_a_clean_session_stores_no_record_and_leaves_no_consumer(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    sub = await raw(gateway, version)
    await sub.connect("clean-one", clean=True)
    assert await sub.subscribe("eph/t", qos=1) == [1]
    assert len(await consumers(gateway)) == 1  # QoS 1 is a durable consumer meanwhile
    pub = await raw(gateway, version)
    await pub.connect("clean-pub", clean=True)
    await pub.publish("eph/t", b"m", qos=1)
    (msg,) = await sub.receive_acked(1)
    assert bytes(msg.payload) == b"m"
    assert await stored_clients(gateway) == []
    await sub.disconnect()
    await pub.disconnect()
    # The takeover of a clean session by a new connection still works locally.
    again = await raw(gateway, version)
    await again.connect("clean-one", clean=True)
    # (CONNACK came once the first connection had ended: its end deleted the consumer.)
    assert await consumers(gateway) == []
    await again.disconnect()


async def test_a_persistent_session_is_stored_as_before(gateway: Gateway, raw: RawFactory) -> None:
    keep = await raw(gateway, 5)
    await keep.connect("kept", clean=True, properties=Properties(session_expiry_interval=60))
    assert await keep.subscribe("kept/t", qos=1) == [1]
    old = await raw(gateway, 4)
    await old.connect("kept-311", clean=False)
    assert await stored_clients(gateway) == ["kept", "kept-311"]
    await keep.disconnect()
    await old.disconnect()
    assert len(await consumers(gateway)) == 1  # the 5.0 session's, kept for 60 s


async def test_consumers_a_crashed_clean_session_left_are_deleted_at_start(
    gateway_factory: GatewayFactory, tmp_path: Path, raw: RawFactory
) -> None:
    store = tmp_path / "crash-store"
    first = await gateway_factory(store_dir=store)
    kept = await raw(first, 4)
    await kept.connect("survivor", clean=False)
    assert await kept.subscribe("s/t", qos=1) == [1]
    await kept.disconnect()
    assert first.broker is not None
    # What a clean session's subscription leaves behind if the gateway dies under it.
    await first.broker.store.create_consumer(hash8("gone"), "g.t", "$MQTT.sub.gone")
    names = await consumers(first)
    assert len(names) == 2
    await first.stop()
    second = await gateway_factory(store_dir=store)
    left = await consumers(second)
    assert len(left) == 1 and left[0].startswith(hash8("survivor"))
    assert all(not name.startswith(hash8("gone")) for name in left)


async def staged_holders(gateway: Gateway) -> set[str]:
    assert gateway.broker is not None
    return await gateway.broker.store.qos2_holders()


async def stage(session: RawSession, packet_id: int, payload: bytes = b"staged") -> None:
    """A QoS 2 PUBLISH left waiting for its PUBREL."""
    session.send(Publish("q2/t", payload, qos=2, packet_id=packet_id))
    assert (await session.expect(Pubrec)).packet_id == packet_id


async def test_qos2_messages_a_crashed_clean_session_staged_are_dropped_at_start(
    gateway_factory: GatewayFactory, tmp_path: Path, raw: RawFactory
) -> None:
    store = tmp_path / "crash-store"
    first = await gateway_factory(store_dir=store)
    keeper = await raw(first, 4)
    await keeper.connect("keeper", clean=False)
    await stage(keeper, 3)
    await keeper.disconnect()
    assert first.broker is not None
    # What a clean session leaves if the gateway dies between its PUBREC and the PUBREL.
    old = StagedMessage("q2/t", "q2.t", b"old", False, {})
    await first.broker.store.stage_qos2(hash8("gone"), 1, old)
    assert await staged_holders(first) == {hash8("keeper"), hash8("gone")}
    await first.stop()
    second = await gateway_factory(store_dir=store)
    assert await staged_holders(second) == {hash8("keeper")}  # a persistent session's stays
    sub = await raw(second, 4)
    await sub.connect("q2-watch")
    assert await sub.subscribe("q2/t", qos=1) == [1]
    again = await raw(second, 4)
    await again.connect("gone", clean=True)
    # Packet id 1 again: a new message, not a duplicate of the one the crash left.
    await stage(again, 1, b"new")
    again.send(Pubrel(1))
    assert (await again.expect(Pubcomp)).packet_id == 1
    (msg,) = await sub.receive_acked(1)
    assert bytes(msg.payload) == b"new"


@VERSIONS
async def test_a_clean_session_that_staged_qos2_leaves_nothing_staged(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    stager = await raw(gateway, version)
    await stager.connect("stager", clean=True)
    await stage(stager, 5)
    assert await staged_holders(gateway) == {hash8("stager")}
    await stager.disconnect()
    again = await raw(gateway, version)
    await again.connect("stager", clean=True)  # answered once the first one has ended
    assert await staged_holders(gateway) == set()


async def test_a_resumed_session_ending_now_drops_what_an_earlier_connection_staged(
    gateway: Gateway, raw: RawFactory
) -> None:
    first = await raw(gateway, 5)
    await first.connect("resumed", clean=True, properties=Properties(session_expiry_interval=60))
    await stage(first, 4)
    await first.disconnect()
    second = await raw(gateway, 5)
    connack = await second.connect(
        "resumed", clean=False, properties=Properties(session_expiry_interval=60)
    )
    assert connack.session_present
    # This connection staged nothing itself; ending the session still drops message 4.
    await second.disconnect(properties=Properties(session_expiry_interval=0))
    third = await raw(gateway, 5)
    await third.connect("resumed", clean=True)
    assert await staged_holders(gateway) == set()


async def test_a_publish_reaches_a_clean_subscriber_on_the_next_connection_only(
    gateway: Gateway, raw: RawFactory
) -> None:
    sub = await raw(gateway, 4)
    await sub.connect("fresh", clean=True)
    assert await sub.subscribe("f/t", qos=1) == [1]
    await sub.disconnect()
    pub = await raw(gateway, 4)
    await pub.connect("fresh-pub")
    await pub.publish("f/t", b"while away", qos=1)
    back = await raw(gateway, 4)
    await back.connect("fresh", clean=True)
    assert await back.subscribe("f/t", qos=1) == [1]
    await pub.publish("f/t", b"now", qos=1)
    assert [bytes(p.payload) for p in await back.receive_acked(1)] == [b"now"]
    await back.quiet()


def _connections_alive(client_id: str) -> int:
    # Found by type, not by weakref: compiled (mypyc) classes take no weak references.
    return sum(
        1 for o in gc.get_objects() if type(o) is MqttConnection and o.client_id == client_id
    )


async def test_a_closed_connection_is_freed(gateway: Gateway, raw: RawFactory) -> None:
    """Nothing keeps a connection alive once it has ended (its cycles go to the collector)."""
    assert gateway.broker is not None
    sub = await raw(gateway, 5)
    await sub.connect("freed", clean=True)
    assert await sub.subscribe("free/t", qos=1) == [1]
    assert _connections_alive("freed") == 1
    await sub.disconnect()
    again = await raw(gateway, 5)
    await again.connect("freed", clean=True)  # answered once the first one has ended
    await again.disconnect()
    # The connection's task still winds down (socket close) after the session ended:
    # no event marks its very end, so look a few times.
    for _ in range(100):
        gc.collect()
        if _connections_alive("freed") == 0:
            break
        await asyncio.sleep(0.02)
    assert _connections_alive("freed") == 0
