"""Accounts isolate subjects: one Bus, one log and one MQTT broker per account.

In embedded mode every account gets its own ``LocalBus`` and, when MQTT is on,
its own on-disk log (the global account ``$G`` in ``jetstream.store_dir``, any
other account in ``<store_dir>/accounts/<name>``) and MQTT broker, so clients
of account A never see a message, a retained message, a session or a stream
of account B. An account's space is opened the first time one of its clients
authenticates, and kept until the gateway stops.

In upstream mode the gateway has one connection to NATS, which belongs to one
upstream account; mapping several local accounts onto it would mix their
subjects, so only the global account is served and a client of any other
account is refused (run one gateway per upstream account instead).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re

from gateway.accounts_errors import AccountUnavailable
from gateway.auth.users import GLOBAL_ACCOUNT, UserTable
from gateway.backend import Backend, BackendError, open_backend
from gateway.bus.api import Bus
from gateway.mqtt.broker import MqttBroker
from gateway.mqtt.store import StoreError
from gateway.options.model import Options

log = logging.getLogger("jetgate")

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclasses.dataclass
class AccountSpace:
    """What one account's clients share."""

    name: str
    backend: Backend
    broker: MqttBroker | None

    @property
    def bus(self) -> Bus:
        """The account's Bus."""
        return self.backend.bus

    async def close(self) -> None:
        """Stop the broker and close the log and the bus."""
        if self.broker is not None:
            await self.broker.stop()
        await self.backend.close()


class Accounts:
    """The spaces of the accounts that have connected clients (see the module docstring)."""

    def __init__(self, options: Options, users: UserTable, name: str) -> None:
        self.options = options
        self.users = users
        self.name = name
        self._spaces: dict[str, AccountSpace] = {}
        self._opening: dict[str, asyncio.Future[AccountSpace]] = {}

    async def start(self) -> AccountSpace:
        """Open the global account's space (raises BackendError or StoreError)."""
        space = await self._open(GLOBAL_ACCOUNT, self.options)
        self._spaces[GLOBAL_ACCOUNT] = space
        return space

    @property
    def global_space(self) -> AccountSpace:
        """The global account's space (after ``start``)."""
        return self._spaces[GLOBAL_ACCOUNT]

    async def space(self, account: str) -> AccountSpace:
        """The space of ``account``, opened on first use."""
        found = self._spaces.get(account)
        if found is not None:
            return found
        if self.options.upstream is not None:
            raise AccountUnavailable(
                f"account {account!r}: upstream mode serves the upstream connection's account only"
            )
        pending = self._opening.get(account)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[AccountSpace] = asyncio.get_running_loop().create_future()
        self._opening[account] = future
        try:
            store_dir = os.path.join(
                self.options.jetstream.store_dir, "accounts", _SAFE_NAME.sub("_", account)
            )
            jetstream = dataclasses.replace(self.options.jetstream, store_dir=store_dir)
            opened = await self._open(
                account, dataclasses.replace(self.options, jetstream=jetstream)
            )
        except (BackendError, StoreError) as exc:
            future.set_exception(AccountUnavailable(f"account {account!r}: {exc}"))
            future.exception()  # retrieved: the waiters get it from their own await
            raise AccountUnavailable(f"account {account!r}: {exc}") from None
        finally:
            self._opening.pop(account, None)
        self._spaces[account] = opened
        future.set_result(opened)
        log.info("account %s: space opened", account)
        return opened

    async def _open(self, account: str, options: Options) -> AccountSpace:
        backend = await open_backend(options, self.name)
        broker: MqttBroker | None = None
        if backend.log is not None:
            broker = MqttBroker(options, self.users, backend.bus, backend.log)
            try:
                await broker.start()
            except StoreError:
                await backend.close()
                raise
        return AccountSpace(account, backend, broker)

    async def close(self) -> None:
        """Close every space. Idempotent."""
        spaces = list(self._spaces.values())
        self._spaces.clear()
        for space in spaces:
            await space.close()
