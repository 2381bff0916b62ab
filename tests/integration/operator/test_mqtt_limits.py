"""JWT limits for MQTT clients: the user's (and account's) ``subs`` and ``payload``.

An MQTT client over its subscription limit gets a SUBACK failure for the
filters beyond it (5.0 0x97 Quota exceeded, 3.1.1 0x80) and stays connected,
with its other filters granted; a user whose limit is 0 may still publish (a
device that only publishes is common). A PUBLISH, or a Will, with a payload
over the user's limit is handled as the NATS server handles a Maximum Payload
Violation: the connection ends (5.0 DISCONNECT 0x95), or the CONNECT is
refused with 0x95.
"""

from __future__ import annotations

import pytest

from gateway.mqtt.packets import Disconnect, Publish, Will
from gateway.mqtt.reason_codes import ReasonCode
from gateway.server import Gateway
from tests.integration.mqtt.conftest import mqtt_port
from tests.integration.mqtt.helpers import TcpSession
from tests.integration.operator.conftest import Identities, StartGateway

pytestmark = pytest.mark.integration

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])


async def session(gateway: Gateway, version: int, token: str, client_id: str = "c") -> TcpSession:
    client = await TcpSession.open(mqtt_port(gateway), version)
    connack = await client.connect(client_id, username="u", password=token.encode())
    assert connack.reason_code == 0
    return client


@VERSIONS
async def test_subscriptions_over_the_users_limit_get_a_suback_failure(
    start: StartGateway, ids: Identities, version: int
) -> None:
    gateway = await start()
    client = await session(gateway, version, ids.bearer("A", max_subscriptions=2))
    try:
        over = ReasonCode.QUOTA_EXCEEDED if version == 5 else 0x80
        assert await client.subscribe("a", "b", "c") == [0, 0, over]
        assert await client.subscribe("a") == [0]  # a replaced subscription is no new one
        await client.unsubscribe("a")
        assert await client.subscribe("d") == [0]
        await client.publish("d", b"still connected")
        assert bytes((await client.expect(Publish)).payload) == b"still connected"
    finally:
        await client.aclose()


async def test_the_accounts_limit_tightens_the_users(start: StartGateway, ids: Identities) -> None:
    ids.accounts["A"].options["max_subscriptions"] = 1
    gateway = await start()
    client = await session(gateway, 5, ids.bearer("A", max_subscriptions=5))
    try:
        assert await client.subscribe("a", "b") == [0, ReasonCode.QUOTA_EXCEEDED]
    finally:
        await client.aclose()


async def test_a_user_allowed_no_subscription_may_still_publish(
    start: StartGateway, ids: Identities
) -> None:
    gateway = await start()
    watcher = await session(gateway, 5, ids.bearer("A"), "watcher")
    device = await session(gateway, 5, ids.bearer("A", max_subscriptions=0), "device")
    try:
        assert await watcher.subscribe("telemetry/#") == [0]
        assert await device.subscribe("cmd/#") == [ReasonCode.QUOTA_EXCEEDED]
        await device.publish("telemetry/t1", b"21.5")
        assert bytes((await watcher.expect(Publish)).payload) == b"21.5"
    finally:
        await device.aclose()
        await watcher.aclose()


@VERSIONS
async def test_a_payload_over_the_users_limit_ends_the_connection(
    start: StartGateway, ids: Identities, version: int
) -> None:
    gateway = await start()
    client = await session(gateway, version, ids.bearer("A", max_payload=8))
    try:
        assert await client.subscribe("p") == [0]
        await client.publish("p", b"12345678")  # at the limit: fine
        assert bytes((await client.expect(Publish)).payload) == b"12345678"
        client.send(Publish("p", b"123456789"))
        seen = await client.closed()
        if version == 5:
            assert [type(p) for p in seen] == [Disconnect]
            assert seen[0].reason_code == ReasonCode.PACKET_TOO_LARGE  # type: ignore[attr-defined]
        else:
            assert seen == []
    finally:
        await client.aclose()


async def test_a_will_over_the_users_limit_refuses_the_connect(
    start: StartGateway, ids: Identities
) -> None:
    gateway = await start()
    client = await TcpSession.open(mqtt_port(gateway), 5)
    try:
        token = ids.bearer("A", max_payload=4)
        connack = await client.connect("w", password=token.encode(), will=Will("w", b"12345"))
        assert connack.reason_code == ReasonCode.PACKET_TOO_LARGE
    finally:
        await client.aclose()
