"""TLS versions and suites on the MQTT port: TLS 1.2 clients, ``min_version``, ``cipher_suites``.

The MQTT and NATS ports handshake through pyOpenSSL, whose TLS 1.2 path (the
server's Finished comes after the client's) differs from TLS 1.3's; these
tests run both versions over the wire, with a client certificate and with
records large enough to span several TLS records.
"""

from __future__ import annotations

import asyncio
import gc
import ssl

import pytest

from gateway.listeners.tls_layer import TlsLayer
from gateway.server import Gateway
from tests.integration.mqtt.helpers import TcpSession
from tests.integration.tls.conftest import StartGateway, tls_block, until
from tests.integration.tls.pki import Pki

pytestmark = pytest.mark.integration

ACCEPTED = 0x00


def mqtt_port(gateway: Gateway) -> int:
    assert gateway.mqtt is not None
    return gateway.mqtt.port


def tls12_context(pki: Pki, cipher: str | None = None) -> ssl.SSLContext:
    context = pki.client_context("dn")
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if cipher is not None:
        context.set_ciphers(cipher)
    return context


async def open_tls(port: int, context: ssl.SSLContext) -> TcpSession:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    return TcpSession(reader, writer, 4)


@pytest.mark.parametrize("tls12", [True, False], ids=["TLS 1.2", "TLS 1.3"])
async def test_each_version_carries_mqtt_both_ways_with_large_messages(
    start_gateway: StartGateway, pki: Pki, tls12: bool
) -> None:
    gateway = await start_gateway(mqtt=tls_block(pki))
    context = tls12_context(pki) if tls12 else pki.client_context("dn")
    session = await open_tls(mqtt_port(gateway), context)
    try:
        version = session.writer.get_extra_info("ssl_object").version()
        assert version == ("TLSv1.2" if tls12 else "TLSv1.3")
        assert (await session.connect("versions")).reason_code == ACCEPTED
        assert await session.subscribe("big/t", qos=1) == [1]
        payload = bytes(range(256)) * 400  # 100 KiB: seven TLS records each way
        await session.publish("big/t", payload, qos=1)
        [message] = await session.receive_acked(1)
        assert message.payload == payload
    finally:
        await session.aclose()


async def test_min_version_13_refuses_a_tls12_client(start_gateway: StartGateway, pki: Pki) -> None:
    gateway = await start_gateway(mqtt=tls_block(pki, ', min_version: "1.3"'))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await open_tls(mqtt_port(gateway), tls12_context(pki))
    failures = gateway.mqtt.tls_failures  # type: ignore[union-attr]
    await until(lambda: list(failures) == ["TLS error: UNSUPPORTED_PROTOCOL"])
    session = await open_tls(mqtt_port(gateway), pki.client_context("dn"))
    try:
        assert (await session.connect("modern")).reason_code == ACCEPTED
    finally:
        await session.aclose()


async def test_cipher_suites_limit_tls12_to_the_listed_suites(
    start_gateway: StartGateway, pki: Pki
) -> None:
    listed = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"  # Go's name, as in nats-server configs
    gateway = await start_gateway(mqtt=tls_block(pki, f', cipher_suites: ["{listed}"]'))
    port = mqtt_port(gateway)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await open_tls(port, tls12_context(pki, "ECDHE-ECDSA-AES256-GCM-SHA384"))
    session = await open_tls(port, tls12_context(pki, "ECDHE-ECDSA-AES128-GCM-SHA256"))
    try:
        assert session.writer.get_extra_info("cipher")[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
        assert (await session.connect("suite")).reason_code == ACCEPTED
    finally:
        await session.aclose()


async def test_the_server_picks_aes_128_for_tls13_as_nats_server_does(
    start_gateway: StartGateway, pki: Pki
) -> None:
    gateway = await start_gateway(mqtt=tls_block(pki))
    session = await open_tls(mqtt_port(gateway), pki.client_context("dn"))
    try:
        # Python's client lists TLS_AES_256_GCM_SHA384 first.
        assert session.writer.get_extra_info("cipher")[0] == "TLS_AES_128_GCM_SHA256"
        assert (await session.connect("aes")).reason_code == ACCEPTED
    finally:
        await session.aclose()


async def test_an_ended_tls_connection_is_freed_without_the_cycle_collector(
    start_gateway: StartGateway, pki: Pki
) -> None:
    """Its TLS state (pyOpenSSL ``Connection``), transport and streams go with the last
    reference: asyncio's transport keeps a bound method of itself, cut at close."""
    gateway = await start_gateway(mqtt=tls_block(pki))
    port = mqtt_port(gateway)

    def left() -> list[str]:
        kept = []
        for o in gc.get_objects():
            if type(o) is TlsLayer:
                kept.append("TlsLayer")
            elif (
                isinstance(o, asyncio.Transport)
                and (o.get_extra_info("sockname") or ("", 0))[1] == port
            ):
                kept.append(type(o).__name__)
        return kept

    gc.collect()
    gc.disable()
    try:
        for n in range(3):
            session = await open_tls(port, pki.client_context("dn"))
            assert (await session.connect(f"freed-{n}")).reason_code == ACCEPTED
            assert left()  # this connection's, while it is open
            await session.disconnect()
        await until(lambda: not left())
    finally:
        gc.enable()
