"""JetStream not answering the gateway while a persistent session is resumed.

One CONNACK only, ``js_api_timeout`` bounding the wait, and the stored session
keeping its subscriptions when the resume fails.

The upstream user may not ask ``$JS.API.CONSUMER.INFO`` (the server drops the
request), so the lookup of a resumed session's consumers gets no answer: a
deterministic stand-in for a JetStream that is electing leaders after a node
loss, which the cluster test meets by chance.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest

from gateway.mqtt.packets import Connack, Connect
from gateway.mqtt.properties import Properties
from gateway.mqtt.store import hash8
from gateway.server import Gateway
from tests.integration.upstream.conftest import (
    ClientFactory,
    ConfiguredServer,
    GatewayFactory,
    JetStreamFactory,
    OfflineFactory,
    RawFactory,
    ServerFactory,
)

pytestmark = pytest.mark.integration

NO_CONSUMER_INFO = """
authorization {
  users: [
    { user: gw, password: pw, permissions: { publish: { deny: ["$JS.API.CONSUMER.INFO.>"] } } }
    { user: admin, password: pw }
  ]
}
"""
LOGIN = "user: gw, password: pw"
KEEP = Properties(session_expiry_interval=3600)


@dataclass
class Resumed:
    """What a resume refused by JetStream's silence left: packets, time, gateway, server."""

    seen: list[object]
    took: float
    gateway: Gateway
    server: ConfiguredServer


async def resume_without_consumer_info(
    configured_server: ServerFactory,
    gateways: GatewayFactory,
    raw: RawFactory,
    mqtt_client: ClientFactory,
    go_offline: OfflineFactory,
    version: int,
    mqtt: str = "",
) -> Resumed:
    """Store a session with a QoS 1 subscription, resume it; return what came and how long."""
    server = await configured_server(NO_CONSUMER_INFO)
    gateway = await gateways(server.url, mqtt, upstream=LOGIN)
    keep = KEEP if version == 5 else None
    first = await mqtt_client(gateway, "resume-me", version, clean=False, properties=keep)
    assert await first.subscribe("r/1", qos=1) == [1]
    await go_offline(first, "resume-me", f"nats://gw:pw@127.0.0.1:{server.port}")

    again = await raw(gateway, version)
    started = time.monotonic()
    again.send(Connect("resume-me", clean_start=False, protocol_level=version, properties=keep))
    seen = await again.closed(timeout=20)
    return Resumed(list(seen), time.monotonic() - started, gateway, server)


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])
async def test_one_connack_when_resuming_fails_after_it(
    configured_server: ServerFactory,
    gateways: GatewayFactory,
    raw: RawFactory,
    mqtt_client: ClientFactory,
    go_offline: OfflineFactory,
    version: int,
) -> None:
    seen = (
        await resume_without_consumer_info(
            configured_server, gateways, raw, mqtt_client, go_offline, version
        )
    ).seen
    connacks = [p for p in seen if isinstance(p, Connack)]
    assert seen and isinstance(seen[0], Connack), seen
    assert len(connacks) == 1, f"CONNACKs on one connection: {connacks!r}"


async def test_js_api_timeout_bounds_an_unanswered_jetstream_request(
    configured_server: ServerFactory,
    gateways: GatewayFactory,
    raw: RawFactory,
    mqtt_client: ClientFactory,
    go_offline: OfflineFactory,
) -> None:
    """With js_api_timeout 2s (the default is 5 s), an unanswered consumer lookup ends the
    CONNECT within ~2 s. (1 s was too tight for the answered requests of a loaded 2-core
    machine running the whole suite: a session save timed out there once.)"""
    resumed = await resume_without_consumer_info(
        configured_server, gateways, raw, mqtt_client, go_offline, 4, mqtt='js_api_timeout: "2s"'
    )
    assert resumed.seen, "the gateway answered nothing"
    took = resumed.took
    assert took < 4.5, f"the unanswered JetStream request held the client {took:.1f}s"


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])
async def test_failed_resume_keeps_the_stored_subscriptions(
    configured_server: ServerFactory,
    gateways: GatewayFactory,
    raw: RawFactory,
    mqtt_client: ClientFactory,
    go_offline: OfflineFactory,
    jetstream: JetStreamFactory,
    version: int,
) -> None:
    """After a resume that JetStream's silence broke, the session still has its subscription."""
    resumed = await resume_without_consumer_info(
        configured_server,
        gateways,
        raw,
        mqtt_client,
        go_offline,
        version,
        mqtt='js_api_timeout: "2s"',
    )
    # Another resume is served once the broken connection has saved its session (the
    # client id is released only then), so what is stored now is what that save left.
    second = await raw(resumed.gateway, version)
    connack = await second.connect(
        "resume-me", clean=False, properties=KEEP if version == 5 else None
    )
    assert connack.session_present
    js = await jetstream(f"nats://admin:pw@127.0.0.1:{resumed.server.port}")
    stored = await js.get_last_msg("$MQTT_sess", f"$MQTT.sess.{hash8('resume-me')}")
    subscriptions = json.loads(stored.data or b"{}").get("subs") or {}
    assert "r/1" in subscriptions, f"stored subscriptions: {subscriptions!r}"
