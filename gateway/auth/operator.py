"""Operator mode: trusted operators, account resolvers, and the user JWT validation chain.

``OperatorAuth`` is built from ``Options`` (``operator``/``trusted_keys``,
``system_account``, ``resolver``, ``resolver_preload``) and authenticates a
client's user JWT in the order of ``shared/reference/nats-jwt.md`` 5.2:

1. the user JWT decodes and verifies as user claims, signed by an ``A`` key;
2. ``proxy_required`` is refused (no trusted proxies here);
3. its time checks (``exp``, ``nbf``);
4. the account id is ``issuer_account``, else ``iss``;
5. the account JWT comes from the resolver, verifies, is issued by a trusted
   operator key, passes its time checks and has that id as subject;
6. the user's issuer is the account key or one of its signing keys (a scoped
   signing key replaces the user's permissions with its template);
7. bearer tokens against the account's ``disallow_bearer``;
8. ``allowed_connection_types``;
9. the nonce signature by the user key, unless the JWT is a bearer token
   (MQTT clients cannot sign: they must present bearer tokens);
10. account and ``*`` revocations (``revocations[key] >= iat``);
11. ``src`` CIDRs and ``times`` windows;
12. the account's connection limit (``limits.conn``).

The result is an ``Identity`` carrying the account's public key, the compiled
permissions, a ``UserGrant`` (expiry deadline, issue time) and the
connection's ``Limits`` (subscriptions, payload: ``gateway.auth.limits``). Connection
drivers ``watch`` the identity: the callback runs with the ``-ERR`` text when
the user expires or when a reloaded account JWT revokes it.

Resolvers: ``MemoryResolver`` (the preload map), ``DirectoryResolver``
(``resolver { type: full|cache, dir }``: ``<dir>/<account>.jwt`` files, the
preload map as fallback), polled for changes while connections are watched,
and ``UrlResolver`` (``resolver: URL(http://host:port/jwt/v1/accounts/)``:
``GET <url><account>``, fetched in a worker thread by ``prepare`` before the
chain runs, kept until the account expires).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.auth.jwt import Claims, JWTError, UserGrant, check_times, decode, parse_decorated
from gateway.auth.limits import Limits, connection_limits
from gateway.auth.nkeys import NKeyError, Role, decode_signature, is_public_key, verify
from gateway.auth.permissions import Permissions
from gateway.options.model import (
    ConnectionType,
    Options,
    ResponsePermission,
    SubjectPermission,
    User,
)
from gateway.options.model import Permissions as PermissionOptions

log = logging.getLogger("jetgate.auth")

ERR_USER_EXPIRED = "User Authentication Expired"
ERR_ACCOUNT_EXPIRED = "Account Authentication Expired"
ERR_REVOKED = "User Authentication Revoked"
#: How often a directory resolver looks for changed account JWT files while clients are watched.
POLL_INTERVAL = 1.0
_MQTT_KINDS = frozenset({ConnectionType.MQTT, ConnectionType.MQTT_WS})
_KNOWN_TYPES = frozenset(t.value for t in ConnectionType)
_DEFAULT_RESP_MAX = 1
_DEFAULT_RESP_TTL = 120.0
_TEMPLATE = re.compile(r"\{\{\s*([a-z-]+)\(\s*([^)]*?)\s*\)\s*\}\}")


class OperatorError(Exception):
    """The operator-mode configuration cannot be used (bad operator or preloaded JWT ...)."""


class Refused(Exception):
    """A user JWT refused; ``reason`` for the log, ``not_authorized`` as ``AuthenticationFailed``."""

    def __init__(self, reason: str, *, not_authorized: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_authorized = not_authorized


# -- resolvers ------------------------------------------------------------------------


class MemoryResolver:
    """``resolver: MEMORY``: account JWTs from ``resolver_preload``, exact key match."""

    def __init__(self, preload: Mapping[str, str]) -> None:
        self._jwts = dict(preload)

    def fetch(self, account: str) -> str | None:
        """The account JWT for ``account``, or None."""
        return self._jwts.get(account)

    def changed(self) -> list[str]:
        """Accounts whose JWT changed since the last call (never, for memory)."""
        return []


class DirectoryResolver:
    """``resolver { type: full|cache, dir }``: ``<dir>/<account>.jwt``, then the preload map.

    Files are read when their size or modification time changes; ``changed``
    reports the accounts whose file changed since it was last called.
    """

    def __init__(self, directory: str, preload: Mapping[str, str]) -> None:
        self.directory = directory
        self._preload = dict(preload)
        self._files: dict[str, tuple[tuple[int, int], str]] = {}

    def _path(self, account: str) -> str:
        return os.path.join(self.directory, f"{account}.jwt")

    def _read(self, account: str) -> tuple[tuple[int, int], str] | None:
        try:
            st = os.stat(self._path(account))
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._files.get(account)
        if cached is not None and cached[0] == stamp:
            return cached
        try:
            with open(self._path(account), encoding="utf-8") as f:
                text = parse_decorated(f.read())[0]
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read the JWT of account %s: %s", account, exc)
            return None
        entry = (stamp, text)
        self._files[account] = entry
        return entry

    def fetch(self, account: str) -> str | None:
        """The account JWT for ``account`` from its file, else from the preload map."""
        entry = self._read(account)
        return entry[1] if entry is not None else self._preload.get(account)

    def changed(self) -> list[str]:
        """Accounts whose file appeared, changed or disappeared since the last call."""
        out: list[str] = []
        known = set(self._files)
        try:
            names = os.listdir(self.directory)
        except OSError:
            names = []
        present = {n[:-4] for n in names if n.endswith(".jwt")}
        for account in sorted(known | present):
            before = self._files.get(account)
            after = self._read(account)
            if after is None:
                self._files.pop(account, None)
                if before is not None:
                    out.append(account)
            elif before is None or before[1] != after[1]:
                out.append(account)
        return out


class UrlResolver:
    """``resolver: URL(<base>)``: account JWTs fetched over HTTP, as the NATS server does.

    An account's JWT is ``GET <base><account public key>`` (a ``/`` is added
    to the base when missing), with a 2-second timeout; only a ``200``
    answer counts, its body being the JWT. A fetched JWT is kept until its
    account expires, then fetched again (at most once every ``min_refresh``
    seconds); a failed fetch is not remembered, so the next client of that
    account tries again. The NATS server learns of later changes through its
    system account (``nsc push``), which jetgate does not serve: restart, or
    use a directory resolver, to apply a revocation at once.

    Fetches run in a worker thread (``asyncio.to_thread``), never on the
    event loop, and concurrent fetches of one account share one request.
    ``load`` fetches; ``fetch`` answers from what was fetched, so the
    validation chain itself stays synchronous.
    """

    #: The NATS server's HTTP client timeout for account fetches.
    TIMEOUT = 2.0

    def __init__(self, url: str, *, timeout: float = TIMEOUT, min_refresh: float = 1.0) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.timeout = timeout
        self.min_refresh = min_refresh
        self.requests = 0
        """HTTP requests made so far."""
        self._jwts: dict[str, str] = {}
        self._fetched_at: dict[str, float] = {}
        self._errors: dict[str, str] = {}
        self._loading: dict[str, asyncio.Future[None]] = {}

    def fetch(self, account: str) -> str | None:
        """The JWT fetched for ``account``, or None (then ``error`` says why)."""
        return self._jwts.get(account)

    def error(self, account: str) -> str | None:
        """Why the last fetch of ``account`` failed, if it did."""
        return self._errors.get(account)

    def forget(self, account: str) -> None:
        """Drop ``account``'s JWT (it did not verify): the next client fetches it again."""
        self._jwts.pop(account, None)

    def changed(self) -> list[str]:
        """Accounts whose JWT changed since the last call (never reported: see the class)."""
        return []

    async def load(self, account: str, *, stale: bool = False) -> None:
        """Fetch ``account``'s JWT unless it is known (and not ``stale``, i.e. expired)."""
        if account in self._jwts:
            last = self._fetched_at.get(account, 0.0)
            if not stale or time.monotonic() - last < self.min_refresh:
                return
        pending = self._loading.get(account)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loading[account] = future
        try:
            await self._load(account)
        finally:
            del self._loading[account]
            future.set_result(None)

    async def _load(self, account: str) -> None:
        url = self.url + account
        started = time.monotonic()
        try:
            if not is_public_key(account, Role.ACCOUNT):
                raise ResolverError("will only fetch valid account keys")
            self.requests += 1
            body = await asyncio.to_thread(self._get, url)
            text = parse_decorated(body)[0]
        except ResolverError as exc:
            self._errors[account] = str(exc)
            log.warning("Account fetch failed: %s", exc)
            return
        finally:
            self._fetched_at[account] = time.monotonic()
        elapsed = time.monotonic() - started
        log.log(
            logging.WARNING if elapsed > 1.0 else logging.DEBUG,
            "Account [%s] fetch took %.3fs",
            account,
            elapsed,
        )
        self._errors.pop(account, None)
        self._jwts[account] = text

    def _get(self, url: str) -> str:
        """GET ``url`` (in a worker thread); the body of a 200 answer, else ``ResolverError``."""
        try:
            with _OPENER.open(url, timeout=self.timeout) as response:
                status = response.status
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise ResolverError(f'could not fetch <"{url}">: {exc.code} {exc.reason}') from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ResolverError(f'could not fetch <"{url}">: {reason}') from None
        if status != 200:
            raise ResolverError(f'could not fetch <"{url}">: {status}')
        try:
            text: str = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ResolverError(f'could not fetch <"{url}">: the body is not text') from None
        return text


#: No proxies from the environment: the NATS server's account fetches use none either.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ResolverError(Exception):
    """An account JWT could not be fetched (``UrlResolver``)."""


Resolver = MemoryResolver | DirectoryResolver | UrlResolver


# -- accounts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """A ``user_scope`` signing key: its template replaces the user's permissions and limits."""

    key: str
    template: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Account:
    """A verified, trusted account JWT."""

    claims: Claims
    signers: frozenset[str]
    scopes: Mapping[str, Scope]

    @property
    def key(self) -> str:
        """The account's public key."""
        return self.claims.subject

    @property
    def limits(self) -> Mapping[str, Any]:
        """The ``limits`` object."""
        value = self.claims.nats.get("limits")
        return value if isinstance(value, Mapping) else {}

    def revoked(self, user: str, issued_at: int) -> bool:
        """Whether a JWT of ``user`` issued at ``issued_at`` is revoked (``>=``)."""
        revocations = self.claims.nats.get("revocations")
        if not isinstance(revocations, Mapping):
            return False
        for key in (user, "*"):
            when = revocations.get(key)
            if isinstance(when, int | float) and when >= issued_at:
                return True
        return False


@dataclass(slots=True)
class _Watch:
    identity_user: str
    account: str
    grant: UserGrant
    callback: Callable[[str], None]
    timer: asyncio.TimerHandle | None = None
    done: bool = False


@dataclass(slots=True)
class _Parsed:
    """A user JWT's permissions and limits (its own, or a scope template's)."""

    permissions: PermissionOptions | None
    bearer: bool
    connection_types: tuple[str, ...]
    src: tuple[str, ...]
    times: tuple[tuple[str, str], ...]
    times_location: str
    #: The user JWT's (or scope template's) ``subs``, ``payload`` and ``data``, as written.
    limits: dict[str, Any] = field(default_factory=dict)


class OperatorAuth:
    """Operator-mode authentication: trust roots, the resolver and live checks."""

    def __init__(self, options: Options, *, poll_interval: float = POLL_INTERVAL) -> None:
        self.poll_interval = poll_interval
        self.max_payload = options.max_payload
        self.max_subscriptions = options.max_subscriptions
        self.operators: list[Claims] = [_load_operator(o) for o in options.operators]
        trusted: set[str] = set(options.trusted_keys)
        strict: set[str] = set()
        for op in self.operators:
            nats = op.nats
            if nats.get("strict_signing_key_usage"):
                strict.update(_keys(nats.get("signing_keys")))
            else:
                trusted.add(op.subject)
            trusted.update(_keys(nats.get("signing_keys")))
        self.trusted = frozenset(trusted)
        self._strict = frozenset(strict)
        self.system_account = self._system_account(options)
        self.resolver = self._resolver(options)
        self._accounts: dict[str, tuple[str, Account]] = {}
        self._watches: dict[str, dict[int, _Watch]] = {}
        self._next_watch = 0
        self._polling = False
        if self.system_account is not None and isinstance(self.resolver, MemoryResolver):
            token = self.resolver.fetch(self.system_account)
            if token is None:
                raise OperatorError(
                    f"Can't set system account: account {self.system_account} "
                    "has no JWT in resolver_preload"
                )

    # -- configuration ---------------------------------------------------------------

    def _system_account(self, options: Options) -> str | None:
        from_jwts = {
            str(op.nats["system_account"]) for op in self.operators if op.nats.get("system_account")
        }
        configured = options.system_account
        if configured is not None:
            if from_jwts and configured not in from_jwts:
                raise OperatorError("system_account in config and operator JWT must be identical")
            return configured
        if len(self.operators) == 1 and from_jwts:
            return from_jwts.pop()
        return None

    def _resolver(self, options: Options) -> Resolver:
        preload: dict[str, str] = {}
        for key, token in options.resolver_preload.items():
            try:
                claims = decode(token, "account")
            except JWTError as exc:
                raise OperatorError(
                    f"invalid account JWT for {key} in resolver_preload: {exc}"
                ) from None
            if claims.subject != key:
                raise OperatorError(
                    f"resolver_preload key {key} does not match the JWT's subject {claims.subject}"
                )
            try:
                check_times(claims)
            except JWTError as exc:
                log.warning("preloaded account %s: %s", key, exc)
            preload[key] = token
        resolver = options.resolver
        if resolver is None:
            raise OperatorError("operators require an account resolver to be configured")
        if resolver.kind == "memory":
            return MemoryResolver(preload)
        if resolver.kind in ("full", "cache") and resolver.dir:
            os.makedirs(resolver.dir, exist_ok=True)
            return DirectoryResolver(resolver.dir, preload)
        if resolver.kind == "url" and resolver.url:
            return UrlResolver(resolver.url)
        raise OperatorError(f"the {resolver.kind} account resolver is not supported")

    # -- accounts -----------------------------------------------------------------------

    async def prepare(self, token: str | None) -> None:
        """Fetch the account of the user JWT ``token`` when the resolver is a URL.

        Called before ``authenticate`` (which stays synchronous); a no-op for
        the other resolvers and for tokens that do not decode (``authenticate``
        refuses those with the reason).
        """
        resolver = self.resolver
        if not isinstance(resolver, UrlResolver) or not token:
            return
        try:
            user = decode(token, "user")
        except JWTError:
            return
        issuer_account = user.nats.get("issuer_account")
        key = issuer_account if isinstance(issuer_account, str) and issuer_account else user.issuer
        stale = False
        cached = self._accounts.get(key)
        if cached is not None and cached[0] == resolver.fetch(key):
            try:
                check_times(cached[1].claims)
            except JWTError:
                stale = True  # expired: the NATS server fetches it again
        await resolver.load(key, stale=stale)

    def account(self, key: str) -> Account:
        """The verified, trusted and currently valid account ``key``; raises ``Refused``.

        Every refusal here is ``not_authorized``: the user's JWT verified, but
        its account could not be established (MQTT 5.0 answers 0x87).
        """
        token = self.resolver.fetch(key)
        if token is None:
            why = self.resolver.error(key) if isinstance(self.resolver, UrlResolver) else None
            raise Refused(
                f"Account JWT lookup error: {why or f'no JWT for account {key}'}",
                not_authorized=True,
            )
        cached = self._accounts.get(key)
        if cached is not None and cached[0] == token:
            account = cached[1]
        else:
            try:
                account = self._load_account(key, token)
            except Refused:
                if isinstance(self.resolver, UrlResolver):
                    self.resolver.forget(key)  # fetched again for the next client
                raise
            self._accounts[key] = (token, account)
        try:
            check_times(account.claims)
        except JWTError as exc:
            raise Refused(
                f"Account JWT lookup error: account {key}: {exc}", not_authorized=True
            ) from None
        return account

    def account_name(self, key: str) -> str | None:
        """The name in account ``key``'s JWT, once a client of it has been authenticated."""
        cached = self._accounts.get(key)
        return cached[1].claims.name or None if cached is not None else None

    def _load_account(self, key: str, token: str) -> Account:
        try:
            claims = decode(token, "account")
        except JWTError as exc:
            raise Refused(
                f"Account JWT lookup error: account {key}: {exc}", not_authorized=True
            ) from None
        if claims.issuer not in self.trusted:
            raise Refused(
                f"Account JWT lookup error: account {key} is not issued by a trusted operator",
                not_authorized=True,
            )
        if claims.subject != key:
            raise Refused(
                f"Account JWT lookup error: JWT subject {claims.subject} is not {key}",
                not_authorized=True,
            )
        signers: set[str] = set()
        if claims.issuer not in self._strict:
            signers.add(key)
        scopes: dict[str, Scope] = {}
        raw = claims.nats.get("signing_keys")
        for item in raw if isinstance(raw, list) else []:
            if isinstance(item, str):
                signers.add(item)
            elif isinstance(item, Mapping) and isinstance(item.get("key"), str):
                signers.add(item["key"])
                if item.get("kind") == "user_scope":
                    template = item.get("template")
                    scopes[item["key"]] = Scope(
                        item["key"], template if isinstance(template, Mapping) else {}
                    )
        return Account(claims, frozenset(signers), scopes)

    # -- authentication -------------------------------------------------------------------

    def authenticate(
        self,
        kind: ConnectionType,
        token: str | None,
        signature: str | None,
        nonce: bytes | None,
        address: str | None,
        now: float | None = None,
    ) -> tuple[Claims, Account, _Parsed, UserGrant]:
        """Run the validation chain; raises ``Refused`` with the reason."""
        now = time.time() if now is None else now
        if not token:
            raise Refused("Authentication requires a user JWT")
        try:
            user = decode(token, "user")
        except JWTError as exc:
            raise Refused(f"User JWT not valid: {exc}") from None
        nats = user.nats
        if nats.get("proxy_required"):
            raise Refused("user requires a trusted proxy, none configured", not_authorized=True)
        try:
            check_times(user, now)
        except JWTError as exc:
            raise Refused(f"User JWT no longer valid: {exc}") from None
        _validate_user(nats)
        issuer_account = nats.get("issuer_account")
        account_key = (
            issuer_account if isinstance(issuer_account, str) and issuer_account else user.issuer
        )
        account = self.account(account_key)
        if user.issuer not in account.signers:
            raise Refused(
                f"User JWT issuer {user.issuer} is not the account {account_key} "
                "or one of its signing keys"
            )
        scope = account.scopes.get(user.issuer)
        if scope is not None:
            if not _empty_permissions(nats):
                raise Refused("scoped users require no permissions or limits set")
            parsed = _parse_limits(_expand(scope.template, user, account))
        else:
            parsed = _parse_limits(nats)
        if parsed.permissions is None:
            default = account.claims.nats.get("default_permissions")
            if isinstance(default, Mapping):
                parsed.permissions = _permissions(default)
        if parsed.bearer and account.limits.get("disallow_bearer"):
            raise Refused("bearer tokens are not allowed by the account", not_authorized=True)
        if parsed.connection_types:
            known = {t.upper() for t in parsed.connection_types} & _KNOWN_TYPES
            if not known:
                raise Refused(
                    "Connection type not allowed: no known type listed", not_authorized=True
                )
            if kind.value not in known:
                raise Refused(f"Connection type not allowed: {kind.value}", not_authorized=True)
        if not parsed.bearer:
            if kind in _MQTT_KINDS:
                raise Refused(
                    "Signature missing: MQTT clients cannot sign the nonce, "
                    "their user JWT must be a bearer token",
                    not_authorized=True,
                )
            if not signature or nonce is None:
                raise Refused("Signature missing")
            try:
                verify(user.subject, nonce, decode_signature(signature), Role.USER)
            except NKeyError as exc:
                raise Refused(f"Signature not verified: {exc}") from None
        if account.revoked(user.subject, user.issued_at):
            raise Refused(f"User {user.subject} has been revoked", not_authorized=True)
        if parsed.src and not _source_allowed(parsed.src, address):
            raise Refused(
                f"client address {address} is not in src {list(parsed.src)}", not_authorized=True
            )
        window_end: float | None = None
        if parsed.times:
            window_end = _window_end(parsed.times, parsed.times_location, now)
            if window_end is None:
                raise Refused("connection outside the allowed times", not_authorized=True)
        limit = account.limits.get("conn")
        if isinstance(limit, int) and limit >= 0 and self.connections(account.key) >= limit:
            raise Refused(
                f"maximum account active connections ({limit}) exceeded", not_authorized=True
            )
        grant = _grant(user, account, parsed.bearer, window_end)
        return user, account, parsed, grant

    def identity_parts(
        self,
        kind: ConnectionType,
        token: str | None,
        signature: str | None,
        nonce: bytes | None,
        address: str | None,
    ) -> tuple[str, str, Permissions, User, UserGrant, Limits]:
        """``authenticate``, returned as the parts of an ``Identity``.

        (name = the user's public key, account key, permissions, a ``User``
        describing the JWT, the grant, the connection's limits.)
        """
        user, account, parsed, grant = self.authenticate(kind, token, signature, nonce, address)
        types = frozenset(
            ConnectionType(t.upper()) for t in parsed.connection_types if t.upper() in _KNOWN_TYPES
        )
        model = User(
            username=user.name or None,
            nkey=user.subject,
            permissions=parsed.permissions,
            allowed_connection_types=types,
            account=account.key,
        )
        limits = connection_limits(
            parsed.limits,
            account.limits,
            user_version=user.version,
            account_version=account.claims.version,
            max_payload=self.max_payload,
            max_subscriptions=self.max_subscriptions,
        )
        return user.subject, account.key, Permissions(parsed.permissions), model, grant, limits

    # -- live checks ------------------------------------------------------------------------

    def connections(self, account: str) -> int:
        """Watched (connected) clients of ``account``."""
        return len(self._watches.get(account, {}))

    def watch(self, grant: UserGrant, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(err_text)`` once when ``grant`` expires or is revoked; returns the cancel."""
        loop = asyncio.get_running_loop()
        self._next_watch += 1
        number = self._next_watch
        entry = _Watch(grant.user, grant.account, grant, callback)
        self._watches.setdefault(grant.account, {})[number] = entry
        if grant.expires is not None:
            delay = max(0.0, grant.expires - time.time())
            entry.timer = loop.call_later(delay, self._fire, entry, grant.expiry_reason)
        if isinstance(self.resolver, DirectoryResolver) and not self._polling:
            self._polling = True
            loop.call_later(self.poll_interval, self._poll)

        def cancel() -> None:
            entry.done = True
            if entry.timer is not None:
                entry.timer.cancel()
            watches = self._watches.get(grant.account)
            if watches is not None:
                watches.pop(number, None)
                if not watches:
                    del self._watches[grant.account]

        return cancel

    def _fire(self, entry: _Watch, reason: str) -> None:
        if entry.done:
            return
        entry.done = True
        if entry.timer is not None:
            entry.timer.cancel()
        log.info("user %s of account %s: %s", entry.identity_user, entry.account, reason)
        try:
            entry.callback(reason)
        except Exception:
            log.exception("revocation callback failed")

    def _poll(self) -> None:
        self._polling = False
        if not self._watches:
            return
        try:
            self.reload()
        finally:
            if self._watches and not self._polling:
                self._polling = True
                asyncio.get_running_loop().call_later(self.poll_interval, self._poll)

    def reload(self, accounts: Iterable[str] | None = None) -> None:
        """Re-read changed account JWTs and end the watched users they no longer admit."""
        changed = list(self.resolver.changed()) if accounts is None else list(accounts)
        for key in changed:
            self._accounts.pop(key, None)
            watches = self._watches.get(key)
            if not watches:
                continue
            log.info("account %s changed: rechecking %d connection(s)", key, len(watches))
            try:
                account = self.account(key)
            except Refused as exc:
                log.warning("account %s is no longer valid: %s", key, exc.reason)
                for entry in list(watches.values()):
                    self._fire(entry, ERR_ACCOUNT_EXPIRED)
                continue
            for entry in list(watches.values()):
                grant = entry.grant
                disallowed = grant.bearer and account.limits.get("disallow_bearer")
                if disallowed or account.revoked(grant.user, grant.issued_at):
                    self._fire(entry, ERR_REVOKED)


# -- helpers -------------------------------------------------------------------------------


def _load_operator(value: str) -> Claims:
    text = value
    if os.path.isfile(value):
        try:
            with open(value, encoding="utf-8") as f:
                text = parse_decorated(f.read())[0]
        except (OSError, UnicodeDecodeError) as exc:
            raise OperatorError(f"error parsing operator JWT: {exc}") from None
    try:
        return decode(text, "operator")
    except JWTError as exc:
        raise OperatorError(f"error parsing operator JWT: {exc}") from None


def _keys(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _subject_ok(subject: str, queue_allowed: bool) -> bool:
    parts = subject.split(" ")
    if len(parts) > (2 if queue_allowed else 1) or not parts[0]:
        return False
    s = parts[0]
    return not (s.startswith(".") or s.endswith(".") or ".." in s)


def _validate_user(nats: Mapping[str, Any]) -> None:
    for direction, queue in (("pub", False), ("sub", True)):
        perm = nats.get(direction)
        if isinstance(perm, Mapping):
            for which in ("allow", "deny"):
                for subject in _strings(perm.get(which)):
                    if not _subject_ok(subject, queue):
                        raise Refused(f'User JWT not valid: bad {direction} subject "{subject}"')
    for cidr in _strings(nats.get("src")):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise Refused(f'User JWT not valid: invalid src "{cidr}"') from None
    issuer_account = nats.get("issuer_account")
    if issuer_account and not (
        isinstance(issuer_account, str) and is_public_key(issuer_account, Role.ACCOUNT)
    ):
        raise Refused("User JWT not valid: issuer_account is not an account key")


def _subject_permission(value: Any) -> SubjectPermission | None:
    if not isinstance(value, Mapping):
        return None
    allow = _strings(value.get("allow")) or None  # Go omits an empty allow list
    deny = _strings(value.get("deny"))
    if allow is None and not deny:
        return None
    return SubjectPermission(allow=allow, deny=deny)


def _permissions(nats: Mapping[str, Any]) -> PermissionOptions | None:
    pub = _subject_permission(nats.get("pub"))
    sub = _subject_permission(nats.get("sub"))
    resp_raw = nats.get("resp")
    resp: ResponsePermission | None = None
    if isinstance(resp_raw, Mapping):
        max_msgs = resp_raw.get("max")
        ttl = resp_raw.get("ttl")
        resp = ResponsePermission(
            max_msgs=max_msgs if isinstance(max_msgs, int) and max_msgs != 0 else _DEFAULT_RESP_MAX,
            expires=ttl / 1e9 if isinstance(ttl, int | float) and ttl > 0 else _DEFAULT_RESP_TTL,
        )
    if pub is None and sub is None and resp is None:
        return None
    if resp is not None and (pub is None or pub.allow is None):
        pub = SubjectPermission(allow=(), deny=pub.deny if pub else ())
    return PermissionOptions(publish=pub, subscribe=sub, allow_responses=resp)


def _parse_limits(nats: Mapping[str, Any]) -> _Parsed:
    times: list[tuple[str, str]] = []
    raw_times = nats.get("times")
    for item in raw_times if isinstance(raw_times, list) else []:
        if not isinstance(item, Mapping):
            raise Refused("User JWT not valid: bad times entry")
        start, end = item.get("start"), item.get("end")
        if not (isinstance(start, str) and isinstance(end, str)):
            raise Refused("User JWT not valid: times entries need start and end")
        _clock(start)
        _clock(end)
        times.append((start, end))
    location = nats.get("times_location")
    return _Parsed(
        permissions=_permissions(nats),
        bearer=bool(nats.get("bearer_token")),
        connection_types=_strings(nats.get("allowed_connection_types")),
        src=_strings(nats.get("src")),
        times=tuple(times),
        times_location=location if isinstance(location, str) else "",
        limits={name: nats[name] for name in ("subs", "payload", "data") if name in nats},
    )


def _empty_permissions(nats: Mapping[str, Any]) -> bool:
    for name in ("pub", "sub"):
        value = nats.get(name)
        if isinstance(value, Mapping) and (value.get("allow") or value.get("deny")):
            return False
    for name in (
        "resp",
        "src",
        "times",
        "times_location",
        "allowed_connection_types",
        "bearer_token",
    ):
        if nats.get(name):
            return False
    return all(not nats.get(name) for name in ("subs", "data", "payload"))


def _tags(claims: Claims) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    raw = claims.nats.get("tags")
    for tag in raw if isinstance(raw, list) else []:
        if isinstance(tag, str) and ":" in tag:
            name, _, value = tag.partition(":")
            out.setdefault(name.lower(), []).append(value)
    return out


def _expand(template: Mapping[str, Any], user: Claims, account: Account) -> dict[str, Any]:
    """The template with ``{{name()}}``, ``{{subject()}}``, ``{{tag(x)}}`` ... expanded."""
    user_tags, account_tags = _tags(user), _tags(account.claims)

    def values(fn: str, arg: str) -> list[str]:
        if fn == "name":
            return [user.name]
        if fn == "subject":
            return [user.subject]
        if fn == "account-name":
            return [account.claims.name]
        if fn == "account-subject":
            return [account.key]
        if fn == "tag":
            return user_tags.get(arg.lower(), [])
        if fn == "account-tag":
            return account_tags.get(arg.lower(), [])
        raise Refused(f"scope template: unknown function {fn}()")

    def expand_one(subject: str) -> list[str]:
        match = _TEMPLATE.search(subject)
        if match is None:
            return [subject]
        options = values(match.group(1), match.group(2))
        if not options or any(not v or " " in v for v in options):
            raise Refused(f'scope template: "{subject}" generated an invalid subject')
        out: list[str] = []
        for value in options:
            out.extend(expand_one(subject[: match.start()] + value + subject[match.end() :]))
        return out

    result = dict(template)
    for direction in ("pub", "sub"):
        perm = template.get(direction)
        if isinstance(perm, Mapping):
            expanded: dict[str, Any] = {}
            for which in ("allow", "deny"):
                if perm.get(which) is not None:
                    expanded[which] = [x for s in _strings(perm[which]) for x in expand_one(s)]
            result[direction] = expanded
    return result


def _source_allowed(cidrs: tuple[str, ...], address: str | None) -> bool:
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(c, strict=False) for c in cidrs)


def _clock(text: str) -> tuple[int, int, int]:
    try:
        h, m, s = (int(p) for p in text.split(":"))
    except ValueError:
        raise Refused(f'User JWT not valid: bad time "{text}" (HH:MM:SS)') from None
    if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 60):
        raise Refused(f'User JWT not valid: bad time "{text}" (HH:MM:SS)')
    return h, m, s


def _window_end(windows: tuple[tuple[str, str], ...], location: str, now: float) -> float | None:
    """The UNIX time the current ``times`` window ends, or None when outside every window."""
    try:
        zone = ZoneInfo(location) if location else None
    except (ZoneInfoNotFoundError, ValueError):
        raise Refused(f'User JWT not valid: unknown times_location "{location}"') from None
    current = (
        datetime.fromtimestamp(now, zone) if zone else datetime.fromtimestamp(now).astimezone()
    )
    for start_text, end_text in windows:
        sh, sm, ss = _clock(start_text)
        eh, em, es = _clock(end_text)
        for day in (-1, 0):
            base = current + timedelta(days=day)
            start = base.replace(hour=sh, minute=sm, second=ss, microsecond=0)
            end = base.replace(hour=eh, minute=em, second=es, microsecond=0)
            if end <= start:
                end += timedelta(days=1)
            if start < current < end:
                return end.timestamp()
    return None


def _grant(user: Claims, account: Account, bearer: bool, window_end: float | None) -> UserGrant:
    deadlines: list[tuple[float, str]] = []
    if user.expires:
        deadlines.append((user.expires + 1.0, ERR_USER_EXPIRED))
    if account.claims.expires:
        deadlines.append((account.claims.expires + 1.0, ERR_ACCOUNT_EXPIRED))
    if window_end is not None:
        deadlines.append((window_end, ERR_USER_EXPIRED))
    expires, reason = min(deadlines) if deadlines else (None, ERR_USER_EXPIRED)
    return UserGrant(user.subject, account.key, user.issued_at, bearer, expires, reason)
