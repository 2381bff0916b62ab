"""Plain Python values -> configuration text that ``conf.loads`` reads back to equal values.

``dumps`` is the inverse of ``loads`` for the value types the language has:
``str``, ``bool``, ``int`` (signed 64-bit), ``float`` (finite), UTC
``datetime`` (whole seconds), ``list``/``tuple`` and ``dict`` with ``str``
keys, nested. Strings are always double-quoted so that no string can turn
into a number, boolean or ``$variable``; the escapes are the NATS server's
(``\\t \\n \\r \\" \\\\`` and ``\\xHH`` for other ASCII control characters).
Keys are written bare only when they are plainly identifiers, otherwise
quoted (quoted keys have no escapes, so a key holding both ``'`` and ``"``
cannot be written). Anything the language cannot represent raises
``ValueError``; a type it does not have raises ``TypeError``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["dumps"]

_INDENT = "  "
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_SIMPLE_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def dumps(mapping: Mapping[str, Any]) -> str:
    """Configuration text for ``mapping``: one ``key = value`` per line, maps as blocks."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"dumps() needs a mapping, got {type(mapping).__name__}")
    lines: list[str] = []
    _write_entries(mapping, 0, lines)
    return "".join(line + "\n" for line in lines)


def _write_entries(mapping: Mapping[Any, Any], depth: int, lines: list[str]) -> None:
    indent = _INDENT * depth
    for key, value in mapping.items():
        written_key = _key(key)
        if isinstance(value, Mapping) and value:
            lines.append(f"{indent}{written_key} {{")
            _write_entries(value, depth + 1, lines)
            lines.append(f"{indent}}}")
        else:
            lines.append(f"{indent}{written_key} = {_value(value, depth)}")


def _value(value: Any, depth: int) -> str:
    """``value`` as written after ``key =`` (or as an array element) at nesting ``depth``."""
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"integer {value} is out of the range of a signed 64-bit integer")
        return str(int(value))
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, dt.datetime):
        return _datetime(value)
    inner = _INDENT * (depth + 1)
    closing = _INDENT * depth
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        lines: list[str] = []
        _write_entries(value, depth + 1, lines)
        return "{\n" + "".join(line + "\n" for line in lines) + closing + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        elements = "".join(f"{inner}{_value(item, depth + 1)}\n" for item in value)
        return "[\n" + elements + closing + "]"
    raise TypeError(f"cannot write a value of type {type(value).__name__}")


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"keys must be strings, got {type(key).__name__}")
    if _BARE_KEY.fullmatch(key) and key.lower() != "include":
        return key
    if '"' not in key:
        return f'"{key}"'
    if "'" not in key:
        return f"'{key}'"
    raise ValueError(f"key {key!r} holds both ' and \": quoted keys have no escapes")


def _string(text: str) -> str:
    """``text`` double-quoted; lone surrogates from ``\\xHH`` bytes are written back as bytes."""
    try:
        raw = text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        raise ValueError(f"string {text!r} holds a surrogate that is not a byte") from None
    if raw.decode("utf-8", errors="surrogateescape") != text:
        raise ValueError(f"string {text!r} holds escaped bytes that would read back as text")
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _float(value: float) -> str:
    """Positional notation with a ``.`` (the language has no exponents), shortest round trip."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be written: the language has no nan or infinity")
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def _datetime(value: dt.datetime) -> str:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"datetime {value.isoformat()} has no time zone: only UTC can be written")
    if value.microsecond:
        raise ValueError(f"datetime {value.isoformat()} has a fraction of a second")
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"datetime {value.isoformat()} is out of range in UTC") from None
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
    )
