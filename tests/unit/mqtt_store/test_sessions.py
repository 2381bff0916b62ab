"""Session records: load/save with optimistic concurrency, collisions, delete, expiry (nats-mqtt.md 2.8)."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.bus.api import new_inbox
from gateway.mqtt.store import (
    DELIVER_PREFIX,
    NEVER_EXPIRES,
    QOS2_STREAM,
    SESSIONS_STREAM,
    SessionCollision,
    SessionConflict,
    SessionRecord,
    StagedMessage,
    SubscriptionRecord,
    hash8,
    shared_deliver_subject,
)
from gateway.mqtt.store.records import encode_session

from .conftest import StoreEnv


def _record(client_id: str = "dev-1", **kw: object) -> SessionRecord:
    fields: dict[str, object] = {
        "client_id": client_id,
        "expiry_interval": 60,
        "subscriptions": {"a/b": SubscriptionRecord("a/b", 1)},
    }
    fields.update(kw)
    return SessionRecord(**fields)  # type: ignore[arg-type]


async def test_missing_session_loads_as_none(env: StoreEnv) -> None:
    assert await env.store.load_session("nobody") is None


async def test_save_then_load_returns_the_record_with_its_revision(env: StoreEnv) -> None:
    saved = await env.store.save_session(_record(pending_pubrel=(4,)))
    assert saved.revision > 0
    loaded = await env.store.load_session("dev-1")
    assert loaded == saved
    msg = await env.log.get_last_msg(SESSIONS_STREAM, f"$MQTT.sess.{hash8('dev-1')}")
    assert msg.seq == saved.revision


async def test_save_on_a_stale_revision_is_a_conflict(env: StoreEnv) -> None:
    first = await env.store.save_session(_record())
    second = await env.store.save_session(dataclasses.replace(first, expiry_interval=5))
    assert second.revision > first.revision
    with pytest.raises(SessionConflict):
        await env.store.save_session(dataclasses.replace(first, expiry_interval=9))
    # A fresh record (revision 0) must not overwrite an existing one either.
    with pytest.raises(SessionConflict):
        await env.store.save_session(_record())
    loaded = await env.store.load_session("dev-1")
    assert loaded is not None and loaded.expiry_interval == 5


async def test_two_gateways_resuming_the_same_session_cannot_both_win(env: StoreEnv) -> None:
    peer = await env.peer()
    base = await env.store.save_session(_record())
    mine = await env.store.load_session("dev-1")
    theirs = await peer.load_session("dev-1")
    assert mine == theirs == base
    assert mine is not None and theirs is not None
    await peer.save_session(dataclasses.replace(theirs, disconnected_at=None))
    with pytest.raises(SessionConflict):
        await env.store.save_session(mine)


async def test_record_of_another_client_under_the_same_hash_is_a_collision(env: StoreEnv) -> None:
    # nats-mqtt.md 2.3: CONNACK rc=2. Real hash8 collisions are rare, so plant one.
    await env.log.publish(f"$MQTT.sess.{hash8('victim')}", encode_session(_record("intruder")))
    with pytest.raises(SessionCollision):
        await env.store.load_session("victim")
    with pytest.raises(SessionCollision):
        await env.store.save_session(_record("victim"))
    with pytest.raises(SessionCollision):
        await env.store.delete_session("victim")


async def test_delete_session_removes_record_consumers_and_staged_messages(
    env: StoreEnv,
) -> None:
    store = env.store
    h = hash8("dev-1")
    c1 = await store.create_consumer(h, "a.>", DELIVER_PREFIX + "one")
    c2 = await store.create_consumer(h, "a", DELIVER_PREFIX + "two")
    shared = await store.create_consumer(h, "s", shared_deliver_subject("g", "s"), queue_group="g")
    await store.stage_qos2(h, 1, StagedMessage("q", "q", b"p", False, {}))
    subs = {
        "a/#": SubscriptionRecord("a/#", 1, consumers=(c1, c2)),
        "$share/g/s": SubscriptionRecord("$share/g/s", 1, consumers=(shared,)),
    }
    await store.save_session(_record(subscriptions=subs))
    await store.delete_session("dev-1")
    assert await store.load_session("dev-1") is None
    assert not await store.consumer_exists(c1)
    assert not await store.consumer_exists(c2)
    # The group's consumer serves other members and stays.
    assert await store.consumer_exists(shared)
    assert (await env.log.stream_info(QOS2_STREAM)).state.messages == 0
    # The client may start over with a fresh record.
    assert (await store.save_session(_record())).revision > 0
    await store.delete_session("never-existed")  # a missing session is fine


async def test_delete_by_revision_refuses_a_session_saved_since(env: StoreEnv) -> None:
    old = await env.store.save_session(_record())
    new = await env.store.save_session(dataclasses.replace(old, disconnected_at=None))
    with pytest.raises(SessionConflict):
        await env.store.delete_session("dev-1", revision=old.revision)
    assert await env.store.load_session("dev-1") == new
    await env.store.delete_session("dev-1", revision=new.revision)
    assert await env.store.load_session("dev-1") is None
    with pytest.raises(SessionConflict):
        await env.store.delete_session("dev-1", revision=new.revision)


async def test_expired_sessions_are_the_offline_ones_past_their_interval(env: StoreEnv) -> None:
    now = 1_000_000.0
    store = env.store
    await store.save_session(_record("online", disconnected_at=None))
    await store.save_session(_record("fresh", expiry_interval=60, disconnected_at=now - 59))
    await store.save_session(_record("stale", expiry_interval=60, disconnected_at=now - 60))
    await store.save_session(_record("ended", expiry_interval=0, disconnected_at=now - 1))
    await store.save_session(
        _record("forever", expiry_interval=NEVER_EXPIRES, disconnected_at=now - 10**9)
    )
    # A record that is not ours to read is skipped, not fatal.
    await env.log.publish(f"$MQTT.sess.{new_inbox('x').split('.')[1][:8]}", b"garbage")
    assert len(await store.sessions()) == 5
    expired = await store.expired_sessions(now)
    assert sorted(r.client_id for r in expired) == ["ended", "stale"]
    assert all(r.revision > 0 for r in expired)


async def test_listing_sessions_of_an_empty_store(env: StoreEnv) -> None:
    assert await env.store.sessions() == []
    assert await env.store.expired_sessions(0.0) == []
