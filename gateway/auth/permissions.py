"""Publish and subscribe permissions, checked on NATS subjects as the NATS server checks them.

- Publish: a subject is allowed when it matches an ``allow`` entry (or there is
  no allow list) and matches no ``deny`` entry. Results are cached.
- Subscribe: a filter is allowed when it is a subset of an ``allow`` entry
  (``foo.*`` under ``foo.>``; but not ``foo.>`` under ``foo.*``), and denied
  when a ``deny`` entry matches it read literally (``deny: foo.>`` refuses
  ``foo.*``, while ``deny: foo.bar`` does not refuse ``foo.*``). Messages on
  denied subjects that reach such a wildcard subscription are dropped at
  delivery (``may_deliver``). Entries of the form ``"subject queue"`` allow or
  deny a queue subscription only for that queue group.
- ``allow_responses``: a client may publish to the reply subject of a request
  it received, up to ``max_msgs`` times within ``expires`` seconds
  (``ResponsePermits``, one per connection).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from gateway.bus.subjects import subject_matches
from gateway.options.model import Permissions as PermissionOptions
from gateway.options.model import SubjectPermission

_CACHE_SIZE = 1024


def is_subset(filter_: str, of: str) -> bool:
    """Whether every subject matched by ``filter_`` is also matched by ``of``."""
    if filter_ == of:
        return True
    inner = filter_.split(".")
    outer = of.split(".")
    for i, token in enumerate(outer):
        if token == ">":
            return len(inner) > i
        if i >= len(inner):
            return False
        mine = inner[i]
        if mine == ">":
            return False
        if token == "*":
            continue
        if mine != token:
            return False
    return len(inner) == len(outer)


@dataclass(frozen=True, slots=True)
class _Entry:
    subject: str
    queue: str | None

    @classmethod
    def parse(cls, text: str) -> _Entry:
        parts = text.split()
        return cls(parts[0], parts[1] if len(parts) == 2 else None)


class SubjectRules:
    """One direction's compiled allow and deny lists."""

    __slots__ = ("_allow", "_cache", "_deny", "has_deny", "restricted")

    def __init__(self, rules: SubjectPermission | None) -> None:
        allow = None if rules is None else rules.allow
        self._allow = None if allow is None else tuple(_Entry.parse(s) for s in allow)
        self._deny = () if rules is None else tuple(_Entry.parse(s) for s in rules.deny)
        self._cache: OrderedDict[str, bool] = OrderedDict()
        self.has_deny = bool(self._deny)
        """Whether there is any deny entry (delivery filtering is needed)."""
        self.restricted = self._allow is not None or self.has_deny
        """Whether any rule exists at all."""

    def may_publish(self, subject: str) -> bool:
        """Whether the literal ``subject`` may be published to."""
        if not self.restricted:
            return True
        cached = self._cache.get(subject)
        if cached is not None:
            return cached
        allowed = (
            self._allow is None or any(subject_matches(e.subject, subject) for e in self._allow)
        ) and not any(subject_matches(e.subject, subject) for e in self._deny)
        self._cache[subject] = allowed
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return allowed

    def may_subscribe(self, filter_: str, queue: str | None = None) -> bool:
        """Whether ``filter_`` (optionally in ``queue``) may be subscribed to."""
        if self._allow is not None and not any(
            is_subset(filter_, e.subject) and (e.queue is None or e.queue == queue)
            for e in self._allow
        ):
            return False
        return not any(
            subject_matches(e.subject, filter_) and (e.queue is None or e.queue == queue)
            for e in self._deny
        )

    def is_denied(self, subject: str) -> bool:
        """Whether the literal ``subject`` matches a deny entry (any queue)."""
        return any(e.queue is None and subject_matches(e.subject, subject) for e in self._deny)


class Permissions:
    """A user's compiled permissions; ``Permissions(None)`` allows everything."""

    __slots__ = ("options", "publish", "subscribe")

    def __init__(self, options: PermissionOptions | None) -> None:
        self.options = options
        self.publish = SubjectRules(options.publish if options else None)
        self.subscribe = SubjectRules(options.subscribe if options else None)

    def may_publish(self, subject: str) -> bool:
        """Whether the literal ``subject`` may be published to."""
        return self.publish.may_publish(subject)

    def may_subscribe(self, filter_: str, queue: str | None = None) -> bool:
        """Whether ``filter_`` may be subscribed to."""
        return self.subscribe.may_subscribe(filter_, queue)

    def may_deliver(self, subject: str) -> bool:
        """Whether a message on ``subject`` may reach this user through a wildcard subscription."""
        return not self.subscribe.has_deny or not self.subscribe.is_denied(subject)

    def new_response_permits(self) -> ResponsePermits | None:
        """Per-connection reply permits when ``allow_responses`` is set, else None."""
        responses = self.options.allow_responses if self.options else None
        if responses is None:
            return None
        return ResponsePermits(responses.max_msgs, responses.expires)

    @property
    def restricted(self) -> bool:
        """Whether any publish or subscribe rule exists."""
        return self.publish.restricted or self.subscribe.restricted


class ResponsePermits:
    """Reply subjects a connection may publish to because it received a request on them."""

    __slots__ = ("_expires", "_max_msgs", "_permits")

    def __init__(self, max_msgs: int, expires: float) -> None:
        self._max_msgs = max_msgs
        self._expires = expires
        self._permits: dict[str, tuple[int, float]] = {}

    def grant(self, reply: str, now: float | None = None) -> None:
        """A request carrying ``reply`` was delivered to the connection."""
        now = time.monotonic() if now is None else now
        deadline = now + self._expires if self._expires > 0 else float("inf")
        self._permits[reply] = (self._max_msgs, deadline)

    def use(self, subject: str, now: float | None = None) -> bool:
        """Spend one permit to publish to ``subject``; False when there is none left."""
        permit = self._permits.get(subject)
        if permit is None:
            return False
        now = time.monotonic() if now is None else now
        remaining, deadline = permit
        if now > deadline:
            del self._permits[subject]
            return False
        if remaining <= 0:  # max_msgs <= 0 means unlimited within the deadline
            return True
        if remaining == 1:
            del self._permits[subject]
        else:
            self._permits[subject] = (remaining - 1, deadline)
        return True
