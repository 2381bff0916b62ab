"""What survives a restart: sessions, retained messages, consumers and their messages, staged QoS 2."""

from __future__ import annotations

from gateway.mqtt.store import (
    DELIVER_PREFIX,
    SessionRecord,
    StagedMessage,
    SubscriptionRecord,
    hash8,
    nuid,
)

from .conftest import StoreEnv

H = hash8("dev-1")


async def test_everything_durable_is_there_after_a_restart(env: StoreEnv) -> None:
    store = env.store
    deliver = DELIVER_PREFIX + nuid()
    name = await store.create_consumer(H, "q.>", deliver)
    record = SessionRecord(
        "dev-1",
        3600,
        {"q/#": SubscriptionRecord("q/#", 1, consumers=(name,), deliver_subject=deliver)},
        pending_pubrel=(5,),
        disconnected_at=123.0,
    )
    saved = await store.save_session(record)
    await store.set_retained("r/1", "r.1", b"one", 1, {"X": "1"})
    await store.set_retained("r/2", "r.2", b"two", 0, {})
    await store.set_retained("r/2", "r.2", b"", 0, {})
    await store.stage_qos2(H, 9, StagedMessage("s", "s", b"staged", False, {}))
    # Stored while the client is offline: nobody listens on the deliver subject.
    await store.store_message("q.x", b"offline", {"Nmqtt-Pub": "1"})

    store = await env.restart()

    assert await store.load_session("dev-1") == saved
    assert [
        (m.topic, m.payload, dict(m.headers)) for m in await store.retained_matching([">"])
    ] == [("r/1", b"one", {"X": "1"})]
    assert await store.consumer_exists(name)
    staged = await store.release_qos2(H, 9)
    assert staged is not None and staged.payload == b"staged"
    # The client comes back: the message kept for its consumer is delivered.
    sub = await env.log.bus.subscribe(deliver)
    msg = await sub.next_msg(5.0)
    assert (msg.subject, msg.payload) == ("$MQTT.msgs.q.x", b"offline")
    await store.ack(msg.reply)
    # And the session carries on from the stored revision.
    again = await store.save_session(saved)
    assert again.revision > saved.revision
