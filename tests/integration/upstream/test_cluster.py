"""A gateway in front of a three-node JetStream cluster that loses a node under QoS 1 load.

The gateway's ``upstream`` lists all three nodes and ``mqtt`` asks for
``stream_replicas: 3``. One node is killed (SIGKILL) while publishers on two
gateways send QoS 1 messages: whatever the gateways PUBACKed must reach an
online persistent subscriber and one that was offline during the failure.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError

from tests.integration.upstream.conftest import (
    ClientFactory,
    Cluster,
    ClusterNode,
    GatewayFactory,
    JetStreamFactory,
    NatsFactory,
    OfflineFactory,
)
from tests.integration.upstream.load import Tally, publisher, resume_and_drain, subscriber

pytestmark = pytest.mark.integration

MQTT_STREAMS = ("$MQTT_sess", "$MQTT_msgs", "$MQTT_qos2in", "$MQTT_rmsgs")
R3 = "stream_replicas: 3"


async def test_stream_replicas_setting_makes_replicated_streams(
    cluster: Cluster,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    jetstream: JetStreamFactory,
) -> None:
    """``stream_replicas: 3``: every MQTT stream has three replicas, and so do the consumers."""
    gateway = await gateways(cluster.urls, R3)
    js = await jetstream(cluster.urls)
    for name in MQTT_STREAMS:
        info = await js.stream_info(name)
        assert info.config.num_replicas == 3, f"{name} has {info.config.num_replicas} replica(s)"
        assert info.cluster is not None and len(info.cluster.replicas or ()) == 2
    client = await mqtt_client(gateway, "r3-consumers", clean=False)
    assert await client.subscribe("r3/#", qos=1) == [1]
    consumers = await js.consumers_info("$MQTT_msgs")
    assert len(consumers) == 2
    for consumer in consumers:
        assert consumer.cluster is not None and len(consumer.cluster.replicas or ()) == 2


async def leaders_again(cluster: Cluster, nats_connect: NatsFactory, timeout: float = 20) -> None:
    """Wait until every MQTT stream and consumer answers with a leader after the node loss.

    JetStream elects new leaders within seconds; a session resumed before that
    fails (see test_failed_resume_keeps_the_stored_subscriptions, which makes
    that case deterministic). Polled, as a start-up is: there is no event.
    """
    nc = await nats_connect([node.url for node in cluster.nodes if node.running])
    js = nc.jetstream(timeout=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            streams = [await js.stream_info(name) for name in MQTT_STREAMS]
            ready = all(info.cluster is not None and info.cluster.leader for info in streams)
            for consumer in await js.consumers_info("$MQTT_msgs"):
                info = await js.consumer_info("$MQTT_msgs", consumer.name)
                ready = ready and info.cluster is not None and bool(info.cluster.leader)
        except (NatsError, TimeoutError):
            ready = False
        if ready:
            return
        assert time.monotonic() < deadline, "JetStream did not elect new leaders"
        await asyncio.sleep(0.2)


async def load_through_node_loss(
    cluster: Cluster,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    go_offline: OfflineFactory,
    nats_connect: NatsFactory,
    js_client: NatsClient,
    pick_victim: str,
) -> None:
    """QoS 1 load through two gateways; kill one node; nothing acknowledged may be lost."""
    deadline = time.monotonic() + 45
    a = await gateways(cluster.urls, R3, "server_name: gw-a\n")
    b = await gateways(cluster.urls, R3, "server_name: gw-b\n")
    assert a.mqtt is not None and b.mqtt is not None
    sub = await mqtt_client(a, "cluster-sub", clean=False)
    assert await sub.subscribe("load/#", qos=1) == [1]
    offline = await mqtt_client(b, "cluster-offline", clean=False)
    assert await offline.subscribe("load/+", qos=1) == [1]
    await go_offline(offline, "cluster-offline", cluster.urls)

    if pick_victim == "gateway":
        victim: ClusterNode = await cluster.node_serving("gw-a")
    else:
        info = await js_client.jetstream().stream_info("$MQTT_msgs")
        assert info.cluster is not None and info.cluster.leader
        victim = cluster.node(info.cluster.leader)

    tally = Tally()
    stop = asyncio.Event()
    receiving = asyncio.create_task(subscriber(a.mqtt.port, "cluster-sub", sub, tally, deadline))
    publishing = [
        asyncio.create_task(publisher(port, name, "load/cluster", tally, stop, deadline))
        for port, name in ((a.mqtt.port, "ca"), (b.mqtt.port, "cb"))
    ]
    try:
        await tally.acked_at_least(200, timeout=10)
        victim.kill()
        before = len(tally.acked)
        await tally.acked_at_least(before + 300, timeout=20)
        stop.set()
        await asyncio.gather(*publishing)
        await tally.delivered(timeout=15)
    finally:
        stop.set()
        receiving.cancel()
        for task in publishing:
            task.cancel()
        await asyncio.gather(receiving, *publishing, return_exceptions=True)
    assert all(tally.resumed), f"the subscriber's session was lost: {tally.summary()}"
    if pick_victim == "gateway":
        assert await cluster.node_serving("gw-a") is not victim  # it did reconnect elsewhere

    # The offline subscriber resumes on B once JetStream has leaders again.
    await leaders_again(cluster, nats_connect)
    await resume_and_drain(b.mqtt.port, "cluster-offline", tally.acked, tally, timeout=20)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("victim", ["gateway", "leader"], ids=["gateway-node", "msgs-leader"])
async def test_node_dies_under_qos1_load(
    cluster: Cluster,
    gateways: GatewayFactory,
    mqtt_client: ClientFactory,
    nats_connect: NatsFactory,
    go_offline: OfflineFactory,
    victim: str,
) -> None:
    """Kill the node gateway A is connected to, or the ``$MQTT_msgs`` leader: nothing is lost."""
    nc = await nats_connect(cluster.urls)
    await load_through_node_loss(
        cluster, gateways, mqtt_client, go_offline, nats_connect, nc, victim
    )
