"""The typed, frozen options of jetgate, as built from a configuration file.

Every class here is a frozen dataclass: build them with ``build_options`` and
change them with ``dataclasses.replace`` (or ``Options.with_overrides`` for the
command line flags). Durations are float seconds; sizes are bytes; a port of
``-1`` asks for a random (ephemeral) port, as in the NATS server, and
``bind_port`` turns it into the ``0`` that sockets understand.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from conf.values import Position

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 4222
DEFAULT_MQTT_PORT = 1883
#: Where the embedded log lives unless ``store_dir`` says otherwise; relative
#: paths (here and in files) are relative to the working directory, as in the
#: NATS server.
DEFAULT_STORE_DIR = "./data/jetstream"
DEFAULT_MAX_PAYLOAD = 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 64 * 1024
DEFAULT_MAX_CONTROL_LINE = 4096
DEFAULT_MAX_PENDING = 64 * 1024 * 1024
DEFAULT_PING_INTERVAL = 120.0
DEFAULT_PING_MAX = 2
DEFAULT_WRITE_DEADLINE = 10.0
DEFAULT_TLS_TIMEOUT = 2.0
DEFAULT_AUTH_TIMEOUT = 2.0
DEFAULT_MQTT_ACK_WAIT = 30.0
DEFAULT_MQTT_MAX_ACK_PENDING = 1024
DEFAULT_MQTT_JS_API_TIMEOUT = 5.0
DEFAULT_WS_HANDSHAKE_TIMEOUT = 2.0
DEFAULT_RESPONSE_MAX_MSGS = 1
DEFAULT_RESPONSE_EXPIRES = 120.0


def _empty_map() -> Mapping[str, str]:
    return MappingProxyType({})


def bind_port(port: int) -> int:
    """The port to bind: ``-1`` (random) becomes ``0`` (ephemeral)."""
    return 0 if port < 0 else port


class ConnectionType(enum.StrEnum):
    """The kinds of client connection a user may be limited to (``allowed_connection_types``)."""

    STANDARD = "STANDARD"
    WEBSOCKET = "WEBSOCKET"
    LEAFNODE = "LEAFNODE"
    LEAFNODE_WS = "LEAFNODE_WS"
    MQTT = "MQTT"
    MQTT_WS = "MQTT_WS"
    IN_PROCESS = "IN_PROCESS"


@dataclass(frozen=True)
class TLSOptions:
    """A ``tls {}`` block: certificate files, client verification and handshake limits."""

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    verify: bool = False
    verify_and_map: bool = False
    verify_cert_and_check_known_urls: bool = False
    insecure: bool = False
    timeout: float = DEFAULT_TLS_TIMEOUT
    pinned_certs: tuple[str, ...] = ()
    min_version: str | None = None
    cipher_suites: tuple[str, ...] = ()
    curve_preferences: tuple[str, ...] = ()
    handshake_first: bool = False
    handshake_first_fallback: float | None = None
    connection_rate_limit: int = 0
    #: jetgate's own keys: the certificate field that names the user (``email``,
    #: ``dns``, ``dn`` or ``cn``; ``None`` is the NATS server's order), the lists
    #: of authorized and revoked client certificates (SHA-256 fingerprints, PEM
    #: files, directories of PEM files), and the built-in CA's directory.
    map_field: str | None = None
    authorized: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()
    authorized_only: bool = False
    trust_authorized: bool = False
    ca_dir: str | None = None
    #: Where each key was written, for errors found when the files are read.
    positions: Mapping[str, Position] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )

    @property
    def builtin_ca(self) -> bool:
        """Whether the broker certificate comes from the built-in CA (no ``cert_file``)."""
        return self.cert_file is None

    @property
    def wants_client_certificate(self) -> bool:
        """Whether clients must present a certificate on this listener."""
        return self.verify or bool(self.pinned_certs) or self.authorized_only


@dataclass(frozen=True)
class SubjectPermission:
    """Allow and deny lists for publish or subscribe; ``allow=None`` allows everything."""

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResponsePermission:
    """``allow_responses``: may publish ``max_msgs`` replies within ``expires`` seconds."""

    max_msgs: int = DEFAULT_RESPONSE_MAX_MSGS
    expires: float = DEFAULT_RESPONSE_EXPIRES


@dataclass(frozen=True)
class Permissions:
    """A user's ``permissions``: publish, subscribe and dynamic reply permissions."""

    publish: SubjectPermission | None = None
    subscribe: SubjectPermission | None = None
    allow_responses: ResponsePermission | None = None


@dataclass(frozen=True)
class User:
    """One entry of a ``users`` list: a name and password, or an nkey.

    ``account`` is the account block the user was defined in (``None`` for the
    global account of the top-level ``authorization`` block).
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    nkey: str | None = None
    permissions: Permissions | None = None
    allowed_connection_types: frozenset[ConnectionType] = frozenset()
    account: str | None = None
    position: Position | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """The name the user is known by: the user name, or else the nkey."""
        return self.username or self.nkey or ""

    @property
    def password_is_bcrypt(self) -> bool:
        """Whether ``password`` is a bcrypt hash (``$2a$``, ``$2b$``, ``$2y$``)."""
        return self.password is not None and self.password[:4] in ("$2a$", "$2b$", "$2y$")

    def allows(self, connection_type: ConnectionType) -> bool:
        """Whether this user may connect over ``connection_type`` (an empty set allows all)."""
        return not self.allowed_connection_types or connection_type in self.allowed_connection_types


@dataclass(frozen=True)
class Authorization:
    """The top-level ``authorization {}`` block.

    At most one of a single ``user``/``password``, a ``token`` or a ``users``
    list is set. ``timeout`` is already resolved to its default.
    """

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_AUTH_TIMEOUT
    users: tuple[User, ...] = ()
    default_permissions: Permissions | None = None


@dataclass(frozen=True)
class SimpleAuth:
    """The ``authorization {}`` override of the ``mqtt`` and ``websocket`` blocks.

    ``timeout`` is ``None`` when not given: the top-level timeout applies.
    """

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    timeout: float | None = None


@dataclass(frozen=True)
class AccountJetStream:
    """An account's ``jetstream`` limits; -1 means unlimited."""

    max_memory: int = -1
    max_store: int = -1
    max_streams: int = -1
    max_consumers: int = -1
    max_bytes_required: bool = False


@dataclass(frozen=True)
class AccountLimits:
    """An account's ``limits {}``; 0 means the server-wide limit."""

    max_connections: int = 0
    max_subscriptions: int = 0
    max_payload: int = 0


@dataclass(frozen=True)
class Export:
    """An account export of a ``stream`` or ``service`` subject, to some accounts or to all."""

    kind: Literal["stream", "service"]
    subject: str
    accounts: tuple[str, ...] = ()
    response_type: Literal["singleton", "stream", "chunked"] = "singleton"


@dataclass(frozen=True)
class Import:
    """An account import of another account's stream or service."""

    kind: Literal["stream", "service"]
    account: str
    subject: str
    to: str | None = None
    prefix: str | None = None
    share: bool = False


@dataclass(frozen=True)
class Account:
    """One entry of the ``accounts {}`` block."""

    name: str
    nkey: str | None = None
    users: tuple[User, ...] = ()
    exports: tuple[Export, ...] = ()
    imports: tuple[Import, ...] = ()
    jetstream: AccountJetStream | None = None
    default_permissions: Permissions | None = None
    limits: AccountLimits = AccountLimits()


@dataclass(frozen=True)
class Resolver:
    """The operator-mode account resolver: ``MEMORY``, ``URL(...)`` or a full/cache directory."""

    kind: Literal["memory", "url", "full", "cache"]
    url: str | None = None
    dir: str | None = None
    allow_delete: bool = False
    hard_delete: bool = False
    limit: int = 0
    ttl: float = 0.0
    interval: float = 0.0
    timeout: float = 0.0


@dataclass(frozen=True)
class JetStreamOptions:
    """The ``jetstream`` block: where the embedded log is kept and how big it may grow (-1 = no limit)."""

    enabled: bool = True
    store_dir: str = DEFAULT_STORE_DIR
    max_memory: int = -1
    max_store: int = -1
    domain: str | None = None


@dataclass(frozen=True)
class MQTTOptions:
    """The ``mqtt {}`` block, with the NATS server's keys and defaults.

    Unlike the NATS server, jetgate listens for MQTT on 1883 when the block is
    absent; ``port: 0`` turns MQTT off. ``ack_wait`` and ``max_ack_pending``
    are already resolved (a written 0 means the default).
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_MQTT_PORT
    tls: TLSOptions | None = None
    no_auth_user: str | None = None
    authorization: SimpleAuth | None = None
    ack_wait: float = DEFAULT_MQTT_ACK_WAIT
    max_ack_pending: int = DEFAULT_MQTT_MAX_ACK_PENDING
    js_domain: str | None = None
    stream_replicas: int = 0
    consumer_replicas: int = 0
    consumer_memory_storage: bool = False
    consumer_inactive_threshold: float = 0.0
    js_api_timeout: float = DEFAULT_MQTT_JS_API_TIMEOUT
    reject_qos2_publish: bool = False
    downgrade_qos2_subscribe: bool = False
    consumer_mode: str = "subscription"
    """``subscription``: one durable consumer per QoS >= 1 subscription (per NATS subject);
    ``session``: one durable consumer per session, with a filter subject per subscription."""

    @property
    def enabled(self) -> bool:
        """Whether the MQTT listener is on."""
        return self.port != 0


@dataclass(frozen=True)
class WebsocketOptions:
    """The ``websocket {}`` block (off unless a port is given)."""

    host: str = DEFAULT_HOST
    port: int = 0
    advertise: str | None = None
    no_tls: bool = False
    tls: TLSOptions | None = None
    same_origin: bool = False
    allowed_origins: tuple[str, ...] = ()
    compression: bool = False
    handshake_timeout: float = DEFAULT_WS_HANDSHAKE_TIMEOUT
    authorization: SimpleAuth | None = None
    no_auth_user: str | None = None
    jwt_cookie: str | None = None
    user_cookie: str | None = None
    pass_cookie: str | None = None
    token_cookie: str | None = None
    headers: Mapping[str, str] = field(default_factory=_empty_map)
    ping_interval: float | None = None

    @property
    def enabled(self) -> bool:
        """Whether the WebSocket listener is on."""
        return self.port != 0


@dataclass(frozen=True)
class UpstreamLogin:
    """How one local account logs in to the upstream NATS servers (``upstream { accounts }``)."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds: str | None = None
    nkey: str | None = None


@dataclass(frozen=True)
class UpstreamOptions:
    """jetgate's own ``upstream {}`` block: the NATS servers to front, and how to log in.

    The block's own login serves the global account; ``accounts`` maps other
    local accounts (by name, or by public key in operator mode) to a login of
    their own, so that each gets its own connection to (and account in) NATS.
    """

    urls: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds: str | None = None
    nkey: str | None = None
    tls: TLSOptions | None = None
    js_domain: str | None = None
    accounts: Mapping[str, UpstreamLogin] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )


@dataclass(frozen=True)
class Options:
    """Everything jetgate is configured with; ``mode`` follows from ``upstream``.

    ``warnings`` holds one ``FILE:LINE:COL: message`` string per warning found
    while reading the file. ``source`` is the file read, if any.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    server_name: str | None = None
    max_payload: int = DEFAULT_MAX_PAYLOAD
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_subscriptions: int = 0
    max_control_line: int = DEFAULT_MAX_CONTROL_LINE
    max_pending: int = DEFAULT_MAX_PENDING
    ping_interval: float = DEFAULT_PING_INTERVAL
    ping_max: int = DEFAULT_PING_MAX
    write_deadline: float = DEFAULT_WRITE_DEADLINE
    lame_duck_duration: float = 120.0
    tls: TLSOptions | None = None
    allow_non_tls: bool = False
    debug: bool = False
    trace: bool = False
    logtime: bool = True
    log_file: str | None = None
    pid_file: str | None = None
    http_host: str = DEFAULT_HOST
    http_port: int = 0
    https_port: int = 0
    http_base_path: str = ""
    jetstream: JetStreamOptions = JetStreamOptions()
    authorization: Authorization = Authorization()
    no_auth_user: str | None = None
    accounts: tuple[Account, ...] = ()
    operators: tuple[str, ...] = ()
    trusted_keys: tuple[str, ...] = ()
    system_account: str | None = None
    resolver: Resolver | None = None
    resolver_preload: Mapping[str, str] = field(default_factory=_empty_map)
    #: Where the operator-mode keys were written, for ``jetgate -t``'s JWT checks:
    #: ``operator:<value>`` (each operator), ``system_account``, ``resolver``,
    #: ``resolver_preload:<account key>``.
    operator_positions: Mapping[str, Position] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )
    websocket: WebsocketOptions = WebsocketOptions()
    mqtt: MQTTOptions = MQTTOptions()
    upstream: UpstreamOptions | None = None
    source: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def mode(self) -> Literal["embedded", "upstream"]:
        """``"upstream"`` with an ``upstream`` block, else ``"embedded"``."""
        return "upstream" if self.upstream is not None else "embedded"

    @property
    def operator_mode(self) -> bool:
        """Whether users are authenticated by JWTs from trusted operators."""
        return bool(self.operators or self.trusted_keys)

    @property
    def users(self) -> tuple[User, ...]:
        """Every user: those of ``authorization`` and those of each account."""
        out = list(self.authorization.users)
        for account in self.accounts:
            out.extend(account.users)
        return tuple(out)

    def with_overrides(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        mqtt_host: str | None = None,
        mqtt_port: int | None = None,
        http_port: int | None = None,
        store_dir: str | None = None,
        debug: bool | None = None,
        trace: bool | None = None,
        log_file: str | None = None,
    ) -> Options:
        """A copy with command line flags applied over the file; ``None`` keeps the file's value.

        Raises ``ValueError`` for a port outside ``-1..65535``.
        """
        for name, value in (("port", port), ("mqtt_port", mqtt_port), ("http_port", http_port)):
            if value is not None and not -1 <= value <= 65535:
                raise ValueError(
                    f"invalid {name} {value}: must be in 0..65535, or -1 for a random port"
                )
        changes: dict[str, object] = {}
        if host is not None:
            changes["host"] = host
        if port is not None:
            changes["port"] = port
        if http_port is not None:
            changes["http_port"] = http_port
        if debug is not None:
            changes["debug"] = debug
        if trace is not None:
            changes["trace"] = trace
        if log_file is not None:
            changes["log_file"] = log_file
        if mqtt_host is not None or mqtt_port is not None:
            changes["mqtt"] = dataclasses.replace(
                self.mqtt,
                host=self.mqtt.host if mqtt_host is None else mqtt_host,
                port=self.mqtt.port if mqtt_port is None else mqtt_port,
            )
        if store_dir is not None:
            changes["jetstream"] = dataclasses.replace(self.jetstream, store_dir=store_dir)
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
