"""NATS clients over TLS: ``tls_required`` upgrade after INFO, ``handshake_first``, verify_and_map.

Also one port for TLS and plain clients, as the NATS server does it:
``allow_non_tls`` (INFO says ``tls_available``; the client's first byte after
INFO decides) and ``handshake_first`` with a fallback delay (TLS first from a
client that speaks first, INFO and the upgrade for one that waits).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time

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


# -- allow_non_tls and handshake_first with a fallback delay ---------------------------------


async def read_info(port: int) -> tuple[dict[str, object], float]:
    """The INFO a client that sends nothing gets, and how long it took to come."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    info: dict[str, object] = json.loads(line[len(b"INFO ") :])
    return info, time.monotonic() - start


async def tls_after_info(port: int, context: ssl.SSLContext, subject: str) -> None:
    """A client that starts TLS after INFO whatever INFO says (as nats.go does with tls://).

    nats-py upgrades only on ``tls_required``, so this client is written out:
    INFO, TLS, CONNECT, then a publish on ``subject`` confirmed by PONG.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.wait_for(reader.readline(), 5)
        await writer.start_tls(context, server_hostname="localhost")
        assert writer.get_extra_info("ssl_object") is not None
        writer.write(f'CONNECT {{"verbose":false}}\r\nPUB {subject} 3\r\ntls\r\nPING\r\n'.encode())
        assert await asyncio.wait_for(reader.readuntil(b"PONG\r\n"), 5) == b"PONG\r\n"
    finally:
        writer.close()


async def test_allow_non_tls_serves_plain_and_tls_clients_on_one_port(
    start_gateway: StartGateway, pki: Pki
) -> None:
    gateway = await start_gateway(nats=tls_block(pki) + "\nallow_non_tls: true")
    assert gateway.nats is not None and gateway.tls is not None and gateway.tls.nats is not None
    port, nats_tls = gateway.nats.port, gateway.tls.nats
    info, _ = await read_info(port)
    # As the NATS server: TLS is offered, not required; verify still applies to TLS clients.
    assert "tls_required" not in info
    assert (info["tls_available"], info["tls_verify"]) == (True, True)

    plain = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
    try:
        sub = await plain.subscribe("mixed.>")
        await plain.flush()
        assert not nats_tls.streams  # the plain client did not upgrade
        # A TLS client on the same port is upgraded after INFO, and both share subjects.
        await tls_after_info(port, pki.client_context("dn"), "mixed.from.tls")
        msg = await sub.next_msg(timeout=5)
        assert (msg.subject, msg.data) == ("mixed.from.tls", b"tls")
        # A TLS client the CA does not know is still refused and counted.
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            await tls_after_info(port, pki.client_context("rogue"), "mixed.rogue")
        await until(lambda: nats_tls.refused[handshake.UNKNOWN_CA] == 1)
        assert await round_trip(plain) == b"hello"
    finally:
        await plain.close()


@pytest.mark.parametrize(("setting", "delay"), [('"300ms"', 0.3), ("auto", 0.05)])
async def test_handshake_first_with_a_fallback_serves_both_kinds_of_tls_client(
    start_gateway: StartGateway, pki: Pki, setting: str, delay: float
) -> None:
    gateway = await start_gateway(nats=tls_block(pki, f", handshake_first: {setting}"))
    assert gateway.nats is not None and gateway.tls is not None and gateway.tls.nats is not None
    # A client that says nothing gets INFO once the delay is over, and must upgrade.
    info, waited = await read_info(gateway.nats.port)
    assert info["tls_required"] is True
    assert waited >= delay * 0.9

    first = await nats.connect(
        url(gateway), tls=pki.client_context("dn"), tls_handshake_first=True, allow_reconnect=False
    )
    after_info = await nats.connect(
        url(gateway), tls=pki.client_context("dn"), allow_reconnect=False
    )
    try:
        sub = await first.subscribe("both.kinds")
        await first.flush()
        await after_info.publish("both.kinds", b"after info")
        assert (await sub.next_msg(timeout=5)).data == b"after info"
        assert await round_trip(after_info) == b"hello"
    finally:
        await first.close()
        await after_info.close()
    # A plain client that answers the (late) INFO with CONNECT is not speaking TLS: refused.
    nats_tls = gateway.tls.nats
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.nats.port)
    await asyncio.wait_for(reader.readline(), 5)
    writer.write(b"CONNECT {}\r\nPING\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await until(lambda: nats_tls.refused[handshake.NOT_TLS] == 1)


async def test_handshake_first_fallback_with_allow_non_tls(
    start_gateway: StartGateway, pki: Pki
) -> None:
    gateway = await start_gateway(
        nats=tls_block(pki, ", handshake_first: auto", verify=False) + "\nallow_non_tls: true"
    )
    assert gateway.nats is not None
    port = gateway.nats.port
    info, _ = await read_info(port)
    assert (info.get("tls_required"), info["tls_available"]) == (None, True)
    first = await nats.connect(
        url(gateway), tls=pki.client_context(), tls_handshake_first=True, allow_reconnect=False
    )
    plain = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
    try:
        sub = await plain.subscribe("tls.first.to.plain")
        await plain.flush()
        await first.publish("tls.first.to.plain", b"x")
        assert (await sub.next_msg(timeout=5)).data == b"x"
    finally:
        await first.close()
        await plain.close()
