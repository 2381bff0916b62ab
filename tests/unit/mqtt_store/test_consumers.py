"""QoS >= 1 messages and their durable consumers (nats-mqtt.md 2.3, 2.4, 2.5)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.bus.api import Subscription
from gateway.mqtt.store import (
    DELIVER_PREFIX,
    MSGS_STREAM,
    MqttStore,
    StoreError,
    hash8,
    nuid,
    shared_consumer_name,
    shared_deliver_subject,
)
from streams.api import Log
from streams.types import AckPolicy, DeliverPolicy, parse_ack

from .conftest import ACK_WAIT, MAX_ACK_PENDING, StoreEnv

H = hash8("dev-1")


async def _deliver_sub(log: Log, queue: str | None = None, subject: str = "") -> Subscription:
    sub = await log.bus.subscribe(subject or DELIVER_PREFIX + nuid(), queue=queue)
    await log.bus.flush()
    return sub


async def _empty(log: Log) -> None:
    """Wait until the interest stream has dropped everything (acks travel asynchronously)."""

    async def check() -> None:
        while (await log.stream_info(MSGS_STREAM)).state.messages:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(check(), 5.0)


async def test_consumer_has_the_nats_server_shape(env: StoreEnv) -> None:
    sub = await _deliver_sub(env.log)
    name = await env.store.create_consumer(H, "a.*", sub.subject)
    assert name.startswith(H + "_") and len(name) == 8 + 1 + 22
    info = await env.log.consumer_info(MSGS_STREAM, name)
    cfg = info.config
    assert cfg.durable_name == name
    assert cfg.filter_subject == "$MQTT.msgs.a.*"
    assert cfg.deliver_subject == sub.subject
    assert cfg.deliver_policy is DeliverPolicy.NEW
    assert cfg.ack_policy is AckPolicy.EXPLICIT
    assert (cfg.ack_wait, cfg.max_ack_pending) == (ACK_WAIT, MAX_ACK_PENDING)
    other = await env.store.create_consumer(H, "b", sub.subject, ack_wait=2.5, max_ack_pending=7)
    cfg = (await env.log.consumer_info(MSGS_STREAM, other)).config
    assert (cfg.ack_wait, cfg.max_ack_pending) == (2.5, 7)


async def test_stored_message_is_delivered_and_the_ack_drops_it(env: StoreEnv) -> None:
    sub = await _deliver_sub(env.log)
    await env.store.create_consumer(H, "a.b", sub.subject)
    ack = await env.store.store_message("a.b", b"hello", {"Nmqtt-Pub": "1"})
    assert ack.stream == MSGS_STREAM and ack.seq > 0
    msg = await sub.next_msg(5.0)
    assert (msg.subject, msg.payload) == ("$MQTT.msgs.a.b", b"hello")
    assert msg.headers is not None and msg.headers["Nmqtt-Pub"] == "1"
    assert parse_ack(msg.reply).stream_seq == ack.seq
    await env.store.ack(msg.reply)
    await _empty(env.log)


async def test_pipelined_stores_resolve_in_order(env: StoreEnv) -> None:
    sub = await _deliver_sub(env.log)
    await env.store.create_consumer(H, "p", sub.subject)
    pending = [env.store.store_message("p", b"%d" % i, {}) for i in range(50)]
    seqs = [(await p).seq for p in pending]
    assert seqs == sorted(seqs) and len(set(seqs)) == 50
    got = [(await sub.next_msg(5.0)).payload for _ in range(50)]
    assert got == [b"%d" % i for i in range(50)]


async def test_nak_redelivers(env: StoreEnv) -> None:
    sub = await _deliver_sub(env.log)
    await env.store.create_consumer(H, "n", sub.subject)
    await env.store.store_message("n", b"x", {})
    first = await sub.next_msg(5.0)
    await env.store.nak(first.reply)
    again = await sub.next_msg(5.0)
    assert again.payload == b"x"
    assert parse_ack(again.reply).num_delivered == 2
    await env.store.ack(again.reply)
    await _empty(env.log)


async def test_only_messages_stored_after_the_subscription_are_delivered(env: StoreEnv) -> None:
    other = await _deliver_sub(env.log)
    await env.store.create_consumer(H, "other", other.subject)  # keeps "old" in the stream
    await env.store.store_message("late", b"old", {})
    sub = await _deliver_sub(env.log)
    await env.store.create_consumer(H, "late", sub.subject)
    await env.store.store_message("late", b"new", {})
    assert (await sub.next_msg(5.0)).payload == b"new"


async def test_hash_filter_gets_two_consumers_each_with_its_copy(env: StoreEnv) -> None:
    # "a/#" is "a.>" plus "a" (nats-mqtt.md 2.4 item 3).
    sub = await _deliver_sub(env.log)
    names = [await env.store.create_consumer(H, s, sub.subject) for s in ("a.>", "a")]
    assert len(set(names)) == 2
    await env.store.store_message("a", b"parent", {})
    await env.store.store_message("a.b", b"child", {})
    got = sorted([(await sub.next_msg(5.0)).payload for _ in range(2)])
    assert got == [b"child", b"parent"]


async def test_consumer_exists_and_delete_is_idempotent(env: StoreEnv) -> None:
    sub = await _deliver_sub(env.log)
    name = await env.store.create_consumer(H, "d", sub.subject)
    assert await env.store.consumer_exists(name)
    await env.store.delete_consumer(name)
    assert not await env.store.consumer_exists(name)
    await env.store.delete_consumer(name)
    assert not await env.store.consumer_exists("never_there")


async def test_shared_group_members_share_one_consumer(env: StoreEnv) -> None:
    peer = await env.peer()
    deliver = shared_deliver_subject("g", "s.*")
    sub1 = await _deliver_sub(env.log, queue="g", subject=deliver)
    name1 = await env.store.create_consumer(H, "s.*", deliver, queue_group="g")
    name2 = await peer.create_consumer(
        hash8("dev-2"), "s.*", deliver, queue_group="g", ack_wait=1.0
    )
    assert name1 == name2 == shared_consumer_name("g", "s.*")
    assert (await env.log.consumer_info(MSGS_STREAM, name1)).config.deliver_group == "g"
    await env.store.store_message("s.1", b"one", {})
    msg = await sub1.next_msg(5.0)
    assert msg.payload == b"one"
    with pytest.raises(StoreError):
        await env.store.create_consumer(H, "s.*", DELIVER_PREFIX + nuid(), queue_group="g")


async def test_consumer_options_come_from_the_store(env: StoreEnv) -> None:
    store = MqttStore(
        env.log,
        ack_wait=3.0,
        max_ack_pending=11,
        consumer_memory_storage=True,
        consumer_inactive_threshold=3600.0,
    )
    await store.start()
    try:
        name = await store.create_consumer(H, "o", DELIVER_PREFIX + nuid())
        cfg = (await env.log.consumer_info(MSGS_STREAM, name)).config
        assert (cfg.ack_wait, cfg.max_ack_pending) == (3.0, 11)
        assert cfg.mem_storage and cfg.inactive_threshold == 3600.0
    finally:
        await store.close()


async def test_log_failures_arrive_as_store_errors(env: StoreEnv) -> None:
    with pytest.raises(StoreError):
        await env.store.store_message("bad..subject", b"", {})
    with pytest.raises(StoreError):
        await env.store.create_consumer(H, "a..b", DELIVER_PREFIX + nuid())
