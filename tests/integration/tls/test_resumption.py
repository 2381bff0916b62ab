"""TLS session resumption on the MQTT port: tickets, and the certificate policy still applied.

A client that kept the session ticket of its last connection resumes without
the certificate checks and signatures of a full handshake, as with the NATS
server. What the client certificate is worth is still decided on every
connection: a resumed session keeps its mapped identity, and is refused once
its certificate is revoked or has expired since the session began.
"""

from __future__ import annotations

import asyncio
import datetime
import shutil
import socket
import ssl
from pathlib import Path

import pytest

from gateway.mqtt.packets import Connect
from gateway.tls import handshake
from tests.integration.tls.conftest import USERS, StartGateway, tls_block, until
from tests.integration.tls.pki import Pki

pytestmark = pytest.mark.integration


class Outcome:
    """One connection: whether it resumed, its CONNACK code (None: closed), its session."""

    def __init__(self, resumed: bool, code: int | None, session: ssl.SSLSession | None) -> None:
        self.resumed = resumed
        self.code = code
        self.session = session


def _connect_blocking(
    port: int, context: ssl.SSLContext, client_id: str, session: ssl.SSLSession | None
) -> Outcome:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost", session=session) as tls,
    ):
        tls.sendall(Connect(client_id, protocol_level=4).encode(4))
        connack = b""
        try:
            while len(connack) < 4:
                chunk = tls.recv(4 - len(connack))
                if not chunk:
                    break
                connack += chunk
        except (ssl.SSLError, ConnectionError):
            pass  # refused after the handshake: the gateway closed the connection
        code = connack[3] if len(connack) == 4 else None
        # The tickets came with the CONNACK: the session to resume is complete now.
        return Outcome(tls.session_reused, code, tls.session)


async def connect(
    port: int, context: ssl.SSLContext, client_id: str, session: ssl.SSLSession | None = None
) -> Outcome:
    """CONNECT over TLS with Python's blocking client, which can resume a session."""
    return await asyncio.to_thread(_connect_blocking, port, context, client_id, session)


async def test_a_client_resumes_its_session_and_keeps_its_mapped_identity(
    start_gateway: StartGateway, pki: Pki
) -> None:
    gateway = await start_gateway(mqtt=tls_block(pki, ", verify_and_map: true"), extra=USERS)
    port = gateway.mqtt.port  # type: ignore[union-attr]
    context = pki.client_context("dn")
    first = await connect(port, context, "resume-1")
    assert (first.resumed, first.code) == (False, 0)
    again = await connect(port, context, "resume-2", first.session)
    assert (again.resumed, again.code) == (True, 0)  # still CN=dev-42,O=Acme
    # A certificate that maps to no user is refused on resumption as on a full handshake.
    nobody = pki.client_context("other")
    refused = await connect(port, nobody, "resume-3")
    assert refused.code == 5
    resumed = await connect(port, nobody, "resume-4", refused.session)
    assert (resumed.resumed, resumed.code) == (True, 5)


async def test_a_certificate_revoked_since_its_session_began_is_refused_on_resumption(
    start_gateway: StartGateway, pki: Pki, tmp_path: Path
) -> None:
    revoked_file = tmp_path / "revoked.txt"
    revoked_file.write_text("")
    gateway = await start_gateway(mqtt=tls_block(pki, f', revoked: ["{revoked_file}"]'))
    port = gateway.mqtt.port  # type: ignore[union-attr]
    context = pki.client_context("dn")
    first = await connect(port, context, "revoke-1")
    assert first.code == 0
    revoked_file.write_text(f"{pki.clients['dn'].fingerprint}\n")
    listener = gateway.tls.mqtt  # type: ignore[union-attr]
    await until(lambda: pki.clients["dn"].fingerprint in listener.policy.revoked)
    again = await connect(port, context, "revoke-2", first.session)
    assert (again.resumed, again.code) == (True, None)
    assert listener.refused[handshake.REVOKED] == 1


async def test_a_certificate_expired_since_its_session_began_is_refused_on_resumption(
    start_gateway: StartGateway, pki: Pki, tmp_path: Path
) -> None:
    lifetime = datetime.timedelta(seconds=2)
    short = pki.client_valid_for("short-lived", "brief", lifetime)
    expires = datetime.datetime.now(datetime.UTC) + lifetime
    gateway = await start_gateway(mqtt=tls_block(pki))
    port = gateway.mqtt.port  # type: ignore[union-attr]
    context = pki.client_context()
    context.load_cert_chain(str(short.cert), str(short.key))
    first = await connect(port, context, "brief-1")
    assert (first.resumed, first.code) == (False, 0)
    # Wall-clock time has to pass the certificate's end; no event marks it.
    await asyncio.sleep(max(0.0, (expires - datetime.datetime.now(datetime.UTC)).total_seconds()))
    await asyncio.sleep(1.1)  # notAfter has whole seconds
    again = await connect(port, context, "brief-2", first.session)
    assert again.code is None
    listener = gateway.mqtt
    assert listener is not None
    await until(lambda: listener.tls_failures[handshake.EXPIRED] == 1)


async def test_no_session_is_resumed_where_listed_certificates_are_trusted(
    start_gateway: StartGateway, pki: Pki, tmp_path: Path
) -> None:
    """With ``trust_authorized`` a certificate no CA issued is trusted while it is listed:
    a ticket would outlive its removal, so none is issued."""
    listed = tmp_path / "authorized"
    listed.mkdir()
    shutil.copy(pki.clients["rogue"].cert, listed / "rogue.pem")
    gateway = await start_gateway(
        mqtt=tls_block(pki, f', authorized: ["{listed}"], trust_authorized: true')
    )
    port = gateway.mqtt.port  # type: ignore[union-attr]
    context = pki.client_context("rogue")
    first = await connect(port, context, "listed-1")
    assert first.code == 0
    again = await connect(port, context, "listed-2", first.session)
    assert (again.resumed, again.code) == (False, 0)
