"""A QoS 1 subscription whose consumer JetStream refuses fails alone (SUBACK 0x80).

The upstream account may hold two consumers; a SUBSCRIBE asking for three QoS 1
filters and one QoS 0 filter gets 0x80 for the third, the others are served on
the same connection, no consumer is left behind, and the filter can be retried
once a consumer is freed (as the NATS server answers its own MQTT clients).
"""

from __future__ import annotations

import nats
import pytest

from gateway.mqtt.packets import Subscription
from tests.integration.upstream.conftest import (
    ClientFactory,
    GatewayFactory,
    ServerFactory,
)

pytestmark = pytest.mark.integration

TWO_CONSUMERS = """
accounts {
  GW: {
    jetstream: { max_mem: -1, max_file: -1, max_streams: -1, max_consumers: 2 }
    users: [ { user: gw, password: pw } ]
  }
}
"""
LOGIN = "user: gw, password: pw"
FAILURE = 0x80


async def _consumers(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        return [c.name for c in await js.consumers_info("$MQTT_msgs")]
    finally:
        await nc.close()


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])
async def test_a_refused_consumer_fails_only_its_filter(
    configured_server: ServerFactory,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    version: int,
) -> None:
    server = await configured_server(TWO_CONSUMERS)
    gateway = await gateways(server.url, upstream=LOGIN)
    url = f"nats://gw:pw@127.0.0.1:{server.port}"
    sub = await mqtt_client(gateway, "limited", version)
    codes = await sub.subscribe(
        Subscription("c/1", 1), Subscription("c/2", 1), Subscription("c/3", 1), "c/0"
    )
    assert codes == [1, 1, FAILURE, 0]
    assert gateway.broker is not None
    assert gateway.broker.counters["subscribe_failures"] == 1
    assert len(await _consumers(url)) == 2

    pub = await mqtt_client(gateway, "limited-pub", version)
    for topic in ("c/1", "c/2", "c/3", "c/0"):
        await pub.publish(topic, topic.encode(), qos=1)
    got = sorted(bytes(p.payload) for p in await sub.receive_acked(3))
    assert got == [b"c/0", b"c/1", b"c/2"]
    await sub.quiet()

    await sub.unsubscribe("c/2")
    assert await sub.subscribe(Subscription("c/3", 1)) == [1]
    await pub.publish("c/3", b"now", qos=1)
    assert [bytes(p.payload) for p in await sub.receive_acked(1)] == [b"now"]
    assert len(await _consumers(url)) == 2
