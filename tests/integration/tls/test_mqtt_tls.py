"""MQTT over TLS (``mqtts``) and secure WebSocket: handshakes, refusals, certificate identity.

Covers the issue's "TLS on every listener" for MQTT, the handshake failures
(closed, counted by reason, other clients unaffected), ``verify_and_map`` in the
NATS server's order (e-mail, DNS, RFC 2253 subject) and ``map_field``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidHandshake

from gateway.server import Gateway
from gateway.tls import handshake
from tests.integration.mqtt.helpers import PahoClient, TcpSession, WsSession
from tests.integration.tls.conftest import USERS, StartGateway, tls_block, until
from tests.integration.tls.pki import Pki

pytestmark = pytest.mark.integration

OpenTls = Callable[..., Awaitable[TcpSession]]
ACCEPTED = 0x00
NOT_AUTHORIZED = 0x87


def mqtt_port(gateway: Gateway) -> int:
    assert gateway.mqtt is not None
    return gateway.mqtt.port


def mqtt_tls(gateway: Gateway):  # type: ignore[no-untyped-def]
    assert gateway.tls is not None and gateway.tls.mqtt is not None
    return gateway.tls.mqtt


@pytest.mark.parametrize("version", [4, 5])
async def test_paho_publishes_and_receives_over_tls(
    start_gateway: StartGateway, pki: Pki, version: int
) -> None:
    gateway = await start_gateway(mqtt=tls_block(pki))
    client = PahoClient(mqtt_port(gateway), version)
    dn = pki.clients["dn"]
    client.client.tls_set(ca_certs=str(pki.ca), certfile=str(dn.cert), keyfile=str(dn.key))
    try:
        _, rc, _ = await client.connect()
        assert rc == 0
        codes = await client.subscribe("tls/t", qos=1)
        assert [getattr(code, "value", code) for code in codes] == [1]
        await client.publish("tls/t", b"over tls", qos=1)
        message = await client.next_message()
        assert (message.topic, message.payload) == ("tls/t", b"over tls")
    finally:
        await client.stop()


async def test_failed_handshakes_are_counted_by_reason_and_spare_other_clients(
    start_gateway: StartGateway, pki: Pki, tls_session: OpenTls
) -> None:
    gateway = await start_gateway(mqtt=tls_block(pki))
    port = mqtt_port(gateway)
    good = await tls_session(port, pki.client_context("dn"))
    assert (await good.connect("good")).reason_code == ACCEPTED
    failures = gateway.mqtt.tls_failures  # type: ignore[union-attr]

    for name, reason in (("rogue", handshake.UNKNOWN_CA), ("expired", handshake.EXPIRED)):
        bad = await tls_session(port, pki.client_context(name))
        bad.send(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x00\x00\x00")
        assert await bad.closed() == []
        await until(lambda reason=reason: failures[reason] == 1)  # type: ignore[misc]
    no_cert = await tls_session(port, pki.client_context())
    no_cert.send(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x00\x00\x00")
    assert await no_cert.closed() == []
    await until(lambda: failures[handshake.NO_CERTIFICATE] == 1)
    plain = await TcpSession.open(port)
    plain.send(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x00\x00\x00")
    assert await plain.closed() == []
    await until(lambda: failures[handshake.NOT_TLS] == 1)
    silent = await TcpSession.open(port)  # never starts a handshake: the 0.5 s timeout ends it
    assert await silent.closed(timeout=3) == []
    await until(lambda: failures[handshake.TIMEOUT] == 1)
    await plain.aclose()
    await silent.aclose()

    # The client connected before all this is still served.
    assert await good.subscribe("still/here") == [0]


@pytest.mark.parametrize("version", [4, 5])
async def test_verify_and_map_in_the_nats_server_order(
    start_gateway: StartGateway, pki: Pki, tls_session: OpenTls, version: int
) -> None:
    # The test decoder reads 3.1.1's return code 0x05 as reason code 0x87 (Not authorized).
    refused = NOT_AUTHORIZED
    gateway = await start_gateway(mqtt=tls_block(pki, ", verify_and_map: true"), extra=USERS)
    port = mqtt_port(gateway)

    # The subject in RFC 2253 form: "CN=dev-42,O=Acme" (no alternative names).
    dn = await tls_session(port, pki.client_context("dn"), version)
    assert (await dn.connect("dn")).reason_code == ACCEPTED
    assert await dn.subscribe("any/topic") == [0]

    # The e-mail address wins over the DNS name: the user's permissions apply.
    mail = await tls_session(port, pki.client_context("mail"), version)
    assert (await mail.connect("mail")).reason_code == ACCEPTED
    assert await mail.subscribe("mail/inbox") == [0]
    assert (await mail.subscribe("other/topic"))[0] >= 0x80

    # The DNS name maps to a user who may only use STANDARD (NATS) connections.
    dns = await tls_session(port, pki.client_context("dns"), version)
    assert (await dns.connect("dns")).reason_code == refused

    # No user for CN=nobody: refused, whatever user name and password are offered.
    other = await tls_session(port, pki.client_context("other"), version)
    reply = await other.connect("other", username="CN=dev-42,O=Acme", password=b"x")
    assert reply.reason_code == refused


async def test_map_field_cn_takes_the_common_name_alone(
    start_gateway: StartGateway, pki: Pki, tls_session: OpenTls
) -> None:
    gateway = await start_gateway(mqtt=tls_block(pki, ", map_field: cn"), extra=USERS)
    port = mqtt_port(gateway)
    dn = await tls_session(port, pki.client_context("dn"), 5)
    assert (await dn.connect("dn")).reason_code == ACCEPTED  # CN=dev-42 -> user "dev-42"
    mail = await tls_session(port, pki.client_context("mail"), 5)
    # CN=mailer: no such user, although its e-mail address names one.
    assert (await mail.connect("mail")).reason_code == NOT_AUTHORIZED


async def test_mqtt_over_secure_websocket(start_gateway: StartGateway, pki: Pki) -> None:
    gateway = await start_gateway(ws=tls_block(pki, ", verify_and_map: true"), extra=USERS)
    assert gateway.websocket is not None
    url = f"wss://127.0.0.1:{gateway.websocket.port}/mqtt"
    ws = await ws_connect(url, ssl=pki.client_context("dn"), subprotocols=["mqtt"])  # type: ignore[list-item]
    session = WsSession(ws, 4)
    try:
        assert (await session.connect("wss")).reason_code == ACCEPTED
        assert await session.subscribe("over/wss") == [0]
    finally:
        await session.aclose()
    other = await ws_connect(url, ssl=pki.client_context("other"), subprotocols=["mqtt"])  # type: ignore[list-item]
    refused = WsSession(other, 4)
    try:
        assert (await refused.connect("nobody")).reason_code == NOT_AUTHORIZED
    finally:
        await refused.aclose()
    # No client certificate: the TLS handshake fails, the WebSocket upgrade never happens.
    with pytest.raises((OSError, InvalidHandshake)):
        async with ws_connect(url, ssl=pki.client_context(), subprotocols=["mqtt"]) as ws:  # type: ignore[list-item]
            await asyncio.wait_for(ws.recv(), 5)
