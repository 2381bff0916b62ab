"""The one error type of the configuration language, with its position."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration mistake at a position: ``str()`` is ``FILE:LINE:COL: message``.

    ``line`` and ``column`` are 1-based and point at the offending character
    (or the key that owns an invalid value). ``file`` is the path as given, or
    ``<string>`` for text parsed without one.
    """

    def __init__(self, message: str, file: str | None, line: int, column: int) -> None:
        self.message = message
        self.file = file or "<string>"
        self.line = line
        self.column = column
        super().__init__(f"{self.file}:{line}:{column}: {message}")


class ConfigErrors(ConfigError):
    """Several configuration mistakes found in one pass; ``str()`` lists them one per line."""

    def __init__(self, errors: list[ConfigError]) -> None:
        if not errors:
            raise ValueError("ConfigErrors needs at least one error")
        first = errors[0]
        self.errors = errors
        super().__init__(first.message, first.file, first.line, first.column)
        self.args = ("\n".join(str(e) for e in errors),)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)
