"""Inbound QoS 2 between PUBLISH and PUBREL (nats-mqtt.md 2.6)."""

from __future__ import annotations

from gateway.mqtt.store import QOS2_STREAM, StagedMessage, hash8

from .conftest import StoreEnv

H = hash8("dev-1")


def _staged(payload: bytes = b"p", retain: bool = False) -> StagedMessage:
    return StagedMessage("a/b", "a.b", payload, retain, {"X-Prop": "1"})


async def test_stage_then_release_returns_it_once(env: StoreEnv) -> None:
    assert await env.store.stage_qos2(H, 7, _staged(retain=True))
    msg = await env.log.get_last_msg(QOS2_STREAM, f"$MQTT.qos2.in.{H}.7")
    assert msg.headers is not None and msg.headers["Nmqtt-Pub"] == "25"
    assert await env.store.release_qos2(H, 7) == _staged(retain=True)
    assert await env.store.release_qos2(H, 7) is None
    assert (await env.log.stream_info(QOS2_STREAM)).state.messages == 0


async def test_duplicate_publish_keeps_the_first_payload(env: StoreEnv) -> None:
    assert await env.store.stage_qos2(H, 1, _staged(b"first"))
    assert not await env.store.stage_qos2(H, 1, _staged(b"second"))
    released = await env.store.release_qos2(H, 1)
    assert released is not None and released.payload == b"first"
    # Once released, the packet id may carry a new message.
    assert await env.store.stage_qos2(H, 1, _staged(b"third"))


async def test_packet_ids_and_clients_are_independent(env: StoreEnv) -> None:
    other = hash8("dev-2")
    assert await env.store.stage_qos2(H, 1, _staged(b"a"))
    assert await env.store.stage_qos2(H, 2, _staged(b"b"))
    assert await env.store.stage_qos2(other, 1, _staged(b"c"))
    released = await env.store.release_qos2(other, 1)
    assert released is not None and released.payload == b"c"
    assert await env.store.release_qos2(H, 3) is None  # unknown id: PUBCOMP anyway


async def test_staged_messages_survive_another_gateway_and_drop_clears_one_client(
    env: StoreEnv,
) -> None:
    other = hash8("dev-2")
    await env.store.stage_qos2(H, 1, _staged(b"a"))
    await env.store.stage_qos2(H, 2, _staged(b"b"))
    await env.store.stage_qos2(other, 1, _staged(b"c"))
    peer = await env.peer()
    released = await peer.release_qos2(H, 2)
    assert released is not None and released.payload == b"b"
    await peer.drop_qos2(H)
    assert await env.store.release_qos2(H, 1) is None
    kept = await env.store.release_qos2(other, 1)
    assert kept is not None and kept.payload == b"c"
