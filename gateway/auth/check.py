"""``jetgate -t`` for operator mode: every configured JWT verified, mistakes at FILE:LINE:COL.

``check_operator(options)`` reads what a start would read and more strictly:

- each ``operator`` (a file, read relative to the working directory as the
  NATS server does, or an inline JWT): it must decode and verify as an
  operator JWT (signature, issuer role) and be neither expired nor not yet
  valid;
- ``system_account`` must equal the operator JWTs' and, with the MEMORY
  resolver, be preloaded; operators need a resolver;
- each ``resolver_preload`` account JWT: a verified account JWT whose subject
  is its key, issued by a configured operator or one of its signing keys
  (the operator key itself not counting under ``strict_signing_key_usage``;
  not checked when an operator JWT is itself bad), neither expired nor not
  yet valid (a start only warns about those).

Every problem is a ``ConfigError`` at the place the value was written
(``Options.operator_positions``); they are raised together as
``ConfigErrors``, in document order.
"""

from __future__ import annotations

import os
import time

from conf.errors import ConfigError, ConfigErrors
from conf.values import Position
from gateway.auth.jwt import Claims, JWTError, check_times, decode, parse_decorated
from gateway.options.model import Options


class _Found:
    """The errors found so far."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.errors: list[ConfigError] = []

    def at(self, key: str) -> Position:
        """Where ``key`` of ``Options.operator_positions`` was written (else the file)."""
        pos = self.options.operator_positions.get(key)
        if pos is not None:
            return pos
        return Position(self.options.source or "<unknown>", 0, 0)

    def error(self, key: str, message: str) -> None:
        pos = self.at(key)
        self.errors.append(ConfigError(message, pos.file, pos.line, pos.column))


def _read_operator(value: str) -> str:
    """The JWT of an ``operator`` value: a file's content, or the value itself."""
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            return parse_decorated(f.read())[0]
    return value


def _describe(claims: Claims) -> str:
    return f'"{claims.name}" ({claims.subject})' if claims.name else claims.subject


def _times(found: _Found, key: str, what: str, claims: Claims, now: float) -> None:
    try:
        check_times(claims, now)
    except JWTError as exc:
        found.error(key, f"{what} {_describe(claims)}: {exc}")


def check_operator(options: Options, now: float | None = None) -> None:
    """Verify the operator-mode JWTs of ``options``; raises ``ConfigErrors`` listing each problem.

    A no-op outside operator mode.
    """
    if not options.operator_mode:
        return
    now = time.time() if now is None else now
    found = _Found(options)
    operators: list[Claims] = []
    for value in options.operators:
        key = f"operator:{value}"
        try:
            claims = decode(_read_operator(value), "operator")
        except (OSError, UnicodeDecodeError) as exc:
            found.error(key, f'error parsing operator JWT: cannot read "{value}": {exc}')
            continue
        except JWTError as exc:
            where = "" if value.startswith("eyJ") else f' in "{value}"'
            found.error(key, f"error parsing operator JWT{where}: {exc}")
            continue
        _times(found, key, "operator", claims, now)
        operators.append(claims)
    trusted: set[str] = set(options.trusted_keys)
    for op in operators:
        signing = op.nats.get("signing_keys")
        keys = [k for k in signing if isinstance(k, str)] if isinstance(signing, list) else []
        trusted.update(keys)
        if not op.nats.get("strict_signing_key_usage"):
            trusted.add(op.subject)
    from_jwts = {
        str(op.nats["system_account"]) for op in operators if op.nats.get("system_account")
    }
    system = options.system_account
    if system is not None and from_jwts and system not in from_jwts:
        found.error("system_account", "system_account in config and operator JWT must be identical")
    if system is None and len(operators) == 1 and from_jwts:
        system = next(iter(from_jwts))
    first_operator = f"operator:{options.operators[0]}" if options.operators else "resolver"
    resolver = options.resolver
    if resolver is None:
        found.error(first_operator, "operators require an account resolver to be configured")
    elif (
        resolver.kind == "memory" and system is not None and system not in options.resolver_preload
    ):
        where = "system_account" if "system_account" in options.operator_positions else "resolver"
        found.error(where, f"Can't set system account: account {system} is not in resolver_preload")
    for account, token in options.resolver_preload.items():
        key = f"resolver_preload:{account}"
        try:
            claims = decode(token, "account")
        except JWTError as exc:
            found.error(key, f"invalid account JWT for {account}: {exc}")
            continue
        if claims.subject != account:
            found.error(key, f"account JWT subject {claims.subject} is not its key {account}")
        if claims.issuer not in trusted and len(operators) == len(options.operators):
            found.error(
                key,
                f"account JWT {_describe(claims)} is issued by {claims.issuer}, "
                "which is not a configured operator or one of its signing keys",
            )
        _times(found, key, "account JWT", claims, now)
    if found.errors:
        found.errors.sort(key=lambda e: (e.file, e.line, e.column))
        raise ConfigErrors(found.errors)


__all__ = ["check_operator"]
