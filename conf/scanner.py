"""Character-level reading of configuration text: positions, escapes and scalar tokens.

The NATS server's lexer decides a value's type from its first characters and
from where the token ends; this module holds those decisions (numbers, sizes,
floats, IP-like strings, datetimes, booleans) so that ``conf.parser`` only
deals with structure.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from typing import Any

from conf.errors import ConfigError
from conf.values import Position, SizedInt

BLANKS = " \t"
NEWLINES = "\n\r"
# Characters that end an unquoted value (a "raw string" in the NATS lexer).
RAW_VALUE_END = frozenset(" \t\n\r;,]}")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_SIZE_FACTORS = {
    "k": 10**3, "kb": 2**10, "ki": 2**10, "kib": 2**10,
    "m": 10**6, "mb": 2**20, "mi": 2**20, "mib": 2**20,
    "g": 10**9, "gb": 2**30, "gi": 2**30, "gib": 2**30,
    "t": 10**12, "tb": 2**40, "ti": 2**40, "tib": 2**40,
    "p": 10**15, "pb": 2**50, "pi": 2**50, "pib": 2**50,
    "e": 10**18, "eb": 2**60, "ei": 2**60, "eib": 2**60,
}  # fmt: skip

_INT = re.compile(r"-?\d+")
_SIZED = re.compile(r"(-?\d+)([kmgtpe][bi]*)", re.IGNORECASE)
_SIZED_THEN_DIGIT = re.compile(r"-?\d+[kmgtpe][bi]*\d", re.IGNORECASE)
_FLOAT = re.compile(r"-?\d+\.\d+")
_IP_LIKE = re.compile(r"\d+\.\d+\.[\d.:\-]*")
_DATETIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z")
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_BCRYPT_PREFIXES = ("2a$", "2b$", "2y$")


class Text:
    """Configuration source text with its file name and 1-based line/column lookup."""

    __slots__ = ("_line_starts", "file", "source")

    def __init__(self, source: str, file: str) -> None:
        self.source = source
        self.file = file
        starts = [0]
        starts.extend(i + 1 for i, ch in enumerate(source) if ch == "\n")
        self._line_starts = starts

    def position(self, index: int) -> Position:
        """The file, 1-based line and 1-based column of character ``index``."""
        line = bisect.bisect_right(self._line_starts, index)
        return Position(self.file, line, index - self._line_starts[line - 1] + 1)

    def error(self, message: str, index: int) -> ConfigError:
        """A ``ConfigError`` for character ``index``."""
        pos = self.position(index)
        return ConfigError(message, pos.file, pos.line, pos.column)


def describe(ch: str) -> str:
    """How a character is named in an error message."""
    if ch == "":
        return "end of file"
    if ch == "\n":
        return "new line"
    if ch == "\r":
        return "carriage return"
    if ch == "\t":
        return "tab"
    return repr(ch)


def read_escape(text: Text, index: int, out: bytearray) -> int:
    """Decode the escape whose backslash is at ``index`` into ``out``; returns the next index.

    Only the NATS server's escapes exist: ``\\t \\n \\r \\" \\\\`` and ``\\xHH``.
    """
    src = text.source
    code = src[index + 1 : index + 2]
    simple = {"t": b"\t", "n": b"\n", "r": b"\r", '"': b'"', "\\": b"\\"}
    if code in simple:
        out += simple[code]
        return index + 2
    if code == "x":
        digits = src[index + 2 : index + 4]
        if "\n" in digits or len(digits) < 2:
            raise text.error(
                "expected two hexadecimal digits after '\\x', but hit end of line", index
            )
        if not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise text.error(
                f"expected two hexadecimal digits after '\\x', but got {digits!r}", index
            )
        out.append(int(digits, 16))
        return index + 4
    raise text.error(
        f'invalid escape character {describe(code)}; only \\xXX, \\t, \\n, \\r, \\" and \\\\ '
        "are allowed",
        index,
    )


def decode_bytes(raw: bytearray) -> str:
    """Text from decoded string bytes; ``\\xHH`` may have produced bytes that are not UTF-8."""
    return raw.decode("utf-8", errors="surrogateescape")


def classify_raw(word: str, had_escape: bool) -> tuple[str, Any]:
    """Classify an unquoted word: ("bool", b), ("variable", name) or ("string", s)."""
    if had_escape:
        return "string", word
    lowered = word.lower()
    if lowered in _BOOLS:
        return "bool", _BOOLS[lowered]
    if word.startswith("$") and len(word) > 1:
        name = word[1:]
        if name.startswith(_BCRYPT_PREFIXES):
            return "string", word
        return "variable", name
    return "string", word


def classify_number(text: Text, token: str, index: int) -> Any | None:
    """The value of a token that starts with a digit or ``-``, or None if it is a plain string.

    Follows the NATS lexer: integers, sized integers, floats, IP-like strings
    and Zulu datetimes; tokens that merely start with digits (``3xyz``,
    ``10s``, ``1ms``) are strings. Where the NATS server would misparse
    silently (``1kbb``) or wrap around (``8EB``) this raises instead.
    """
    if _INT.fullmatch(token):
        return _int64(text, int(token), token, index)
    sized = _SIZED.fullmatch(token)
    if sized:
        suffix = sized.group(2).lower()
        factor = _SIZE_FACTORS.get(suffix)
        if factor is None:
            raise text.error(
                f"unknown size suffix {sized.group(2)!r} in {token!r}; expected one of "
                "k, kb, ki, kib, m, mb, mi, mib, g, gb, gi, gib, t, tb, ti, tib, "
                "p, pb, pi, pib, e, eb, ei, eib",
                index,
            )
        value = _int64(text, int(sized.group(1)) * factor, token, index)
        return SizedInt(value, token)
    if _FLOAT.fullmatch(token):
        return float(token)
    if _IP_LIKE.fullmatch(token):
        return token
    if _DATETIME.match(token) or re.match(r"\d{4}-", token):
        return _datetime(text, token, index)
    if _SIZED_THEN_DIGIT.match(token) or re.match(r"-?\d+\.", token):
        raise text.error(
            f"invalid number {token!r}: quote it if it is a string or a duration "
            f'(for example "{token}")',
            index,
        )
    if re.match(r"-?\d+-", token):
        raise text.error(
            f"invalid value {token!r}: dates must be in full Zulu form "
            "(YYYY-MM-DDTHH:MM:SSZ); quote it if it is a string",
            index,
        )
    if token.startswith("-"):
        after = token[1:2]
        if not after.isdigit():
            raise text.error(f"expected a digit after '-' but got {describe(after)}", index + 1)
        raise text.error(f"invalid number {token!r}: quote it if it is a string", index)
    return None


def _int64(text: Text, value: int, token: str, index: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise text.error(f"integer {token!r} is out of the range of a signed 64-bit integer", index)
    return value


def _datetime(text: Text, token: str, index: int) -> dt.datetime:
    match = _DATETIME.fullmatch(token)
    if not match:
        raise text.error(
            f"invalid date-time {token!r}: expected full Zulu form YYYY-MM-DDTHH:MM:SSZ", index
        )
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError as exc:
        raise text.error(f"invalid date-time {token!r}: {exc}", index) from None
