"""Fixtures for the MQTT integration tests: in-process gateways and client factories.

``gateway_factory(extra_config)`` starts a real :class:`~gateway.server.Gateway`
on ephemeral ports (NATS, MQTT, WebSocket) with its own log store, and stops
every gateway it started at teardown. Until the MQTT listener exists
(``gateway.mqtt``), every test using it is skipped, so main stays green.
``raw`` and ``paho_client`` open client sessions that are closed at teardown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import nats
import pytest
from nats.aio.client import Client as NatsClient

from gateway.options import build_options
from gateway.server import Gateway
from tests.confmerge import load_merged
from tests.integration.mqtt.helpers import PahoClient, RawSession, TcpSession, WsSession

pytestmark = pytest.mark.integration


class GatewayFactory(Protocol):
    async def __call__(self, extra_config: str = "", store_dir: Path | None = None) -> Gateway: ...


def gateway_config(store_dir: Path) -> str:
    """The configuration text of a test gateway: every listener on an ephemeral port."""
    return (
        "listen: 127.0.0.1:-1\n"
        "mqtt { listen: 127.0.0.1:-1 }\n"
        "websocket { listen: 127.0.0.1:-1, no_tls: true }\n"
        f'jetstream {{ store_dir: "{store_dir}" }}\n'
    )


def mqtt_port(gateway: Gateway) -> int:
    listener = getattr(gateway, "mqtt", None)
    assert listener is not None
    port: int = listener.port
    return port


def ws_port(gateway: Gateway) -> int:
    assert gateway.websocket is not None
    return gateway.websocket.port


def nats_url(gateway: Gateway) -> str:
    assert gateway.nats is not None
    return f"nats://127.0.0.1:{gateway.nats.port}"


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Start gateways (stopped at teardown); skip when the MQTT listener has not landed.

    ``extra_config`` is merged into the configuration (``tests.confmerge``: a
    ``mqtt { ... }`` block there adds its keys to the base's); ``store_dir`` reuses a log
    store, e.g. to restart a gateway on the state a stopped one left.
    """
    started: list[Gateway] = []
    count = 0

    async def start(extra_config: str = "", store_dir: Path | None = None) -> Gateway:
        nonlocal count
        count += 1
        store = store_dir if store_dir is not None else tmp_path / f"store{count}"
        store.mkdir(parents=True, exist_ok=True)
        gateway = Gateway(build_options(load_merged(gateway_config(store), extra_config)))
        await gateway.start()
        started.append(gateway)
        if getattr(gateway, "mqtt", None) is None:
            pytest.skip("MQTT listener not available")
        return gateway

    try:
        yield start
    finally:
        for gateway in reversed(started):
            await gateway.stop()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> Gateway:
    """One gateway with the default configuration."""
    return await gateway_factory()


RawFactory = Callable[..., Awaitable[RawSession]]


@pytest.fixture
async def raw() -> AsyncIterator[RawFactory]:
    """Open raw MQTT sessions: ``await raw(gateway, version=4, ws=False)``; closed at teardown."""
    sessions: list[RawSession] = []

    async def open_session(
        gateway: Gateway, version: int = 4, ws: bool = False, **kwargs: Any
    ) -> RawSession:
        session: RawSession
        if ws:
            session = await WsSession.open(ws_port(gateway), version, **kwargs)
        else:
            session = await TcpSession.open(mqtt_port(gateway), version, **kwargs)
        sessions.append(session)
        return session

    yield open_session
    for session in sessions:
        with contextlib.suppress(Exception):
            await session.aclose()


PahoFactory = Callable[..., PahoClient]


@pytest.fixture
async def paho_client() -> AsyncIterator[PahoFactory]:
    """Create paho clients: ``paho_client(gateway, version, client_id=..., clean=...)``."""
    clients: list[PahoClient] = []

    def create(gateway: Gateway, version: int = 4, ws: bool = False, **kwargs: Any) -> PahoClient:
        if ws:
            client = PahoClient(ws_port(gateway), version, transport="websockets", **kwargs)
        else:
            client = PahoClient(mqtt_port(gateway), version, **kwargs)
        clients.append(client)
        return client

    yield create
    for client in clients:
        await client.stop()


NatsFactory = Callable[[Gateway], Awaitable[NatsClient]]


@pytest.fixture
async def nats_client() -> AsyncIterator[NatsFactory]:
    """Connect nats-py clients to a gateway's NATS port; closed at teardown."""
    clients: list[NatsClient] = []

    async def connect(gateway: Gateway) -> NatsClient:
        nc = await nats.connect(nats_url(gateway), allow_reconnect=False, connect_timeout=5)
        clients.append(nc)
        return nc

    yield connect
    for nc in clients:
        with contextlib.suppress(Exception):
            await nc.close()
