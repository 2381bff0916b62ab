"""start(): streams created once with the NATS server's shapes, never changed (nats-mqtt.md 2.1, 2.2)."""

from __future__ import annotations

import pytest

from gateway.mqtt.store import (
    MSGS_STREAM,
    QOS2_STREAM,
    RETAINED_STREAM,
    SESSIONS_STREAM,
    StoreError,
)
from streams.types import DiscardPolicy, RetentionPolicy, StreamConfig

from .conftest import StoreEnv


async def test_start_creates_the_four_streams(env: StoreEnv) -> None:
    names = await env.log.stream_names()
    assert {SESSIONS_STREAM, MSGS_STREAM, QOS2_STREAM, RETAINED_STREAM} <= set(names)
    msgs = (await env.log.stream_info(MSGS_STREAM)).config
    assert msgs.subjects == ("$MQTT.msgs.>",)
    assert msgs.retention is RetentionPolicy.INTEREST
    rmsgs = (await env.log.stream_info(RETAINED_STREAM)).config
    assert rmsgs.subjects == ("$MQTT.rmsgs.>",) and rmsgs.max_msgs_per_subject == 1
    sess = (await env.log.stream_info(SESSIONS_STREAM)).config
    assert sess.subjects == ("$MQTT.sess.>",) and sess.max_msgs_per_subject == 1
    qos2 = (await env.log.stream_info(QOS2_STREAM)).config
    assert qos2.subjects == ("$MQTT.qos2.in.>",)
    assert qos2.max_msgs_per_subject == 1
    assert qos2.discard is DiscardPolicy.NEW and qos2.discard_new_per_subject


async def test_start_is_idempotent_and_a_second_gateway_starts_on_existing_streams(
    env: StoreEnv,
) -> None:
    before = {n: (await env.log.stream_info(n)).config for n in await env.log.stream_names()}
    await env.store.start()
    peer = await env.peer()
    await peer.start()
    after = {n: (await env.log.stream_info(n)).config for n in await env.log.stream_names()}
    assert after == before


async def test_existing_stream_configs_are_left_alone(env: StoreEnv) -> None:
    # An operator's (or an older server's) stream with other limits is not updated.
    await env.log.delete_stream(RETAINED_STREAM)
    mine = StreamConfig(name=RETAINED_STREAM, subjects=["$MQTT.rmsgs.>"], max_msgs_per_subject=5)
    await env.log.add_stream(mine)
    await env.peer()
    assert (await env.log.stream_info(RETAINED_STREAM)).config.max_msgs_per_subject == 5


async def test_closed_store_does_not_start_again(env: StoreEnv) -> None:
    store = await env.new_store()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError):
        await store.start()
