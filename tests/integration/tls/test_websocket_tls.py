"""Failed TLS handshakes on the WebSocket listener (``wss://``): closed, counted by reason, logged.

asyncio's own TLS server drops a failed handshake without a word; the listener
does the handshake itself, so a plain client, an untrusted or missing client
certificate and a silent client are each counted in ``tls_failures`` (shared
with the listener's certificate policy) and logged, while good clients go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidHandshake

from gateway.server import Gateway
from gateway.tls import handshake
from tests.integration.mqtt.helpers import TcpSession, WsSession
from tests.integration.tls.conftest import StartGateway, tls_block, until
from tests.integration.tls.pki import Pki

pytestmark = pytest.mark.integration

ACCEPTED = 0x00


def wss_url(gateway: Gateway) -> str:
    assert gateway.websocket is not None
    return f"wss://127.0.0.1:{gateway.websocket.port}/mqtt"


async def open_mqtt(gateway: Gateway, pki: Pki, client: str | None) -> WsSession:
    ws = await ws_connect(wss_url(gateway), ssl=pki.client_context(client), subprotocols=["mqtt"])  # type: ignore[list-item]
    return WsSession(ws, 4)


async def test_failed_wss_handshakes_are_counted_by_reason_and_spare_other_clients(
    start_gateway: StartGateway, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="jetgate.listeners")
    gateway = await start_gateway(ws=tls_block(pki))
    assert gateway.websocket is not None and gateway.tls is not None
    port = gateway.websocket.port
    failures = gateway.websocket.tls_failures
    assert gateway.tls.websocket is not None and failures is gateway.tls.websocket.refused

    good = await open_mqtt(gateway, pki, "dn")
    try:
        assert (await good.connect("good")).reason_code == ACCEPTED

        # Plain HTTP (a ws:// client) on the TLS port.
        with pytest.raises((OSError, InvalidHandshake, TimeoutError)):
            async with ws_connect(f"ws://127.0.0.1:{port}/mqtt", open_timeout=5):
                pass
        await until(lambda: failures[handshake.NOT_TLS] == 1)

        # A plain TCP client speaking MQTT.
        plain = await TcpSession.open(port)
        plain.send(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x00\x00\x00")
        assert await plain.closed() == []
        await plain.aclose()
        await until(lambda: failures[handshake.NOT_TLS] == 2)

        # A certificate from a CA the listener does not trust, and none at all.
        for client, reason in ((("rogue"), handshake.UNKNOWN_CA), (None, handshake.NO_CERTIFICATE)):
            with pytest.raises((OSError, InvalidHandshake)):
                bad = await open_mqtt(gateway, pki, client)
                await bad.aclose()
            await until(lambda reason=reason: failures[reason] == 1)  # type: ignore[misc]

        # A client that never starts the handshake: the block's 0.5 s timeout ends it.
        silent = await TcpSession.open(port)
        assert await silent.closed(timeout=3) == []
        await silent.aclose()
        await until(lambda: failures[handshake.TIMEOUT] == 1)

        # Each failure is in the log with its reason.
        logged = [r.getMessage() for r in caplog.records if "(WebSocket) failed" in r.getMessage()]
        for reason in (handshake.NOT_TLS, handshake.UNKNOWN_CA, handshake.NO_CERTIFICATE):
            assert any(m.endswith(reason) for m in logged), (reason, logged)

        # The client connected before all this is still served, and new ones are welcome.
        assert await good.subscribe("still/here") == [0]
        again = await open_mqtt(gateway, pki, "dn")
        try:
            assert (await again.connect("again")).reason_code == ACCEPTED
        finally:
            await again.aclose()
    finally:
        await good.aclose()


UPGRADE = (
    b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
)


async def test_wss_upgrade_sent_with_the_last_handshake_flight_is_not_lost(
    start_gateway: StartGateway, pki: Pki
) -> None:
    """The client's Finished and its HTTP upgrade in one TCP write: the upgrade still counts.

    The TLS layer decrypts the upgrade the moment the handshake ends, before
    websockets has the connection; the listener keeps it and hands it over.
    """
    gateway = await start_gateway(ws=tls_block(pki))
    assert gateway.websocket is not None
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = pki.client_context("dn").wrap_bio(incoming, outgoing, server_hostname="localhost")
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.websocket.port)
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                writer.write(outgoing.read())
                data = await asyncio.wait_for(reader.read(65536), 5)
                assert data, "server closed during the handshake"
                incoming.write(data)
        tls.write(UPGRADE)
        writer.write(outgoing.read())  # Certificate, CertificateVerify, Finished and the upgrade
        response = b""
        while b"\r\n" not in response:
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data, "server closed before answering the upgrade"
            incoming.write(data)
            with contextlib.suppress(ssl.SSLWantReadError):
                response += tls.read(65536)
        assert response.startswith(b"HTTP/1.1 101"), response
    finally:
        writer.close()
