"""Two gateways in upstream mode in front of one nats-server: MQTT state lives in JetStream.

A persistent session moves from one gateway to the other with what was
published meanwhile, a client id is taken over across gateways, retained
messages and Wills cross gateways, and MQTT and NATS exchange messages both
ways, with NATS clients on the nats-server itself and on a gateway's listener.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.mqtt.packets import Disconnect, Publish, Will
from gateway.mqtt.properties import Properties
from gateway.server import Gateway
from tests.conftest import NatsServer
from tests.integration.mqtt.helpers import payloads
from tests.integration.upstream.conftest import (
    ClientFactory,
    GatewayFactory,
    NatsFactory,
    OfflineFactory,
    RawFactory,
    gateway_nats_url,
)

pytestmark = pytest.mark.integration

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])
SESSION_KEPT = Properties(session_expiry_interval=3600)


def persistent(version: int) -> Properties | None:
    """CONNECT properties keeping the session after the disconnect (5.0); None for 3.1.1."""
    return SESSION_KEPT if version == 5 else None


async def two_gateways(gateways: GatewayFactory, server: NatsServer) -> tuple[Gateway, Gateway]:
    return await gateways(server.url), await gateways(server.url)


@VERSIONS
async def test_persistent_session_moves_to_the_other_gateway(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    raw: RawFactory,
    mqtt_client: ClientFactory,
    go_offline: OfflineFactory,
    version: int,
) -> None:
    """Subscribed at QoS 1 on A, offline while B takes 20 messages, resumed on B: all 20, in order."""
    a, b = await two_gateways(gateways, nats_server)
    props = persistent(version)
    sub = await mqtt_client(a, "mover", version, clean=False, properties=props)
    assert await sub.subscribe("move/#", qos=1) == [1]
    await go_offline(sub, "mover", nats_server.url)

    pub = await mqtt_client(b, "mover-pub", version)
    sent = [f"m{i}".encode() for i in range(20)]
    for body in sent:
        await pub.publish("move/here", body, qos=1)

    resumed = await raw(b, version)
    connack = await resumed.connect("mover", clean=False, properties=props)
    assert connack.reason_code == 0
    assert connack.session_present, "the session stored by gateway A must be found by gateway B"
    got = await resumed.receive_acked(len(sent))
    assert payloads(got) == sent
    assert {(m.topic, m.qos) for m in got} == {("move/here", 1)}
    # Live traffic after the move, published through A, reaches the session on B.
    await pub.disconnect()
    pub_a = await mqtt_client(a, "mover-pub-a", version)
    await pub_a.publish("move/live", b"after", qos=1)
    [live] = await resumed.receive_acked(1)
    assert (live.topic, live.payload) == ("move/live", b"after")
    await resumed.quiet()  # every delivery was acknowledged: nothing comes again


@VERSIONS
async def test_takeover_across_gateways(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    raw: RawFactory,
    mqtt_client: ClientFactory,
    version: int,
) -> None:
    """The same client id on gateway B ends the connection on A (5.0: DISCONNECT 0x8E) and keeps its session."""
    a, b = await two_gateways(gateways, nats_server)
    props = persistent(version)
    old = await mqtt_client(a, "taken", version, clean=False, properties=props)
    assert await old.subscribe("take/+", qos=1) == [1]

    new = await raw(b, version)
    connack = await new.connect("taken", clean=False, properties=props)
    assert connack.reason_code == 0 and connack.session_present
    seen = await old.closed()
    if version == 5:
        assert [(type(p), getattr(p, "reason_code", None)) for p in seen] == [(Disconnect, 0x8E)]
    else:
        assert seen == [], "3.1.1 has no server DISCONNECT: the connection is just closed"

    pub = await mqtt_client(a, "taker-pub", version)
    await pub.publish("take/x", b"to-the-new-one", qos=1)
    [msg] = await new.receive_acked(1)
    assert (msg.topic, msg.payload) == ("take/x", b"to-the-new-one")

    # And back again: B's connection is taken over from A.
    back = await raw(a, version)
    assert (await back.connect("taken", clean=False, properties=props)).session_present
    await new.closed()
    await pub.publish("take/y", b"back-on-a", qos=1)
    [msg] = await back.receive_acked(1)
    assert (msg.topic, msg.payload) == ("take/y", b"back-on-a")


@pytest.mark.parametrize(
    "same_gateway",
    [True, False],
    ids=["same-gateway", "other-gateway"],
)
async def test_reconnect_right_after_disconnect_resumes(
    nats_server: NatsServer, gateways: GatewayFactory, raw: RawFactory, same_gateway: bool
) -> None:
    """DISCONNECT, then at once CONNECT with clean session false: accepted, session present."""
    a, b = await two_gateways(gateways, nats_server)
    session = await raw(a)
    assert (await session.connect("bouncer", clean=False)).reason_code == 0
    assert await session.subscribe("bounce/#", qos=1) == [1]
    answers = []
    for i in range(100):
        await session.disconnect()
        session = await raw(a if same_gateway or i % 2 else b)
        connack = await session.connect("bouncer", clean=False)
        answers.append((int(connack.reason_code), connack.session_present))
        if connack.reason_code:
            session = await raw(a)
            assert (await session.connect("bouncer", clean=False)).reason_code == 0
    refused = [answer for answer in answers if answer != (0, True)]
    assert not refused, f"{len(refused)} of {len(answers)} reconnections refused: {refused[:3]}"


@VERSIONS
async def test_retained_messages_cross_gateways(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    version: int,
) -> None:
    """Retained on A is replayed by B (running, and started later); cleared on B is gone on A."""
    a, b = await two_gateways(gateways, nats_server)
    pub = await mqtt_client(a, "ret-pub", version)
    await pub.publish("ret/one", b"1", qos=1, retain=True)
    await pub.publish("ret/two", b"2", qos=1, retain=True)

    on_b = await mqtt_client(b, "ret-sub-b", version)
    assert await on_b.subscribe("ret/#", qos=1) == [1]
    got = await on_b.receive_acked(2)
    assert sorted((m.topic, bytes(m.payload), m.retain) for m in got) == [
        ("ret/one", b"1", True),
        ("ret/two", b"2", True),
    ]

    late = await gateways(nats_server.url)  # loads the retained index at start
    on_late = await mqtt_client(late, "ret-sub-late", version)
    assert await on_late.subscribe("ret/one", qos=1) == [1]
    [msg] = await on_late.receive_acked(1)
    assert (msg.topic, msg.payload, msg.retain) == ("ret/one", b"1", True)

    clearer = await mqtt_client(b, "ret-clear", version)
    await clearer.publish("ret/one", b"", qos=1, retain=True)
    on_a = await mqtt_client(a, "ret-sub-a", version)
    assert await on_a.subscribe("ret/#", qos=1) == [1]
    [msg] = await on_a.receive_acked(1)
    assert (msg.topic, msg.payload) == ("ret/two", b"2")
    await on_a.quiet()  # ret/one was cleared through B


@VERSIONS
async def test_will_crosses_gateways(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    raw: RawFactory,
    mqtt_client: ClientFactory,
    version: int,
) -> None:
    """A client dropping off A has its Will delivered on B, and a retained Will replayed on B."""
    a, b = await two_gateways(gateways, nats_server)
    watcher = await mqtt_client(b, "will-watch", version)
    assert await watcher.subscribe("wills/#", qos=1) == [1]

    polite = await raw(a, version)
    will = Will("wills/polite", b"never", qos=1)
    assert (await polite.connect("will-polite", will=will)).reason_code == 0
    await polite.disconnect()  # a normal DISCONNECT discards the Will

    dying = await raw(a, version)
    will = Will("wills/dying", b"gone", qos=1, retain=True)
    assert (await dying.connect("will-dying", will=will)).reason_code == 0
    dying.abort()  # no DISCONNECT: the Will goes out
    msg = await watcher.expect(Publish)
    watcher.ack(msg)
    assert (msg.topic, msg.payload, msg.qos) == ("wills/dying", b"gone", 1)
    await watcher.quiet()  # the polite client's Will never came

    replay = await mqtt_client(b, "will-replay", version)
    assert await replay.subscribe("wills/+", qos=1) == [1]
    [msg] = await replay.receive_acked(1)
    assert (msg.topic, msg.payload, msg.retain) == ("wills/dying", b"gone", True)


async def test_mqtt_to_nats_on_the_server_and_on_a_gateway(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    nats_connect: NatsFactory,
) -> None:
    """MQTT publishes through A reach NATS subscribers on the nats-server and on B's listener."""
    a, b = await two_gateways(gateways, nats_server)
    direct = await nats_connect(nats_server.url)
    via_b = await nats_connect(gateway_nats_url(b))
    direct_sub = await direct.subscribe("tele.>")
    via_b_sub = await via_b.subscribe("tele.*.temp")
    await direct.flush()
    await via_b.flush()

    pub = await mqtt_client(a, "tele-pub")
    await pub.publish("tele/k1/temp", b"21.5", qos=0)
    await pub.publish("tele/k2/temp", b"22.0", qos=1)
    await pub.publish("tele/k1/hum", b"40", qos=1)

    got_direct = [await direct_sub.next_msg(timeout=5) for _ in range(3)]
    assert [(m.subject, m.data) for m in got_direct] == [
        ("tele.k1.temp", b"21.5"),
        ("tele.k2.temp", b"22.0"),
        ("tele.k1.hum", b"40"),
    ]
    got_b = [await via_b_sub.next_msg(timeout=5) for _ in range(2)]
    assert [(m.subject, m.data) for m in got_b] == [
        ("tele.k1.temp", b"21.5"),
        ("tele.k2.temp", b"22.0"),
    ]
    with pytest.raises(asyncio.TimeoutError):  # tele.k1.hum does not match tele.*.temp
        await via_b_sub.next_msg(timeout=0.4)


async def test_nats_to_mqtt_from_the_server_and_from_a_gateway(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    nats_connect: NatsFactory,
) -> None:
    """NATS publishes on the nats-server and on B's listener reach MQTT subscribers on A."""
    a, b = await two_gateways(gateways, nats_server)
    sub0 = await mqtt_client(a, "cmd-sub0")
    sub1 = await mqtt_client(a, "cmd-sub1")
    assert await sub0.subscribe("cmd/#", qos=0) == [0]
    assert await sub1.subscribe("cmd/+/go", qos=1) == [1]

    direct = await nats_connect(nats_server.url)
    via_b = await nats_connect(gateway_nats_url(b))
    await direct.publish("cmd.d1.go", b"from-server")
    await direct.flush()
    await via_b.publish("cmd.d2.go", b"from-gateway-b", headers={"X-Test": "1"})
    await via_b.flush()

    got0 = await sub0.publishes(2)
    assert sorted((m.topic, bytes(m.payload)) for m in got0) == [
        ("cmd/d1/go", b"from-server"),
        ("cmd/d2/go", b"from-gateway-b"),
    ]
    got1 = await sub1.receive_acked(2)
    assert sorted((m.topic, bytes(m.payload)) for m in got1) == [
        ("cmd/d1/go", b"from-server"),
        ("cmd/d2/go", b"from-gateway-b"),
    ]
    # A plain NATS message was never stored: it arrives at QoS 0 even on a QoS 1 subscription.
    assert {m.qos for m in got1} == {0}


async def test_mqtt_request_answered_by_a_nats_responder(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    nats_connect: NatsFactory,
) -> None:
    """A 5.0 Response Topic crosses to NATS as the reply subject; the answer comes back over MQTT."""
    a, _ = await two_gateways(gateways, nats_server)
    responder = await nats_connect(nats_server.url)

    async def answer(msg: object) -> None:
        await responder.publish(msg.reply, b"pong:" + msg.data)  # type: ignore[attr-defined]

    await responder.subscribe("svc.ping", cb=answer)
    await responder.flush()
    client = await mqtt_client(a, "requester", 5)
    assert await client.subscribe("replies/me", qos=0) == [0]
    await client.publish(
        "svc/ping", b"1", qos=0, properties=Properties(response_topic="replies/me")
    )
    msg = await client.expect(Publish)
    assert (msg.topic, msg.payload) == ("replies/me", b"pong:1")


async def test_mqtt_publishes_reach_subscribers_on_both_gateways_once_each(
    nats_server: NatsServer, gateways: GatewayFactory, mqtt_client: ClientFactory
) -> None:
    """A gateway delivers its own clients' messages to its own subscribers itself and the
    upstream server does not echo them back: a subscriber on the publisher's gateway and
    one on another gateway each get every message once, in order, also for a burst."""
    a, b = await two_gateways(gateways, nats_server)
    for qos in (0, 1):
        here = await mqtt_client(a, f"here-{qos}")
        there = await mqtt_client(b, f"there-{qos}")
        assert await here.subscribe(f"both{qos}/#", qos=qos) == [qos]
        assert await there.subscribe(f"both{qos}/#", qos=qos) == [qos]
        pub = await mqtt_client(a, f"both-pub-{qos}")
        expected = [b"%03d" % i for i in range(60)]
        if qos:
            for payload in expected:
                await pub.publish(f"both{qos}/t", payload, qos=1)
        else:
            pub.send(*[Publish(f"both{qos}/t", payload) for payload in expected])  # a batch
        for session in (here, there):
            got = await session.receive_acked(len(expected))
            assert [bytes(m.payload) for m in got] == expected
            await session.quiet()
