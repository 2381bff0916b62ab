"""Messages between authenticated MQTT and NATS clients, both ways.

MQTT ``a/b`` is NATS ``a.b``; a NATS publish reaches MQTT subscribers of
``a/b``, ``a/+`` and ``a/#`` (which also gets NATS ``a``). QoS 1 messages carry
``Nmqtt-Pub: 1``; MQTT 5 user properties survive the trip through NATS.
Request/reply runs between NATS clients over WebSocket and TCP (the gateway
does not turn a NATS reply subject into an MQTT 5 response topic).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from gateway.mqtt.packets import Publish
from gateway.mqtt.properties import Properties
from gateway.server import Gateway
from tests.integration.auth.conftest import StartGateway
from tests.integration.auth.helpers import mqtt_connected, nats_connect

USERS = """
authorization {
  users = [
    {user: app, password: p, permissions: {publish: ["a.>", "a", "svc.>", "_INBOX.>"], subscribe: ["a.>", "a", "svc.>", "_INBOX.>"]}}
    {user: device, password: p, permissions: {publish: ["a.>", "a"], subscribe: ["a.>", "a"]}, clients: ["MQTT", "MQTT_WS"]}
  ]
}
"""


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> Gateway:
    return await start_gateway(USERS)


@pytest.fixture
async def app(gateway: Gateway) -> AsyncIterator[Client]:
    nc = await nats_connect(gateway, user="app", password="p")
    yield nc
    await nc.close()


@pytest.mark.parametrize(("version", "ws"), [(4, False), (5, False), (4, True), (5, True)])
@pytest.mark.parametrize("qos", [0, 1])
async def test_mqtt_publish_reaches_nats_subscribers(
    gateway: Gateway, app: Client, version: int, ws: bool, qos: int
) -> None:
    exact = await app.subscribe("a.b")
    tree = await app.subscribe("a.>")
    await app.flush()
    session = await mqtt_connected(gateway, version, "device", "p", ws=ws)
    await session.publish("a/b", b"from mqtt", qos=qos)
    for sub in (exact, tree):
        msg = await sub.next_msg(timeout=5)
        assert (msg.subject, msg.data) == ("a.b", b"from mqtt")
        if qos:
            assert msg.headers is not None and msg.headers.get("Nmqtt-Pub") == "1"
    await session.disconnect()


@pytest.mark.parametrize("ws", [False, True], ids=["nats-tcp", "nats-ws"])
async def test_nats_publish_reaches_mqtt_filters(gateway: Gateway, ws: bool) -> None:
    filters = ["a/b", "a/+", "a/#"]
    sessions = {}
    for version, topic_filter in zip([4, 5, 4], filters, strict=True):
        session = await mqtt_connected(gateway, version, "device", "p")
        assert await session.subscribe(topic_filter) == [0]
        sessions[topic_filter] = session
    nc = await nats_connect(gateway, ws, user="app", password="p")
    try:
        await nc.publish("a.b", b"to a/b")
        await nc.publish("a", b"to a")
        await nc.flush()
    finally:
        await nc.close()
    for topic_filter, session in sessions.items():
        msg = await session.expect(Publish)
        assert (msg.topic, msg.payload) == ("a/b", b"to a/b"), topic_filter
    parent = await sessions["a/#"].expect(Publish)
    assert (parent.topic, parent.payload) == ("a", b"to a")
    for session in sessions.values():
        await session.disconnect()


async def test_nats_headers_travel_between_nats_clients_over_tcp_and_websocket(
    gateway: Gateway, app: Client
) -> None:
    browser = await nats_connect(gateway, ws=True, user="app", password="p")
    try:
        sub = await browser.subscribe("a.h")
        await browser.flush()
        await app.publish("a.h", b"with headers", headers={"X-Trace": "42"})
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b"with headers"
        assert msg.headers == {"X-Trace": "42"}
        # The MQTT side gets the payload of a NATS message that carries headers.
        session = await mqtt_connected(gateway, 5, "device", "p")
        assert await session.subscribe("a/h") == [0]
        await browser.publish("a.h", b"again", headers={"X-Trace": "43"})
        await browser.flush()
        delivered = await session.expect(Publish)
        assert (delivered.topic, delivered.payload) == ("a/h", b"again")
        await session.disconnect()
    finally:
        await browser.close()


async def test_mqtt5_user_properties_pass_through_nats(gateway: Gateway, app: Client) -> None:
    sub = await app.subscribe("a.props")
    await app.flush()
    receiver = await mqtt_connected(gateway, 5, "device", "p")
    assert await receiver.subscribe("a/props", qos=1) == [1]
    sender = await mqtt_connected(gateway, 5, "device", "p", ws=True)
    props = Properties(user_properties=[("k", "v"), ("k", "w")], content_type="text/plain")
    await sender.publish("a/props", b"props", qos=1, properties=props)
    msg: Msg = await sub.next_msg(timeout=5)
    assert msg.data == b"props"
    assert msg.headers is not None and msg.headers.get("Nmqtt-Pub") == "1"
    [delivered] = await receiver.receive_acked(1)
    assert delivered.payload == b"props"
    assert list(delivered.properties.user_properties or ()) == [("k", "v"), ("k", "w")]
    assert delivered.properties.content_type == "text/plain"
    await sender.disconnect()
    await receiver.disconnect()


@pytest.mark.parametrize(
    ("responder_ws", "requester_ws"), [(True, False), (False, True)], ids=["ws-tcp", "tcp-ws"]
)
async def test_request_reply_between_websocket_and_tcp(
    gateway: Gateway, responder_ws: bool, requester_ws: bool
) -> None:
    responder = await nats_connect(gateway, responder_ws, user="app", password="p")
    requester = await nats_connect(gateway, requester_ws, user="app", password="p")
    try:

        async def answer(msg: Msg) -> None:
            await msg.respond(b"pong:" + msg.data)

        await responder.subscribe("svc.ping", cb=answer)
        await responder.flush()
        reply = await requester.request("svc.ping", b"1", timeout=5)
        assert reply.data == b"pong:1"
    finally:
        await requester.close()
        await responder.close()


async def test_mqtt5_response_topic_reaches_an_mqtt_responder(gateway: Gateway) -> None:
    responder = await mqtt_connected(gateway, 5, "device", "p")
    assert await responder.subscribe("a/requests") == [0]
    requester = await mqtt_connected(gateway, 5, "device", "p", ws=True)
    assert await requester.subscribe("a/replies/1") == [0]
    await requester.publish(
        "a/requests",
        b"ping",
        properties=Properties(response_topic="a/replies/1", correlation_data=b"c1"),
    )
    request = await responder.expect(Publish)
    assert request.properties.response_topic == "a/replies/1"
    await responder.publish(
        request.properties.response_topic,
        b"pong",
        properties=Properties(correlation_data=request.properties.correlation_data),
    )
    reply = await requester.expect(Publish)
    assert (reply.topic, reply.payload) == ("a/replies/1", b"pong")
    assert reply.properties.correlation_data == b"c1"
    await requester.disconnect()
    await responder.disconnect()
