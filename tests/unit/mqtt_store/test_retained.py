"""Retained messages: set, replace, clear, match, index following other gateways (nats-mqtt.md 3.1)."""

from __future__ import annotations

import asyncio
import time

from gateway.mqtt.store import RETAINED_STREAM, MqttStore, RetainedMessage

from .conftest import StoreEnv


def _topics(found: list[RetainedMessage]) -> list[str]:
    return [m.topic for m in found]


async def _until(store: MqttStore, filters: list[str], topics: list[str]) -> None:
    """Wait for the index to show ``topics`` (another gateway's change travels by consumer)."""

    async def check() -> None:
        while _topics(await store.retained_matching(filters)) != topics:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(check(), 5.0)


async def test_set_then_match_gives_the_message_with_its_qos_and_headers(env: StoreEnv) -> None:
    before = time.time()
    await env.store.set_retained("a/b", "a.b", b"v1", 1, {"Nmqtt-RSource": "bob", "X-P": "1"})
    (m,) = await env.store.retained_matching(["a.*"])
    assert (m.topic, m.subject, m.payload, m.qos) == ("a/b", "a.b", b"v1", 1)
    assert dict(m.headers) == {"Nmqtt-RSource": "bob", "X-P": "1"}
    assert before - 1 <= m.stored_at <= time.time() + 1


async def test_record_in_the_stream_has_the_nats_server_headers(env: StoreEnv) -> None:
    store = await env.new_store(origin="gw1")
    await store.set_retained("a/b", "a.b", b"v", 2, {})
    msg = await env.log.get_last_msg(RETAINED_STREAM, "$MQTT.rmsgs.a.b")
    assert msg.data == b"v"
    assert msg.headers is not None
    assert msg.headers["Nmqtt-RTopic"] == "a/b"
    assert msg.headers["Nmqtt-RFlags"] == "5"
    assert msg.headers["Nmqtt-ROrigin"] == "gw1"


async def test_newest_wins_and_the_stream_keeps_one_per_subject(env: StoreEnv) -> None:
    await env.store.set_retained("a", "a", b"old", 0, {})
    await env.store.set_retained("a", "a", b"new", 1, {})
    (m,) = await env.store.retained_matching(["a"])
    assert (m.payload, m.qos) == (b"new", 1)
    assert (await env.log.stream_info(RETAINED_STREAM)).state.messages == 1


async def test_empty_payload_clears(env: StoreEnv) -> None:
    await env.store.set_retained("a/b", "a.b", b"v", 1, {})
    await env.store.set_retained("a/c", "a.c", b"v", 1, {})
    await env.store.set_retained("a/b", "a.b", b"", 1, {})
    assert _topics(await env.store.retained_matching(["a.>"])) == ["a/c"]
    assert env.store.retained_count == 1
    msg = await env.log.get_last_msg(RETAINED_STREAM, "$MQTT.rmsgs.a.b")
    assert msg.data == b"" and msg.headers is not None
    assert msg.headers["Nmqtt-RFlags"].startswith("-")


async def test_match_is_each_once_in_subject_order_with_the_dollar_rule(env: StoreEnv) -> None:
    for topic in ["z", "a/b", "m/n", "$SYS/x"]:
        await env.store.set_retained(topic, topic.replace("/", "."), b"v", 0, {})
    found = await env.store.retained_matching([">", "a.b", "a.>"])
    assert _topics(found) == ["a/b", "m/n", "z"]
    assert _topics(await env.store.retained_matching(["$SYS.>"])) == ["$SYS/x"]


async def test_index_loads_at_start_from_the_stream(env: StoreEnv) -> None:
    for i in range(300):
        await env.store.set_retained(f"t/{i}", f"t.{i}", b"%d" % i, i % 3, {})
    await env.store.set_retained("t/7", "t.7", b"", 0, {})
    late = await env.peer()
    # start() returned: the whole index is there, without waiting.
    assert late.retained_count == 299
    found = await late.retained_matching(["t.*"])
    assert len(found) == 299 and "t/7" not in _topics(found)
    assert {m.topic: m.payload for m in found}["t/42"] == b"42"


async def test_index_follows_changes_made_by_another_gateway(env: StoreEnv) -> None:
    # Upstream mode: several gateways share the streams.
    peer = await env.peer()
    await peer.set_retained("x/y", "x.y", b"from peer", 1, {})
    await _until(env.store, ["x.>"], ["x/y"])
    await peer.set_retained("x/y", "x.y", b"", 1, {})
    await _until(env.store, ["x.>"], [])


async def test_large_payload_is_read_from_the_stream_when_matched(env: StoreEnv) -> None:
    big = bytes(range(256)) * 400  # > 64 KiB: not kept in memory
    await env.store.set_retained("big", "big", big, 1, {"X": "y"})
    await env.store.set_retained("small", "small", b"s", 1, {})
    found = await env.store.retained_matching([">"])
    assert [(m.topic, m.payload, dict(m.headers)) for m in found] == [
        ("big", big, {"X": "y"}),
        ("small", b"s", {}),
    ]


async def test_many_retained_subjects_match_quickly(env: StoreEnv) -> None:
    store = env.store
    acks = [
        env.log.publish_async(
            f"$MQTT.rmsgs.r.{i % 50}.{i}",
            b"v",
            {"Nmqtt-RTopic": f"r/{i % 50}/{i}", "Nmqtt-RFlags": "1"},
        )
        for i in range(10_000)
    ]
    await asyncio.gather(*acks)
    await _until(store, ["r.49.9999"], ["r/49/9999"])  # the last one published
    start = time.perf_counter()
    for _ in range(50):
        found = await store.retained_matching(["r.7.*", "r.8.8"])
    assert time.perf_counter() - start < 1.0
    assert len(found) == 201  # 200 on r.7.*, plus r.8.8


async def test_a_lost_loader_is_replaced_and_catches_up(env: StoreEnv) -> None:
    # JetStream drops an ephemeral loader after a long disconnect or a restart.
    others = set(await env.log.consumer_names(RETAINED_STREAM))
    store = MqttStore(env.log, ack_wait=30.0, max_ack_pending=10, loader_check_interval=0.05)
    await store.start()
    try:
        await store.set_retained("gone/1", "gone.1", b"v", 0, {})
        (loader,) = set(await env.log.consumer_names(RETAINED_STREAM)) - others
        await env.log.delete_consumer(RETAINED_STREAM, loader)
        peer = await env.peer()
        await peer.set_retained("new/1", "new.1", b"v", 0, {})
        await peer.set_retained("gone/1", "gone.1", b"", 0, {})
        await _until(store, [">"], ["new/1"])
        assert loader not in await env.log.consumer_names(RETAINED_STREAM)
    finally:
        await store.close()
