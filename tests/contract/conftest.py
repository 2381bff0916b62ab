"""The contract suite's one fixture: a Log on each backend.

Every test in tests/contract takes ``backend`` (or ``log``) and so runs once
per backend. A backend is an ``opener``: an async callable returning a fresh
``Log`` on the same storage each time it is called, so a test can close the
log and open it again to check what survives a restart.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from streams.api import Log

Opener = Callable[[], Awaitable[Log]]


class Backend:
    """One backend under test: its name, the open Log, and reopen() for restart checks."""

    def __init__(self, name: str, opener: Opener) -> None:
        self.name = name
        self._opener = opener
        self._log: Log | None = None

    @property
    def log(self) -> Log:
        assert self._log is not None, "backend not open"
        return self._log

    async def open(self) -> Log:
        self._log = await self._opener()
        return self._log

    async def reopen(self) -> Log:
        """Close the Log and open a new one on the same storage."""
        await self.close()
        return await self.open()

    async def close(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            await log.close()


def _embedded_opener(store_dir: Path) -> Opener:
    from gateway.bus.local import LocalBus
    from streams.embedded import EmbeddedLog

    async def open_log() -> Log:
        return await EmbeddedLog.open(store_dir, LocalBus(), sync="always")

    return open_log


@pytest.fixture(params=["embedded", "jetstream"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "embedded":
        opener = _embedded_opener(tmp_path / "store")
    else:
        # ---- JetStream backend: plug its factory in here. ------------------
        # Start from request.getfixturevalue("nats_server") (tests/conftest.py)
        # and build an Opener connecting a new Log to server.url each call.
        if importlib.util.find_spec("streams.jetstream") is None:
            pytest.skip("streams.jetstream not written yet")
        from streams.jetstream import JetStreamLog

        url = request.getfixturevalue("nats_server").url

        async def open_jetstream() -> Log:
            return await JetStreamLog.connect(url)

        opener = open_jetstream
        # ---------------------------------------------------------------------
    b = Backend(request.param, opener)
    await b.open()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def log(backend: Backend) -> Log:
    return backend.log
