"""TLS records over the wire, driven by a client whose every record the test controls.

The client keeps its TLS state on memory BIOs over a plain socket, so a test
can split records across writes, send data right behind the handshake, corrupt
a record or send close_notify, and see what the gateway answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.mqtt.codec import Decoder
from gateway.mqtt.packets import Connack, Connect, Packet, Pingreq, Pingresp
from tests.integration.tls.conftest import StartGateway, tls_block
from tests.integration.tls.pki import Pki

pytestmark = pytest.mark.integration

TIMEOUT = 5.0


class RecordClient:
    """An MQTT 3.1.1 client whose TLS records pass through the test's hands."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.decoder = Decoder(server=False, version=4)

    async def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                self.writer.write(self.outgoing.read())
                data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
                assert data, "closed during the handshake"
                self.incoming.write(data)

    def records(self, packet: Packet) -> bytes:
        """The TLS records carrying ``packet`` (and any handshake flight still unsent)."""
        self.tls.write(packet.encode(4))
        return self.outgoing.read()

    async def expect(self, kind: type[Packet]) -> Packet:
        while True:
            for packet in self.decoder.feed(self._plaintext()):
                assert isinstance(packet, kind), packet
                return packet
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            assert data, "connection closed"
            self.incoming.write(data)

    def _plaintext(self) -> bytes:
        out = b""
        with contextlib.suppress(ssl.SSLWantReadError):
            while chunk := self.tls.read(65536):
                out += chunk
        return out

    async def closed_by_server(self) -> bool:
        """True once the server closes the TCP connection (within the timeout)."""
        with contextlib.suppress(ConnectionError):
            while await asyncio.wait_for(self.reader.read(65536), TIMEOUT):
                pass
        return True


OpenRecords = Callable[[int, ssl.SSLContext], Awaitable[RecordClient]]


@pytest.fixture
async def record_client() -> AsyncIterator[OpenRecords]:
    clients: list[RecordClient] = []

    async def open_client(port: int, context: ssl.SSLContext) -> RecordClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = RecordClient(reader, writer, context)
        clients.append(client)
        await client.handshake()
        return client

    yield open_client
    for client in clients:
        client.writer.close()
        with contextlib.suppress(ConnectionError):
            await client.writer.wait_closed()


def connect(client_id: str) -> Connect:
    return Connect(client_id, clean_start=True, keep_alive=0, protocol_level=4)


async def connected(open_client: OpenRecords, port: int, pki: Pki, client_id: str) -> RecordClient:
    """A record client past its CONNACK."""
    client = await open_client(port, pki.client_context("dn"))
    client.writer.write(client.records(connect(client_id)))
    await client.expect(Connack)
    return client


async def mqtt_tls_port(start_gateway: StartGateway, pki: Pki) -> int:
    gateway = await start_gateway(mqtt=tls_block(pki))
    assert gateway.mqtt is not None
    return gateway.mqtt.port


async def test_connect_in_the_same_write_as_the_last_handshake_flight_is_answered(
    start_gateway: StartGateway, pki: Pki, record_client: OpenRecords
) -> None:
    port = await mqtt_tls_port(start_gateway, pki)
    client = await record_client(port, pki.client_context("dn"))
    # TLS 1.3: the client's Certificate/Finished are still unsent; CONNECT rides with them.
    client.writer.write(client.records(connect("behind-finished")))
    connack = await client.expect(Connack)
    assert isinstance(connack, Connack) and connack.reason_code == 0


async def test_records_split_into_single_bytes_are_reassembled(
    start_gateway: StartGateway, pki: Pki, record_client: OpenRecords
) -> None:
    client = await connected(record_client, await mqtt_tls_port(start_gateway, pki), pki, "split")
    records = client.records(Pingreq())
    for i in range(len(records)):
        client.writer.write(records[i : i + 1])
        await client.writer.drain()
    assert isinstance(await client.expect(Pingresp), Pingresp)


async def test_a_corrupted_record_closes_only_that_connection(
    start_gateway: StartGateway, pki: Pki, record_client: OpenRecords
) -> None:
    port = await mqtt_tls_port(start_gateway, pki)
    bystander = await connected(record_client, port, pki, "bystander")
    victim = await connected(record_client, port, pki, "victim")

    record = bytearray(victim.records(Pingreq()))
    record[-1] ^= 0xFF  # the record's authentication tag no longer matches
    victim.writer.write(bytes(record))
    assert await victim.closed_by_server()

    bystander.writer.write(bystander.records(Pingreq()))
    assert isinstance(await bystander.expect(Pingresp), Pingresp)


async def test_close_notify_ends_the_session_and_is_answered(
    start_gateway: StartGateway, pki: Pki, record_client: OpenRecords
) -> None:
    client = await connected(record_client, await mqtt_tls_port(start_gateway, pki), pki, "leaving")
    with pytest.raises(ssl.SSLWantReadError):
        client.tls.unwrap()  # close_notify out; the server's is awaited
    client.writer.write(client.outgoing.read())
    data = await asyncio.wait_for(client.reader.read(65536), TIMEOUT)
    client.incoming.write(data)
    client.tls.unwrap()  # the server's close_notify arrived: no error
    assert await client.closed_by_server()
