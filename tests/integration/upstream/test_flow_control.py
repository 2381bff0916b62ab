"""A 3.1.1 publisher with more QoS 1 PUBLISHes in flight than the Receive Maximum, upstream.

3.1.1 clients are told no maximum, so the gateway paces them rather than
disconnect them (5.0 clients get 0x93): once as many publishes as the maximum
wait for JetStream, the connection reads on only when half of them are stored.
"""

from __future__ import annotations

import pytest

from gateway.mqtt.session import DEFAULT_RECEIVE_MAXIMUM
from tests.conftest import NatsServer
from tests.integration.mqtt.test_qos import qos1_flood
from tests.integration.upstream.conftest import GatewayFactory, RawFactory

pytestmark = pytest.mark.integration


async def test_a_3_1_1_publisher_is_paced_while_jetstream_stores(
    nats_server: NatsServer, gateways: GatewayFactory, raw: RawFactory
) -> None:
    gateway = await gateways(nats_server.url)
    await qos1_flood(gateway, raw, 4 * DEFAULT_RECEIVE_MAXIMUM)
