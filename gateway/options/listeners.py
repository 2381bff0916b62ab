"""The ``tls``, ``mqtt`` and ``websocket`` blocks, and the simple ``authorization`` override.

Keys and defaults follow the NATS server (``server/opts.go``): ``mqtt``
accepts ``ack_wait``/``ackwait``, ``max_ack_pending``/``max_pending``/
``max_inflight`` (0..65535, 0 = 1024) and the JetStream tuning keys;
``websocket`` requires TLS unless ``no_tls`` is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.options.model import (
    DEFAULT_HOST,
    DEFAULT_MQTT_ACK_WAIT,
    DEFAULT_MQTT_JS_API_TIMEOUT,
    DEFAULT_MQTT_MAX_ACK_PENDING,
    DEFAULT_WS_HANDSHAKE_TIMEOUT,
    MQTTOptions,
    SimpleAuth,
    TLSOptions,
    WebsocketOptions,
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
    as_str,
    as_str_list,
    describe,
    position_of,
)

_TLS_KEYS: dict[str, tuple[str, ...]] = {
    "cert_file": (),
    "key_file": (),
    "ca_file": (),
    "verify": (),
    "verify_and_map": (),
    "verify_cert_and_check_known_urls": (),
    "insecure": (),
    "timeout": (),
    "pinned_certs": (),
    "min_version": (),
    "cipher_suites": (),
    "curve_preferences": (),
    "handshake_first": ("first", "immediate"),
    "connection_rate_limit": (),
    "map_field": ("cert_map_field",),
    "authorized": ("authorized_certs",),
    "revoked": ("revoked_certs",),
    "authorized_only": (),
    "trust_authorized": (),
    "ca_dir": (),
}
_TLS_IGNORED = (
    "ocsp_peer",
    "cert_store",
    "cert_match_by",
    "cert_match",
    "ca_certs_match",
    "cert_match_skip_invalid",
    "certs",
)
_PINNED = re.compile(r"^[0-9a-fA-F]{64}$")
_TLS_VERSIONS = ("1.2", "1.3")
_MAP_FIELDS = ("email", "dns", "dn", "cn")
_FINGERPRINT = re.compile(r"^(?:sha256:)?((?:[0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2})$")


def _certificate_list(ctx: Context, e: Entry) -> tuple[str, ...] | None:
    """``authorized``/``revoked``: SHA-256 fingerprints (hex, colons allowed) or paths.

    A fingerprint is kept as 64 lower-case hex digits; anything else must be an
    existing file (PEM certificates or fingerprints, one a line) or directory.
    """
    items = as_str_list(ctx, e)
    if items is None:
        return None
    out: list[str] = []
    for item in items:
        match = _FINGERPRINT.match(item.strip())
        if match:
            out.append(match.group(1).replace(":", "").lower())
        elif os.path.exists(item):
            out.append(item)
        else:
            ctx.error(
                e.pos,
                f'{e.key} entry "{item}" is neither a SHA-256 fingerprint nor an existing '
                "file or directory",
            )
    return tuple(out)


def _existing_file(ctx: Context, e: Entry) -> str | None:
    path = as_str(ctx, e, allow_empty=False)
    if path is not None and not os.path.isfile(path):
        ctx.error(e.pos, f'{e.key} "{path}" does not exist or is not a file')
        return None
    return path


def parse_tls(ctx: Context, e: Entry, where: str) -> TLSOptions | None:
    """A ``tls {}`` block; named files must exist, and a certificate needs its key."""
    tls_map = as_map(ctx, e)
    if tls_map is None:
        return None
    b = Block(ctx, tls_map, f"the {where} tls block", _TLS_KEYS, _TLS_IGNORED)
    out: dict[str, Any] = {}
    for name in ("cert_file", "key_file", "ca_file"):
        entry = b.get(name)
        if entry is not None:
            out[name] = _existing_file(ctx, entry)
    for name in ("verify", "verify_and_map", "verify_cert_and_check_known_urls", "insecure"):
        entry = b.get(name)
        if entry is not None and (flag := as_bool(ctx, entry)) is not None:
            out[name] = flag
    if out.get("verify_and_map") or out.get("verify_cert_and_check_known_urls"):
        out["verify"] = True
    if (entry := b.get("timeout")) is not None:
        timeout = as_duration(ctx, entry, name="tls timeout", warn_number=False)
        if timeout is not None:
            out["timeout"] = timeout
    if (entry := b.get("pinned_certs")) is not None and isinstance(entry.value, list):
        pins = as_str_list(ctx, entry)
        bad = [p for p in pins or () if not _PINNED.match(p)]
        if bad:
            ctx.error(
                entry.pos,
                f'pinned_certs entry "{bad[0]}" is not a hex-encoded SHA-256 '
                "of a DER SubjectPublicKeyInfo",
            )
        elif pins is not None:
            out["pinned_certs"] = tuple(p.lower() for p in pins)
    elif entry is not None:
        ctx.error(entry.pos, f'"{entry.key}" must be an array of hex-encoded SHA-256 digests')
    if (entry := b.get("min_version")) is not None and (version := as_str(ctx, entry)) is not None:
        if version not in _TLS_VERSIONS:
            ctx.error(entry.pos, f'unsupported min_version "{version}": must be "1.2" or "1.3"')
        else:
            out["min_version"] = version
    for name in ("cipher_suites", "curve_preferences"):
        if (entry := b.get(name)) is not None and (names := as_str_list(ctx, entry)) is not None:
            if not names:
                ctx.error(entry.pos, f"error parsing tls config, '{name}' cannot be empty")
            else:
                out[name] = names
    if (entry := b.get("handshake_first")) is not None:
        if isinstance(entry.value, bool):
            out["handshake_first"] = entry.value
        elif isinstance(entry.value, str) and entry.value.lower() == "auto":
            out["handshake_first"], out["handshake_first_fallback"] = True, 0.05
        else:
            fallback = as_duration(ctx, entry, name="handshake_first", warn_number=False)
            if fallback is not None:
                out["handshake_first"], out["handshake_first_fallback"] = True, fallback
    if (entry := b.get("connection_rate_limit")) is not None:
        limit = as_int(ctx, entry, low=0)
        if limit is not None:
            out["connection_rate_limit"] = limit
    _parse_tls_extensions(ctx, b, out)
    has_cert, has_key = "cert_file" in b, "key_file" in b
    if has_cert and not has_key:
        ctx.error(e.pos, "missing 'key_file' in TLS configuration")
    elif has_key and not has_cert:
        ctx.error(e.pos, "missing 'cert_file' in TLS configuration")
    positions = {name: entry.pos for name, entry in b.entries.items()}
    positions["tls"] = e.pos
    out["positions"] = MappingProxyType(positions)
    return TLSOptions(**{k: v for k, v in out.items() if v is not None})


def _parse_tls_extensions(ctx: Context, b: Block, out: dict[str, Any]) -> None:
    """jetgate's own ``tls`` keys: certificate mapping, certificate lists, built-in CA."""
    if (entry := b.get("map_field")) is not None and (name := as_str(ctx, entry)) is not None:
        if name.lower() not in _MAP_FIELDS:
            ctx.error(
                entry.pos, f'unknown map_field "{name}": must be one of {", ".join(_MAP_FIELDS)}'
            )
        else:
            # Mapping a field is verify_and_map restricted to that field.
            out["map_field"] = name.lower()
            out["verify_and_map"] = out["verify"] = True
    for name in ("authorized", "revoked"):
        if (entry := b.get(name)) is not None:
            out[name] = _certificate_list(ctx, entry)
    for name in ("authorized_only", "trust_authorized"):
        if (entry := b.get(name)) is not None:
            out[name] = as_bool(ctx, entry)
    if (entry := b.get("ca_dir")) is not None:
        out["ca_dir"] = as_str(ctx, entry, allow_empty=False)
    if (out.get("authorized_only") or out.get("trust_authorized")) and not out.get("authorized"):
        entry = b.get("authorized_only") or b.get("trust_authorized")
        assert entry is not None
        ctx.error(entry.pos, f'"{entry.key}" needs an "authorized" list')


_SIMPLE_AUTH_KEYS: dict[str, tuple[str, ...]] = {
    "user": ("username",),
    "password": ("pass",),
    "token": (),
    "timeout": (),
}


def parse_auth_timeout(ctx: Context, e: Entry) -> float | None:
    """An ``authorization`` ``timeout``: seconds as a number, or a duration string."""
    return as_duration(ctx, e, name="authorization timeout", warn_number=False)


def parse_simple_auth(ctx: Context, e: Entry, where: str) -> SimpleAuth | None:
    """The ``authorization`` override of ``mqtt``/``websocket``: user, password, token, timeout."""
    auth_map = as_map(ctx, e)
    if auth_map is None:
        return None
    b = Block(ctx, auth_map, f"the {where} authorization block", _SIMPLE_AUTH_KEYS)
    out: dict[str, Any] = {}
    for name in ("user", "password", "token"):
        if (entry := b.get(name)) is not None:
            out[name] = as_str(ctx, entry)
    if (entry := b.get("timeout")) is not None:
        timeout = parse_auth_timeout(ctx, entry)
        out["timeout"] = timeout if timeout else None  # 0: the top-level timeout applies
    if out.get("token") and (out.get("user") or out.get("password")):
        ctx.error(e.pos, "Cannot have a user/pass and token")
    return SimpleAuth(**out)


def _apply_listen(ctx: Context, b: Block, out: dict[str, Any]) -> None:
    """``listen``, ``host``/``net`` and ``port`` into ``out["host"]``/``out["port"]``."""
    if (entry := b.get("listen")) is not None and (parts := as_listen(ctx, entry)) is not None:
        host, port = parts
        if host is not None:
            out["host"] = host
        if port is not None:
            out["port"] = port
    if (entry := b.get("host")) is not None and (host := as_str(ctx, entry)) is not None:
        out["host"] = host or DEFAULT_HOST
    if (entry := b.get("port")) is not None and (port := as_port(ctx, entry)) is not None:
        out["port"] = port


_MQTT_KEYS: dict[str, tuple[str, ...]] = {
    "listen": (),
    "host": ("net",),
    "port": (),
    "tls": (),
    "authorization": ("authentication",),
    "no_auth_user": (),
    "ack_wait": ("ackwait",),
    "max_ack_pending": ("max_pending", "max_inflight"),
    "js_domain": (),
    "stream_replicas": (),
    "consumer_replicas": (),
    "consumer_memory_storage": (),
    "consumer_inactive_threshold": ("consumer_auto_cleanup",),
    "js_api_timeout": ("api_timeout",),
    "reject_qos2_publish": ("reject_qos2_pub",),
    "downgrade_qos2_subscribe": ("downgrade_qos2_sub",),
    "consumer_mode": (),
}

CONSUMER_MODES = ("subscription", "session")


def parse_mqtt(ctx: Context, e: Entry) -> MQTTOptions | None:
    """The ``mqtt {}`` block."""
    mqtt_map = as_map(ctx, e)
    if mqtt_map is None:
        return None
    b = Block(ctx, mqtt_map, "the mqtt block", _MQTT_KEYS)
    out: dict[str, Any] = {}
    _apply_listen(ctx, b, out)
    if (entry := b.get("tls")) is not None:
        out["tls"] = parse_tls(ctx, entry, "mqtt")
    if (entry := b.get("authorization")) is not None:
        out["authorization"] = parse_simple_auth(ctx, entry, "mqtt")
    for name in ("no_auth_user", "js_domain"):
        if (entry := b.get(name)) is not None:
            out[name] = as_str(ctx, entry) or None
    if (entry := b.get("ack_wait")) is not None:
        wait = as_duration(ctx, entry, name="ack_wait")
        if wait is not None:
            out["ack_wait"] = wait or DEFAULT_MQTT_ACK_WAIT
    if (entry := b.get("max_ack_pending")) is not None:
        pending = as_int(ctx, entry, low=0, high=0xFFFF)
        if pending is not None:
            out["max_ack_pending"] = pending or DEFAULT_MQTT_MAX_ACK_PENDING
    if (entry := b.get("stream_replicas")) is not None:
        out["stream_replicas"] = as_int(ctx, entry)
    if (entry := b.get("consumer_replicas")) is not None:
        replicas = as_int(ctx, entry)
        if replicas:
            ctx.warn(
                entry.pos,
                "consumer_replicas is ignored: MQTT consumers always take "
                "the replica count of their stream",
            )
        out["consumer_replicas"] = replicas
    for name in ("consumer_memory_storage", "reject_qos2_publish", "downgrade_qos2_subscribe"):
        if (entry := b.get(name)) is not None:
            out[name] = as_bool(ctx, entry)
    if (entry := b.get("consumer_inactive_threshold")) is not None:
        out["consumer_inactive_threshold"] = as_duration(
            ctx, entry, name="consumer_inactive_threshold"
        )
    if (entry := b.get("js_api_timeout")) is not None:
        timeout = as_duration(ctx, entry, name="js_api_timeout")
        if timeout is not None:
            out["js_api_timeout"] = timeout or DEFAULT_MQTT_JS_API_TIMEOUT
    if (entry := b.get("consumer_mode")) is not None:
        mode = as_str(ctx, entry)
        if mode is not None:
            if mode in CONSUMER_MODES:
                out["consumer_mode"] = mode
            else:
                allowed = " or ".join(f'"{m}"' for m in CONSUMER_MODES)
                ctx.error(entry.pos, f'invalid consumer_mode "{mode}": must be {allowed}')
    return MQTTOptions(**{k: v for k, v in out.items() if v is not None})


_WS_KEYS: dict[str, tuple[str, ...]] = {
    "listen": (),
    "host": ("net",),
    "port": (),
    "advertise": (),
    "no_tls": (),
    "tls": (),
    "same_origin": (),
    "allowed_origins": ("allowed_origin", "allow_origins", "allow_origin", "origins", "origin"),
    "handshake_timeout": (),
    "compression": ("compress",),
    "authorization": ("authentication",),
    "jwt_cookie": (),
    "user_cookie": (),
    "pass_cookie": (),
    "token_cookie": (),
    "no_auth_user": (),
    "headers": (),
    "ping_interval": (),
}


def _parse_headers(ctx: Context, e: Entry) -> Mapping[str, str] | None:
    header_map = as_map(ctx, e)
    if header_map is None:
        return None
    headers: dict[str, str] = {}
    for name, value in header_map.items():
        if isinstance(value, str):
            headers[name] = value
        else:
            ctx.error(
                position_of(header_map, name),
                f'websocket header "{name}" must be a string, got {describe(value)}',
            )
    return MappingProxyType(headers)


def parse_websocket(ctx: Context, e: Entry) -> WebsocketOptions | None:
    """The ``websocket {}`` block (alias ``ws``)."""
    ws_map = as_map(ctx, e)
    if ws_map is None:
        return None
    b = Block(ctx, ws_map, "the websocket block", _WS_KEYS)
    out: dict[str, Any] = {}
    _apply_listen(ctx, b, out)
    for name in ("no_tls", "same_origin", "compression"):
        if (entry := b.get(name)) is not None:
            out[name] = as_bool(ctx, entry)
    if (entry := b.get("tls")) is not None:
        out["tls"] = parse_tls(ctx, entry, "websocket")
    if (entry := b.get("allowed_origins")) is not None:
        out["allowed_origins"] = as_str_list(ctx, entry)
    if (entry := b.get("handshake_timeout")) is not None:
        timeout = as_duration(ctx, entry, name="handshake_timeout", warn_number=False)
        if timeout is not None:
            out["handshake_timeout"] = timeout or DEFAULT_WS_HANDSHAKE_TIMEOUT
    if (entry := b.get("authorization")) is not None:
        out["authorization"] = parse_simple_auth(ctx, entry, "websocket")
    for name in (
        "advertise",
        "jwt_cookie",
        "user_cookie",
        "pass_cookie",
        "token_cookie",
        "no_auth_user",
    ):
        if (entry := b.get(name)) is not None:
            out[name] = as_str(ctx, entry) or None
    if (entry := b.get("headers")) is not None:
        out["headers"] = _parse_headers(ctx, entry)
    if (entry := b.get("ping_interval")) is not None:
        out["ping_interval"] = as_duration(ctx, entry, name="ping_interval")
    ws = WebsocketOptions(**{k: v for k, v in out.items() if v is not None})
    if ws.enabled and ws.tls is None and not ws.no_tls and "tls" not in b:
        ctx.error(e.pos, "websocket requires TLS configuration unless no_tls is true")
    return ws


__all__ = [
    "parse_auth_timeout",
    "parse_mqtt",
    "parse_simple_auth",
    "parse_tls",
    "parse_websocket",
]
