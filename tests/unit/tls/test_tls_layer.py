"""``TlsLayer`` without sockets: a client ``SSLObject`` on memory BIOs talks to it.

Covers records split at any byte, application data that comes in the same
chunk as the end of the handshake, close_notify, a corrupted record, the
client closing mid-handshake, writes larger than one TLS record, and the
failures coming out as the ``ssl`` exceptions Python's own TLS raises
(with OpenSSL's verification code for a refused certificate).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from gateway.listeners.tls_layer import TlsLayer
from gateway.options.model import TLSOptions
from gateway.tls.certs import fingerprint
from gateway.tls.errors import TlsClosedError
from gateway.tls.handshake import failure_reason
from gateway.tls.openssl import PeerCertificate, openssl_context, resumed
from tests.integration.tls.pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def server_context(pki: Pki, verify: bool = True) -> SSL.Context:
    tls = TLSOptions(str(pki.server.cert), str(pki.server.key), str(pki.ca), verify=verify)
    return openssl_context(tls, str(pki.server.cert), str(pki.server.key), str(pki.ca))


class Client:
    """The client end: an SSLObject whose records are collected, not sent."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    def step(self) -> bool:
        """One handshake step; True once the client considers it done."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def records(self) -> bytes:
        return self.outgoing.read()

    def receive(self, data: bytes) -> None:
        self.incoming.write(data)

    def plaintext(self) -> bytes:
        out = b""
        while True:
            try:
                chunk = self.tls.read(1 << 16)
            except ssl.SSLWantReadError:
                return out
            if not chunk:
                return out
            out += chunk


class Server:
    """A TlsLayer whose ciphertext goes to a list."""

    def __init__(self, context: SSL.Context) -> None:
        self.sent: list[bytes] = []
        self.layer = TlsLayer(context, self.sent.append)

    def take(self) -> bytes:
        data = b"".join(self.sent)
        self.sent.clear()
        return data


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def handshake(client: Client, server: Server, piece: int = 1 << 20) -> bytes:
    """Run both ends to completion; the plaintext the server got with the client's last flight."""
    task = asyncio.create_task(server.layer.handshake())
    plaintext = b""
    while not task.done():
        client.step()
        for chunk in pieces(client.records(), piece):
            plaintext += server.layer.receive(chunk)
            await asyncio.sleep(0)  # let the handshake task take each piece
        await asyncio.sleep(0)
        client.receive(server.take())
    await task
    client.step()
    return plaintext + server.layer.pending_plaintext()


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
async def test_handshake_completes_whatever_the_pieces_and_gives_the_peer_certificate(
    pki: Pki, piece: int
) -> None:
    client = Client(pki.client_context("dn"))
    server = Server(server_context(pki))
    await handshake(client, server, piece)
    assert not server.layer.handshaking
    assert server.layer.peer_certificate is not None
    assert server.layer.peer_certificate["subject"][-1] == (("commonName", "dev-42"),)
    assert fingerprint(server.layer.peer_certificate.der) == pki.clients["dn"].fingerprint


async def test_data_behind_the_clients_last_flight_is_not_lost(pki: Pki) -> None:
    client = Client(pki.client_context("dn"))
    server = Server(server_context(pki))
    task = asyncio.create_task(server.layer.handshake())
    client.step()
    server.layer.receive(client.records())
    await asyncio.sleep(0)
    client.receive(server.take())
    assert client.step()
    client.tls.write(b"CONNECT right behind Finished")
    server.layer.receive(client.records())  # Certificate..Finished and a data record together
    await task
    assert server.layer.pending_plaintext() == b"CONNECT right behind Finished"


async def test_records_both_ways_including_writes_larger_than_a_record(pki: Pki) -> None:
    client = Client(pki.client_context("dn"))
    server = Server(server_context(pki))
    await handshake(client, server)
    big = bytes(range(256)) * 300  # 76,800 bytes: five records
    server.layer.send(big)
    client.receive(server.take())
    assert client.plaintext() == big
    client.tls.write(big)
    got = b"".join(server.layer.receive(chunk) for chunk in pieces(client.records(), 1000))
    assert got == big


async def test_close_notify_finishes_the_stream_and_is_answered(pki: Pki) -> None:
    client = Client(pki.client_context("dn"))
    server = Server(server_context(pki))
    await handshake(client, server)
    client.tls.write(b"last words")
    with pytest.raises(ssl.SSLWantReadError):
        client.tls.unwrap()
    assert server.layer.receive(client.records()) == b"last words"
    assert server.layer.finished
    server.layer.close_notify()
    client.receive(server.take())
    client.tls.unwrap()  # the server's close_notify arrived: no error


async def test_a_corrupted_record_raises_ssl_error(pki: Pki) -> None:
    client = Client(pki.client_context("dn"))
    server = Server(server_context(pki))
    await handshake(client, server)
    client.tls.write(b"payload")
    record = bytearray(client.records())
    record[-1] ^= 0xFF
    with pytest.raises(ssl.SSLError):
        server.layer.receive(bytes(record))


async def test_a_client_without_certificate_gets_an_alert_and_the_error(pki: Pki) -> None:
    client = Client(pki.client_context())  # trusts the CA, presents nothing
    server = Server(server_context(pki))
    with pytest.raises(ssl.SSLError) as failure:
        await handshake(client, server)
    assert failure.value.reason in (
        "PEER_DID_NOT_RETURN_A_CERTIFICATE",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    )
    client.receive(server.take())
    with pytest.raises(ssl.SSLError):  # the alert reached the client
        client.plaintext()


async def test_plain_bytes_fail_the_handshake(pki: Pki) -> None:
    server = Server(server_context(pki, verify=False))
    task = asyncio.create_task(server.layer.handshake())
    server.layer.receive(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
    with pytest.raises(ssl.SSLError) as failure:
        await task
    assert failure.value.reason == "WRONG_VERSION_NUMBER"


async def test_end_of_file_during_the_handshake_raises_closed(pki: Pki) -> None:
    client = Client(pki.client_context("dn"))
    server = Server(server_context(pki))
    task = asyncio.create_task(server.layer.handshake())
    client.step()
    server.layer.receive(client.records()[:10])  # part of the ClientHello, then nothing
    await asyncio.sleep(0)
    server.layer.receive_eof()
    with pytest.raises(TlsClosedError):
        await task


async def test_nothing_is_sent_or_read_before_the_first_bytes(pki: Pki) -> None:
    server = Server(server_context(pki))
    task = asyncio.create_task(server.layer.handshake())
    await asyncio.sleep(0)
    assert not task.done() and server.sent == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    server.layer.close_notify()  # still handshaking: nothing to say
    assert server.sent == []


async def test_what_is_sent_during_the_handshake_follows_it(pki: Pki) -> None:
    client = Client(pki.client_context("dn"))
    server = Server(server_context(pki))
    server.layer.send(b"INFO early")  # before any byte of the handshake
    assert server.sent == []
    await handshake(client, server)
    client.receive(server.take())
    assert client.plaintext() == b"INFO early"


@pytest.mark.parametrize(
    ("name", "code", "reason"),
    [("rogue", 20, "unknown CA"), ("expired", 10, "expired")],
)
async def test_a_refused_certificate_raises_the_verification_error_with_its_code(
    pki: Pki, name: str, code: int, reason: str
) -> None:
    client = Client(pki.client_context(name))
    server = Server(server_context(pki))
    with pytest.raises(ssl.SSLCertVerificationError) as failure:
        await handshake(client, server)
    assert failure.value.verify_code == code
    assert failure.value.reason == "CERTIFICATE_VERIFY_FAILED"
    assert failure_reason(failure.value) == reason


@pytest.mark.parametrize("name", ["dn", "mail", "dns", "expired", "revoked"])
def test_the_peer_certificate_reads_as_pythons_getpeercert(pki: Pki, name: str) -> None:
    # WebSocket clients are described by Python's ssl, TCP clients by pyOpenSSL: the
    # user a certificate maps to must not depend on the listener.
    issued = pki.clients[name]
    expected = ssl._ssl._test_decode_cert(str(issued.cert))  # type: ignore[attr-defined]
    der = x509.load_pem_x509_certificate(issued.cert.read_bytes()).public_bytes(Encoding.DER)
    got = dict(PeerCertificate(der))
    for key in ("subject", "issuer", "subjectAltName", "serialNumber", "notBefore", "notAfter"):
        assert got.get(key) == expected.get(key), key


async def test_tls13_session_tickets_go_out_with_the_first_reply(pki: Pki) -> None:
    client = Client(pki.client_context("dn"))
    server = Server(server_context(pki))
    task = asyncio.create_task(server.layer.handshake())
    client.step()
    server.layer.receive(client.records())  # ClientHello: the server's flight goes out
    assert len(server.sent) == 1
    client.receive(server.take())
    assert client.step()
    server.layer.receive(client.records())  # the client's Finished ends the handshake
    await task
    assert server.sent == []  # the tickets wait
    server.layer.send(b"CONNACK")
    assert len(server.sent) == 1  # tickets and the reply: one write
    client.receive(server.take())
    assert client.plaintext() == b"CONNACK"


async def test_a_handshake_abandoned_by_its_deadline_ignores_later_bytes(pki: Pki) -> None:
    client = Client(pki.client_context("dn"))
    server = Server(server_context(pki))
    task = asyncio.create_task(server.layer.handshake())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    client.step()
    assert server.layer.receive(client.records()) == b""
    assert server.sent == []  # no ServerHello for an abandoned handshake
    with pytest.raises(TlsClosedError):
        await server.layer.handshake()


async def resumed_pair(pki: Pki, client: str | None) -> tuple[Client, Server]:
    """A first connection that receives its tickets, then a second that resumes with them."""
    context = pki.client_context(client)
    context_server = server_context(pki, verify=client is not None)
    first, server = Client(context), Server(context_server)
    await handshake(first, server)
    server.layer.send(b"CONNACK")  # the tickets come with it
    first.receive(server.take())
    assert first.plaintext() == b"CONNACK"
    session = first.tls.session
    assert session is not None
    second = Client(context)
    second.tls = context.wrap_bio(
        second.incoming, second.outgoing, server_hostname="localhost", session=session
    )
    again = Server(context_server)
    await handshake(second, again)
    return second, again


async def test_a_session_resumes_with_its_ticket(pki: Pki) -> None:
    second, again = await resumed_pair(pki, None)
    assert second.tls.session_reused
    assert resumed(again.layer._connection)
    assert again.layer.peer_certificate is None


async def test_a_resumed_session_still_tells_its_client_certificate(pki: Pki) -> None:
    second, again = await resumed_pair(pki, "dn")
    assert second.tls.session_reused
    certificate = again.layer.peer_certificate
    assert certificate is not None
    assert certificate.der == ssl.PEM_cert_to_DER_cert(pki.clients["dn"].cert.read_text())


async def test_a_write_larger_than_one_flush_reaches_the_client_whole(pki: Pki) -> None:
    client = Client(pki.client_context("dn"))
    server = Server(server_context(pki))
    await handshake(client, server)
    big = bytes(range(256)) * 2400  # 600 KiB: more than one read of the outgoing BIO
    server.layer.send(big)
    assert len(server.sent) > 1
    client.receive(server.take())
    assert client.plaintext() == big


def test_a_serial_number_with_a_leading_zero_nibble_keeps_it_as_pythons_ssl_does(
    tmp_path: Path,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zero")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x0ABCDE)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "zero.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    expected = ssl._ssl._test_decode_cert(str(path))  # type: ignore[attr-defined]
    got = PeerCertificate(cert.public_bytes(Encoding.DER))
    assert got["serialNumber"] == expected["serialNumber"] == "0ABCDE"


async def test_the_server_sends_its_cert_file_as_written_without_the_ca(pki: Pki) -> None:
    # As nats-server: OpenSSL would add the CA from ca_file (a chain build on both ends
    # per handshake); a client that needs intermediates gets them from cert_file.
    client_context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    client_context.load_verify_locations(str(pki.ca))
    client_context.use_certificate_file(str(pki.clients["dn"].cert))
    client_context.use_privatekey_file(str(pki.clients["dn"].key))
    client_context.set_verify(SSL.VERIFY_PEER)
    client = SSL.Connection(client_context, None)
    client.set_connect_state()
    server = Server(server_context(pki))
    task = asyncio.create_task(server.layer.handshake())
    for _ in range(4):
        with contextlib.suppress(SSL.WantReadError):
            client.do_handshake()
        with contextlib.suppress(SSL.WantReadError):
            server.layer.receive(client.bio_read(1 << 16))
        await asyncio.sleep(0)
        if server.sent:
            client.bio_write(server.take())
    await task
    chain = client.get_peer_cert_chain(as_cryptography=True) or []
    written = x509.load_pem_x509_certificates(pki.server.cert.read_bytes())
    assert [c.fingerprint(hashes.SHA256()) for c in chain] == [
        c.fingerprint(hashes.SHA256()) for c in written
    ]


def test_pyopenssl_still_has_the_private_binding_that_names_a_refusal() -> None:
    # Without it, refusals are still made but logged and counted without their reason.
    from gateway.tls import openssl

    assert openssl._get_verify_result is not None
