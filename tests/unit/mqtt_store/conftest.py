"""Fixtures: an MqttStore on each log backend (embedded on tmp_path, real nats-server).

``env`` runs a test once per backend; ``embedded_env`` only on the embedded
log. ``env.peer()`` gives a second gateway's store on the same streams (for
JetStream a second connection, for the embedded log the same Log object, as
two gateways in one process would share it). ``env.restart()`` closes the
stores and the log (and restarts nats-server, keeping its store dir) and opens
everything again on the same storage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.mqtt.store import MqttStore
from streams.api import Log
from tests.conftest import NatsServer
from tests.contract.conftest import Backend, Opener, _embedded_opener

ACK_WAIT = 30.0
MAX_ACK_PENDING = 100


class StoreEnv:
    """One backend with the stores opened on it; everything is closed at teardown."""

    def __init__(self, name: str, opener: Opener, shares_log: bool) -> None:
        self.name = name
        self.backend = Backend(name, opener)
        self._opener = opener
        self._shares_log = shares_log
        self._stores: list[MqttStore] = []
        self._logs: list[Log] = []
        self.store: MqttStore
        self.server: NatsServer | None = None
        """The nats-server of the JetStream backend; restart() restarts it too."""

    @property
    def log(self) -> Log:
        return self.backend.log

    async def open(self) -> MqttStore:
        await self.backend.open()
        self.store = await self.new_store(self.log)
        return self.store

    async def new_store(
        self, log: Log | None = None, *, ack_wait: float = ACK_WAIT, origin: str | None = None
    ) -> MqttStore:
        store = MqttStore(
            log or self.log, ack_wait=ack_wait, max_ack_pending=MAX_ACK_PENDING, origin=origin
        )
        self._stores.append(store)
        await store.start()
        return store

    async def peer(self) -> MqttStore:
        """A second gateway's store on the same streams."""
        if self._shares_log:
            return await self.new_store(self.log)
        log = await self._opener()
        self._logs.append(log)
        return await self.new_store(log)

    async def restart(self) -> MqttStore:
        """Close every store and the log; reopen the log on the same storage and a store on it."""
        await self._close_stores()
        await self.backend.close()
        if self.server is not None:
            self.server.stop()
            self.server.start()
        await self.backend.open()
        self.store = await self.new_store(self.log)
        return self.store

    async def _close_stores(self) -> None:
        stores, self._stores = self._stores, []
        for store in stores:
            await store.close()
        logs, self._logs = self._logs, []
        for log in logs:
            await log.close()

    async def close(self) -> None:
        await self._close_stores()
        await self.backend.close()


def _jetstream_opener(request: pytest.FixtureRequest) -> Opener:
    from streams.jetstream import JetStreamLog

    url = request.getfixturevalue("nats_server").url

    async def open_jetstream() -> Log:
        return await JetStreamLog.connect(url)

    return open_jetstream


@pytest.fixture(params=["embedded", pytest.param("jetstream", marks=pytest.mark.integration)])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreEnv]:
    if request.param == "embedded":
        e = StoreEnv("embedded", _embedded_opener(tmp_path / "store"), shares_log=True)
    else:
        e = StoreEnv("jetstream", _jetstream_opener(request), shares_log=False)
        e.server = request.getfixturevalue("nats_server")
    await e.open()
    try:
        yield e
    finally:
        await e.close()


@pytest.fixture
async def embedded_env(tmp_path: Path) -> AsyncIterator[StoreEnv]:
    e = StoreEnv("embedded", _embedded_opener(tmp_path / "store"), shares_log=True)
    await e.open()
    try:
        yield e
    finally:
        await e.close()
