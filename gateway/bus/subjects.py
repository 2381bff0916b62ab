"""NATS subject rules: validation and wildcard matching of single subjects.

A subject is tokens separated by ``.``; no token is empty and none holds
whitespace. In a filter, a token that is exactly ``*`` matches one token and a
last token that is exactly ``>`` matches one or more tokens. ``*`` or ``>``
inside a longer token is a literal character.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = [
    "InvalidSubject",
    "is_literal",
    "subject_matches",
    "subjects_overlap",
    "validate_subject",
    "validate_subscription",
]

_BAD_CHARS = frozenset(" \t\r\n\f\x00\x7f")


class InvalidSubject(ValueError):
    """A subject or filter breaks the NATS subject rules."""


@lru_cache(maxsize=16384)
def _check(subject: str, wildcards: bool) -> str | None:
    """Return a reason the subject is invalid, or None when it is valid."""
    if not subject:
        return "empty subject"
    if not _BAD_CHARS.isdisjoint(subject):
        return "whitespace or control character in subject"
    tokens = subject.split(".")
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        if not token:
            return "empty token"
        if token == "*" or token == ">":
            if not wildcards:
                return "wildcard not allowed"
            if token == ">" and i != last:
                return "'>' must be the last token"
    return None


def validate_subject(subject: str, *, wildcards: bool = False) -> None:
    """Raise InvalidSubject unless ``subject`` is valid (a filter if ``wildcards``)."""
    reason = _check(subject, wildcards)
    if reason is not None:
        raise InvalidSubject(f"{reason}: {subject!r}")


def validate_subscription(subject: str, queue: str | None) -> None:
    """Raise InvalidSubject unless ``subject`` is a valid filter and ``queue`` a valid group."""
    validate_subject(subject, wildcards=True)
    if queue is not None:
        validate_subject(queue)


def is_literal(subject: str) -> bool:
    """True when the subject has no wildcard token."""
    return all(not (token == "*" or token == ">") for token in subject.split("."))


@lru_cache(maxsize=65536)
def subject_matches(filter_: str, subject: str) -> bool:
    """True when the literal ``subject`` is matched by ``filter_``."""
    if filter_ == subject:
        return True
    ftoks = filter_.split(".")
    stoks = subject.split(".")
    for i, ft in enumerate(ftoks):
        if ft == ">":
            return len(stoks) > i
        if i >= len(stoks):
            return False
        if ft != "*" and ft != stoks[i]:
            return False
    return len(ftoks) == len(stoks)


def subjects_overlap(a: str, b: str) -> bool:
    """True when some literal subject is matched by both filters."""
    at = a.split(".")
    bt = b.split(".")
    for i in range(max(len(at), len(bt))):
        x = at[i] if i < len(at) else None
        y = bt[i] if i < len(bt) else None
        if x == ">" or y == ">":
            # '>' needs at least one token on the other side to match.
            return x is not None and y is not None
        if x is None or y is None:
            return False
        if x != y and x != "*" and y != "*":
            return False
    return True
