"""Fixtures for TLS over the wire: the test PKI, gateways with TLS listeners, TLS MQTT sessions."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from conf import loads
from gateway.options import build_options
from gateway.server import Gateway
from tests.integration.mqtt.helpers import TcpSession
from tests.integration.tls.pki import Pki, make_pki

pytestmark = pytest.mark.integration

StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The test PKI, made once."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_block(pki: Pki, extra: str = "", *, verify: bool = True) -> str:
    """A ``tls`` block with the test broker certificate, the test CA and ``extra`` keys."""
    return (
        f'tls {{ cert_file: "{pki.server.cert}", key_file: "{pki.server.key}", '
        f'ca_file: "{pki.ca}", verify: {str(verify).lower()}, timeout: 0.5 {extra} }}'
    )


USERS = """authorization { users = [
  {user: "CN=dev-42,O=Acme"}
  {user: "dev@acme.io", permissions: {publish: "mail.>", subscribe: "mail.>"}}
  {user: "mail.acme.io"}
  {user: "sensor-7.acme.io", allowed_connection_types: ["STANDARD"]}
  {user: "dev-42"}
] }
"""


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[StartGateway]:
    """Start gateways on ephemeral ports: ``await start(mqtt="tls {...}", nats="", ws=...)``."""
    started: list[Gateway] = []

    async def start(
        mqtt: str = "", nats: str = "", ws: str | None = None, extra: str = ""
    ) -> Gateway:
        store = tmp_path / f"store{len(started)}"
        websocket = (
            f"websocket {{ listen: 127.0.0.1:-1, {ws} }}\n"
            if ws is not None
            else "websocket { listen: 127.0.0.1:-1, no_tls: true }\n"
        )
        text = (
            f"listen: 127.0.0.1:-1\n{nats}\n"
            f"mqtt {{ listen: 127.0.0.1:-1\n {mqtt} }}\n{websocket}"
            f'jetstream {{ store_dir: "{store}" }}\n{extra}'
        )
        gateway = Gateway(build_options(loads(text)))
        await gateway.start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in reversed(started):
        await gateway.stop()


@pytest.fixture
async def tls_session() -> AsyncIterator[Callable[..., Awaitable[TcpSession]]]:
    """Open raw MQTT sessions over TLS: ``await tls_session(port, context, version=4)``."""
    sessions: list[TcpSession] = []

    async def open_session(port: int, context: ssl.SSLContext, version: int = 4) -> TcpSession:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        session = TcpSession(reader, writer, version)
        sessions.append(session)
        return session

    yield open_session
    for session in sessions:
        with contextlib.suppress(Exception):
            await session.aclose()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds (a counter the gateway updates after a close)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
