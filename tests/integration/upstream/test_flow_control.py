"""Many QoS 1 and QoS 2 exchanges in flight from one client, upstream.

3.1.1 clients are told no Receive Maximum, so the gateway paces them rather
than disconnect them (5.0 clients get 0x93): once as many publishes as the
maximum wait for JetStream, the connection reads on only when half of them are
stored. QoS 2 stagings and releases are in flight together as well, in order.
"""

from __future__ import annotations

import pytest

from gateway.mqtt.session import DEFAULT_RECEIVE_MAXIMUM
from tests.conftest import NatsServer
from tests.integration.mqtt.test_qos import qos1_flood
from tests.integration.mqtt.test_qos2_pipeline import pubrel_then_disconnect, qos2_burst
from tests.integration.upstream.conftest import GatewayFactory, RawFactory

pytestmark = pytest.mark.integration


async def test_a_3_1_1_publisher_is_paced_while_jetstream_stores(
    nats_server: NatsServer, gateways: GatewayFactory, raw: RawFactory
) -> None:
    gateway = await gateways(nats_server.url)
    await qos1_flood(gateway, raw, 4 * DEFAULT_RECEIVE_MAXIMUM)


async def test_qos2_exchanges_in_flight_keep_their_order_upstream(
    nats_server: NatsServer, gateways: GatewayFactory, raw: RawFactory
) -> None:
    gateway = await gateways(nats_server.url)
    await qos2_burst(gateway, raw, 300)


async def test_a_pubrel_right_before_disconnect_still_goes_on_upstream(
    nats_server: NatsServer, gateways: GatewayFactory, raw: RawFactory
) -> None:
    gateway = await gateways(nats_server.url)
    await pubrel_then_disconnect(gateway, raw)
