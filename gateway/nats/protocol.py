"""The NATS client protocol, server side, sans-I/O: client bytes in, operations out.

``ClientParser`` reads what a NATS client sends (CONNECT, PUB, HPUB, SUB,
UNSUB, PING, PONG; operation names in any case, lines ended by CRLF or a bare
LF as the NATS server accepts them). Limits are checked before anything is
buffered: a control line longer than ``max_control_line`` and a PUB whose
declared size exceeds ``max_payload`` fail as soon as their header is seen.
Every violation raises ``ProtocolError`` carrying the text the NATS server
sends back in ``-ERR '...'``. The ``encode_*`` functions build what the server
sends: INFO, MSG, HMSG, +OK, -ERR, PING, PONG.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.joins import interleave

DEFAULT_MAX_CONTROL_LINE = 4096
DEFAULT_MAX_PAYLOAD = 1024 * 1024

# The NATS server's -ERR texts.
ERR_UNKNOWN_OPERATION = "Unknown Protocol Operation"
ERR_MAX_CONTROL_LINE = "Maximum Control Line Exceeded"
ERR_MAX_PAYLOAD = "Maximum Payload Violation"
ERR_INVALID_PUBLISH_SUBJECT = "Invalid Publish Subject"
ERR_INVALID_SUBJECT = "Invalid Subject"


class ProtocolError(Exception):
    """A client protocol violation; ``wire_text`` is what goes back in ``-ERR '...'``.

    ``fatal`` violations close the connection after the ``-ERR``, as the NATS
    server does for all parser errors.
    """

    def __init__(self, wire_text: str, detail: str, fatal: bool = True) -> None:
        super().__init__(f"{wire_text}: {detail}")
        self.wire_text = wire_text
        self.detail = detail
        self.fatal = fatal
        self.parsed: list[ClientOp] = []
        """Operations complete before the violation, in order (the server runs them first)."""


@dataclass(frozen=True, slots=True)
class Connect:
    """CONNECT: the client's options as sent (user, pass, auth_token, jwt, sig, verbose ...)."""

    options: dict[str, Any]


@dataclass(slots=True)
class Pub:
    """PUB or HPUB: ``headers`` is the raw header block (``NATS/1.0 ...``) for HPUB, else None."""

    subject: str
    reply: str | None
    payload: bytes
    headers: bytes | None = None


@dataclass(slots=True)
class PubRun:
    """Consecutive header-less PUBs without reply on one subject (``feed`` with ``group``)."""

    subject: str
    payloads: list[bytes]


@dataclass(slots=True)
class Sub:
    """SUB subject [queue] sid."""

    subject: str
    queue: str | None
    sid: str


@dataclass(frozen=True, slots=True)
class Unsub:
    """UNSUB sid [max_msgs]: ``max_msgs`` None unsubscribes at once."""

    sid: str
    max_msgs: int | None


@dataclass(frozen=True, slots=True)
class Ping:
    """PING from the client."""


@dataclass(frozen=True, slots=True)
class Pong:
    """PONG from the client."""


ClientOp = Connect | Pub | PubRun | Sub | Unsub | Ping | Pong

PING = Ping()
PONG = Pong()


def _size(text: bytes, what: str) -> int:
    if not text.isdigit():
        raise ProtocolError(ERR_UNKNOWN_OPERATION, f"bad or missing {what} size {text!r}")
    return int(text)


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(ERR_UNKNOWN_OPERATION, f"{what} is not valid UTF-8") from None


class ClientParser:
    """Incremental parser of one client's byte stream; feed any chunking, get whole operations."""

    __slots__ = (
        "_buffer",
        "_last_pub",
        "_need",
        "_pending",
        "group",
        "max_control_line",
        "max_payload",
    )

    def __init__(
        self,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_control_line: int = DEFAULT_MAX_CONTROL_LINE,
        group: bool = False,
    ) -> None:
        self.max_payload = max_payload
        self.max_control_line = max_control_line
        self.group = group
        """Return runs of plain PUBs on one subject as one ``PubRun`` (what a server wants)."""
        self._buffer = bytearray()
        self._need = 0
        # A PUB/HPUB whose header was read and whose payload is awaited:
        # (subject, reply, header size or -1, total size).
        self._pending: tuple[str, str | None, int, int] | None = None
        # The last plain PUB control line and what it parsed to: a publisher
        # repeats the same line (subject and size) message after message.
        self._last_pub: tuple[bytes, tuple[str, str | None, int, int]] = (b"", ("", None, -1, 0))

    def feed(self, data: bytes) -> list[ClientOp]:
        """Take received bytes; return the operations they complete, in order."""
        held = self._buffer
        if type(data) is not bytes:
            data = bytes(data)
        if held:
            # Finish the awaited payload (or the unfinished control line) from the head
            # of ``data``, then go on in ``data`` itself: a large read is not copied to
            # be joined to a small rest.
            pending = self._pending is not None
            cut = self._need - len(held) if pending else data.find(b"\n") + 1
            if 0 < cut <= len(data):
                held += data[:cut]
                head = bytes(held)
                held.clear()
                return self._parse(data, cut, self._parse(head, 0, []))
            held += data
            if len(held) < self._need:
                return []  # the awaited payload or line end cannot be complete yet
            buf = bytes(held)
            held.clear()
            return self._parse(buf, 0, [])
        return self._parse(data, 0, [])

    def _parse(self, buf: bytes, pos: int, ops: list[ClientOp]) -> list[ClientOp]:
        """Parse ``buf`` from ``pos``, appending to ``ops``; hold what is left unfinished."""
        held = self._buffer
        size = len(buf)
        try:
            while True:
                if self._pending is not None:
                    subject, reply, header_size, total = self._pending
                    end = pos + total
                    if size < end + 2:
                        break
                    if buf[end : end + 2] != b"\r\n":
                        raise ProtocolError(ERR_UNKNOWN_OPERATION, "payload not followed by CRLF")
                    if header_size < 0:
                        if reply is None and self.group:
                            last = ops[-1] if ops else None
                            if last.__class__ is PubRun and last.subject == subject:
                                run = last
                                run.payloads.append(buf[pos:end])
                            else:
                                run = PubRun(subject, [buf[pos:end]])
                                ops.append(run)
                            line, parsed = self._last_pub
                            if parsed is self._pending and total <= self.max_payload:
                                # The same PUB line again and again (a publisher's stream):
                                # take the following ones without the general parse.
                                pos = self._repeat(buf, end + 2, line + b"\r\n", total, run)
                                self._pending = None
                                continue
                        else:
                            ops.append(Pub(subject, reply, buf[pos:end]))
                    else:
                        split = pos + header_size
                        ops.append(Pub(subject, reply, buf[split:end], buf[pos:split]))
                    pos = end + 2
                    self._pending = None
                    continue
                newline = buf.find(b"\n", pos)
                if newline < 0:
                    if size - pos > self.max_control_line:
                        raise ProtocolError(ERR_MAX_CONTROL_LINE, "no line end within the limit")
                    break
                if newline - pos > self.max_control_line:
                    raise ProtocolError(ERR_MAX_CONTROL_LINE, "control line too long")
                line_end = newline - 1 if newline > pos and buf[newline - 1] == 13 else newline
                line = buf[pos:line_end]
                pos = newline + 1
                op = self._control_line(line)
                if op is not None:
                    ops.append(op)
        except ProtocolError as exc:
            exc.parsed = ops
            raise
        if pos < size:
            # Bytes of an unfinished operation wait here; only once enough have come is
            # the buffer parsed again (a payload fed byte by byte is not re-copied each time).
            held += buf[pos:] if pos else buf
            pending = self._pending
            self._need = pending[3] + 2 if pending is not None else len(held) + 1
        return ops

    @staticmethod
    def _repeat(buf: bytes, pos: int, head: bytes, total: int, run: PubRun) -> int:
        """Append to ``run`` the payloads of the complete ``head``-led PUBs at ``pos``."""
        append = run.payloads.append
        step = len(head)
        size = len(buf)
        startswith = buf.startswith
        while startswith(head, pos):
            start = pos + step
            end = start + total
            if end + 2 > size or buf[end : end + 2] != b"\r\n":
                break  # cut short (or malformed: the general parse reports it)
            append(buf[start:end])
            pos = end + 2
        return pos

    def _control_line(self, line: bytes) -> ClientOp | None:
        """One control line; PUB/HPUB set ``_pending`` and return None until the payload."""
        if line[:4] == b"PUB ":
            # The bulk of traffic, with single spaces as every client writes them.
            last_line, parsed = self._last_pub
            if line == last_line and parsed[3] <= self.max_payload:
                self._pending = parsed
                return None
            args = line[4:].split(b" ")
            if b"" not in args:
                self._start_pub(args, with_headers=False)
                assert self._pending is not None
                self._last_pub = (bytes(line), self._pending)
                return None
        parts = line.split()
        if not parts:
            raise ProtocolError(ERR_UNKNOWN_OPERATION, "empty control line")
        verb = parts[0].upper()
        args = parts[1:]
        if verb == b"PUB":
            self._start_pub(args, with_headers=False)
            return None
        if verb == b"HPUB":
            self._start_pub(args, with_headers=True)
            return None
        if verb == b"PING" and not args:
            return PING
        if verb == b"PONG" and not args:
            return PONG
        if verb == b"SUB":
            return self._sub(args)
        if verb == b"UNSUB":
            return self._unsub(args)
        if verb == b"CONNECT":
            return self._connect(line[len(b"CONNECT") :].strip())
        raise ProtocolError(ERR_UNKNOWN_OPERATION, f"unknown operation {verb[:32]!r}")

    def _start_pub(self, args: list[bytes], with_headers: bool) -> None:
        sizes = 2 if with_headers else 1
        if len(args) not in (sizes + 1, sizes + 2):
            name = "HPUB" if with_headers else "PUB"
            raise ProtocolError(ERR_UNKNOWN_OPERATION, f"{name} takes subject [reply] size")
        subject = _text(args[0], "subject")
        reply = _text(args[1], "reply subject") if len(args) == sizes + 2 else None
        total = _size(args[-1], "payload")
        header_size = _size(args[-2], "header") if with_headers else -1
        if header_size > total:
            raise ProtocolError(ERR_UNKNOWN_OPERATION, "header size larger than total size")
        if total > self.max_payload:
            raise ProtocolError(
                ERR_MAX_PAYLOAD, f"payload of {total} bytes over the limit of {self.max_payload}"
            )
        self._pending = (subject, reply, header_size, total)

    @staticmethod
    def _sub(args: list[bytes]) -> Sub:
        if len(args) == 2:
            return Sub(_text(args[0], "subject"), None, _text(args[1], "sid"))
        if len(args) == 3:
            return Sub(_text(args[0], "subject"), _text(args[1], "queue"), _text(args[2], "sid"))
        raise ProtocolError(ERR_UNKNOWN_OPERATION, "SUB takes subject [queue] sid")

    @staticmethod
    def _unsub(args: list[bytes]) -> Unsub:
        if len(args) == 1:
            return Unsub(_text(args[0], "sid"), None)
        if len(args) == 2:
            return Unsub(_text(args[0], "sid"), _size(args[1], "max messages"))
        raise ProtocolError(ERR_UNKNOWN_OPERATION, "UNSUB takes sid [max_msgs]")

    @staticmethod
    def _connect(body: bytes) -> Connect:
        try:
            options = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProtocolError(ERR_UNKNOWN_OPERATION, f"CONNECT is not JSON: {exc}") from None
        if not isinstance(options, dict):
            raise ProtocolError(ERR_UNKNOWN_OPERATION, "CONNECT must carry a JSON object")
        return Connect(options)


def encode_info(info: dict[str, Any]) -> bytes:
    """``INFO {json}``."""
    return b"INFO " + json.dumps(info, separators=(",", ":")).encode() + b"\r\n"


def encode_msg(subject: str, sid: str, reply: str | None, payload: bytes) -> bytes:
    """``MSG subject sid [reply] size`` and the payload."""
    head = (
        f"MSG {subject} {sid} {reply} {len(payload)}\r\n"
        if reply
        else (f"MSG {subject} {sid} {len(payload)}\r\n")
    )
    return b"".join((head.encode(), payload, b"\r\n"))


def encode_hmsg(subject: str, sid: str, reply: str | None, headers: bytes, payload: bytes) -> bytes:
    """``HMSG subject sid [reply] header_size total_size``, the headers and the payload."""
    sizes = f"{len(headers)} {len(headers) + len(payload)}"
    head = (
        f"HMSG {subject} {sid} {reply} {sizes}\r\n"
        if reply
        else (f"HMSG {subject} {sid} {sizes}\r\n")
    )
    return b"".join((head.encode(), headers, payload, b"\r\n"))


def encode_msgs(subject: str, sid: str, payloads: list[bytes]) -> bytes:
    """``encode_msg`` without reply for each payload, joined (a batch for one subscription)."""
    sizes = set(map(len, payloads))
    if len(sizes) == 1:
        # One length: every MSG starts with the same bytes; one join, one copy.
        head = f"MSG {subject} {sid} {len(payloads[0])}\r\n".encode()
        return interleave(head, payloads, b"\r\n" + head, b"\r\n")
    return b"".join(
        f"MSG {subject} {sid} {len(payload)}\r\n".encode() + payload + b"\r\n"
        for payload in payloads
    )


def encode_err(text: str) -> bytes:
    """``-ERR 'text'``."""
    return f"-ERR '{text}'\r\n".encode()


OK = b"+OK\r\n"
PING_BYTES = b"PING\r\n"
PONG_BYTES = b"PONG\r\n"
