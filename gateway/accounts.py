"""Accounts isolate subjects: one Bus, one log and one MQTT broker per account.

In embedded mode every account gets its own ``LocalBus`` and, when MQTT is on,
its own on-disk log (the global account ``$G`` in ``jetstream.store_dir``, any
other account in ``<store_dir>/accounts/<name>``) and MQTT broker, so clients
of account A never see a message, a retained message, a session or a stream
of account B. An account's space is opened the first time one of its clients
authenticates, and kept until the gateway stops.

In upstream mode the global account's space runs on the ``upstream`` block's
own login. Any other account needs a login of its own in ``upstream {
accounts { <account>: { user/password | token | creds | nkey } } }`` (the
account's name, or in operator mode its public key or its JWT's name): its
space then gets its own connection to NATS with that login, so the NATS
server's accounts isolate the subjects, and the MQTT streams and consumers
are created in that account's JetStream. A client of an account without a
login is refused (MQTT: server unavailable), as is one whose account's
connection cannot be made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
from types import MappingProxyType

from gateway.accounts_errors import AccountUnavailable
from gateway.auth.users import GLOBAL_ACCOUNT, UserTable
from gateway.backend import Backend, BackendError, open_backend
from gateway.bus.api import Bus
from gateway.mqtt.broker import MqttBroker
from gateway.mqtt.store import StoreError
from gateway.options.model import Options, UpstreamOptions

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
        upstream = self.options.upstream
        if upstream is not None:
            options = dataclasses.replace(self.options, upstream=self._upstream_for(account))
        else:
            store_dir = os.path.join(
                self.options.jetstream.store_dir, "accounts", _SAFE_NAME.sub("_", account)
            )
            jetstream = dataclasses.replace(self.options.jetstream, store_dir=store_dir)
            options = dataclasses.replace(self.options, jetstream=jetstream)
        pending = self._opening.get(account)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[AccountSpace] = asyncio.get_running_loop().create_future()
        self._opening[account] = future
        try:
            opened = await self._open(account, options)
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

    def _upstream_for(self, account: str) -> UpstreamOptions:
        """The ``upstream`` options of ``account``: the block with the account's own login."""
        upstream = self.options.upstream
        assert upstream is not None
        login = upstream.accounts.get(account)
        operator = self.users.operator
        if login is None and operator is not None:
            name = operator.account_name(account)
            login = upstream.accounts.get(name) if name else None
        if login is None:
            raise AccountUnavailable(
                f"account {account!r}: no upstream login for it in upstream {{ accounts {{ }} }}"
            )
        return dataclasses.replace(
            upstream,
            user=login.user,
            password=login.password,
            token=login.token,
            creds=login.creds,
            nkey=login.nkey,
            accounts=MappingProxyType({}),
        )

    async def _open(self, account: str, options: Options) -> AccountSpace:
        name = self.name if account == GLOBAL_ACCOUNT else f"{self.name}/{account}"
        backend = await open_backend(options, name)
        broker: MqttBroker | None = None
        if backend.log is not None:
            broker = MqttBroker(
                options,
                self.users,
                backend.bus,
                backend.log,
                shared_store=backend.mode != "embedded",
            )
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
