"""Publish and subscribe permissions for MQTT clients (3.1.1 and 5.0, TCP and WebSocket).

Rules are written on the NATS subject the topic maps to (``a/b`` -> ``a.b``,
``#`` -> ``>``). A denied PUBLISH gets PUBACK/PUBREC 0x87 in 5.0 and is
dropped in 3.1.1 (still acknowledged); a denied SUBSCRIBE filter gets 0x80
(3.1.1) or 0x87 (5.0). ``x/#`` needs both ``x.>`` and ``x``. QoS 1
subscriptions do not need ``$MQTT.sub.>`` in the allow list, but an explicit
deny of it refuses them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription as NatsSubscription

from gateway.mqtt.packets import Puback, Pubcomp, Publish, Pubrec, Pubrel
from gateway.server import Gateway
from tests.integration.auth.conftest import StartGateway
from tests.integration.auth.helpers import (
    NOT_AUTHORIZED,
    REFUSED_311_SUBSCRIBE,
    SUCCESS,
    mqtt_connack,
    mqtt_connected,
    nats_connect,
    nats_refusal,
)
from tests.integration.mqtt.helpers import RawSession

USERS = """
authorization {
  users = [
    {user: admin, password: p}
    {user: pub_string, password: p, permissions: {publish: "ok.one"}}
    {user: pub_list, password: p, permissions: {publish: ["ok.one", "ok.two"]}}
    {user: pub_allow, password: p, permissions: {publish: {allow: ["ok.>"]}}}
    {user: pub_deny, password: p, permissions: {publish: {deny: ["secret.>"]}}}
    {user: pub_both, password: p, permissions: {publish: {allow: ["ok.>"], deny: ["ok.secret"]}}}
    {user: sub_string, password: p, permissions: {subscribe: "ok.one"}}
    {user: sub_list, password: p, permissions: {subscribe: ["ok.one", "ok.two"]}}
    {user: sub_allow, password: p, permissions: {subscribe: {allow: ["ok.*"]}}}
    {user: sub_deny, password: p, permissions: {subscribe: {deny: ["secret.>"]}}}
    {user: sub_both, password: p, permissions: {subscribe: {allow: ["ok.>"], deny: ["ok.secret"]}}}
    {user: tree, password: p, permissions: {subscribe: ["tree.>", "tree"]}}
    {user: tree_children, password: p, permissions: {subscribe: ["tree.>"]}}
    {user: qos1_listed, password: p, permissions: {subscribe: ["ok.>", "$MQTT.sub.>"]}}
    {user: qos1_unlisted, password: p, permissions: {subscribe: ["ok.>"]}}
    {user: qos1_denied, password: p, permissions: {subscribe: {allow: ["ok.>"], deny: ["$MQTT.sub.>"]}}}
  ]
}
"""

VARIANTS = [(4, False), (5, False), (4, True), (5, True)]
VARIANT_IDS = ["311-tcp", "5-tcp", "311-ws", "5-ws"]


def refused(version: int) -> int:
    """The SUBACK code of a denied filter, in 5.0 numbering (3.1.1 sends 0x80)."""
    return NOT_AUTHORIZED if version == 5 else REFUSED_311_SUBSCRIBE


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> Gateway:
    return await start_gateway(USERS)


@pytest.fixture
async def admin(gateway: Gateway) -> AsyncIterator[Client]:
    nc = await nats_connect(gateway, user="admin", password="p")
    yield nc
    await nc.close()


async def watch(nc: Client, subject: str = ">") -> NatsSubscription:
    sub = await nc.subscribe(subject)
    await nc.flush()
    return sub


async def next_plain(sub: NatsSubscription) -> tuple[str, bytes]:
    """The next message outside the ``$`` namespace (the gateway's own traffic is skipped)."""
    while True:
        msg = await sub.next_msg(timeout=5)
        if not msg.subject.startswith("$"):
            return msg.subject, msg.data


async def publish_refused(session: RawSession, topic: str, qos: int) -> None:
    """PUBLISH that must be denied: 0x87 in 5.0; acknowledged but dropped in 3.1.1."""
    pid = session.packet_id()
    session.send(Publish(topic, b"denied", qos, packet_id=pid))
    ack = await session.expect(Puback if qos == 1 else Pubrec)
    assert ack.packet_id == pid
    if session.version == 5:
        assert ack.reason_code == NOT_AUTHORIZED
    if isinstance(ack, Pubrec) and session.version == 4:
        session.send(Pubrel(pid))
        await session.expect(Pubcomp)


@pytest.mark.parametrize(("version", "ws"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize(
    ("user", "allowed", "denied"),
    [
        ("pub_string", ["ok/one"], ["ok/two"]),
        ("pub_list", ["ok/one", "ok/two"], ["ok/three"]),
        ("pub_allow", ["ok/x", "ok/x/y"], ["other", "ok"]),
        ("pub_deny", ["anything", "secretive/x"], ["secret/x", "secret/x/y"]),
        ("pub_both", ["ok/public"], ["ok/secret", "other"]),
    ],
)
async def test_publish_rules(
    gateway: Gateway,
    admin: Client,
    version: int,
    ws: bool,
    user: str,
    allowed: list[str],
    denied: list[str],
) -> None:
    seen = await watch(admin)
    session = await mqtt_connected(gateway, version, user, "p", ws=ws)
    for topic in denied:
        await session.publish(topic, b"denied", qos=0)
        await publish_refused(session, topic, qos=1)
        await publish_refused(session, topic, qos=2)
    for topic in allowed:
        ack = await session.publish(topic, b"allowed", qos=1)
        assert isinstance(ack, Puback) and ack.reason_code == SUCCESS
    # The denied messages were sent first: had one gone through, it would come first.
    got = [await next_plain(seen) for _ in allowed]
    assert got == [(t.replace("/", "."), b"allowed") for t in allowed]
    await session.disconnect()


@pytest.mark.parametrize(("version", "ws"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize(
    ("user", "allowed", "denied"),
    [
        ("sub_string", ["ok/one"], ["ok/two", "ok/+"]),
        ("sub_list", ["ok/one", "ok/two"], ["ok/three", "ok/#"]),
        # foo.* allows foo/+ but not foo/# (which is foo.> plus foo).
        ("sub_allow", ["ok/x", "ok/+"], ["ok/#", "ok/x/y", "ok/+/+", "other"]),
        ("sub_deny", ["ok/x", "secret"], ["secret/x", "secret/+", "secret/#"]),
        ("sub_both", ["ok/public", "ok/a/b"], ["ok/secret", "ok/#", "other"]),
        # x/# needs x.> and x.
        ("tree", ["tree/#"], ["other/#"]),
        ("tree_children", ["tree/+", "tree/a/b"], ["tree/#", "tree"]),
    ],
)
async def test_subscribe_rules(
    gateway: Gateway,
    admin: Client,
    version: int,
    ws: bool,
    user: str,
    allowed: list[str],
    denied: list[str],
) -> None:
    session = await mqtt_connected(gateway, version, user, "p", ws=ws)
    codes = await session.subscribe(*denied, *allowed)
    assert codes == [refused(version)] * len(denied) + [0] * len(allowed)
    codes = await session.subscribe(*denied, *allowed, qos=1)
    assert codes == [refused(version)] * len(denied) + [1] * len(allowed)
    # Plain NATS messages on a subject of every filter: denied ones first.
    for topic in [*denied, *allowed]:
        subject = topic.replace("/", ".").replace("+", "w").replace("#", "x.y")
        await admin.publish(subject, topic.encode())
    await admin.flush()
    expected = {t.encode() for t in allowed}
    got: set[bytes] = set()
    while got != expected:
        packet = await session.expect(Publish)
        assert packet.payload in expected, f"a denied filter got {packet.payload!r}"
        got.add(bytes(packet.payload))
    await session.disconnect()


async def test_refused_multi_level_filter_logs_the_subject_not_permitted(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """`tree/#` with only `tree.>` allowed is refused because it also subscribes `tree`
    (as in the NATS server); the log says which subject, not just the filter."""
    session = await mqtt_connected(gateway, 5, "tree_children", "p")
    with caplog.at_level("INFO", logger="jetgate.mqtt"):
        assert await session.subscribe("tree/#") == [NOT_AUTHORIZED]
    assert "Subscription Violation - 'tree/#' (subject 'tree' not permitted)" in caplog.text
    await session.disconnect()


@pytest.mark.parametrize("version", [4, 5])
async def test_wildcard_over_a_denied_subject_skips_its_messages(
    gateway: Gateway, admin: Client, version: int
) -> None:
    session = await mqtt_connected(gateway, version, "sub_deny", "p")
    assert await session.subscribe("#") == [0]
    await admin.publish("secret.x", b"hidden")
    await admin.publish("open.x", b"shown")
    await admin.flush()
    first = await session.expect(Publish)
    # The denied one was published first: it would have come first.
    assert (first.topic, first.payload) == ("open/x", b"shown")
    await session.disconnect()


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("user", ["qos1_listed", "qos1_unlisted"])
async def test_qos1_subscriptions_need_no_mqtt_sub_allow_entry(
    gateway: Gateway, version: int, user: str
) -> None:
    session = await mqtt_connected(gateway, version, user, "p", client_id=f"{user}-{version}")
    assert await session.subscribe("ok/x", qos=1) == [1]
    publisher = await mqtt_connected(gateway, version, "admin", "p")
    await publisher.publish("ok/x", b"at least once", qos=1)
    [msg] = await session.receive_acked(1)
    assert (msg.topic, msg.payload, msg.qos) == ("ok/x", b"at least once", 1)
    await publisher.disconnect()
    await session.disconnect()


@pytest.mark.parametrize("version", [4, 5])
async def test_deny_of_mqtt_sub_refuses_qos1_but_not_qos0(gateway: Gateway, version: int) -> None:
    session = await mqtt_connected(gateway, version, "qos1_denied", "p")
    assert await session.subscribe("ok/zero", qos=0) == [0]
    assert await session.subscribe("ok/one", qos=1) == [refused(version)]
    await session.disconnect()


DOCUMENTED = """
authorization {
  mqtt_perms = {
    publish = ["baz"]
    subscribe = ["foo", "bar", "$MQTT.sub.>"]
  }
  users = [
    {user: mqtt, password: pass, permissions: $mqtt_perms, allowed_connection_types: ["MQTT"]}
  ]
}
"""


@pytest.mark.parametrize("version", [4, 5])
async def test_documented_example_exactly(start_gateway: StartGateway, version: int) -> None:
    gateway = await start_gateway(DOCUMENTED)
    # Not a NATS client, nor MQTT over WebSocket.
    assert "'Authorization Violation'" in await nats_refusal(gateway, user="mqtt", password="pass")
    assert "'Authorization Violation'" in await nats_refusal(
        gateway, ws=True, user="mqtt", password="pass"
    )
    assert await mqtt_connack(gateway, version, "mqtt", "pass", ws=True) == NOT_AUTHORIZED
    session = await mqtt_connected(gateway, version, "mqtt", "pass")
    assert await session.subscribe("foo", "bar") == [0, 0]
    assert await session.subscribe("foo", "bar", qos=1) == [1, 1]
    assert await session.subscribe("baz", "foo/bar", "foo/#", "#", "+") == [refused(version)] * 5
    ack = await session.publish("baz", b"ok", qos=1)
    assert isinstance(ack, Puback) and ack.reason_code == SUCCESS
    for topic in ("foo", "bar", "qux", "baz/x"):
        await publish_refused(session, topic, qos=1)
    await session.disconnect()


@pytest.mark.parametrize("version", [4, 5])
async def test_documented_example_messages_flow(start_gateway: StartGateway, version: int) -> None:
    gateway = await start_gateway(
        DOCUMENTED.replace("users = [", "users = [\n    {user: watcher, password: w}")
    )
    watcher = await nats_connect(gateway, user="watcher", password="w")
    try:
        seen = await watch(watcher)
        session = await mqtt_connected(gateway, version, "mqtt", "pass", client_id="doc")
        assert await session.subscribe("foo", qos=0) == [0]
        assert await session.subscribe("bar", qos=1) == [1]
        # Publishing: baz goes out, qux is denied (sent first, so it would come first).
        await session.publish("qux", b"no", qos=0)
        await session.publish("baz", b"yes", qos=1)
        assert await next_plain(seen) == ("baz", b"yes")
        # Receiving on foo (QoS 0) and bar (QoS 1, from a QoS 1 MQTT publisher).
        other = await mqtt_connected(gateway, 5, "watcher", "w")
        await other.publish("foo", b"f", qos=0)
        await other.publish("bar", b"b", qos=1)
        got = {(m.topic, bytes(m.payload), m.qos) for m in await session.receive_acked(2)}
        assert got == {("foo", b"f", 0), ("bar", b"b", 1)}
        await other.disconnect()
        await session.disconnect()
    finally:
        await watcher.close()
