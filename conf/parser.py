"""Parsing the NATS configuration language into ``ConfMap`` values.

A recursive-descent reader that follows the NATS server's lexer (nats-server
``conf/lex.go``) construct by construct, as written down in
``shared/reference/nats-conf-format.md``. Where the NATS server silently
misparses we deliberately differ, giving the evident value or a precise error:

- an integer right before ``]`` (``[1, 2, 3]``) is an integer, and the array closes;
- a size suffix the NATS server does not know (``1kbb``) or an overflowing
  size (``8EB``) is an error instead of a dropped or wrapped value;
- a key with no value inside a map (``m { a }``, ``m { a = }``) is an error;
- a block string whose ``)`` is the last byte of the file does not keep the ``)``,
  and a ``)`` line ending in CRLF closes the block;
- an absolute ``include`` path is honoured (the NATS server joins it to the
  including file's directory);
- ``$2b$``/``$2y$`` bcrypt hashes are literal strings, like ``$2a$``;
- a map or array taken from a variable is copied, not shared;
- maps and arrays nested more than ``MAX_DEPTH`` (100) deep are an error
  (the NATS server has no limit; Python would hit its recursion limit).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conf.errors import ConfigError
from conf.scanner import (
    BLANKS,
    NEWLINES,
    RAW_VALUE_END,
    Text,
    classify_number,
    classify_raw,
    decode_bytes,
    describe,
    read_escape,
)
from conf.values import ConfList, ConfMap

_TOP = "top"
_MAP = "map"
_ARRAY = "array"
# Maps and arrays nested deeper than this are refused, so that hostile input
# gets a ConfigError rather than a RecursionError.
MAX_DEPTH = 100


def loads(text: str, path: str | None = None, env: Mapping[str, str] | None = None) -> ConfMap:
    """Parse configuration ``text``; ``path`` names it in errors and anchors relative includes.

    ``env`` replaces ``os.environ`` for variable look-ups (mostly for tests).
    """
    environment = os.environ if env is None else env
    chain = (str(Path(path).resolve()),) if path else ()
    return _Parser(Text(text, path or "<string>"), environment, chain).parse_document()


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> ConfMap:
    """Read and parse the configuration file at ``path``."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}", name, 1, 1) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file is not UTF-8 text: {exc.reason}", name, 1, 1) from None
    return loads(text, name, env)


class _Parser:
    """Reads one document; included files get a parser of their own."""

    def __init__(
        self,
        text: Text,
        env: Mapping[str, str],
        include_chain: tuple[str, ...],
        resolving: frozenset[str] = frozenset(),
        depth: int = 0,
    ) -> None:
        self.text = text
        self.src = text.source
        self.n = len(self.src)
        self.i = 0
        self.env = env
        self.include_chain = include_chain
        self.resolving = resolving
        # How many maps and arrays are open, counting those of including documents.
        self.depth = depth
        # The maps currently open, outermost first: variables are looked up here.
        self.scopes: list[ConfMap] = []

    # -- helpers ---------------------------------------------------------

    def peek(self, offset: int = 0) -> str:
        j = self.i + offset
        return self.src[j] if j < self.n else ""

    def error(self, message: str, index: int | None = None) -> ConfigError:
        return self.text.error(message, self.i if index is None else index)

    def skip_blanks(self) -> None:
        while self.i < self.n and self.src[self.i] in BLANKS:
            self.i += 1

    def skip_space_and_comments(self) -> None:
        """Skip any white space (new lines included) and comments, as between entries."""
        while self.i < self.n:
            ch = self.src[self.i]
            if ch.isspace():
                self.i += 1
            elif ch == "#" or (ch == "/" and self.peek(1) == "/"):
                self.skip_comment()
            else:
                return

    def skip_comment(self) -> None:
        while self.i < self.n and self.src[self.i] not in NEWLINES:
            self.i += 1

    # -- documents and maps -------------------------------------------------

    def parse_document(self) -> ConfMap:
        root = ConfMap(self.text.position(0))
        self.scopes.append(root)
        self.parse_entries(root, _TOP)
        return root

    def parse_entries(self, target: ConfMap, context: str) -> None:
        """Read ``key value`` entries into ``target`` until EOF (top level) or ``}`` (map)."""
        while True:
            self.skip_space_and_comments()
            if self.i >= self.n:
                if context == _MAP:
                    raise self.error(
                        f"unexpected end of file in the map opened at line {target.origin.line}: "
                        "expected '}'"
                    )
                return
            ch = self.src[self.i]
            if context == _TOP and ch in "{}":
                # A JSON-style wrapper around the whole document (or a stray brace).
                self.i += 1
                continue
            if context == _MAP and ch == "}":
                self.i += 1
                return
            if ch == "]":
                raise self.error("unexpected ']': expected a key")
            if ch in "=:":
                raise self.error(f"unexpected key separator {ch!r}: expected a key before it")
            self.parse_entry(target, context)

    def parse_entry(self, target: ConfMap, context: str) -> None:
        key_start = self.i
        key, quoted = self.read_key()
        if not quoted and key.lower() == "include" and self.peek() in BLANKS and self.peek():
            self.parse_include(target, key_start)
            self.expect_entry_end(context)
            return
        key_end = self.i
        while self.i < self.n and self.src[self.i].isspace():
            self.i += 1
        separated = self.peek() in ("=", ":")
        if separated:
            self.i += 1
            self.skip_blanks()
        ch = self.peek()
        if ch == "":
            if not separated:
                raise self.error(f"expected a value for key {key!r}", key_end)
            target.set(key, "", self.text.position(key_start))  # `a =` at EOF: "" as in NATS
            return
        if ch == "}" and context == _MAP:
            raise self.error(f"expected a value for key {key!r}, got '}}'")
        value = self.parse_value()
        target.set(key, value, self.text.position(key_start))
        self.expect_entry_end(context)

    def read_key(self) -> tuple[str, bool]:
        ch = self.src[self.i]
        if ch in "'\"":
            end = self.src.find(ch, self.i + 1)
            if end < 0:
                raise self.error(f"unterminated quoted key: expected a closing {ch}")
            key = self.src[self.i + 1 : end]
            self.i = end + 1
            return key, True
        start = self.i
        while self.i < self.n:
            ch = self.src[self.i]
            if ch.isspace() or ch in "=:":
                break
            self.i += 1
        return self.src[start : self.i], False

    def expect_entry_end(self, context: str) -> None:
        """After a value: blanks, then a comment, new line, ``;``, ``,``, ``}`` or EOF."""
        self.skip_blanks()
        ch = self.peek()
        if ch == "" or ch in NEWLINES:
            return
        if ch in ";,":
            self.i += 1
            return
        if ch == "}":
            return
        if ch == "#" or (ch == "/" and self.peek(1) == "/"):
            self.skip_comment()
            return
        where = "a map entry" if context == _MAP else "a value"
        raise self.error(
            f"expected {where} to end with a new line, ',', ';', '}}' or a comment, "
            f"but got {describe(ch)}"
        )

    # -- values -----------------------------------------------------------

    def parse_value(self) -> Any:
        ch = self.peek()
        start = self.i
        if ch in NEWLINES:
            raise self.error("expected a value but found a new line")
        if ch == "[":
            return self.parse_array()
        if ch == "{":
            return self.parse_map()
        if ch == "'":
            return self.parse_single_quoted()
        if ch == '"':
            return self.parse_double_quoted()
        if ch == "(":
            return self.parse_block()
        if ch == ".":
            raise self.error("floats must start with a digit")
        if ch.isdigit() or ch == "-":
            token_end = self.scan_token_end()
            token = self.src[start:token_end]
            value = classify_number(self.text, token, start)
            if value is not None:
                self.i = token_end
                return value
        return self.parse_raw()

    def scan_token_end(self) -> int:
        j = self.i
        while j < self.n and self.src[j] not in RAW_VALUE_END and self.src[j] != "'":
            j += 1
        return j

    def parse_raw(self) -> Any:
        start = self.i
        out = bytearray()
        had_escape = False
        while self.i < self.n:
            ch = self.src[self.i]
            if ch in RAW_VALUE_END:
                break
            if ch == "'":
                self.i += 1  # the NATS lexer ends the word here and drops the quote
                break
            if ch == "\\":
                self.i = read_escape(self.text, self.i, out)
                had_escape = True
                continue
            self.append_char(out, ch)
            self.i += 1
        kind, value = classify_raw(decode_bytes(out), had_escape)
        if kind == "variable":
            return self.lookup_variable(value, start)
        return value

    def append_char(self, out: bytearray, ch: str) -> None:
        """Add the character at the read position to string bytes ``out``."""
        try:
            out += ch.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:
            # Only text handed to loads() can hold a lone surrogate; files are UTF-8.
            raise self.error(f"invalid character {ch!r}: a lone surrogate is not text") from None

    def parse_single_quoted(self) -> str:
        end = self.src.find("'", self.i + 1)
        if end < 0:
            raise self.error("unterminated string: expected a closing '")
        value = self.src[self.i + 1 : end]
        self.i = end + 1
        return value

    def parse_double_quoted(self) -> str:
        start = self.i
        self.i += 1
        out = bytearray()
        while True:
            if self.i >= self.n:
                raise self.error('unterminated string: expected a closing "', start)
            ch = self.src[self.i]
            if ch == '"':
                self.i += 1
                return decode_bytes(out)
            if ch == "\\":
                self.i = read_escape(self.text, self.i, out)
                continue
            self.append_char(out, ch)
            self.i += 1

    def parse_block(self) -> str:
        """A ``( ... )`` block string, closed by a ``)`` alone on its line."""
        start = self.i
        j = self.i + 1
        while True:
            close = self.src.find("\n)", j)
            if close < 0:
                raise self.error(
                    "unterminated block string: expected ')' alone at the start of a line", start
                )
            after = close + 2
            rest = self.src[after : after + 2]
            if after >= self.n or rest[:1] == "\n" or rest == "\r\n":
                value = self.src[start + 1 : close + 1]
                self.i = after
                return value
            j = close + 1

    def enter_nesting(self) -> None:
        if self.depth >= MAX_DEPTH:
            raise self.error(f"maps and arrays are nested more than {MAX_DEPTH} deep")
        self.depth += 1

    def parse_array(self) -> ConfList:
        start = self.i
        result = ConfList(self.text.position(start))
        self.enter_nesting()
        self.i += 1
        while True:
            self.skip_space_and_comments()
            ch = self.peek()
            if ch == "":
                raise self.error(
                    f"unexpected end of file in the array opened at line "
                    f"{result.origin.line}: expected ']'"
                )
            if ch == "]":
                self.i += 1
                self.depth -= 1
                return result
            if ch == ",":
                raise self.error("unexpected ',' in array: expected a value")
            element_start = self.i
            value = self.parse_value()
            result.add(value, self.text.position(element_start))
            self.skip_blanks()
            ch = self.peek()
            if ch == ",":
                self.i += 1
            elif ch == "#" or (ch == "/" and self.peek(1) == "/"):
                self.skip_comment()
            elif ch not in ("]", "") and ch not in NEWLINES:
                raise self.error(
                    f"expected ',' or ']' after an array element, but got {describe(ch)}"
                )

    def parse_map(self) -> ConfMap:
        result = ConfMap(self.text.position(self.i))
        self.enter_nesting()
        self.i += 1
        self.scopes.append(result)
        try:
            self.parse_entries(result, _MAP)
        finally:
            self.scopes.pop()
        self.depth -= 1
        return result

    # -- variables ----------------------------------------------------------

    def lookup_variable(self, name: str, index: int) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                scope.used_as_variable.add(name)
                return copy.deepcopy(scope[name])
        if name in self.resolving:
            raise self.error(f"variable reference cycle for {name!r}", index)
        if name in self.env:
            return self.parse_environment_value(name, index)
        hint = " (variables are written $name, not ${name})" if name.startswith("{") else ""
        raise self.error(
            f"variable reference for {name!r} can not be found (not set earlier in an "
            f"enclosing block, nor in the environment){hint}",
            index,
        )

    def parse_environment_value(self, name: str, index: int) -> Any:
        text = Text(f"pk={self.env[name]}", f"<environment variable {name}>")
        parser = _Parser(text, self.env, self.include_chain, self.resolving | {name}, self.depth)
        try:
            parsed = parser.parse_document()
        except ConfigError as exc:
            if "variable reference cycle" in exc.message:
                raise self.error(exc.message, index) from None
            raise self.error(
                f"variable reference for {name!r} could not be parsed: {exc.message}", index
            ) from None
        return parsed.get("pk", "")

    # -- includes -----------------------------------------------------------

    def parse_include(self, target: ConfMap, key_start: int) -> None:
        self.skip_blanks()
        ch = self.peek()
        path_start = self.i
        if ch in ("'", '"'):
            end = self.src.find(ch, self.i + 1)
            if end < 0:
                raise self.error(f"unterminated include path: expected a closing {ch}")
            written = self.src[self.i + 1 : end]
            self.i = end + 1
        else:
            if ch == "" or ch in NEWLINES:
                raise self.error("expected an include path but found the end of the line")
            if ch in "[{(\\-};" or ch.isdigit():
                raise self.error(f"expected an include path but found {describe(ch)}")
            while self.i < self.n and self.src[self.i] not in " \t\n\r;}'":
                self.i += 1
            written = self.src[path_start : self.i]
            if self.peek() == "'":
                self.i += 1
        included = self.read_include(written, path_start)
        for key, value in included.items():
            target.set(key, value, included.pos(key))
            if key in included.used_as_variable:
                target.used_as_variable.add(key)

    def read_include(self, written: str, index: int) -> ConfMap:
        if "\0" in written:
            raise self.error("include path contains a NUL character", index)
        base = Path(self.text.file).parent if self.include_chain else Path.cwd()
        path = base / written
        resolved = str(path.resolve())
        if resolved in self.include_chain:
            chain = " -> ".join([*self.include_chain, resolved])
            raise self.error(f"include cycle: {chain}", index)
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise self.error(
                f"cannot open include file {written!r} ({path}): {exc.strerror or exc}", index
            ) from None
        except UnicodeDecodeError as exc:
            raise self.error(
                f"include file {written!r} is not UTF-8 text: {exc.reason}", index
            ) from None
        parser = _Parser(
            Text(source, str(path)),
            self.env,
            (*self.include_chain, resolved),
            depth=self.depth,
        )
        return parser.parse_document()
