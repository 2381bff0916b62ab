"""NATS clients over TLS: ``tls_required`` upgrade after INFO, ``handshake_first``, verify_and_map."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError

from gateway.server import Gateway
from gateway.tls import handshake
from tests.integration.tls.conftest import USERS, StartGateway, tls_block, until
from tests.integration.tls.pki import Pki

pytestmark = pytest.mark.integration


def url(gateway: Gateway) -> str:
    assert gateway.nats is not None
    return f"tls://127.0.0.1:{gateway.nats.port}"


async def round_trip(nc: NatsClient) -> bytes:
    sub = await nc.subscribe("tls.check")
    await nc.publish("tls.check", b"hello")
    msg = await sub.next_msg(timeout=5)
    data: bytes = msg.data
    return data


async def test_info_requires_tls_and_nats_py_upgrades(
    start_gateway: StartGateway, pki: Pki
) -> None:
    gateway = await start_gateway(nats=tls_block(pki))
    assert gateway.nats is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.nats.port)
    line = await reader.readline()
    writer.close()
    info = json.loads(line[len(b"INFO ") :])
    assert (info["tls_required"], info["tls_verify"]) == (True, True)

    nc = await nats.connect(url(gateway), tls=pki.client_context("dn"), allow_reconnect=False)
    try:
        assert await round_trip(nc) == b"hello"
    finally:
        await nc.close()


async def test_handshake_first(start_gateway: StartGateway, pki: Pki) -> None:
    gateway = await start_gateway(nats=tls_block(pki, ", handshake_first: true"))
    nc = await nats.connect(
        url(gateway), tls=pki.client_context("dn"), tls_handshake_first=True, allow_reconnect=False
    )
    try:
        assert await round_trip(nc) == b"hello"
    finally:
        await nc.close()


async def test_verify_and_map_names_the_nats_user(start_gateway: StartGateway, pki: Pki) -> None:
    gateway = await start_gateway(nats=tls_block(pki, ", verify_and_map: true"), extra=USERS)
    # sensor-7.acme.io may connect over STANDARD only: this is its connection type.
    nc = await nats.connect(url(gateway), tls=pki.client_context("dns"), allow_reconnect=False)
    try:
        assert await round_trip(nc) == b"hello"
    finally:
        await nc.close()
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    with pytest.raises((NatsError, OSError)):
        await nats.connect(
            url(gateway),
            tls=pki.client_context("other"),
            allow_reconnect=False,
            max_reconnect_attempts=0,
            error_cb=on_error,
        )
    assert any("authorization violation" in str(e).lower() for e in errors)


async def test_refused_upgrades_are_counted(start_gateway: StartGateway, pki: Pki) -> None:
    gateway = await start_gateway(nats=tls_block(pki))
    with pytest.raises((NatsError, OSError)):
        await nats.connect(
            url(gateway),
            tls=pki.client_context("rogue"),
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )
    assert gateway.tls is not None and gateway.tls.nats is not None
    nats_tls = gateway.tls.nats
    await until(lambda: nats_tls.refused[handshake.UNKNOWN_CA] == 1)
    # A plain client that answers INFO with CONNECT is not speaking TLS.
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.nats.port)  # type: ignore[union-attr]
    await reader.readline()
    writer.write(b"CONNECT {}\r\nPING\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await until(lambda: nats_tls.refused[handshake.NOT_TLS] == 1)
