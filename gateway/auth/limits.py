"""Per-connection limits of operator-mode users: subscriptions, payload size, data.

Computed as the NATS server computes them (``client.applyAccountLimits``):
each limit is the smallest of the user JWT's value (``nats.subs``,
``nats.payload``, ``nats.data``; for a user signed by a ``user_scope``
signing key, the scope template's), the account JWT's (``limits.subs``,
``limits.payload``, ``limits.data``) and, for subscriptions and payload, the
server's own ``max_subscriptions`` and ``max_payload``. In JWTs ``-1`` means
unlimited, and a v2 JWT that leaves a limit out has a limit of **0** (the Go
library never fills defaults; ``nsc`` always writes ``-1``): a user without
``subs`` may not subscribe at all, and the NATS server closes its connection
at once (``shared/reference/nats-jwt.md`` 5.4). v1 JWTs read an absent limit as
unlimited, as the Go library migrates them.

The NATS server enforces ``subs`` (``-ERR 'maximum subscriptions exceeded'``,
the connection stays) and ``payload`` (the INFO sent after CONNECT carries the
lowered ``max_payload``; a bigger publish gets ``-ERR 'Maximum Payload
Violation'`` and the connection is closed). It does not enforce ``data`` on
client connections; jetgate carries the value (``Limits.data``) and does not
enforce it either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The JWT spelling of "no limit".
NO_LIMIT = -1


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may do; ``None`` is unlimited.

    ``subscriptions``: how many subscriptions the connection may hold at once
    (0: none, and the connection is closed right after it is accepted);
    ``payload``: the largest message payload it may publish, in bytes (for
    NATS: headers and body together); ``data``: the JWTs' data limit (bytes),
    not enforced (the NATS server does not enforce it on clients either).
    """

    subscriptions: int | None = None
    payload: int | None = None
    data: int | None = None

    @property
    def unlimited(self) -> bool:
        """Whether no limit applies at all."""
        return self.subscriptions is None and self.payload is None and self.data is None


UNLIMITED = Limits()


def jwt_limit(value: Any, *, absent: int) -> int | None:
    """A limit as written in a JWT: ``None`` for -1, else the number (``absent`` when missing).

    Non-numbers count as missing (Go would refuse the JWT; jetgate is lenient
    here and errs on the restrictive side for v2 JWTs).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        value = absent
    number = int(value)
    return None if number == NO_LIMIT else number


def tighter(a: int | None, b: int | None) -> int | None:
    """The smaller of two limits, ``None`` being unlimited."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def server_limit(value: int) -> int | None:
    """A server option's limit (``max_payload``, ``max_subscriptions``): 0 or less is unlimited."""
    return value if value > 0 else None


def connection_limits(
    user: Mapping[str, Any],
    account: Mapping[str, Any],
    *,
    user_version: int = 2,
    account_version: int = 2,
    max_payload: int = 0,
    max_subscriptions: int = 0,
) -> Limits:
    """The limits of one connection (see the module docstring).

    ``user`` holds the user JWT's (or scope template's) ``subs``/``payload``/
    ``data``; ``account`` is the account JWT's ``limits`` object.
    """
    user_absent = NO_LIMIT if user_version < 2 else 0
    account_absent = NO_LIMIT if account_version < 2 else 0

    def combined(name: str) -> int | None:
        return tighter(
            jwt_limit(user.get(name), absent=user_absent),
            jwt_limit(account.get(name), absent=account_absent),
        )

    return Limits(
        subscriptions=tighter(combined("subs"), server_limit(max_subscriptions)),
        payload=tighter(combined("payload"), server_limit(max_payload)),
        data=combined("data"),
    )
