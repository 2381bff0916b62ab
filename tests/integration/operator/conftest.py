"""Fixtures for operator-mode tests: an operator, accounts A and B, users, and gateways.

Identities are made with ``gateway.auth.jwt_cli`` (the code behind ``jetgate
jwt``), so every test JWT is signed by real nkeys. ``start`` runs a real
:class:`~gateway.server.Gateway` on ephemeral ports (NATS, MQTT and WebSocket)
trusting the operator, with a MEMORY resolver preloaded with the system
account, A and B, a directory resolver (``dir_resolver=True``) reading
``<tmp>/accounts/<key>.jwt``, or a URL resolver (``url=...``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.auth.jwt import format_creds
from gateway.auth.jwt_cli import issue_account, issue_operator, issue_user, new_seed
from gateway.auth.nkeys import KeyPair, Role
from gateway.options import build_options
from gateway.server import Gateway
from tests.confmerge import load_merged
from tests.integration.auth.conftest import gateway_config

pytestmark = pytest.mark.integration


class Key(KeyPair):
    """A key pair that remembers its seed (for creds files)."""

    def __init__(self, seed: str) -> None:
        super().__init__(seed)
        self.seed = seed


def keypair(role: Role) -> Key:
    """A fresh key pair of ``role``."""
    return Key(new_seed(role))


@dataclass
class Account:
    """An account's keys and the options its JWT is issued with."""

    name: str
    key: Key
    signing: Key
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Identities:
    """One operator (with a signing key), a system account and accounts A and B."""

    tmp: Path
    operator: Key = field(default_factory=lambda: keypair(Role.OPERATOR))
    operator_signing: Key = field(default_factory=lambda: keypair(Role.OPERATOR))
    accounts: dict[str, Account] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("SYS", "A", "B"):
            self.accounts[name] = Account(name, keypair(Role.ACCOUNT), keypair(Role.ACCOUNT))

    @property
    def operator_jwt(self) -> str:
        """The operator JWT (system account SYS, one signing key)."""
        return issue_operator(
            self.operator,
            "OP",
            signing_keys=[self.operator_signing.public_key],
            system_account=self.accounts["SYS"].key.public_key,
        )

    def account_jwt(self, name: str, **overrides: Any) -> str:
        """Account ``name``'s JWT (signed by the operator key) with its options and ``overrides``."""
        account = self.accounts[name]
        options = {"signing_keys": [account.signing.public_key], **account.options, **overrides}
        signer = options.pop("signer", self.operator)
        return issue_account(signer, account.key.public_key, name, **options)

    def user_jwt(
        self, account: str = "A", user: Key | None = None, *, signing_key: bool = False, **kw: Any
    ) -> tuple[Key, str]:
        """A user of ``account``: its key pair and JWT (signed by the account or its signing key)."""
        acc = self.accounts[account]
        user = user or keypair(Role.USER)
        signer = kw.pop("signer", acc.signing if signing_key else acc.key)
        if signer is acc.signing:
            kw.setdefault("issuer_account", acc.key.public_key)
        return user, issue_user(signer, user.public_key, kw.pop("name", "user"), **kw)

    def creds(self, account: str = "A", **kw: Any) -> str:
        """A creds file for a new user of ``account``; returns its path."""
        user, token = self.user_jwt(account, **kw)
        return self.creds_file(token, user)

    def creds_file(self, token: str, user: Key | str) -> str:
        """Write ``token`` and the seed of ``user`` as a creds file; returns its path."""
        seed = user if isinstance(user, str) else user.seed
        path = self.tmp / f"{len(list(self.tmp.glob('*.creds')))}.creds"
        path.write_text(format_creds(token, seed))
        return str(path)

    def bearer(self, account: str = "A", **kw: Any) -> str:
        """A bearer user JWT (the MQTT password) of ``account``."""
        return self.user_jwt(account, bearer=True, **kw)[1]

    def config(self, dir_resolver: bool = False, url: str | None = None) -> str:
        """The operator-mode configuration: operator file, system account, resolver.

        With ``url``, the resolver is ``URL(<url>)`` and nothing is preloaded.
        """
        op_file = self.tmp / "operator.jwt"
        op_file.write_text(self.operator_jwt)
        preload = {n: self.account_jwt(n) for n in self.accounts}
        lines = [f'operator: "{op_file}"', f"system_account: {self.key('SYS')}"]
        if url is not None:
            lines.append(f"resolver: URL({url})")
        elif dir_resolver:
            accounts = self.accounts_dir
            accounts.mkdir(exist_ok=True)
            for name, token in preload.items():
                (accounts / f"{self.key(name)}.jwt").write_text(token)
            lines.append(f'resolver {{ type: full, dir: "{accounts}" }}')
        else:
            lines.append("resolver: MEMORY")
            lines.append("resolver_preload {")
            lines.extend(f'  {self.key(n)}: "{t}"' for n, t in preload.items())
            lines.append("}")
        return "\n".join(lines) + "\n"

    @property
    def accounts_dir(self) -> Path:
        """Where the directory resolver reads account JWTs."""
        return self.tmp / "accounts"

    def publish_account(self, name: str, **overrides: Any) -> None:
        """Write a new JWT for account ``name`` into the resolver directory."""
        path = self.accounts_dir / f"{self.key(name)}.jwt"
        path.write_text(self.account_jwt(name, **overrides))

    def key(self, account: str) -> str:
        """An account's public key."""
        return self.accounts[account].key.public_key


StartGateway = Callable[..., Awaitable[Gateway]]


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` (state with no event to await) until true, at most ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def ids(tmp_path: Path) -> Identities:
    """Fresh operator-mode identities in ``tmp_path``."""
    return Identities(tmp_path)


@pytest.fixture
async def start(tmp_path: Path, ids: Identities) -> AsyncIterator[StartGateway]:
    """Start operator-mode gateways; each is stopped at teardown."""
    started: list[Gateway] = []

    async def run(dir_resolver: bool = False, extra: str = "", url: str | None = None) -> Gateway:
        store = tmp_path / f"store{len(started)}"
        store.mkdir()
        merged = load_merged(gateway_config(store), ids.config(dir_resolver, url) + extra)
        gateway = Gateway(build_options(merged))
        await gateway.start()
        started.append(gateway)
        return gateway

    try:
        yield run
    finally:
        for gateway in reversed(started):
            await gateway.stop()
