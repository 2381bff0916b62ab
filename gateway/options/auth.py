"""The ``authorization`` block, ``users`` lists, ``permissions`` and ``accounts``.

Follows the NATS server's parsing: ``permissions`` take ``publish``/``pub``/
``import`` and ``subscribe``/``sub``/``export`` as a subject, a list or an
``allow``/``deny`` map, plus ``allow_responses``; a user is a ``user`` and
``password`` (plain or bcrypt) or a public user ``nkey``; connection types
are upper-cased and checked against the known ones.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Literal

from conf.values import Position
from gateway.options.listeners import parse_auth_timeout
from gateway.options.model import (
    DEFAULT_RESPONSE_EXPIRES,
    DEFAULT_RESPONSE_MAX_MSGS,
    Account,
    AccountJetStream,
    AccountLimits,
    ConnectionType,
    Export,
    Import,
    Permissions,
    ResponsePermission,
    SubjectPermission,
    User,
)
from gateway.options.reader import (
    Block,
    Context,
    Entry,
    as_bool,
    as_duration,
    as_int,
    as_map,
    as_size,
    as_str,
    as_str_list,
    describe,
    items_of,
    position_of,
    suggest,
    used_as_variable,
)

GLOBAL_ACCOUNT = "$G"


# -- nkeys ------------------------------------------------------------------------


def _crc16(data: bytes) -> int:
    """CRC-16/XMODEM, the checksum of the nkey text form."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def is_public_nkey(text: str, role: str) -> bool:
    """Whether ``text`` is a public nkey of ``role`` (``U``, ``A`` or ``O``): prefix, length, checksum."""
    if len(text) != 56 or not text.startswith(role):
        return False
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return False
    if len(raw) != 35 or raw[0] >> 3 != ord(role) - ord("A"):
        return False
    return _crc16(raw[:-2]) == int.from_bytes(raw[-2:], "little")


# -- subjects -----------------------------------------------------------------------


def subject_problem(subject: str, *, queue_ok: bool) -> str | None:
    """Why ``subject`` is not a valid permission subject, or ``None`` if it is."""
    parts = subject.split()
    if queue_ok and len(parts) == 2 and subject == subject.strip():
        subject = parts[0]
    elif len(parts) != 1 or parts[0] != subject:
        return f'subject "{subject}" is not a valid subject'
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if not token:
            return f'subject "{subject}" is not a valid subject: empty token'
        if token == ">" and index != len(tokens) - 1:
            return f'subject "{subject}" is not a valid subject: ">" must be the last token'
    return None


def _subjects(ctx: Context, e: Entry, *, queue_ok: bool) -> tuple[str, ...] | None:
    if isinstance(e.value, str):
        pairs: list[tuple[Any, Position]] = [(e.value, e.pos)]
    elif isinstance(e.value, list):
        pairs = list(items_of(e.value, e.pos))
    else:
        ctx.error(
            e.pos,
            "Expected subject permissions to be a subject, or array of subjects, "
            f"got {describe(e.value)}",
        )
        return None
    out: list[str] = []
    for value, pos in pairs:
        if not isinstance(value, str):
            ctx.error(pos, f"Subject in permissions array must be a string, got {describe(value)}")
            return None
        problem = subject_problem(value, queue_ok=queue_ok)
        if problem:
            ctx.error(pos, problem)
            return None
        out.append(value)
    return tuple(out)


def _subject_permission(ctx: Context, e: Entry, *, queue_ok: bool) -> SubjectPermission | None:
    if not isinstance(e.value, Mapping):
        allow = _subjects(ctx, e, queue_ok=queue_ok)
        return None if allow is None else SubjectPermission(allow=allow)
    b = Block(
        ctx, e.value, f'"{e.key}" permissions (only allow and deny)', {"allow": (), "deny": ()}
    )
    allow_entry, deny_entry = b.get("allow"), b.get("deny")
    allow = None if allow_entry is None else _subjects(ctx, allow_entry, queue_ok=queue_ok)
    deny = None if deny_entry is None else _subjects(ctx, deny_entry, queue_ok=queue_ok)
    return SubjectPermission(allow=allow, deny=deny or ())


def _response_permission(ctx: Context, e: Entry) -> ResponsePermission | None:
    if isinstance(e.value, bool):
        return ResponsePermission() if e.value else None
    if not isinstance(e.value, Mapping):
        ctx.error(e.pos, "error parsing response permissions, expected a boolean or a map")
        return None
    b = Block(
        ctx,
        e.value,
        "the allow_responses block",
        {
            "max": ("max_msgs", "max_messages", "max_responses"),
            "expires": ("expiration", "ttl"),
        },
    )
    max_msgs, expires = DEFAULT_RESPONSE_MAX_MSGS, DEFAULT_RESPONSE_EXPIRES
    if (entry := b.get("max")) is not None and (value := as_int(ctx, entry)):
        max_msgs = value  # negative means unlimited, 0 the default
    if (entry := b.get("expires")) is not None:
        seconds = as_duration(ctx, entry, name="expires", warn_number=False)
        expires = seconds or expires
    return ResponsePermission(max_msgs=max_msgs, expires=expires)


_PERMISSION_KEYS: dict[str, tuple[str, ...]] = {
    "publish": ("pub", "import"),
    "subscribe": ("sub", "export"),
    "allow_responses": ("publish_allow_responses", "resp"),
}


def parse_permissions(ctx: Context, e: Entry) -> Permissions | None:
    """A ``permissions`` map."""
    perm_map = as_map(ctx, e)
    if perm_map is None:
        return None
    b = Block(ctx, perm_map, "permissions", _PERMISSION_KEYS)
    publish = subscribe = None
    responses = None
    if (entry := b.get("publish")) is not None:
        publish = _subject_permission(ctx, entry, queue_ok=False)
    if (entry := b.get("subscribe")) is not None:
        subscribe = _subject_permission(ctx, entry, queue_ok=True)
    if (entry := b.get("allow_responses")) is not None:
        responses = _response_permission(ctx, entry)
    if responses is not None and (publish is None or publish.allow is None):
        # As in the NATS server: reply permissions turn off the blanket publish allow.
        publish = SubjectPermission(allow=(), deny=publish.deny if publish else ())
    return Permissions(publish=publish, subscribe=subscribe, allow_responses=responses)


# -- users ----------------------------------------------------------------------------

_KNOWN_TYPES = ", ".join(t.value for t in ConnectionType)


def parse_connection_types(ctx: Context, e: Entry) -> frozenset[ConnectionType] | None:
    """``allowed_connection_types``: known names, case-insensitive."""
    names = as_str_list(ctx, e)
    if names is None:
        return None
    out: set[ConnectionType] = set()
    positions = [p for _, p in items_of(e.value, e.pos)] if isinstance(e.value, list) else [e.pos]
    for name, pos in zip(names, positions, strict=True):
        try:
            out.add(ConnectionType(name.upper()))
        except ValueError:
            ctx.error(
                pos,
                f'invalid connection type "{name}"{suggest(name.upper(), ConnectionType)}; '
                f"allowed: {_KNOWN_TYPES}",
            )
    return frozenset(out)


_USER_KEYS: dict[str, tuple[str, ...]] = {
    "user": ("username",),
    "password": ("pass",),
    "nkey": (),
    "permissions": ("permission", "authorization"),
    "allowed_connection_types": ("connection_types", "clients"),
}


def parse_user(
    ctx: Context,
    value: Any,
    pos: Position,
    account: str | None,
    default_permissions: Permissions | None,
) -> User | None:
    """One ``users`` entry."""
    if not isinstance(value, Mapping):
        ctx.error(pos, f"Expected user entry to be a map/struct, got {describe(value)}")
        return None
    b = Block(ctx, value, "a user entry", _USER_KEYS)
    out: dict[str, Any] = {}
    for name in ("user", "password", "nkey"):
        if (entry := b.get(name)) is not None:
            out[name] = as_str(ctx, entry)
    if (entry := b.get("permissions")) is not None:
        out["permissions"] = parse_permissions(ctx, entry)
    if (entry := b.get("allowed_connection_types")) is not None:
        out["allowed_connection_types"] = parse_connection_types(ctx, entry)
    username, password, nkey = out.get("user"), out.get("password"), out.get("nkey")
    if nkey:
        at = b.get("nkey")
        if not is_public_nkey(nkey, "U"):
            ctx.error(at.pos if at else pos, f'Not a valid public nkey for a user: "{nkey}"')
            return None
        if username or password:
            ctx.error(at.pos if at else pos, "Nkey users do not take usernames or passwords")
            return None
    elif not username:
        ctx.error(pos, "User entry requires a user")
        return None
    if password and password.startswith("$2") and not _is_bcrypt(password):
        entry = b.get("password")
        ctx.error(entry.pos if entry else pos, "password looks like a bcrypt hash but is malformed")
    user_entry = b.get("user") or b.get("nkey")
    return User(
        username=username or None,
        password=password,
        nkey=nkey or None,
        permissions=out.get("permissions") or default_permissions,
        allowed_connection_types=out.get("allowed_connection_types") or frozenset(),
        account=account,
        position=user_entry.pos if user_entry else pos,
    )


def _is_bcrypt(text: str) -> bool:
    parts = text.split("$")
    return (
        len(text) == 60
        and len(parts) == 4
        and parts[1] in ("2a", "2b", "2y")
        and parts[2].isdigit()
        and len(parts[3]) == 53
    )


def parse_users(
    ctx: Context, e: Entry, account: str | None, default_permissions: Permissions | None
) -> tuple[User, ...]:
    """A ``users`` array."""
    if not isinstance(e.value, list):
        ctx.error(e.pos, f"Expected users field to be an array, got {describe(e.value)}")
        return ()
    users = (
        parse_user(ctx, item, pos, account, default_permissions)
        for item, pos in items_of(e.value, e.pos)
    )
    return tuple(u for u in users if u is not None)


# -- the authorization block ---------------------------------------------------------------

_AUTHORIZATION_KEYS: dict[str, tuple[str, ...]] = {
    "user": ("username",),
    "password": ("pass",),
    "token": (),
    "timeout": (),
    "users": (),
    "default_permissions": ("default_permission", "permissions"),
    "no_auth_user": (),
}


def parse_authorization(ctx: Context, e: Entry) -> tuple[dict[str, Any], Entry | None]:
    """The top-level ``authorization`` block as keyword arguments, and its ``no_auth_user`` entry.

    ``no_auth_user`` is a top-level key in the NATS server; jetgate also accepts
    it here.
    """
    auth_map = as_map(ctx, e)
    if auth_map is None:
        return {}, None
    b = Block(ctx, auth_map, "the authorization block", _AUTHORIZATION_KEYS, ("auth_callout",))
    out: dict[str, Any] = {}
    for name in ("user", "password", "token"):
        if (entry := b.get(name)) is not None:
            out[name] = as_str(ctx, entry) or None
    if (entry := b.get("timeout")) is not None and (timeout := parse_auth_timeout(ctx, entry)):
        out["timeout"] = timeout
    defaults = None
    if (entry := b.get("default_permissions")) is not None:
        defaults = parse_permissions(ctx, entry)
        out["default_permissions"] = defaults
    if (entry := b.get("users")) is not None:
        out["users"] = parse_users(ctx, entry, None, defaults)
    if (out.get("user") or out.get("password")) and out.get("token"):
        ctx.error(e.pos, "Cannot have a user/pass and token")
    if "users" in b and out.get("user"):
        ctx.error(e.pos, "Can not have a single user/pass and a users array")
    if "users" in b and out.get("token"):
        ctx.error(e.pos, "Can not have a token and a users array")
    return out, b.get("no_auth_user")


# -- accounts -------------------------------------------------------------------------------

_ACCOUNT_KEYS: dict[str, tuple[str, ...]] = {
    "nkey": (),
    "users": (),
    "imports": (),
    "exports": (),
    "jetstream": (),
    "default_permissions": (),
    "limits": (),
}
_JS_ACCOUNT_KEYS: dict[str, tuple[str, ...]] = {
    "max_memory": ("max_mem", "mem", "memory"),
    "max_store": ("max_file", "max_disk", "store", "disk"),
    "max_streams": ("streams",),
    "max_consumers": ("consumers",),
    "max_bytes_required": ("max_stream_bytes", "max_bytes"),
}
_JS_ACCOUNT_IGNORED = (
    "max_ack_pending",
    "cluster_traffic",
    "tiered_limits",
    "store_max_stream_bytes",
    "memory_max_stream_bytes",
)


def _account_jetstream(ctx: Context, e: Entry) -> AccountJetStream | None:
    value = e.value
    if isinstance(value, bool):
        return AccountJetStream() if value else None
    if isinstance(value, str):
        if value.lower() in ("enabled", "enable"):
            return AccountJetStream()
        if value.lower() in ("disabled", "disable"):
            return None
        ctx.error(e.pos, f"Expected 'enabled' or 'disabled' for string value, got '{value}'")
        return None
    js_map = as_map(ctx, e)
    if js_map is None:
        return None
    b = Block(ctx, js_map, "the account jetstream block", _JS_ACCOUNT_KEYS, _JS_ACCOUNT_IGNORED)
    out: dict[str, Any] = {}
    for name in ("max_memory", "max_store"):
        if (entry := b.get(name)) is not None:
            out[name] = as_size(ctx, entry, low=-1)
    for name in ("max_streams", "max_consumers"):
        if (entry := b.get(name)) is not None:
            out[name] = as_int(ctx, entry, low=-1)
    if (entry := b.get("max_bytes_required")) is not None:
        out["max_bytes_required"] = as_bool(ctx, entry)
    return AccountJetStream(**{k: v for k, v in out.items() if v is not None})


def _account_limits(ctx: Context, e: Entry) -> AccountLimits:
    limits_map = as_map(ctx, e)
    if limits_map is None:
        return AccountLimits()
    b = Block(
        ctx,
        limits_map,
        "the account limits block",
        {
            "max_connections": ("max_conn",),
            "max_subscriptions": ("max_subs",),
            "max_payload": ("max_pay",),
        },
        ("max_leafnodes", "max_leafs"),
    )
    out: dict[str, int | None] = {}
    for name in ("max_connections", "max_subscriptions"):
        if (entry := b.get(name)) is not None:
            out[name] = as_int(ctx, entry, low=-1)
    if (entry := b.get("max_payload")) is not None:
        out["max_payload"] = as_size(ctx, entry, low=-1)
    return AccountLimits(**{k: v for k, v in out.items() if v is not None})


Pending = tuple[str, Position, str, str]  # (kind, position, account referred to, what)

_RESPONSE_TYPES: dict[str, Literal["singleton", "stream", "chunked"]] = {
    "single": "singleton",
    "singleton": "singleton",
    "stream": "stream",
    "chunked": "chunked",
}


def _export(ctx: Context, value: Any, pos: Position, refs: list[Pending]) -> Export | None:
    if not isinstance(value, Mapping):
        ctx.error(pos, f"Export Items should be a map with type entry, got {describe(value)}")
        return None
    b = Block(
        ctx,
        value,
        "an export",
        {
            "stream": (),
            "service": (),
            "accounts": (),
            "response_type": ("response",),
        },
        ("latency", "threshold", "response_threshold", "account_token_position", "allow_trace"),
    )
    stream, service = b.get("stream"), b.get("service")
    if (stream is None) == (service is None):
        ctx.error(pos, "an export needs exactly one of stream or service")
        return None
    kind: Literal["stream", "service"] = "stream" if stream is not None else "service"
    entry = stream or service
    assert entry is not None
    subject = as_str(ctx, entry, allow_empty=False)
    if subject is None:
        return None
    if problem := subject_problem(subject, queue_ok=False):
        ctx.error(entry.pos, problem)
        return None
    accounts: tuple[str, ...] = ()
    if (acc_entry := b.get("accounts")) is not None:
        accounts = as_str_list(ctx, acc_entry) or ()
        refs.extend((f"{kind} export", acc_entry.pos, name, subject) for name in accounts)
    response: Literal["singleton", "stream", "chunked"] = "singleton"
    if (rt_entry := b.get("response_type")) is not None and (rt := as_str(ctx, rt_entry)):
        if kind != "service":
            ctx.error(rt_entry.pos, "Detected response directive on non-service")
        elif rt.lower() not in _RESPONSE_TYPES:
            ctx.error(rt_entry.pos, f'Unknown response type: "{rt}"')
        else:
            response = _RESPONSE_TYPES[rt.lower()]
    return Export(kind=kind, subject=subject, accounts=accounts, response_type=response)


def _import(ctx: Context, value: Any, pos: Position, refs: list[Pending]) -> Import | None:
    if not isinstance(value, Mapping):
        ctx.error(pos, f"Import Items should be a map with type entry, got {describe(value)}")
        return None
    b = Block(
        ctx,
        value,
        "an import",
        {
            "stream": (),
            "service": (),
            "prefix": (),
            "to": (),
            "share": (),
        },
        ("allow_trace",),
    )
    stream, service = b.get("stream"), b.get("service")
    if (stream is None) == (service is None):
        ctx.error(pos, "an import needs exactly one of stream or service")
        return None
    kind: Literal["stream", "service"] = "stream" if stream is not None else "service"
    entry = stream or service
    assert entry is not None
    source = as_map(ctx, entry)
    if source is None:
        return None
    sb = Block(ctx, source, f"the {kind} import", {"account": (), "subject": ()})
    acc_entry, subj_entry = sb.get("account"), sb.get("subject")
    account = None if acc_entry is None else as_str(ctx, acc_entry, allow_empty=False)
    subject = None if subj_entry is None else as_str(ctx, subj_entry, allow_empty=False)
    if acc_entry is None or subj_entry is None:
        ctx.error(entry.pos, "Expect an account name and a subject")
    if account is None or subject is None:
        return None
    if problem := subject_problem(subject, queue_ok=False):
        ctx.error(subj_entry.pos if subj_entry else entry.pos, problem)
        return None
    assert acc_entry is not None
    refs.append((f"{kind} import", acc_entry.pos, account, subject))
    to = prefix = None
    share = False
    if (e := b.get("to")) is not None:
        to = as_str(ctx, e)
    if (e := b.get("prefix")) is not None:
        prefix = as_str(ctx, e)
        if kind == "service":
            ctx.error(e.pos, "a service import can not have a 'prefix'")
    if to and prefix:
        ctx.error(pos, "Stream import can not have a 'prefix' and a 'to' property")
    if (e := b.get("share")) is not None:
        share = bool(as_bool(ctx, e))
    return Import(kind=kind, account=account, subject=subject, to=to, prefix=prefix, share=share)


def _account(ctx: Context, name: str, value: Mapping[str, Any], refs: list[Pending]) -> Account:
    b = Block(ctx, value, f'account "{name}"', _ACCOUNT_KEYS, ("mappings", "maps", "msg_trace"))
    out: dict[str, Any] = {}
    if (entry := b.get("nkey")) is not None and (nkey := as_str(ctx, entry)) is not None:
        if is_public_nkey(nkey, "A"):
            out["nkey"] = nkey
        else:
            ctx.error(entry.pos, f'Not a valid public nkey for an account: "{nkey}"')
    if (entry := b.get("default_permissions")) is not None:
        out["default_permissions"] = parse_permissions(ctx, entry)
    if (entry := b.get("users")) is not None:
        out["users"] = parse_users(ctx, entry, name, out.get("default_permissions"))
    if (entry := b.get("jetstream")) is not None:
        out["jetstream"] = _account_jetstream(ctx, entry)
    if (entry := b.get("limits")) is not None:
        out["limits"] = _account_limits(ctx, entry)
    for key, parse in (("exports", _export), ("imports", _import)):
        if (entry := b.get(key)) is None:
            continue
        if not isinstance(entry.value, list):
            ctx.error(
                entry.pos, f"{key.capitalize()} should be an array, got {describe(entry.value)}"
            )
            continue
        parsed = (parse(ctx, item, pos, refs) for item, pos in items_of(entry.value, entry.pos))
        out[key] = tuple(p for p in parsed if p is not None)
    return Account(name=name, **{k: v for k, v in out.items() if v is not None})


def parse_accounts(ctx: Context, e: Entry) -> tuple[Account, ...]:
    """The ``accounts`` block: a map of account name to definition, or an array of names."""
    accounts: list[Account] = []
    refs: list[Pending] = []
    seen: set[str] = set()
    if isinstance(e.value, list):
        for value, pos in items_of(e.value, e.pos):
            if not isinstance(value, str):
                ctx.error(pos, f"account names must be strings, got {describe(value)}")
            elif value == GLOBAL_ACCOUNT:
                ctx.error(pos, f'"{value}" is a Reserved Account')
            elif value in seen:
                ctx.error(pos, f"Duplicate Account Entry: {value}")
            else:
                seen.add(value)
                accounts.append(Account(name=value))
        return tuple(accounts)
    acc_map = as_map(ctx, e)
    if acc_map is None:
        return ()
    variables = used_as_variable(acc_map)
    for name, value in acc_map.items():
        pos = position_of(acc_map, name)
        if name in variables:
            continue
        if not isinstance(value, Mapping):
            ctx.error(pos, f'Expected map entries for accounts, got {describe(value)} for "{name}"')
            continue
        if name == GLOBAL_ACCOUNT:
            ctx.error(pos, f'"{name}" is a Reserved Account')
            continue
        accounts.append(_account(ctx, name, value, refs))
    names = {a.name for a in accounts}
    for what, pos, account, subject in refs:
        if account not in names:
            ctx.error(
                pos,
                f'"{account}" account not defined for {what} of "{subject}"'
                f"{suggest(account, names)}",
            )
    return tuple(accounts)
