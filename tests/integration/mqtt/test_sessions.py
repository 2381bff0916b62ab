"""Clean session / clean start, session expiry (5.0) and persistent sessions across reconnects."""

from __future__ import annotations

import asyncio

import pytest

from gateway.mqtt.packets import Puback, Pubcomp, Publish, Pubrec, Pubrel
from gateway.mqtt.properties import Properties
from gateway.server import Gateway
from tests.integration.mqtt.conftest import GatewayFactory, RawFactory
from tests.integration.mqtt.helpers import RawSession, payloads

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


def persistent(version: int, expiry: int = 300) -> Properties | None:
    """CONNECT properties that keep a 5.0 session after the connection closes."""
    return Properties(session_expiry_interval=expiry) if version == 5 else None


async def resume(raw: RawFactory, gateway: Gateway, client_id: str, version: int) -> RawSession:
    session = await raw(gateway, version)
    connack = await session.connect(client_id, clean=False, properties=persistent(version))
    assert connack.reason_code == 0
    assert connack.session_present is True
    return session


@VERSIONS
async def test_mqtt_3_1_2_4_persistent_session_queues_qos1_and_qos2_while_offline(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """With clean session 0 the session, its subscriptions and the QoS 1/2 messages that arrive
    while the client is away are kept and delivered when it resumes."""
    sub = await raw(gateway, version)
    await sub.connect("offline-sub", clean=False, properties=persistent(version))
    assert await sub.subscribe("off/q1", qos=1) == [1]
    assert await sub.subscribe("off/q2", qos=2) == [2]
    await sub.disconnect()
    pub = await raw(gateway, version)
    await pub.connect("offline-pub")
    for i in range(3):
        await pub.publish("off/q1", f"a{i}".encode(), qos=1)
        await pub.publish("off/q2", f"b{i}".encode(), qos=2)
    back = await resume(raw, gateway, "offline-sub", version)
    got = await back.receive_acked(6)
    by_topic = {t: [bytes(m.payload) for m in got if m.topic == t] for t in ("off/q1", "off/q2")}
    assert by_topic == {"off/q1": [b"a0", b"a1", b"a2"], "off/q2": [b"b0", b"b1", b"b2"]}
    assert {m.topic: m.qos for m in got} == {"off/q1": 1, "off/q2": 2}


@VERSIONS
async def test_mqtt_3_1_2_6_clean_session_discards_previous_session(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """Clean session 1 discards the previous session: its subscriptions no longer deliver."""
    sub = await raw(gateway, version)
    await sub.connect("cleaned", clean=False, properties=persistent(version))
    assert await sub.subscribe("clean/t", qos=1) == [1]
    await sub.disconnect()
    wipe = await raw(gateway, version)
    assert (await wipe.connect("cleaned", clean=True)).session_present is False
    await wipe.disconnect()
    pub = await raw(gateway, version)
    await pub.connect("clean-pub")
    await pub.publish("clean/t", b"nobody", qos=1)
    again = await raw(gateway, version)
    connack = await again.connect("cleaned", clean=False, properties=persistent(version))
    assert connack.session_present is False
    await again.quiet()  # bounded wait: the discarded subscription must deliver nothing


async def test_mqtt5_3_1_2_23_session_expiry_zero_ends_session_with_connection(
    gateway: Gateway, raw: RawFactory
) -> None:
    """5.0: with Session Expiry Interval 0 (absent) the session ends when the connection closes."""
    sub = await raw(gateway, 5)
    await sub.connect("no-expiry", clean=False)
    assert await sub.subscribe("exp0/t", qos=1) == [1]
    await sub.disconnect()
    back = await raw(gateway, 5)
    connack = await back.connect("no-expiry", clean=False, properties=persistent(5))
    assert connack.session_present is False


async def test_mqtt5_4_1_0_2_session_discarded_after_expiry_interval(
    gateway: Gateway, raw: RawFactory
) -> None:
    """5.0: the server discards the session once the connection is closed and the interval passed."""
    sub = await raw(gateway, 5)
    await sub.connect("short-lived", clean=False, properties=persistent(5, expiry=1))
    assert await sub.subscribe("exp1/t", qos=1) == [1]
    await sub.disconnect()
    pub = await raw(gateway, 5)
    await pub.connect("short-pub")
    await pub.publish("exp1/t", b"too late", qos=1)
    await asyncio.sleep(2.0)  # the expiry interval itself is under test: let 1 s pass, with margin
    back = await raw(gateway, 5)
    connack = await back.connect("short-lived", clean=False, properties=persistent(5))
    assert connack.session_present is False
    await back.quiet()  # bounded wait: the expired session's queue is gone too


async def test_mqtt5_3_1_2_23_session_kept_within_expiry_interval(
    gateway: Gateway, raw: RawFactory
) -> None:
    """5.0: within its expiry interval a closed session is kept and resumes with its messages."""
    sub = await raw(gateway, 5)
    await sub.connect("kept", clean=False, properties=persistent(5, expiry=30))
    assert await sub.subscribe("kept/t", qos=1) == [1]
    await sub.disconnect()
    pub = await raw(gateway, 5)
    await pub.connect("kept-pub")
    await pub.publish("kept/t", b"waiting", qos=1)
    back = await resume(raw, gateway, "kept", 5)
    assert payloads(await back.receive_acked(1)) == [b"waiting"]


@VERSIONS
async def test_mqtt_4_4_0_1_unacknowledged_publishes_resent_at_once_in_order(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """On resuming a session the server re-sends unacknowledged PUBLISHes with their original
    identifiers and DUP set; jetgate does it at once (not after ack_wait), in the original order."""
    sub = await raw(gateway, version)
    await sub.connect("resend", clean=False, properties=persistent(version))
    assert await sub.subscribe("resend/t", qos=1) == [1]
    pub = await raw(gateway, version)
    await pub.connect("resend-pub")
    for i in range(5):
        await pub.publish("resend/t", str(i).encode(), qos=1)
    first = await sub.publishes(5)  # never acknowledged
    sub.abort()  # type: ignore[attr-defined]
    back = await resume(raw, gateway, "resend", version)
    # ack_wait is 30 s by default: 3 s is "at once" by a wide margin.
    again = await back.publishes(5, timeout=3)
    assert payloads(again) == [str(i).encode() for i in range(5)]
    assert all(m.dup for m in again)
    assert [m.packet_id for m in again] == [m.packet_id for m in first]


@VERSIONS
async def test_mqtt_4_4_0_1_unacknowledged_pubrel_resent_on_reconnect(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A PUBREL without PUBCOMP is re-sent with its identifier when the session resumes."""
    sub = await raw(gateway, version)
    await sub.connect("pubrel", clean=False, properties=persistent(version))
    assert await sub.subscribe("pubrel/t", qos=2) == [2]
    pub = await raw(gateway, version)
    await pub.connect("pubrel-pub")
    await pub.publish("pubrel/t", b"q2", qos=2)
    msg = await sub.expect(Publish)
    sub.send(Pubrec(msg.packet_id))
    rel = await sub.expect(Pubrel)
    sub.abort()  # type: ignore[attr-defined]
    back = await resume(raw, gateway, "pubrel", version)
    again = await back.expect(Pubrel, timeout=3)
    assert again.packet_id == rel.packet_id
    back.send(Pubcomp(again.packet_id))
    await back.quiet()  # bounded wait: the message itself is not delivered again


@VERSIONS
async def test_mqtt_3_2_2_2_resumed_session_keeps_subscriptions(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A resumed session keeps its subscriptions: live messages arrive without re-subscribing."""
    sub = await raw(gateway, version)
    await sub.connect("keeps-subs", clean=False, properties=persistent(version))
    assert await sub.subscribe("keep/t", qos=1) == [1]
    await sub.disconnect()
    back = await resume(raw, gateway, "keeps-subs", version)
    pub = await raw(gateway, version)
    await pub.connect("keeps-pub")
    await pub.publish("keep/t", b"live", qos=1)
    msg = await back.expect(Publish)
    assert bytes(msg.payload) == b"live"
    back.send(Puback(msg.packet_id))


async def test_mqtt_4_1_0_1_session_state_kept_while_connected(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    """The session state is not discarded while the connection is open (even with expiry 0)."""
    gateway = await gateway_factory()
    sub = await raw(gateway, 5)
    await sub.connect("open-session", clean=True)
    assert await sub.subscribe("open/t", qos=1) == [1]
    pub = await raw(gateway, 5)
    await pub.connect("open-pub")
    for i in range(3):
        await pub.publish("open/t", str(i).encode(), qos=1)
    assert payloads(await sub.receive_acked(3)) == [b"0", b"1", b"2"]
