"""``jetgate jwt ...``: make operator-mode identities without the Go tooling.

::

    jetgate jwt operator --name OP --out ids
    jetgate jwt account  --name ACC --operator ids/OP.nk --out ids [--signing-key]
    jetgate jwt user     --name dev --account ids/ACC.nk --out ids --bearer --conn-type MQTT
    jetgate jwt decode   ids/dev.creds

Each command writes ``<name>.nk`` (the seed, mode 0600, reused when it
already exists so that an account can be re-issued with revocations under
the same key), ``<name>.jwt``, and for users ``<name>.creds`` (what nats-py's
``user_credentials`` reads). It prints the public key. The functions
``issue_operator``, ``issue_account`` and ``issue_user`` are the same thing
for Python code (tests, scripts).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.auth.jwt import JWTError, decode, encode, format_creds, parse_decorated
from gateway.auth.nkeys import KeyPair, NKeyError, Role, encode_seed

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
NO_LIMIT = -1


class CLIError(Exception):
    """A command-line mistake (bad duration, unreadable seed, wrong key kind)."""


def new_seed(role: Role) -> str:
    """A fresh random seed nkey for ``role``."""
    return encode_seed(os.urandom(32), role)


def _subject_permission(allow: Iterable[str] | None, deny: Iterable[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if allow:
        out["allow"] = list(allow)
    if deny:
        out["deny"] = list(deny)
    return out


def _times(
    issued_at: int | None, expires_in: float | None, not_before_in: float | None
) -> dict[str, Any]:
    now = int(time.time()) if issued_at is None else issued_at
    out: dict[str, Any] = {"iat": now}
    if expires_in is not None:
        out["exp"] = int(time.time() + expires_in)
    if not_before_in is not None:
        out["nbf"] = int(time.time() + not_before_in)
    return out


def issue_operator(
    operator: KeyPair,
    name: str,
    *,
    signing_keys: Sequence[str] = (),
    system_account: str | None = None,
    strict_signing_key_usage: bool = False,
    expires_in: float | None = None,
) -> str:
    """A self-signed operator JWT."""
    nats: dict[str, Any] = {}
    if signing_keys:
        nats["signing_keys"] = list(signing_keys)
    if system_account:
        nats["system_account"] = system_account
    if strict_signing_key_usage:
        nats["strict_signing_key_usage"] = True
    nats.update(type="operator", version=2)
    payload = {**_times(None, expires_in, None), "name": name, "sub": operator.public_key}
    payload["nats"] = nats
    return encode(payload, operator)


def issue_account(
    signer: KeyPair,
    account: str,
    name: str,
    *,
    signing_keys: Sequence[str | Mapping[str, Any]] = (),
    revocations: Mapping[str, int] | None = None,
    max_connections: int = NO_LIMIT,
    max_subscriptions: int = NO_LIMIT,
    max_payload: int = NO_LIMIT,
    max_data: int = NO_LIMIT,
    disallow_bearer: bool = False,
    jetstream: bool = True,
    default_permissions: Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
    issued_at: int | None = None,
    expires_in: float | None = None,
    not_before_in: float | None = None,
) -> str:
    """An account JWT for the public key ``account``, signed by an operator key."""
    limits: dict[str, Any] = {
        "subs": max_subscriptions,
        "data": max_data,
        "payload": max_payload,
        "imports": NO_LIMIT,
        "exports": NO_LIMIT,
        "wildcards": True,
        "conn": max_connections,
        "leaf": NO_LIMIT,
    }
    if disallow_bearer:
        limits["disallow_bearer"] = True
    if jetstream:
        limits.update(
            mem_storage=NO_LIMIT, disk_storage=NO_LIMIT, streams=NO_LIMIT, consumer=NO_LIMIT
        )
    nats: dict[str, Any] = {"limits": limits}
    if signing_keys:
        nats["signing_keys"] = list(signing_keys)
    if revocations:
        nats["revocations"] = dict(revocations)
    nats["default_permissions"] = dict(default_permissions or {"pub": {}, "sub": {}})
    if tags:
        nats["tags"] = [t.lower() for t in tags]
    nats.update(type="account", version=2)
    payload = {**_times(issued_at, expires_in, not_before_in), "name": name, "sub": account}
    payload["nats"] = nats
    return encode(payload, signer)


def issue_user(
    signer: KeyPair,
    user: str,
    name: str,
    *,
    issuer_account: str | None = None,
    bearer: bool = False,
    connection_types: Sequence[str] = (),
    pub_allow: Sequence[str] | None = None,
    pub_deny: Sequence[str] | None = None,
    sub_allow: Sequence[str] | None = None,
    sub_deny: Sequence[str] | None = None,
    resp_max: int | None = None,
    resp_ttl: float | None = None,
    src: Sequence[str] = (),
    times: Sequence[tuple[str, str]] = (),
    times_location: str | None = None,
    tags: Sequence[str] = (),
    max_subscriptions: int = NO_LIMIT,
    max_payload: int = NO_LIMIT,
    max_data: int = NO_LIMIT,
    scoped: bool = False,
    issued_at: int | None = None,
    expires_in: float | None = None,
    not_before_in: float | None = None,
) -> str:
    """A user JWT for the public key ``user``, signed by an account key or signing key.

    ``max_subscriptions``, ``max_payload`` and ``max_data`` are the JWT's
    ``subs``, ``payload`` and ``data`` (-1, the default, is unlimited). With ``scoped`` (signed by a ``user_scope`` key) no permissions or limits
    are written: the scope's template supplies them.
    """
    nats: dict[str, Any] = {}
    if not scoped:
        nats["pub"] = _subject_permission(pub_allow, pub_deny)
        nats["sub"] = _subject_permission(sub_allow, sub_deny)
        if resp_max is not None or resp_ttl is not None:
            nats["resp"] = {"max": resp_max or 1, "ttl": int((resp_ttl or 0) * 1e9)}
        if src:
            nats["src"] = list(src)
        if times:
            nats["times"] = [{"start": s, "end": e} for s, e in times]
        if times_location:
            nats["times_location"] = times_location
        nats.update(subs=max_subscriptions, data=max_data, payload=max_payload)
        if bearer:
            nats["bearer_token"] = True
        if connection_types:
            nats["allowed_connection_types"] = [t.upper() for t in connection_types]
    if issuer_account:
        nats["issuer_account"] = issuer_account
    if tags:
        nats["tags"] = [t.lower() for t in tags]
    nats.update(type="user", version=2)
    payload = {**_times(issued_at, expires_in, not_before_in), "name": name, "sub": user}
    payload["nats"] = nats
    return encode(payload, signer)


# -- command line ------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """``90``, ``2s``, ``15m``, ``12h``, ``30d``, ``1y`` as seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise CLIError(f'invalid duration "{text}" (e.g. 30s, 15m, 12h, 30d)')
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def load_key(value: str, role: Role) -> KeyPair:
    """A key pair from a seed, or from a file holding one (``.nk`` or ``.creds``)."""
    text = value
    if not value.startswith("S") or os.path.isfile(value):
        try:
            tokens = parse_decorated(Path(value).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CLIError(f"cannot read {value}: {exc.strerror}") from None
        seeds = [t for t in tokens if t.startswith("S")]
        text = seeds[0] if seeds else tokens[0]
    try:
        pair = KeyPair(text)
    except NKeyError as exc:
        raise CLIError(f"{value}: not a seed: {exc}") from None
    if pair.role is not role:
        raise CLIError(f"{value}: a {pair.role.name.lower()} seed, expected {role.name.lower()}")
    return pair


def _write(path: Path, text: str, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if secret:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def _own_key(out: Path, name: str, role: Role) -> KeyPair:
    """``<out>/<name>.nk``, created with a fresh seed when missing."""
    path = out / f"{name}.nk"
    if path.exists():
        return load_key(str(path), role)
    seed = new_seed(role)
    _write(path, seed + "\n", secret=True)
    return KeyPair(seed)


def _revocation(text: str) -> tuple[str, int]:
    key, _, when = text.partition("@")
    return key, int(when) if when else int(time.time())


def build_parser() -> argparse.ArgumentParser:
    """The ``jetgate jwt`` parser."""
    parser = argparse.ArgumentParser(
        prog="jetgate jwt", description="Make NATS operator, account and user identities."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def limit_flags(p: argparse.ArgumentParser, whose: str) -> None:
        p.add_argument(
            "--max-subs", type=int, default=NO_LIMIT, metavar="N", help=f"subscriptions {whose}"
        )
        p.add_argument(
            "--max-payload", type=int, default=NO_LIMIT, metavar="BYTES", help=f"payload {whose}"
        )
        p.add_argument(
            "--max-data", type=int, default=NO_LIMIT, metavar="BYTES", help="data (not enforced)"
        )

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", required=True, help="name; also the file name stem")
        p.add_argument("--out", default=".", help="directory for the files (default .)")
        p.add_argument("--expiry", metavar="DURATION", help="expires after (30s, 12h, 30d)")

    op = sub.add_parser("operator", help="a self-signed operator (O... key)")
    common(op)
    op.add_argument("--system-account", metavar="A...", help="the system account's public key")
    op.add_argument("--signing-key", action="store_true", help="also make <name>-sk.nk and list it")

    acc = sub.add_parser("account", help="an account signed by an operator")
    common(acc)
    acc.add_argument("--operator", required=True, metavar="SEED|FILE", help="operator seed")
    acc.add_argument("--signing-key", action="store_true", help="also make <name>-sk.nk")
    acc.add_argument(
        "--revoke", action="append", default=[], metavar="UKEY[@UNIXTIME]", help="revoke a user"
    )
    acc.add_argument("--max-connections", type=int, default=NO_LIMIT, metavar="N")
    limit_flags(acc, "per connection of the account's users")
    acc.add_argument("--disallow-bearer", action="store_true")
    acc.add_argument("--no-jetstream", action="store_true", help="grant no JetStream limits")

    usr = sub.add_parser("user", help="a user signed by an account, with a creds file")
    common(usr)
    usr.add_argument("--account", required=True, metavar="SEED|FILE", help="account seed")
    usr.add_argument(
        "--signer",
        metavar="SEED|FILE",
        help="sign with this account signing key (issuer_account = --account's key)",
    )
    usr.add_argument("--bearer", action="store_true", help="bearer token (required for MQTT)")
    usr.add_argument(
        "--conn-type", action="append", default=[], metavar="TYPE", help="STANDARD, MQTT ..."
    )
    for flag in ("pub-allow", "pub-deny", "sub-allow", "sub-deny", "src"):
        usr.add_argument(f"--{flag}", action="append", default=[], metavar="SUBJECT")
    usr.add_argument("--resp-max", type=int, metavar="N", help="allow N replies per request")
    usr.add_argument("--resp-ttl", metavar="DURATION", help="reply permission lifetime")
    usr.add_argument("--not-before", metavar="DURATION", help="valid only after this delay")
    limit_flags(usr, "for this user")

    dec = sub.add_parser("decode", help="verify a JWT (or .jwt/.creds file) and print its claims")
    dec.add_argument("token", help="a JWT or a file holding one")
    return parser


def run(args: argparse.Namespace) -> str:
    """Carry out a parsed command; returns what to print."""
    if args.command == "decode":
        text = args.token
        if os.path.isfile(text):
            text = parse_decorated(Path(text).read_text(encoding="utf-8"))[0]
        claims = decode(text)
        return json.dumps(dict(claims.payload), indent=2)
    out = Path(args.out)
    name = args.name
    expires = parse_duration(args.expiry) if args.expiry else None
    lines: list[str] = []
    if args.command == "operator":
        pair = _own_key(out, name, Role.OPERATOR)
        signing = [_own_key(out, f"{name}-sk", Role.OPERATOR)] if args.signing_key else []
        token = issue_operator(
            pair,
            name,
            signing_keys=[k.public_key for k in signing],
            system_account=args.system_account,
            expires_in=expires,
        )
    elif args.command == "account":
        operator = load_key(args.operator, Role.OPERATOR)
        pair = _own_key(out, name, Role.ACCOUNT)
        signing = [_own_key(out, f"{name}-sk", Role.ACCOUNT)] if args.signing_key else []
        token = issue_account(
            operator,
            pair.public_key,
            name,
            signing_keys=[k.public_key for k in signing],
            revocations=dict(_revocation(r) for r in args.revoke),
            max_connections=args.max_connections,
            max_subscriptions=args.max_subs,
            max_payload=args.max_payload,
            max_data=args.max_data,
            disallow_bearer=args.disallow_bearer,
            jetstream=not args.no_jetstream,
            expires_in=expires,
        )
    else:
        account = load_key(args.account, Role.ACCOUNT)
        signer = load_key(args.signer, Role.ACCOUNT) if args.signer else account
        pair = _own_key(out, name, Role.USER)
        signing = []
        token = issue_user(
            signer,
            pair.public_key,
            name,
            issuer_account=account.public_key if args.signer else None,
            bearer=args.bearer,
            connection_types=args.conn_type,
            pub_allow=args.pub_allow,
            pub_deny=args.pub_deny,
            sub_allow=args.sub_allow,
            sub_deny=args.sub_deny,
            resp_max=args.resp_max,
            resp_ttl=parse_duration(args.resp_ttl) if args.resp_ttl else None,
            src=args.src,
            expires_in=expires,
            not_before_in=parse_duration(args.not_before) if args.not_before else None,
            max_subscriptions=args.max_subs,
            max_payload=args.max_payload,
            max_data=args.max_data,
        )
        seed = (out / f"{name}.nk").read_text(encoding="utf-8").strip()
        _write(out / f"{name}.creds", format_creds(token, seed), secret=True)
        lines.append(f"creds:  {out / f'{name}.creds'}")
    _write(out / f"{name}.jwt", token + "\n")
    lines[:0] = [
        f"{args.command} {name}: {pair.public_key}",
        f"seed:   {out / f'{name}.nk'}",
        f"jwt:    {out / f'{name}.jwt'}",
    ]
    lines.extend(f"signing key: {k.public_key} ({out / f'{name}-sk.nk'})" for k in signing)
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    """``jetgate jwt ARGS``; returns the exit code."""
    args = build_parser().parse_args(list(argv))
    try:
        print(run(args))
    except (CLIError, JWTError, OSError) as exc:
        print(f"jetgate jwt: {exc}", file=sys.stderr)
        return 1
    return 0
