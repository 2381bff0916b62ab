"""Building ``Options`` from a parsed file: the top-level keys, ``jetstream``, ``upstream``, cross checks.

``build_options`` reads every block, then checks what spans blocks (users
defined twice, ``no_auth_user`` naming a user that does not exist, operator
mode mixed with users or accounts, MQTT without JetStream), and raises one
``ConfigErrors`` listing every mistake in document order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import conf
from conf.errors import ConfigErrors
from conf.values import ConfMap, Position
from gateway.options.auth import parse_accounts, parse_authorization
from gateway.options.listeners import parse_mqtt, parse_tls, parse_websocket
from gateway.options.model import (
    DEFAULT_AUTH_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONTROL_LINE,
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_MAX_PENDING,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_MAX,
    DEFAULT_PORT,
    DEFAULT_WRITE_DEADLINE,
    Authorization,
    JetStreamOptions,
    MQTTOptions,
    Options,
    UpstreamLogin,
    UpstreamOptions,
    User,
    WebsocketOptions,
)
from gateway.options.operator import (
    parse_operators,
    parse_resolver,
    parse_resolver_preload,
    parse_trusted_keys,
)
from gateway.options.reader import (
    Block,
    Context,
    Entry,
    as_bool,
    as_duration,
    as_int,
    as_listen,
    as_map,
    as_port,
    as_size,
    as_str,
    as_str_list,
    check_int32,
    items_of,
    position_of,
    suggest,
)

_TOP_KEYS: dict[str, tuple[str, ...]] = {
    "listen": (),
    "host": ("net",),
    "port": (),
    "server_name": (),
    "debug": (),
    "trace": (),
    "trace_verbose": (),
    "logtime": (),
    "log_file": ("logfile",),
    "pid_file": ("pidfile",),
    "max_payload": (),
    "max_connections": ("max_conn",),
    "max_subscriptions": ("max_subs",),
    "max_control_line": (),
    "max_pending": (),
    "ping_interval": (),
    "ping_max": (),
    "write_deadline": (),
    "lame_duck_duration": (),
    "tls": (),
    "allow_non_tls": (),
    "http": (),
    "https": (),
    "http_port": ("monitor_port",),
    "https_port": (),
    "http_base_path": (),
    "store_dir": ("storedir",),
    "jetstream": (),
    "authorization": (),
    "no_auth_user": (),
    "accounts": (),
    "operator": ("operators", "root", "roots", "root_operator", "root_operators"),
    "trusted_keys": ("trusted",),
    "system_account": ("system",),
    "resolver": ("account_resolver", "accounts_resolver"),
    "resolver_preload": (),
    "websocket": ("ws",),
    "mqtt": (),
    "upstream": (),
}
#: Top-level keys of the NATS server that jetgate accepts and ignores, with a warning.
_TOP_IGNORED = (
    "cluster",
    "gateway",
    "leaf",
    "leafnodes",
    "mappings",
    "maps",
    "client_advertise",
    "disable_sublist_cache",
    "no_sublist_cache",
    "logtime_utc",
    "logfile_size_limit",
    "log_size_limit",
    "logfile_max_num",
    "log_max_num",
    "syslog",
    "remote_syslog",
    "ports_file_dir",
    "prof_port",
    "prof_block_rate",
    "max_traced_msg_len",
    "max_sub_tokens",
    "max_subscription_tokens",
    "ocsp",
    "ocsp_cache",
    "lame_duck_grace_period",
    "resolver_tls",
    "resolver_pinned_accounts",
    "no_system_account",
    "no_system",
    "no_sys_acc",
    "no_header_support",
    "connect_error_reports",
    "reconnect_error_reports",
    "server_tags",
    "default_js_domain",
    "max_closed_clients",
    "disable_short_first_ping",
    "server_metadata",
    "write_timeout",
    "no_fast_producer_stall",
    "proxies",
    "default_sentinel",
    "max_outstanding_catchup",
    "tls_handshake_first",
)
_JS_KEYS: dict[str, tuple[str, ...]] = {
    "store_dir": ("store", "storedir"),
    "max_memory_store": ("max_mem_store", "max_mem"),
    "max_file_store": ("max_file",),
    "domain": (),
    "enabled": ("enable",),
}
_JS_IGNORED = (
    "key",
    "ek",
    "encryption_key",
    "prev_key",
    "prev_encryption_key",
    "cipher",
    "extension_hint",
    "max_buffered_msgs",
    "max_buffered_size",
    "request_queue_limit",
    "sync_interval",
    "sync_always",
    "max_outstanding_catchup",
    "max_catchup",
    "compress_ok",
    "unique_tag",
    "tpm",
    "limits",
    "strict",
    "max_ack_pending",
    "max_request_batch",
    "duplicate_window",
    "max_ha_assets",
    "js_api_level",
    "meta_compact",
    "meta_compact_size",
    "meta_compact_sync",
)
_UPSTREAM_KEYS: dict[str, tuple[str, ...]] = {
    "urls": ("url",),
    "user": ("username",),
    "password": ("pass",),
    "token": (),
    "creds": ("credentials",),
    "nkey": (),
    "tls": (),
    "js_domain": (),
    "accounts": (),
}
_UPSTREAM_LOGIN_KEYS: dict[str, tuple[str, ...]] = {
    "user": ("username",),
    "password": ("pass",),
    "token": (),
    "creds": ("credentials",),
    "nkey": (),
}
_UPSTREAM_SCHEMES = ("nats", "tls", "ws", "wss")


def _jetstream(ctx: Context, e: Entry, store_dir: Entry | None) -> JetStreamOptions | None:
    value = e.value
    if isinstance(value, bool):
        return JetStreamOptions(enabled=value)
    if isinstance(value, str):
        if value.lower() in ("enabled", "enable"):
            return JetStreamOptions()
        if value.lower() in ("disabled", "disable"):
            return JetStreamOptions(enabled=False)
        ctx.error(e.pos, f"Expected 'enabled' or 'disabled' for string value, got '{value}'")
        return None
    js_map = as_map(ctx, e)
    if js_map is None:
        return None
    b = Block(ctx, js_map, "the jetstream block", _JS_KEYS, _JS_IGNORED)
    out: dict[str, Any] = {}
    if (entry := b.get("store_dir")) is not None:
        if store_dir is not None:
            ctx.error(
                entry.pos, f"Duplicate 'store_dir' configuration (also set at {store_dir.pos})"
            )
        else:
            out["store_dir"] = as_str(ctx, entry, allow_empty=False)
    for key, field in (("max_memory_store", "max_memory"), ("max_file_store", "max_store")):
        if (entry := b.get(key)) is not None:
            out[field] = as_size(ctx, entry, low=-1)
    if (entry := b.get("domain")) is not None:
        out["domain"] = as_str(ctx, entry) or None
    if (entry := b.get("enabled")) is not None:
        out["enabled"] = as_bool(ctx, entry)
    return JetStreamOptions(**{k: v for k, v in out.items() if v is not None})


def _upstream_url(ctx: Context, url: str, pos: Position) -> bool:
    parts = urlsplit(url.strip())
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme.lower() not in _UPSTREAM_SCHEMES or not parts.hostname or not port_ok:
        ctx.error(
            pos,
            f'upstream url "{url}" must be a nats://, tls://, ws:// or wss:// URL '
            "with a host (and an optional port)",
        )
        return False
    return True


def _upstream(ctx: Context, e: Entry) -> UpstreamOptions | None:
    up_map = as_map(ctx, e)
    if up_map is None:
        return None
    b = Block(ctx, up_map, "the upstream block", _UPSTREAM_KEYS)
    urls: tuple[str, ...] = ()
    if (entry := b.get("urls")) is None:
        ctx.error(e.pos, 'the upstream block needs urls, e.g. urls: ["nats://localhost:4222"]')
    elif (values := as_str_list(ctx, entry, allow_empty=False)) is not None:
        positions = (
            [p for _, p in items_of(entry.value, entry.pos)]
            if isinstance(entry.value, list)
            else [entry.pos]
        )
        urls = tuple(u for u, p in zip(values, positions, strict=True) if _upstream_url(ctx, u, p))
    out = _upstream_login(ctx, b, e, "the upstream block", "the upstream password")
    if (entry := b.get("js_domain")) is not None:
        out["js_domain"] = as_str(ctx, entry) or None
    if (entry := b.get("tls")) is not None:
        out["tls"] = parse_tls(ctx, entry, "upstream")
    if (entry := b.get("accounts")) is not None:
        out["accounts"] = _upstream_accounts(ctx, entry)
    return UpstreamOptions(urls=urls, **{k: v for k, v in out.items() if v is not None})


def _upstream_login(ctx: Context, b: Block, e: Entry, where: str, password: str) -> dict[str, Any]:
    """``user``/``password``, ``token``, ``creds`` or ``nkey`` of an upstream login."""
    out: dict[str, Any] = {}
    for name in ("user", "password", "token"):
        if (entry := b.get(name)) is not None:
            out[name] = as_str(ctx, entry) or None
    for name in ("creds", "nkey"):
        if (entry := b.get(name)) is not None and (path := as_str(ctx, entry, allow_empty=False)):
            if os.path.isfile(path):
                out[name] = path
            else:
                ctx.error(entry.pos, f'{entry.key} file "{path}" does not exist or is not a file')
    given = [name for name in ("user", "token", "creds", "nkey") if name in b]
    if len(given) > 1:
        ctx.error(e.pos, f"{where} may log in one way only, got {' and '.join(given)}")
    if "password" in b and "user" not in b:
        ctx.error(e.pos, f"{password} needs a user")
    return out


def _upstream_accounts(ctx: Context, e: Entry) -> Mapping[str, UpstreamLogin]:
    """``upstream { accounts { <account>: { user/password | token | creds | nkey } } }``."""
    accounts_map = as_map(ctx, e)
    if accounts_map is None:
        return MappingProxyType({})
    out: dict[str, UpstreamLogin] = {}
    for name, value in accounts_map.items():
        entry = Entry(name, value, position_of(accounts_map, name))
        login_map = as_map(ctx, entry)
        if login_map is None:
            continue
        where = f'the upstream login of account "{name}"'
        b = Block(ctx, login_map, where, _UPSTREAM_LOGIN_KEYS)
        login = _upstream_login(ctx, b, entry, where, f'the password of account "{name}"')
        if not login:
            ctx.error(entry.pos, f"{where} needs user/password, token, creds or nkey")
            continue
        out[name] = UpstreamLogin(**{k: v for k, v in login.items() if v is not None})
    return MappingProxyType(out)


def _http(ctx: Context, e: Entry) -> tuple[str | None, int | None]:
    parts = as_listen(ctx, e)
    return parts if parts is not None else (None, None)


def _scalars(ctx: Context, b: Block, out: dict[str, Any]) -> None:
    """The top-level options that are one value each."""
    if (entry := b.get("listen")) is not None and (parts := as_listen(ctx, entry)) is not None:
        if parts[0] is not None:
            out["host"] = parts[0]
        if parts[1] is not None:
            out["port"] = parts[1]
    if (entry := b.get("host")) is not None and (host := as_str(ctx, entry)) is not None:
        out["host"] = host or DEFAULT_HOST
    if (entry := b.get("port")) is not None and (port := as_port(ctx, entry)) is not None:
        out["port"] = port or DEFAULT_PORT
    for name in ("server_name", "log_file", "pid_file", "http_base_path"):
        if (entry := b.get(name)) is not None:
            out[name] = as_str(ctx, entry)
    for name in ("debug", "trace", "logtime", "allow_non_tls"):
        if (entry := b.get(name)) is not None:
            out[name] = as_bool(ctx, entry)
    if (entry := b.get("trace_verbose")) is not None and as_bool(ctx, entry):
        out["trace"] = True
    defaults = {
        "max_payload": DEFAULT_MAX_PAYLOAD,
        "max_pending": DEFAULT_MAX_PENDING,
        "max_control_line": DEFAULT_MAX_CONTROL_LINE,
    }
    for name, default in defaults.items():
        if (entry := b.get(name)) is not None:
            size = check_int32(ctx, entry, as_size(ctx, entry, low=0))
            out[name] = None if size is None else size or default
    if (entry := b.get("max_connections")) is not None:
        conns = as_int(ctx, entry, low=0)
        out["max_connections"] = None if conns is None else conns or DEFAULT_MAX_CONNECTIONS
    if (entry := b.get("max_subscriptions")) is not None:
        out["max_subscriptions"] = as_int(ctx, entry, low=0)
    if (entry := b.get("ping_max")) is not None:
        ping_max = as_int(ctx, entry, low=0)
        out["ping_max"] = None if ping_max is None else ping_max or DEFAULT_PING_MAX
    for name, default_seconds in (
        ("ping_interval", DEFAULT_PING_INTERVAL),
        ("write_deadline", DEFAULT_WRITE_DEADLINE),
    ):
        if (entry := b.get(name)) is not None:
            seconds = as_duration(ctx, entry, name=name)
            out[name] = None if seconds is None else seconds or default_seconds
    if (entry := b.get("lame_duck_duration")) is not None:
        seconds = as_duration(ctx, entry, name="lame_duck_duration", warn_number=False)
        if seconds is not None and seconds < 30:
            ctx.error(entry.pos, "invalid lame_duck_duration, minimum is 30 seconds")
        else:
            out["lame_duck_duration"] = seconds
    if (entry := b.get("http")) is not None:
        out["http_host"], out["http_port"] = _http(ctx, entry)
    if (entry := b.get("https")) is not None:
        out["http_host"], out["https_port"] = _http(ctx, entry)
    for name in ("http_port", "https_port"):
        if (entry := b.get(name)) is not None:
            out[name] = as_port(ctx, entry)


def _operator_mode(ctx: Context, b: Block, out: dict[str, Any]) -> None:
    positions: dict[str, Position] = {}
    for name in ("system_account", "resolver"):
        if (entry := b.get(name)) is not None:
            positions[name] = entry.pos
    if (entry := b.get("operator")) is not None:
        out["operators"] = parse_operators(ctx, entry)
        values = entry.value if isinstance(entry.value, list) else [entry.value]
        for value, pos in items_of(values, entry.pos):
            positions.setdefault(f"operator:{value}", pos)
    if (entry := b.get("trusted_keys")) is not None:
        out["trusted_keys"] = parse_trusted_keys(ctx, entry)
        if "operator" in b:
            ctx.error(entry.pos, "trusted_keys can not be combined with operator")
    if (entry := b.get("system_account")) is not None:
        out["system_account"] = as_str(ctx, entry, allow_empty=False)
    if (entry := b.get("resolver")) is not None:
        out["resolver"] = parse_resolver(ctx, entry)
    if (entry := b.get("resolver_preload")) is not None:
        out["resolver_preload"] = parse_resolver_preload(ctx, entry)
        if isinstance(entry.value, ConfMap):
            for key in entry.value:
                positions[f"resolver_preload:{key}"] = entry.value.pos(key)
        resolver = out.get("resolver")
        if resolver is not None and resolver.kind == "url":
            ctx.error(
                entry.pos,
                "resolver preloads only available for writeable resolver types MEM/DIR/CACHE_DIR",
            )
    if positions:
        out["operator_positions"] = MappingProxyType(positions)


def _cross_checks(
    ctx: Context, b: Block, options: Options, no_auth: list[tuple[Entry, str]]
) -> None:
    """Checks that span blocks."""
    first: dict[str, User] = {}
    for user in options.users:
        earlier = first.get(user.name)
        if earlier is None:
            first[user.name] = user
            continue
        pos = user.position or Position("<unknown>", 0, 0)
        kind = "nkey" if user.nkey else "user"
        ctx.error(
            pos, f'Duplicate {kind} "{user.name}" detected (first defined at {earlier.position})'
        )
    if options.operator_mode:
        if options.accounts and (entry := b.get("accounts")) is not None:
            ctx.error(entry.pos, "operators do not allow Accounts to be configured directly")
        if options.authorization.users and (entry := b.get("authorization")) is not None:
            ctx.error(entry.pos, "operators do not allow users to be configured directly")
        if (
            (entry := b.get("system_account")) is not None
            and options.system_account
            and not options.system_account.startswith("A")
        ):
            ctx.error(
                entry.pos,
                f'system_account "{options.system_account}" must be a public '
                "account nkey in operator mode",
            )
    elif (entry := b.get("system_account")) is not None and options.system_account:
        names = [a.name for a in options.accounts]
        if options.system_account not in names:
            ctx.error(
                entry.pos,
                f'system_account "{options.system_account}" is not a defined '
                f"account{suggest(options.system_account, names)}",
            )
    accounts_entry = _sub_entry(b.get("upstream"), "accounts")
    if (
        options.upstream is not None
        and not options.operator_mode
        and accounts_entry is not None
        and isinstance(accounts_entry.value, ConfMap)
    ):
        names = [a.name for a in options.accounts]
        for name in options.upstream.accounts:
            if name not in names:
                ctx.error(
                    accounts_entry.value.pos(name),
                    f'upstream login for "{name}", which is not a defined '
                    f"account{suggest(name, names)}",
                )
    if (entry := b.get("resolver")) is not None and not options.operator_mode:
        ctx.warn(entry.pos, "resolver has no effect without an operator, ignored")
    for entry, name in no_auth:
        if options.operator_mode:
            ctx.error(entry.pos, "no_auth_user not allowed in operator mode")
        elif name not in first:
            known = sorted(first)
            listing = f"; known users: {', '.join(known)}" if known else "; no users are defined"
            ctx.error(
                entry.pos,
                f'no_auth_user "{name}" is not a known user{suggest(name, known)}{listing}',
            )
    mqtt_auth = options.mqtt.authorization
    if mqtt_auth and (mqtt_auth.user or mqtt_auth.token) and options.users:
        entry = b.get("mqtt")
        ctx.error(
            entry.pos if entry else Position("<unknown>", 0, 0),
            "mqtt authentication username not compatible with presence of users/nkeys",
        )
    if (
        options.mode == "embedded"
        and options.mqtt.enabled
        and not options.jetstream.enabled
        and (entry := b.get("jetstream")) is not None
    ):
        ctx.error(entry.pos, "mqtt requires JetStream to be enabled in embedded mode")


def _no_auth_entries(ctx: Context, entries: list[Entry | None]) -> list[tuple[Entry, str]]:
    out: list[tuple[Entry, str]] = []
    for entry in entries:
        if entry is not None and (user := as_str(ctx, entry)):
            out.append((entry, user))
    return out


def _sub_entry(parent: Entry | None, key: str) -> Entry | None:
    """The entry ``key`` (any case) of the map held by ``parent``."""
    if parent is None or not isinstance(parent.value, ConfMap):
        return None
    for name, value in parent.value.items():
        if name.lower() == key:
            return Entry(name, value, parent.value.pos(name))
    return None


def build_options(conf_map: ConfMap) -> Options:
    """Typed options from a parsed configuration; raises ``ConfigErrors`` listing every mistake."""
    ctx = Context()
    b = Block(ctx, conf_map, "the top level", _TOP_KEYS, _TOP_IGNORED)
    out: dict[str, Any] = {}
    _scalars(ctx, b, out)
    store_dir = b.get("store_dir")
    if store_dir is not None:
        path = as_str(ctx, store_dir, allow_empty=False)
        if path:
            out["jetstream"] = JetStreamOptions(store_dir=path)
    if (entry := b.get("jetstream")) is not None:
        js = _jetstream(ctx, entry, store_dir)
        if js is not None and "jetstream" in out:
            js = JetStreamOptions(
                enabled=js.enabled,
                store_dir=out["jetstream"].store_dir,
                max_memory=js.max_memory,
                max_store=js.max_store,
                domain=js.domain,
            )
        out["jetstream"] = js
    if (entry := b.get("tls")) is not None:
        out["tls"] = parse_tls(ctx, entry, "top-level")
    no_auth_entry = b.get("no_auth_user")
    if (entry := b.get("authorization")) is not None:
        auth_args, inner_no_auth = parse_authorization(ctx, entry)
        if "timeout" not in auth_args:
            tls = out.get("tls")
            auth_args["timeout"] = tls.timeout + 1.0 if tls is not None else DEFAULT_AUTH_TIMEOUT
        out["authorization"] = Authorization(**auth_args)
        if inner_no_auth is not None and no_auth_entry is not None:
            ctx.error(
                inner_no_auth.pos,
                f"no_auth_user is set both here and at the top level ({no_auth_entry.pos})",
            )
        no_auth_entry = no_auth_entry or inner_no_auth
    elif out.get("tls") is not None:
        out["authorization"] = Authorization(timeout=out["tls"].timeout + 1.0)
    if (entry := b.get("accounts")) is not None:
        out["accounts"] = parse_accounts(ctx, entry)
    _operator_mode(ctx, b, out)
    if (entry := b.get("websocket")) is not None:
        out["websocket"] = parse_websocket(ctx, entry) or WebsocketOptions()
    if (entry := b.get("mqtt")) is not None:
        out["mqtt"] = parse_mqtt(ctx, entry) or MQTTOptions()
    if (entry := b.get("upstream")) is not None:
        out["upstream"] = _upstream(ctx, entry)
    no_auth = _no_auth_entries(
        ctx,
        [
            no_auth_entry,
            _sub_entry(b.get("mqtt"), "no_auth_user"),
            _sub_entry(b.get("websocket"), "no_auth_user"),
        ],
    )
    if no_auth and no_auth[0][0] is no_auth_entry:
        out["no_auth_user"] = no_auth[0][1]
    options = Options(
        source=None if conf_map.origin.file.startswith("<") else conf_map.origin.file,
        **{k: v for k, v in out.items() if v is not None},
    )
    _cross_checks(ctx, b, options, no_auth)
    if ctx.errors:
        ctx.errors.sort(key=lambda err: (err.file, err.line, err.column))
        raise ConfigErrors(ctx.errors)
    return _with_warnings(options, ctx.formatted_warnings())


def _with_warnings(options: Options, warnings: tuple[str, ...]) -> Options:
    return dataclasses.replace(options, warnings=warnings)


def load_options(path: str | None) -> Options:
    """Options from the file at ``path``, or the built-in embedded defaults for ``None``.

    The defaults: NATS clients on 0.0.0.0:4222, MQTT on 0.0.0.0:1883, the log
    in ``./data/jetstream``, no authentication. Raises ``ConfigError`` (or
    ``ConfigErrors``) for a file that cannot be read or is wrong.
    """
    if path is None:
        return Options()
    options = build_options(conf.load(path))
    if options.source is None:
        options = dataclasses.replace(options, source=path)
    return options


__all__ = ["build_options", "load_options"]
