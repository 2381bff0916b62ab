"""The upstream nats-server stops and restarts (same port, same store) under QoS 1 load.

While it is down, new MQTT connections are refused with "server unavailable"
(3.1.1 CONNACK 3, 5.0 0x88). Publishers may lose their connections and come
back; whatever the gateway PUBACKed before, during or after the outage must
reach the persistent subscriber, which resumes its session if it has to.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.server import Gateway
from tests.conftest import NatsServer
from tests.integration.upstream.conftest import (
    ClientFactory,
    GatewayFactory,
    OfflineFactory,
    RawFactory,
)
from tests.integration.upstream.load import (
    SERVER_UNAVAILABLE,
    Tally,
    publisher,
    resume_and_drain,
    subscriber,
)

pytestmark = pytest.mark.integration

TOPIC = "load/outage"


async def refused_while_down(raw: RawFactory, gateway: Gateway, version: int) -> int:
    session = await raw(gateway, version)
    connack = await session.connect(f"probe-v{version}", timeout=15)
    await session.aclose()
    return int(connack.reason_code)


@pytest.mark.timeout(60)
async def test_server_restart_under_qos1_load_loses_nothing_acknowledged(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    raw: RawFactory,
    mqtt_client: ClientFactory,
    go_offline: OfflineFactory,
) -> None:
    """Stop nats-server under load from two gateways, probe, restart it; count what arrives."""
    deadline = time.monotonic() + 40
    a = await gateways(nats_server.url)
    b = await gateways(nats_server.url)
    assert a.mqtt is not None and b.mqtt is not None
    sub = await mqtt_client(a, "outage-sub", clean=False)
    assert await sub.subscribe("load/#", qos=1) == [1]
    offline = await mqtt_client(b, "outage-offline", clean=False)
    assert await offline.subscribe("load/+", qos=1) == [1]
    await go_offline(offline, "outage-offline", nats_server.url)  # its messages wait in JetStream

    tally = Tally()
    stop = asyncio.Event()
    receiving = asyncio.create_task(subscriber(a.mqtt.port, "outage-sub", sub, tally, deadline))
    publishing = [
        asyncio.create_task(publisher(gw.mqtt.port, name, TOPIC, tally, stop, deadline))
        for gw, name in ((a, "pa"), (b, "pb"))
        if gw.mqtt is not None
    ]
    try:
        await tally.acked_at_least(200, timeout=10)

        nats_server.stop()
        assert await refused_while_down(raw, a, 4) == SERVER_UNAVAILABLE  # CONNACK 3
        assert await refused_while_down(raw, b, 5) == SERVER_UNAVAILABLE
        acked_before_restart = len(tally.acked)
        # Both publishers lose their connection (no PubAck) and are refused on reconnecting.
        await tally.until(
            lambda: {"pa", "pb"} <= set(tally.refused), 12, "both publishers refused while down"
        )
        nats_server.start()

        await tally.acked_at_least(acked_before_restart + 200, timeout=20)
        stop.set()
        sent = sum(await asyncio.gather(*publishing))
        await tally.delivered(timeout=15)
    finally:
        stop.set()
        receiving.cancel()
        for task in publishing:
            task.cancel()
        await asyncio.gather(receiving, *publishing, return_exceptions=True)
    assert sent >= len(tally.acked)
    assert all(tally.resumed), f"the subscriber's session was lost: {tally.summary()}"

    assert b.mqtt is not None
    await resume_and_drain(b.mqtt.port, "outage-offline", tally.acked, tally, timeout=15)
