"""Fixtures for the auth tests: in-process gateways with an auth configuration.

``start_gateway(auth_config)`` starts a real :class:`~gateway.server.Gateway`
on ephemeral ports (NATS TCP, MQTT TCP, WebSocket for NATS and MQTT) with its
own JetStream store, ``auth_config`` appended to the configuration, and stops
every gateway it started at teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from conf import loads
from gateway.options import build_options
from gateway.server import Gateway

pytestmark = pytest.mark.integration

StartGateway = Callable[[str], Awaitable[Gateway]]


def gateway_config(store_dir: Path, auth_config: str) -> str:
    """Every listener on an ephemeral port, then the test's auth configuration."""
    return (
        "listen: 127.0.0.1:-1\n"
        "mqtt { listen: 127.0.0.1:-1 }\n"
        "websocket { listen: 127.0.0.1:-1, no_tls: true }\n"
        f'jetstream {{ store_dir: "{store_dir}" }}\n' + auth_config
    )


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[StartGateway]:
    """Start gateways with an auth configuration; each is stopped at teardown."""
    started: list[Gateway] = []

    async def start(auth_config: str) -> Gateway:
        store = tmp_path / f"store{len(started)}"
        store.mkdir()
        gateway = Gateway(build_options(loads(gateway_config(store, auth_config))))
        await gateway.start()
        started.append(gateway)
        assert gateway.mqtt is not None and gateway.websocket is not None
        return gateway

    try:
        yield start
    finally:
        for gateway in reversed(started):
            await gateway.stop()
