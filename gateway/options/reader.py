"""Reading parsed configuration values into typed ones, collecting every mistake.

``Context`` gathers errors and warnings (each at a ``Position``) so that one
pass over a file reports all of them. ``Block`` matches the keys of one map
against a table of known keys the way the NATS server does (case-insensitive,
with aliases), turns an unknown key into an error with a "did you mean"
suggestion, and a key the NATS server knows but jetgate does not implement
into a warning. The ``as_*`` functions convert one value, record an error and
return ``None`` when the value is wrong, so the caller keeps its default.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conf.duration import DurationError, parse_duration
from conf.errors import ConfigError
from conf.values import ConfList, ConfMap, Position, SizedInt

#: ``port: -1`` asks for an ephemeral port, as in the NATS server.
RANDOM_PORT = -1

_MAX_INT32 = (1 << 31) - 1


class Context:
    """Errors and warnings found while building options, in the order found."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []
        self.warnings: list[tuple[Position, str]] = []

    def error(self, position: Position, message: str) -> None:
        """Record a mistake at ``position``."""
        self.errors.append(ConfigError(message, position.file, position.line, position.column))

    def warn(self, position: Position, message: str) -> None:
        """Record a warning at ``position``."""
        self.warnings.append((position, message))

    def formatted_warnings(self) -> tuple[str, ...]:
        """Warnings as ``FILE:LINE:COL: message`` strings, in document order."""
        ordered = sorted(self.warnings, key=lambda w: (w[0].file, w[0].line, w[0].column))
        return tuple(f"{pos}: {msg}" for pos, msg in ordered)


@dataclass(frozen=True, slots=True)
class Entry:
    """One key of a map: the key as written, its value, and where it was written."""

    key: str
    value: Any
    pos: Position


def describe(value: object) -> str:
    """A short description of a parsed value for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SizedInt):
        return value.text
    if isinstance(value, Mapping):
        return "a map"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def suggest(name: str, candidates: Iterable[str]) -> str:
    """``; did you mean "x"?`` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f'; did you mean "{matches[0]}"?' if matches else ""


def used_as_variable(conf_map: Mapping[str, Any]) -> set[str]:
    """The keys of ``conf_map`` that the file referenced as ``$name``."""
    names = getattr(conf_map, "used_as_variable", None)
    return names if isinstance(names, set) else set()


def position_of(conf_map: Mapping[str, Any], key: str) -> Position:
    """Where ``key`` was written in ``conf_map`` (the map's own position if unknown)."""
    if isinstance(conf_map, ConfMap):
        return conf_map.pos(key)
    return Position("<unknown>", 0, 0)


def items_of(values: Sequence[Any], fallback: Position) -> Iterator[tuple[Any, Position]]:
    """Each element of an array with its position."""
    for index, value in enumerate(values):
        pos = values.pos(index) if isinstance(values, ConfList) else fallback
        yield value, pos


class Block:
    """The keys of one map, matched case-insensitively against known names and aliases.

    ``keys`` maps each canonical name to all the spellings that select it (the
    canonical one included). ``ignored`` are names the NATS server accepts in
    this block but jetgate does not implement: they are warned about and
    dropped, so a NATS server configuration can be used unchanged.
    """

    def __init__(
        self,
        ctx: Context,
        conf_map: Mapping[str, Any],
        where: str,
        keys: Mapping[str, Sequence[str]],
        ignored: Iterable[str] = (),
    ) -> None:
        self.ctx = ctx
        self.where = where
        self.entries: dict[str, Entry] = {}
        spelling: dict[str, str] = {}
        for name, aliases in keys.items():
            spelling[name] = name
            for alias in aliases:
                spelling[alias] = name
        ignored_names = frozenset(ignored)
        variables = used_as_variable(conf_map)
        for key, value in conf_map.items():
            pos = position_of(conf_map, key)
            lower = key.lower()
            canonical = spelling.get(lower)
            if canonical is None:
                if lower in ignored_names:
                    ctx.warn(pos, f'"{key}" in {where} is not supported by jetgate, ignored')
                elif key not in variables:
                    hint = suggest(lower, keys) or suggest(lower, [*spelling, *ignored_names])
                    ctx.error(pos, f'unknown field "{key}" in {where}{hint}')
                continue
            previous = self.entries.get(canonical)
            if previous is not None:
                ctx.error(
                    pos,
                    f'"{key}" sets the same option as "{previous.key}" (written at {previous.pos})',
                )
                continue
            self.entries[canonical] = Entry(key, value, pos)

    def get(self, name: str) -> Entry | None:
        """The entry for canonical ``name``, if the map has it."""
        return self.entries.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.entries


# -- scalar conversions -------------------------------------------------------


def as_str(ctx: Context, e: Entry, *, allow_empty: bool = True) -> str | None:
    """A string value."""
    if isinstance(e.value, str):
        if not allow_empty and not e.value:
            ctx.error(e.pos, f'"{e.key}" must not be empty')
            return None
        return e.value
    ctx.error(e.pos, f'"{e.key}" must be a string, got {describe(e.value)}')
    return None


def as_bool(ctx: Context, e: Entry) -> bool | None:
    """A boolean value (``true``/``false``/``yes``/``no``/``on``/``off``)."""
    if isinstance(e.value, bool):
        return e.value
    ctx.error(e.pos, f'"{e.key}" must be true or false, got {describe(e.value)}')
    return None


def as_int(
    ctx: Context, e: Entry, *, low: int | None = None, high: int | None = None
) -> int | None:
    """An integer within ``low..high`` (either bound optional)."""
    value = e.value
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.error(e.pos, f'"{e.key}" must be an integer, got {describe(value)}')
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            wanted = f"at least {low}"
        elif low is None:
            wanted = f"at most {high}"
        else:
            wanted = f"in {low}..{high}"
        ctx.error(e.pos, f'invalid value {value} for "{e.key}": must be {wanted}')
        return None
    return int(value)


def as_number(ctx: Context, e: Entry) -> float | None:
    """An int or float value."""
    value = e.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        ctx.error(e.pos, f'"{e.key}" must be a number, got {describe(value)}')
        return None
    return float(value)


def as_str_list(ctx: Context, e: Entry, *, allow_empty: bool = True) -> tuple[str, ...] | None:
    """A string or an array of strings."""
    if isinstance(e.value, str):
        return (e.value,)
    if not isinstance(e.value, list):
        ctx.error(
            e.pos, f'"{e.key}" must be a string or an array of strings, got {describe(e.value)}'
        )
        return None
    out: list[str] = []
    ok = True
    for item, pos in items_of(e.value, e.pos):
        if isinstance(item, str):
            out.append(item)
        else:
            ctx.error(pos, f'"{e.key}" entries must be strings, got {describe(item)}')
            ok = False
    if ok and not out and not allow_empty:
        ctx.error(e.pos, f'"{e.key}" must not be empty')
        return None
    return tuple(out) if ok else None


def as_map(ctx: Context, e: Entry) -> Mapping[str, Any] | None:
    """A map value."""
    if isinstance(e.value, Mapping):
        return e.value
    ctx.error(e.pos, f'"{e.key}" must be a map, got {describe(e.value)}')
    return None


# -- sizes ----------------------------------------------------------------------

_SIZE_TEXT = re.compile(r"^\s*(\d+)\s*([kmgtpe])?(b|ib|i)?\s*$", re.IGNORECASE)
_STORAGE_TEXT = re.compile(r"^(\d+)([KMGT])$")
_POWERS = "kmgtpe"


def parse_size(text: str) -> int | None:
    """Bytes from a size string, or ``None`` if it is not one.

    ``"1G"``/``"512M"`` (a single upper-case K, M, G or T) are binary
    multiples, as the NATS server's JetStream ``max_mem``/``max_file``
    strings are; otherwise the configuration language's size rules apply
    (``k`` = 1000, ``kb``/``ki``/``kib`` = 1024, and so on up to ``e``).
    """
    storage = _STORAGE_TEXT.match(text)
    if storage:
        return int(storage.group(1)) << (10 * ("KMGT".index(storage.group(2)) + 1))
    match = _SIZE_TEXT.match(text)
    if not match:
        return None
    number, unit, binary = match.groups()
    if unit is None:
        return None if binary else int(number)
    power = _POWERS.index(unit.lower()) + 1
    base = 1024 if binary else 1000
    return int(number) * int(base**power)


def as_size(
    ctx: Context, e: Entry, *, low: int | None = None, high: int | None = None
) -> int | None:
    """A byte size: an integer (``64MiB`` included) or a string such as ``"1G"``."""
    value = e.value
    if isinstance(value, str):
        size = parse_size(value)
        if size is None:
            ctx.error(
                e.pos, f'"{e.key}" must be a size such as 1048576, 64MiB or "1G", got "{value}"'
            )
            return None
        value = size
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.error(
            e.pos, f'"{e.key}" must be a size such as 1048576, 64MiB or "1G", got {describe(value)}'
        )
        return None
    if low is not None and value < low:
        ctx.error(e.pos, f'invalid value {value} for "{e.key}": must be at least {low}')
        return None
    if high is not None and value > high:
        ctx.error(e.pos, f'"{e.key}" value {value} is too big (at most {high})')
        return None
    return int(value)


# -- durations ------------------------------------------------------------------

_MINUTES_AS_SIZE = re.compile(r"^(\d+)m$")


def as_duration(
    ctx: Context, e: Entry, *, name: str | None = None, warn_number: bool = True
) -> float | None:
    """Seconds from a duration: a Go duration string, or a number of seconds.

    As in the NATS server, an integer is taken as seconds with the warning
    "should be converted to a duration" (``warn_number``). An unquoted ``5m``
    is a size to the configuration language (5,000,000); here it is read as
    five minutes, with a warning that the NATS server reads it differently.
    Negative durations are errors.
    """
    field = name or e.key
    value = e.value
    seconds: float
    if isinstance(value, SizedInt):
        minutes = _MINUTES_AS_SIZE.match(value.text)
        if not minutes:
            ctx.error(
                e.pos, f'error parsing {field}: expected a duration such as "10s", got {value.text}'
            )
            return None
        seconds = int(minutes.group(1)) * 60.0
        ctx.warn(
            e.pos,
            f"{field}: {value.text} read as {minutes.group(1)} minute(s); the NATS server reads "
            f'an unquoted {value.text} as the size {int(value)} (seconds), write "{value.text}"',
        )
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            ctx.error(e.pos, f"error parsing {field}: {exc}")
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if warn_number:
            ctx.warn(
                e.pos, f'invalid use of field "{field}": {field} should be converted to a duration'
            )
    else:
        ctx.error(
            e.pos,
            f'error parsing {field}: expected a duration such as "10s", got {describe(value)}',
        )
        return None
    if seconds < 0:
        ctx.error(e.pos, f"invalid {field} {describe(value)}: a duration must not be negative")
        return None
    return seconds


# -- listen addresses -----------------------------------------------------------


def split_host_port(text: str) -> tuple[str | None, int | None] | None:
    """``(host, port)`` from ``host:port``, ``:port``, ``host`` or ``[v6]:port``; ``None`` if malformed."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            return None
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        return text, None  # a bare IPv6 address
    else:
        return text, None
    try:
        port = int(port_text)
    except ValueError:
        return None
    return (host or None), port


def check_port(ctx: Context, e: Entry, port: int) -> int | None:
    """A port in ``-1..65535`` (-1 = random)."""
    if not RANDOM_PORT <= port <= 65535:
        ctx.error(
            e.pos,
            f'invalid port {port} for "{e.key}": must be in 0..65535, or -1 for a random port',
        )
        return None
    return port


def as_port(ctx: Context, e: Entry) -> int | None:
    """A port number (-1 = random)."""
    port = as_int(ctx, e)
    return None if port is None else check_port(ctx, e, port)


def as_listen(ctx: Context, e: Entry) -> tuple[str | None, int | None] | None:
    """``(host, port)`` from a ``listen`` value: a port, or a ``host:port`` string."""
    value = e.value
    if isinstance(value, int) and not isinstance(value, bool):
        port = check_port(ctx, e, int(value))
        return None if port is None else (None, port)
    if not isinstance(value, str):
        ctx.error(e.pos, f'"{e.key}" expects a port or host:port, got {describe(value)}')
        return None
    parts = split_host_port(value)
    if parts is None:
        ctx.error(e.pos, f'could not parse address string "{value}": expected host:port')
        return None
    host, port = parts
    if port is not None and check_port(ctx, e, port) is None:
        return None
    return host, port


def check_int32(ctx: Context, e: Entry, value: int | None) -> int | None:
    """``value`` if it fits a signed 32-bit integer, as the NATS server requires."""
    if value is not None and value > _MAX_INT32:
        ctx.error(e.pos, f"{e.key} value is too big")
        return None
    return value
