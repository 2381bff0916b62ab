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

from gateway.options import build_options
from gateway.server import Gateway
from tests.confmerge import load_merged

pytestmark = pytest.mark.integration

StartGateway = Callable[[str], Awaitable[Gateway]]


def gateway_config(store_dir: Path) -> str:
    """Every listener on an ephemeral port (the test's auth configuration is merged in)."""
    return (
        "listen: 127.0.0.1:-1\n"
        "mqtt { listen: 127.0.0.1:-1 }\n"
        "websocket { listen: 127.0.0.1:-1, no_tls: true }\n"
        f'jetstream {{ store_dir: "{store_dir}" }}\n'
    )


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[StartGateway]:
    """Start gateways with an auth configuration; each is stopped at teardown."""
    started: list[Gateway] = []

    async def start(auth_config: str) -> Gateway:
        store = tmp_path / f"store{len(started)}"
        store.mkdir()
        gateway = Gateway(build_options(load_merged(gateway_config(store), auth_config)))
        await gateway.start()
        started.append(gateway)
        assert gateway.mqtt is not None and gateway.websocket is not None
        return gateway

    try:
        yield start
    finally:
        for gateway in reversed(started):
            await gateway.stop()
