"""Parsed values that remember where they were written.

``ConfMap`` and ``ConfList`` are a ``dict`` and a ``list`` (they compare equal
to plain ones) that also record the position of each key or element, so that
``gateway.options`` can report a bad value at ``FILE:LINE:COL``.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Position(NamedTuple):
    """Where a key or value was written: file path (or ``<string>``), 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


UNKNOWN = Position("<unknown>", 0, 0)


class ConfMap(dict[str, Any]):
    """A parsed map: a ``dict`` plus the position of each key and the names used as variables."""

    __slots__ = ("origin", "positions", "used_as_variable")

    def __init__(self, origin: Position = UNKNOWN) -> None:
        super().__init__()
        self.origin = origin
        self.positions: dict[str, Position] = {}
        self.used_as_variable: set[str] = set()

    def set(self, key: str, value: Any, position: Position) -> None:
        """Assign ``key`` (a later assignment replaces an earlier one) and remember where."""
        self[key] = value
        self.positions[key] = position

    def pos(self, key: str) -> Position:
        """The position of ``key``'s assignment, or of the map itself if unknown."""
        return self.positions.get(key, self.origin)


class ConfList(list[Any]):
    """A parsed array: a ``list`` plus the position of each element."""

    __slots__ = ("origin", "positions")

    def __init__(self, origin: Position = UNKNOWN) -> None:
        super().__init__()
        self.origin = origin
        self.positions: list[Position] = []

    def add(self, value: Any, position: Position) -> None:
        """Append ``value`` written at ``position``."""
        self.append(value)
        self.positions.append(position)

    def pos(self, index: int) -> Position:
        """The position of element ``index``, or of the array itself if unknown."""
        if 0 <= index < len(self.positions):
            return self.positions[index]
        return self.origin


class SizedInt(int):
    """An integer written with a size suffix (``1m``, ``64MiB``); ``text`` keeps what was written.

    The NATS server reads an unquoted ``1m`` as the size 1,000,000, so where an
    option expects a duration, ``gateway.options`` uses ``text`` to read it as
    one minute instead (and warns that the NATS server reads it differently).
    """

    text: str

    def __new__(cls, value: int, text: str) -> SizedInt:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj
