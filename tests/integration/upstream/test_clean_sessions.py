"""What a clean MQTT session asks of the upstream JetStream when it ends.

In upstream mode every session has a stored record (another gateway may take
it over), deleted when a clean session ends. Its staged QoS 2 messages are
purged then only if it staged any: a clean session that published none costs
no purge request (each is a JetStream API call on the upstream server).
Messages left by a gateway that died are purged when the client id connects
again with a clean session (its record is still there).
"""

from __future__ import annotations

import pytest

from gateway.mqtt.packets import Publish, Pubrec
from tests.conftest import NatsServer
from tests.integration.upstream.conftest import ClientFactory, GatewayFactory, NatsFactory

pytestmark = pytest.mark.integration

PURGES = "$JS.API.STREAM.PURGE.>"


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
async def test_a_clean_session_purges_staged_qos2_messages_only_when_it_staged_some(
    nats_server: NatsServer,
    gateways: GatewayFactory,
    nats_connect: NatsFactory,
    mqtt_client: ClientFactory,
    version: int,
) -> None:
    gateway = await gateways(nats_server.url)
    watcher = await nats_connect(nats_server.url)
    purges = await watcher.subscribe(PURGES)
    await watcher.flush()

    async def ended(client_id: str) -> None:
        # A new connection with the id is answered once the old one has ended; the
        # watcher's PONG then comes after every API request made meanwhile.
        again = await mqtt_client(gateway, client_id, version)
        await again.disconnect()
        await watcher.flush()

    plain = await mqtt_client(gateway, "no-qos2", version)
    assert await plain.subscribe("clean/t", qos=1) == [1]
    await plain.publish("clean/t", b"one", qos=1)
    await plain.receive_acked(1)
    await plain.disconnect()
    await ended("no-qos2")
    assert purges.pending_msgs == 0

    stager = await mqtt_client(gateway, "with-qos2", version)
    stager.send(Publish("clean/t", b"two", qos=2, packet_id=9))
    assert (await stager.expect(Pubrec)).packet_id == 9
    await stager.disconnect()  # without the PUBREL: the message stays staged
    await ended("with-qos2")
    purge = await purges.next_msg(timeout=5)
    assert purge.subject == "$JS.API.STREAM.PURGE.$MQTT_qos2in"
    assert purges.pending_msgs == 0
