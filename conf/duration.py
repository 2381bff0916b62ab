"""Durations as the NATS server reads them: Go ``time.ParseDuration`` strings or seconds."""

from __future__ import annotations

import re

from conf.errors import ConfigError
from conf.values import Position

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_SECONDS = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A value that is not a duration; the message says what was expected."""


def parse_duration(value: object) -> float:
    """Seconds from a Go-style duration string (``"1.5h"``, ``"1h30m"``, ``"250ms"``) or a number.

    A bare number (int or float, or a numeric string) is taken as seconds, as
    the NATS server does for durations written as integers. Raises
    ``DurationError`` for anything else.
    """
    if isinstance(value, bool):
        raise DurationError(f'expected a duration such as "10s", got {value!r}')
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise DurationError(f'expected a duration such as "10s", got {value!r}')
    text = value.strip()
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise DurationError(f"invalid duration {value!r}")
    if _SECONDS.fullmatch(text):
        return sign * float(text)
    total = 0.0
    pos = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise DurationError(
            f"invalid duration {value!r}: expected a number with a unit "
            '(ns, us, ms, s, m, h), such as "10s", "1.5h" or "250ms"'
        )
    return sign * total


def duration_at(value: object, position: Position) -> float:
    """``parse_duration`` that reports a bad value as a ``ConfigError`` at ``position``."""
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ConfigError(str(exc), position.file, position.line, position.column) from None
