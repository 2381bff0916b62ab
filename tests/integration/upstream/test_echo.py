"""NATS ``echo: false`` through a gateway in upstream mode.

A client that connects with ``echo: false`` must not receive its own
messages (the NATS server's CONNECT option), while every other subscriber,
on the same gateway, on another gateway and on the upstream NATS itself,
still does. The gateway delivers its own publications locally, so it knows
the publisher even though the upstream server cannot tell gateway clients
apart.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import NatsServer
from tests.integration.upstream.conftest import GatewayFactory, NatsFactory, gateway_nats_url

pytestmark = pytest.mark.integration


async def test_echo_false_skips_the_clients_own_messages_in_upstream_mode(
    nats_server: NatsServer, gateways: GatewayFactory, nats_connect: NatsFactory
) -> None:
    gateway = await gateways(nats_server.url)
    other_gateway = await gateways(nats_server.url)
    port = gateway_nats_url(gateway).rsplit(":", 1)[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
    try:
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"INFO ")
        same = await nats_connect(gateway_nats_url(gateway))
        across = await nats_connect(gateway_nats_url(other_gateway))
        direct = await nats_connect(nats_server.url)
        subs = [await nc.subscribe("echo.up") for nc in (same, across, direct)]
        for nc in (same, across, direct):
            await nc.flush()
        writer.write(
            b'CONNECT {"echo":false,"verbose":false}\r\nSUB echo.up 1\r\n'
            b"PUB echo.up 4\r\nmine\r\nPING\r\n"
        )
        await writer.drain()
        # The PONG comes after every local delivery the PUB caused: none of them to us.
        assert await asyncio.wait_for(reader.readline(), 5) == b"PONG\r\n"
        for sub in subs:  # everyone else gets it, wherever they are
            assert (await sub.next_msg(timeout=5)).data == b"mine"
        await direct.publish("echo.up", b"theirs")
        await direct.flush()
        assert await asyncio.wait_for(reader.readline(), 5) == b"MSG echo.up 1 6\r\n"
        assert await asyncio.wait_for(reader.readline(), 5) == b"theirs\r\n"
    finally:
        writer.close()
