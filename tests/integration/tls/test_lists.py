"""Authorized and revoked client certificates, pinned keys, and revocation while connected."""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

from gateway.mqtt.packets import Disconnect
from gateway.tls import handshake
from gateway.tls.certs import public_key_pin
from tests.integration.mqtt.helpers import TcpSession, WsSession
from tests.integration.tls.conftest import StartGateway, tls_block, until
from tests.integration.tls.pki import Pki

pytestmark = pytest.mark.integration

OpenTls = Callable[..., Awaitable[TcpSession]]


async def accepted(open_tls: OpenTls, port: int, pki: Pki, name: str) -> bool:
    """Whether client ``name`` gets a CONNACK 0 (False when the gateway closes the connection)."""
    session = await open_tls(port, pki.client_context(name))
    try:
        return (await session.connect(name)).reason_code == 0
    except AssertionError:  # ConnectionClosedError: refused after the handshake
        return False


async def test_a_revoked_certificate_is_refused_though_its_chain_is_trusted(
    start_gateway: StartGateway, pki: Pki, tls_session: OpenTls
) -> None:
    revoked = pki.clients["revoked"].fingerprint
    gateway = await start_gateway(mqtt=tls_block(pki, f', revoked: ["{revoked}"]'))
    port = gateway.mqtt.port  # type: ignore[union-attr]
    assert not await accepted(tls_session, port, pki, "revoked")
    assert gateway.tls.mqtt.refused[handshake.REVOKED] == 1  # type: ignore[union-attr]
    assert await accepted(tls_session, port, pki, "dn")


async def test_authorized_only_accepts_listed_certificates_and_revoked_wins(
    start_gateway: StartGateway, pki: Pki, tls_session: OpenTls, tmp_path: Path
) -> None:
    listed = tmp_path / "authorized"
    listed.mkdir()
    for name in ("dn", "revoked"):  # a directory of PEM files
        shutil.copy(pki.clients[name].cert, listed / f"{name}.pem")
    revoked = pki.clients["revoked"].fingerprint
    # Colons and upper case are accepted, as openssl prints fingerprints.
    written = ":".join(revoked[i : i + 2] for i in range(0, 64, 2)).upper()
    gateway = await start_gateway(
        mqtt=tls_block(
            pki, f', authorized: ["{listed}"], authorized_only: true, revoked: ["{written}"]'
        )
    )
    port = gateway.mqtt.port  # type: ignore[union-attr]
    assert await accepted(tls_session, port, pki, "dn")
    assert not await accepted(tls_session, port, pki, "mail")
    assert not await accepted(tls_session, port, pki, "revoked")
    refused = gateway.tls.mqtt.refused  # type: ignore[union-attr]
    assert (refused[handshake.NOT_AUTHORIZED], refused[handshake.REVOKED]) == (1, 1)


async def test_trust_authorized_accepts_a_listed_certificate_of_an_unknown_ca(
    start_gateway: StartGateway, pki: Pki, tls_session: OpenTls
) -> None:
    rogue = pki.clients["rogue"].cert
    gateway = await start_gateway(
        mqtt=tls_block(pki, f', authorized: ["{rogue}"], trust_authorized: true')
    )
    port = gateway.mqtt.port  # type: ignore[union-attr]
    assert await accepted(tls_session, port, pki, "rogue")
    assert await accepted(tls_session, port, pki, "dn")  # the CA's own still pass
    # Without the option, the same list does not make the rogue CA's certificate valid.
    strict = await start_gateway(mqtt=tls_block(pki, f', authorized: ["{rogue}"]'))
    assert not await accepted(tls_session, strict.mqtt.port, pki, "rogue")  # type: ignore[union-attr]
    assert strict.mqtt.tls_failures[handshake.UNKNOWN_CA] == 1  # type: ignore[union-attr]


async def test_a_certificate_listed_while_running_becomes_trusted_on_every_listener(
    start_gateway: StartGateway, pki: Pki, tls_session: OpenTls, tmp_path: Path
) -> None:
    # trust_authorized adds anchors to both TLS stacks: pyOpenSSL for the MQTT port,
    # Python's ssl for wss://.
    listed = tmp_path / "authorized"
    listed.mkdir()
    block = tls_block(pki, f', authorized: ["{listed}"], trust_authorized: true')
    gateway = await start_gateway(mqtt=block, ws=block)
    port = gateway.mqtt.port  # type: ignore[union-attr]
    assert not await accepted(tls_session, port, pki, "rogue")
    shutil.copy(pki.clients["rogue"].cert, listed / "rogue.pem")
    policy = gateway.tls.mqtt.policy  # type: ignore[union-attr]
    await until(lambda: len(policy.authorized.certificates) == 1)
    assert await accepted(tls_session, port, pki, "rogue")
    ws_port = gateway.websocket.port  # type: ignore[union-attr]
    ws = await ws_connect(
        f"wss://127.0.0.1:{ws_port}/mqtt",
        ssl=pki.client_context("rogue"),
        subprotocols=["mqtt"],  # type: ignore[list-item]
    )
    session = WsSession(ws, 4)
    try:
        assert (await session.connect("rogue-ws")).reason_code == 0
    finally:
        await session.aclose()


async def test_pinned_certs_accept_only_the_pinned_public_keys(
    start_gateway: StartGateway, pki: Pki, tls_session: OpenTls
) -> None:
    pin = public_key_pin(ssl.PEM_cert_to_DER_cert(pki.clients["dn"].cert.read_text()))
    gateway = await start_gateway(mqtt=tls_block(pki, f', pinned_certs: ["{pin}"]'))
    port = gateway.mqtt.port  # type: ignore[union-attr]
    assert await accepted(tls_session, port, pki, "dn")
    assert not await accepted(tls_session, port, pki, "mail")
    assert gateway.tls.mqtt.refused[handshake.NOT_PINNED] == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("version", [4, 5])
async def test_a_certificate_revoked_while_connected_ends_its_connection(
    start_gateway: StartGateway, pki: Pki, tls_session: OpenTls, tmp_path: Path, version: int
) -> None:
    """The connection ends; a 5.0 client is told why first (DISCONNECT 0x87, as a revoked
    JWT user is)."""
    revoked_file = tmp_path / "revoked.txt"
    revoked_file.write_text("# nothing revoked yet\n")
    gateway = await start_gateway(mqtt=tls_block(pki, f', revoked: ["{revoked_file}"]'))
    port = gateway.mqtt.port  # type: ignore[union-attr]
    victim = await tls_session(port, pki.client_context("dn"), version)
    bystander = await tls_session(port, pki.client_context("mail"))
    assert (await victim.connect("victim")).reason_code == 0
    assert (await bystander.connect("bystander")).reason_code == 0

    tmp = tmp_path / "revoked.new"
    tmp.write_text(f"{pki.clients['dn'].fingerprint}  # dev-42\n")
    os.replace(tmp, revoked_file)  # as editors and `jetgate ca revoke` do

    seen = await victim.closed(timeout=5)
    expected = [0x87] if version == 5 else []
    assert [p.reason_code for p in seen if isinstance(p, Disconnect)] == expected
    assert await bystander.subscribe("still/connected") == [0]
    assert not await accepted(tls_session, port, pki, "dn")
    # Taking the entry out again lets the certificate back in, without a restart.
    revoked_file.write_text("")
    await until(lambda: len(gateway.tls.mqtt.policy.revoked) == 0)  # type: ignore[union-attr]
    assert await accepted(tls_session, port, pki, "dn")
