"""The one user table every listener authenticates against (config mode).

Built once from ``Options``. ``authenticate(kind, credentials, nonce)`` follows
the NATS server's order of checks (``shared/reference/nats-mqtt.md`` 5.2-5.4):

1. no credentials at all and a ``no_auth_user`` (the listener's own, else the
   top-level one): that user;
2. an nkey (NATS clients): the nkey user, with the nonce signature verified;
3. a user name known to the ``users`` lists: its password (plain, compared in
   constant time, or bcrypt);
4. simple auth: the listener's ``authorization`` override if it has one, else
   the top-level token or single user/password;

and at every step the user's ``allowed_connection_types`` must include the
connection's kind. MQTT clients pass their password as both password and
token. A failure raises ``AuthenticationFailed`` with the reason for the log;
protocols answer with their own code, never the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bcrypt

from gateway.auth.jwt import UserGrant
from gateway.auth.limiter import FailureLimiter
from gateway.auth.limits import UNLIMITED, Limits
from gateway.auth.nkeys import NKeyError, Role, decode_signature, verify
from gateway.auth.operator import OperatorAuth, Refused
from gateway.auth.permissions import Permissions
from gateway.options.model import ConnectionType, Options, SimpleAuth, User
from gateway.tls.identity import candidate_names

GLOBAL_ACCOUNT = "$G"
_MQTT_KINDS = frozenset({ConnectionType.MQTT, ConnectionType.MQTT_WS})
_BCRYPT_CACHE_SIZE = 4096
_UNRESTRICTED = Permissions(None)


class AuthenticationFailed(Exception):
    """Credentials refused; ``reason`` is for the log only.

    ``not_authorized`` distinguishes "who you are is known but may not connect
    this way" (MQTT 5.0 0x87) from bad credentials (0x86).
    """

    def __init__(self, reason: str, *, not_authorized: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_authorized = not_authorized


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client presented, whatever its protocol."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    nkey: str | None = None
    signature: str | None = field(default=None, repr=False)
    jwt: str | None = field(default=None, repr=False)

    @property
    def empty(self) -> bool:
        """Whether the client presented nothing at all."""
        return not (self.username or self.password or self.token or self.nkey or self.jwt)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection is: name, account and compiled permissions."""

    name: str
    account: str = GLOBAL_ACCOUNT
    permissions: Permissions = _UNRESTRICTED
    user: User | None = None
    method: str = "none"
    grant: UserGrant | None = None
    """Operator mode: what the user JWT granted (expiry deadline, issue time)."""
    limits: Limits = UNLIMITED
    """Operator mode: the connection's limits from the user and account JWTs.

    ``limits.subscriptions`` and ``limits.payload`` already include the server's
    ``max_subscriptions`` and ``max_payload`` (``None`` = unlimited); outside
    operator mode they are ``None`` and only those server options apply. Every
    protocol must enforce them as the NATS server does (``gateway.auth.limits``):

    - ``subscriptions == 0``: accept, then close the connection at once (NATS:
      ``-ERR 'maximum subscriptions exceeded'``);
    - a subscription beyond ``subscriptions``: refused, the connection stays
      (NATS: ``-ERR 'maximum subscriptions exceeded'``; MQTT: SUBACK failure,
      5.0 0x97 Quota exceeded, 3.1.1 0x80);
    - a publish whose payload is over ``payload`` bytes: the connection is
      closed (NATS: ``-ERR 'Maximum Payload Violation'``; MQTT: as a packet over
      the maximum packet size, 5.0 DISCONNECT 0x95).
    """

    @property
    def expires(self) -> float | None:
        """UNIX time at which the connection must end (operator mode), or None."""
        return None if self.grant is None else self.grant.expires


ANONYMOUS = Identity("")


class UserTable:
    """Users, nkeys and simple credentials from ``Options``, and the checks against them."""

    def __init__(self, options: Options) -> None:
        self._by_name: dict[str, User] = {}
        self._by_nkey: dict[str, User] = {}
        for user in options.users:
            if user.nkey:
                self._by_nkey[user.nkey] = user
            if user.username:
                self._by_name[user.username] = user
        self._identities: dict[int, Identity] = {}
        top = options.authorization
        self._top = SimpleAuth(top.user, top.password, top.token)
        self._mqtt_override = options.mqtt.authorization
        self._ws_override = options.websocket.authorization
        self._no_auth = options.no_auth_user
        self._mqtt_no_auth = options.mqtt.no_auth_user
        self._ws_no_auth = options.websocket.no_auth_user
        self._cert_maps = certificate_maps(options)
        self._bcrypt_ok: dict[tuple[str, bytes], None] = {}
        self.limiter = FailureLimiter()
        self._top_required = bool(
            self._by_name or self._by_nkey or top.user or top.token or options.operator_mode
        )
        self.operator: OperatorAuth | None = None
        """Operator mode: JWT authentication (``gateway.auth.operator``)."""
        if options.operator_mode:
            self.operator = OperatorAuth(options)

    # -- what applies to a connection kind --------------------------------

    def _override(self, kind: ConnectionType) -> SimpleAuth | None:
        if kind in _MQTT_KINDS:
            return self._mqtt_override
        if kind is ConnectionType.WEBSOCKET:
            return self._ws_override
        return None

    def _no_auth_user(self, kind: ConnectionType) -> str | None:
        if kind in _MQTT_KINDS and self._mqtt_no_auth:
            return self._mqtt_no_auth
        if kind is ConnectionType.WEBSOCKET and self._ws_no_auth:
            return self._ws_no_auth
        return self._no_auth

    def auth_required(self, kind: ConnectionType) -> bool:
        """Whether clients of ``kind`` must present credentials (INFO ``auth_required``)."""
        override = self._override(kind)
        has_override = override is not None and bool(override.user or override.token)
        return (
            self._top_required
            or has_override
            or bool(self._no_auth_user(kind))
            or kind in self._cert_maps
        )

    # -- authentication ----------------------------------------------------

    async def authenticate(
        self,
        kind: ConnectionType,
        credentials: Credentials,
        nonce: bytes | None = None,
        address: str | None = None,
        *,
        certificate: Mapping[str, Any] | None = None,
    ) -> Identity:
        """The identity for ``credentials`` on a connection of ``kind``; bcrypt off the loop.

        With ``address``, failures are counted per address and an address with
        too many recent failures is refused without a check (``limiter``).
        ``certificate`` is the client's TLS certificate (``getpeercert()``); on
        a listener with ``verify_and_map`` it alone names the user.
        """
        if address is not None and self.limiter.blocked(address):
            raise AuthenticationFailed(f"too many authentication failures from {address}")
        try:
            if kind in self._cert_maps:
                identity = self._certificate_identity(kind, certificate)
            elif self.operator is not None:
                await self.operator.prepare(credentials.jwt)  # URL resolver: fetch the account
                identity = self._jwt_identity(kind, credentials, nonce, address)
            else:
                identity = await self._authenticate(kind, credentials, nonce)
        except AuthenticationFailed:
            if address is not None:
                self.limiter.failed(address)
            raise
        if address is not None:
            self.limiter.succeeded(address)
        return identity

    async def _authenticate(
        self, kind: ConnectionType, credentials: Credentials, nonce: bytes | None
    ) -> Identity:
        user = self._find_password_user(kind, credentials)
        if user is not None and user.password_is_bcrypt:
            assert user.password is not None
            password = credentials.password or ""
            if not await asyncio.to_thread(self._bcrypt_matches, user.password, password):
                raise AuthenticationFailed(f'bad password for user "{user.username}"')
            return self._identity(user, "password")
        return self.authenticate_now(kind, credentials, nonce)

    def authenticate_now(
        self, kind: ConnectionType, credentials: Credentials, nonce: bytes | None = None
    ) -> Identity:
        """``authenticate`` without leaving the thread (bcrypt, if any, runs here)."""
        if not self.auth_required(kind):
            return ANONYMOUS
        if credentials.empty:
            name = self._no_auth_user(kind)
            if name is None:
                raise AuthenticationFailed("no credentials presented")
            user = self._by_name.get(name) or self._by_nkey.get(name)
            if user is None:
                raise AuthenticationFailed(f'no_auth_user "{name}" is not a user')
            self._check_kind(user, kind)
            return self._identity(user, "no_auth_user")
        if credentials.nkey:
            return self._nkey_identity(kind, credentials, nonce)
        user = self._find_password_user(kind, credentials)
        if user is not None:
            assert user.password is not None
            if not self._password_matches(user.password, credentials.password or ""):
                raise AuthenticationFailed(f'bad password for user "{user.username}"')
            return self._identity(user, "password")
        return self._simple(kind, credentials)

    def _find_password_user(self, kind: ConnectionType, credentials: Credentials) -> User | None:
        """The ``users`` entry named by the credentials, checked for kind and a password."""
        if credentials.nkey or not credentials.username or not self._by_name:
            return None
        user = self._by_name.get(credentials.username)
        if user is None:
            return None
        self._check_kind(user, kind)
        if not user.password:
            raise AuthenticationFailed(f'user "{user.username}" has no password to check')
        return user

    def _certificate_identity(
        self, kind: ConnectionType, certificate: Mapping[str, Any] | None
    ) -> Identity:
        """``verify_and_map``: the first user the certificate names (``gateway.tls.identity``)."""
        if not certificate:
            raise AuthenticationFailed("no client certificate to map", not_authorized=True)
        names = candidate_names(certificate, self._cert_maps[kind])
        for name in names:
            user = self._by_name.get(name)
            if user is not None:
                self._check_kind(user, kind)
                return self._identity(user, "certificate")
        raise AuthenticationFailed(
            f"no user for the client certificate (tried {', '.join(map(repr, names)) or 'nothing'})",
            not_authorized=True,
        )

    def _nkey_identity(
        self, kind: ConnectionType, credentials: Credentials, nonce: bytes | None
    ) -> Identity:
        assert credentials.nkey is not None
        user = self._by_nkey.get(credentials.nkey)
        if user is None:
            raise AuthenticationFailed(f'unknown nkey "{credentials.nkey}"')
        self._check_kind(user, kind)
        if nonce is None or not credentials.signature:
            raise AuthenticationFailed("nkey presented without a nonce signature")
        try:
            verify(user.nkey or "", nonce, decode_signature(credentials.signature), Role.USER)
        except NKeyError as exc:
            raise AuthenticationFailed(f'nkey "{credentials.nkey}": {exc}') from None
        return self._identity(user, "nkey")

    def _simple(self, kind: ConnectionType, credentials: Credentials) -> Identity:
        override = self._override(kind)
        auth = override if override is not None and (override.user or override.token) else None
        auth = auth or self._top
        if auth.token:
            if _equal(credentials.token or credentials.password or "", auth.token):
                return Identity("", method="token")
            raise AuthenticationFailed("bad token")
        if auth.user:
            if credentials.username == auth.user and self._password_matches(
                auth.password or "", credentials.password or ""
            ):
                return Identity(auth.user, method="password")
            raise AuthenticationFailed(f'bad user name or password for "{credentials.username}"')
        raise AuthenticationFailed(f'unknown user "{credentials.username}"')

    def _jwt_identity(
        self,
        kind: ConnectionType,
        credentials: Credentials,
        nonce: bytes | None,
        address: str | None,
    ) -> Identity:
        """Operator mode: the user JWT's identity (``OperatorAuth``)."""
        assert self.operator is not None
        try:
            name, account, permissions, user, grant, limits = self.operator.identity_parts(
                kind, credentials.jwt, credentials.signature, nonce, address
            )
        except Refused as exc:
            raise AuthenticationFailed(exc.reason, not_authorized=exc.not_authorized) from None
        return Identity(name, account, permissions, user, "jwt", grant, limits)

    def watch(self, identity: Identity, on_end: Callable[[str], None]) -> Callable[[], None]:
        """Operator mode: ``on_end(err_text)`` once ``identity`` expires or is revoked.

        Returns the function to call when the connection ends; a no-op outside operator mode.
        """
        if self.operator is None or identity.grant is None:
            return _nothing
        return self.operator.watch(identity.grant, on_end)

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _check_kind(user: User, kind: ConnectionType) -> None:
        if not user.allows(kind):
            raise AuthenticationFailed(
                f'user "{user.name}" may not connect over {kind.value}', not_authorized=True
            )

    def _identity(self, user: User, method: str) -> Identity:
        key = id(user)
        cached = self._identities.get(key)
        if cached is None or cached.method != method:
            cached = Identity(
                user.name,
                user.account or GLOBAL_ACCOUNT,
                Permissions(user.permissions),
                user,
                method,
            )
            self._identities[key] = cached
        return cached

    def _password_matches(self, stored: str, given: str) -> bool:
        if stored[:4] in ("$2a$", "$2b$", "$2y$"):
            return self._bcrypt_matches(stored, given)
        return _equal(given, stored)

    def _bcrypt_matches(self, stored: str, given: str) -> bool:
        # Only successes are remembered (keyed by a digest, never the password),
        # so a reconnect storm does not pay bcrypt's cost per connection.
        key = (stored, hashlib.sha256(given.encode()).digest())
        if key in self._bcrypt_ok:
            return True
        try:
            ok = bcrypt.checkpw(given.encode(), stored.encode())
        except ValueError:
            return False
        if ok:
            if len(self._bcrypt_ok) >= _BCRYPT_CACHE_SIZE:
                self._bcrypt_ok.pop(next(iter(self._bcrypt_ok)))
            self._bcrypt_ok[key] = None
        return ok


def _nothing() -> None:
    return None


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def certificate_maps(options: Options) -> dict[ConnectionType, str | None]:
    """Connection kinds whose ``tls`` block has ``verify_and_map``, with its ``map_field``."""
    out: dict[ConnectionType, str | None] = {}
    blocks = (
        (options.tls, (ConnectionType.STANDARD,)),
        (options.mqtt.tls, (ConnectionType.MQTT,)),
        (
            None if options.websocket.no_tls else options.websocket.tls,
            (ConnectionType.WEBSOCKET, ConnectionType.MQTT_WS),
        ),
    )
    for tls, kinds in blocks:
        if tls is not None and tls.verify_and_map:
            for kind in kinds:
                out[kind] = tls.map_field
    return out
