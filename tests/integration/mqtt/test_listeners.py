"""MQTT listeners (TCP and WebSocket) and their limits: connections, packet size, deadlines.

Covers the issue's "Listeners" bullets: MQTT over TCP, MQTT over WebSocket
(subprotocol, binary frames, packets spanning frames and several per frame),
``max_connections``, ``max_payload``, the CONNECT deadline and keep-alive
enforced at exactly 1.5 times the negotiated value.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from gateway.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Publish,
    Suback,
    Subscribe,
    Subscription,
)
from gateway.mqtt.properties import Properties
from gateway.server import Gateway
from tests.integration.mqtt.conftest import (
    GatewayFactory,
    PahoFactory,
    RawFactory,
    ws_port,
)
from tests.integration.mqtt.helpers import TIMEOUT

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


@VERSIONS
async def test_mqtt_3_1_4_5_tcp_listener_accepts_connect(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A valid CONNECT over TCP is acknowledged with a success CONNACK."""
    session = await raw(gateway, version)
    connack = await session.connect("tcp-client")
    assert connack.reason_code == 0
    assert connack.session_present is False


@VERSIONS
async def test_mqtt_3_3_4_1_paho_clients_exchange_messages_over_tcp(
    gateway: Gateway, paho_client: PahoFactory, version: int
) -> None:
    """The receiver of a PUBLISH answers as its QoS requires; paho sees PUBACK and delivery."""
    sub = paho_client(gateway, version, client_id=f"paho-sub-{version}")
    pub = paho_client(gateway, version, client_id=f"paho-pub-{version}")
    _flags, rc, _props = await sub.connect()
    assert rc == 0
    await pub.connect()
    codes = await sub.subscribe("paho/tcp", 1)
    assert [int(c.value) if hasattr(c, "value") else int(c) for c in codes] == [1]
    rc = await pub.publish("paho/tcp", b"hello", qos=1)
    assert rc == 0
    msg = await sub.next_message()
    assert (msg.topic, msg.payload, msg.qos) == ("paho/tcp", b"hello", 1)


@VERSIONS
async def test_mqtt_6_0_0_4_websocket_selects_mqtt_subprotocol(
    gateway: Gateway, version: int
) -> None:
    """The server selects and returns the WebSocket subprotocol "mqtt"; MQTT then runs over it."""
    async with ws_connect(
        f"ws://127.0.0.1:{ws_port(gateway)}/mqtt",
        subprotocols=["mqtt"],  # type: ignore[list-item]
    ) as ws:
        assert ws.subprotocol == "mqtt"
        await ws.send(Connect("ws-client", protocol_level=version).encode(version))
        from gateway.mqtt.codec import Decoder

        decoder = Decoder(server=False, version=version)
        packets = decoder.feed(await asyncio.wait_for(ws.recv(), TIMEOUT))  # type: ignore[arg-type]
        assert isinstance(packets[0], Connack)
        assert packets[0].reason_code == 0


@VERSIONS
async def test_mqtt_6_0_0_2_packets_span_frames_and_share_frames(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """The receiver must not assume MQTT packets are aligned on WebSocket frame boundaries."""
    session = await raw(gateway, version, ws=True)
    connect = Connect("ws-frames", protocol_level=version).encode(version)
    # One CONNECT cut into three frames, the middle one a single byte.
    await session.send_frames(connect[:3], connect[3:4], connect[4:])  # type: ignore[attr-defined]
    assert (await session.expect(Connack)).reason_code == 0
    # SUBSCRIBE, PUBLISH and PINGREQ in one frame, then a PUBLISH split across two.
    sub = Subscribe(1, [Subscription("ws/t", 0)]).encode(version)
    pub = Publish("ws/t", b"one").encode(version)
    await session.send_frames(sub + pub + Pingreq().encode(version))  # type: ignore[attr-defined]
    assert (await session.expect(Suback)).reason_codes == [0]
    got = [await session.recv(), await session.recv()]
    assert any(isinstance(p, Pingresp) for p in got)
    assert [bytes(p.payload) for p in got if isinstance(p, Publish)] == [b"one"]
    second = Publish("ws/t", b"two" * 50).encode(version)
    await session.send_frames(second[:7], second[7:])  # type: ignore[attr-defined]
    assert bytes((await session.expect(Publish)).payload) == b"two" * 50


async def test_mqtt_6_0_0_1_text_frame_closes_connection(gateway: Gateway) -> None:
    """MQTT travels in binary frames only; any other data frame closes the connection."""
    async with ws_connect(
        f"ws://127.0.0.1:{ws_port(gateway)}/mqtt",
        subprotocols=["mqtt"],  # type: ignore[list-item]
    ) as ws:
        await ws.send(Connect("ws-text").encode(4))
        await asyncio.wait_for(ws.recv(), TIMEOUT)
        await ws.send("\xe0\x00")  # a DISCONNECT's bytes, but in a text frame
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)


@VERSIONS
async def test_mqtt_6_0_0_3_paho_over_websocket_meets_tcp_client(
    gateway: Gateway, paho_client: PahoFactory, version: int
) -> None:
    """A paho client over WebSocket (subprotocol mqtt) and one over TCP share topics."""
    ws_sub = paho_client(gateway, version, ws=True, client_id=f"ws-sub-{version}")
    tcp_pub = paho_client(gateway, version, client_id=f"tcp-pub-{version}")
    assert (await ws_sub.connect())[1] == 0
    await tcp_pub.connect()
    await ws_sub.subscribe("mixed/+", 1)
    await tcp_pub.publish("mixed/a", b"x" * 3000, qos=1)
    msg = await ws_sub.next_message()
    assert (msg.topic, msg.payload) == ("mixed/a", b"x" * 3000)


async def test_max_connections_refuses_connection_over_the_limit(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    """MQTT-3.1.4-2: a CONNECT failing the server's further checks (here max_connections) is closed."""
    gateway = await gateway_factory("max_connections: 2\n")
    first = await raw(gateway, 4)
    second = await raw(gateway, 4)
    assert (await first.connect("c1")).reason_code == 0
    assert (await second.connect("c2")).reason_code == 0
    third = await raw(gateway, 4)
    third.send(Connect("c3"))
    seen = await third.closed()
    assert not any(isinstance(p, Connack) and p.reason_code == 0 for p in seen)
    # The two admitted clients still work.
    assert await first.subscribe("limit/t") == [0]
    await second.publish("limit/t", b"ok")
    assert bytes((await first.expect(Publish)).payload) == b"ok"


@VERSIONS
async def test_mqtt_3_2_2_15_packet_over_max_payload_closes_connection(
    gateway_factory: GatewayFactory, raw: RawFactory, version: int
) -> None:
    """A client must not exceed the server's maximum packet size; a larger packet closes it (5.0: 0x95)."""
    gateway = await gateway_factory("max_payload: 2048\n")
    bystander = await raw(gateway, version)
    await bystander.connect("bystander")
    assert await bystander.subscribe("big/#") == [0]
    session = await raw(gateway, version)
    connack = await session.connect("big-sender")
    if version == 5:
        size = connack.properties.maximum_packet_size
        assert size is not None and size <= 2048 + 4096, "CONNACK must announce the packet limit"
    session.send(Publish("big/t", b"x" * 4096))
    seen = await session.closed()
    if version == 5:
        disconnects = [p for p in seen if isinstance(p, Disconnect)]
        assert [d.reason_code for d in disconnects] in ([], [0x95])
    # The oversized message went nowhere; other clients are unaffected.
    await bystander.quiet()
    other = await raw(gateway, version)
    await other.connect("small-sender")
    await other.publish("big/ok", b"small", qos=1)
    assert bytes((await bystander.expect(Publish)).payload) == b"small"


@VERSIONS
async def test_max_payload_bounds_the_payload_as_in_the_nats_server(
    gateway_factory: GatewayFactory, raw: RawFactory, version: int
) -> None:
    """A payload of exactly ``max_payload`` bytes passes (the topic does not count against it);
    one byte more ends the connection (5.0: 0x95), as the NATS server's Maximum Payload."""
    gateway = await gateway_factory("max_payload: 2048\n")
    subscriber = await raw(gateway, version)
    await subscriber.connect("limit-sub")
    assert await subscriber.subscribe("limit/#", qos=1) == [1]
    sender = await raw(gateway, version)
    await sender.connect("limit-sender")
    await sender.publish("limit/" + "t" * 200, b"x" * 2048, qos=1)
    assert len((await subscriber.expect(Publish)).payload) == 2048
    sender.send(Publish("limit/t", b"x" * 2049, qos=1, packet_id=9))
    seen = await sender.closed()
    if version == 5:
        assert [p.reason_code for p in seen if isinstance(p, Disconnect)] == [0x95]


async def test_mqtt5_3_1_2_connect_over_max_payload_is_refused(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    """A CONNECT larger than the limit is refused (0x95 if a CONNACK is sent) and closed."""
    gateway = await gateway_factory("max_payload: 1024\n")
    session = await raw(gateway, 5)
    session.send(Connect("huge", protocol_level=5, username="u", password=b"p" * 8000))
    seen = await session.closed()
    codes = [p.reason_code for p in seen if isinstance(p, Connack)]
    assert codes in ([], [0x95])


async def test_connect_deadline_closes_silent_connection(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    """MQTT-3.1.0-1 with the authorization timeout: no CONNECT in time closes the connection."""
    gateway = await gateway_factory("mqtt { authorization { timeout: 0.5 } }\n")
    silent = await raw(gateway, 4)
    partial = await raw(gateway, 4)
    partial.send(Connect("slow").encode(4)[:5])  # a CONNECT that never completes
    started = time.monotonic()
    assert await silent.closed(timeout=5) == []
    assert await partial.closed(timeout=5) == []
    assert time.monotonic() - started < 4.0
    # A prompt client is still served.
    prompt = await raw(gateway, 4)
    assert (await prompt.connect("prompt")).reason_code == 0


async def test_mqtt_3_1_2_24_keep_alive_enforced_at_exactly_one_and_a_half(
    gateway: Gateway, raw: RawFactory
) -> None:
    """With keep alive K and no packet for 1.5 K seconds the server closes the connection.

    K = 1 s: the close must come at 1.5 s (the NATS server truncates to 1 s), not before.
    """
    session = await raw(gateway, 4)
    assert (await session.connect("ka", keep_alive=1)).reason_code == 0
    started = time.monotonic()
    await session.closed(timeout=5)
    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed <= 2.3, f"closed after {elapsed:.2f}s, expected 1.5s"


async def test_mqtt_3_1_2_22_pingreq_keeps_the_connection_alive(
    gateway: Gateway, raw: RawFactory
) -> None:
    """Any control packet within 1.5 K resets the keep-alive timer; PINGREQ gets PINGRESP."""
    session = await raw(gateway, 5)
    connack = await session.connect("ka-ping", keep_alive=1)
    assert connack.reason_code == 0
    keep_alive = connack.properties.server_keep_alive or 1
    if keep_alive > 1:
        pytest.skip(f"server keep alive {keep_alive}s would make this test slow")
    for _ in range(4):  # 4 x 0.9 s = 3.6 s, well past 1.5 s without traffic
        await asyncio.sleep(0.9)  # the client's keep-alive period itself is what is tested
        session.send(Pingreq())
        await session.expect(Pingresp, timeout=1.0)


async def test_mqtt5_3_2_2_22_keep_alive_close_uses_negotiated_value(
    gateway: Gateway, raw: RawFactory
) -> None:
    """The server enforces its Server Keep Alive if it sent one, else the client's; close at 1.5x.

    A 5.0 server may send DISCONNECT 0x8D (keep alive timeout) before closing.
    """
    session = await raw(gateway, 5)
    connack = await session.connect("ka5", keep_alive=2)
    keep_alive = connack.properties.server_keep_alive or 2
    if keep_alive > 4:
        pytest.skip(f"server keep alive {keep_alive}s would make this test slow")
    started = time.monotonic()
    seen = await session.closed(timeout=1.5 * keep_alive + 2)
    elapsed = time.monotonic() - started
    assert 1.5 * keep_alive - 0.1 <= elapsed <= 1.5 * keep_alive + 0.8
    assert [p.reason_code for p in seen if isinstance(p, Disconnect)] in ([], [0x8D])


async def test_mqtt5_connack_properties_announce_limits(
    gateway_factory: GatewayFactory, raw: RawFactory
) -> None:
    """CONNACK announces Receive Maximum and Topic Alias Maximum the server then honours."""
    gateway = await gateway_factory()
    session = await raw(gateway, 5)
    connack = await session.connect("props", properties=Properties(receive_maximum=10))
    assert connack.reason_code == 0
    assert connack.properties.receive_maximum is not None
    assert connack.properties.topic_alias_maximum is not None
