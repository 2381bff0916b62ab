"""A faster reader of the NATS protocol for a nats-py connection, with direct delivery.

nats-py reads the server's bytes with a regular expression per control line,
then builds a ``Msg`` and its headers for each message and hands it to the
subscription's queue. For the subscriptions that carry the gateway's traffic
(UpstreamBus fan-outs, the JetStream pipeline's answers) that costs more than
the delivery itself. ``FastReader`` replaces the connection's parser
(``nc._ps``): it splits control lines with ``bytes`` operations and hands a
message of a subscription registered with ``route`` straight to its handler,
as ``RawMsg`` (subject, reply, payload, parsed headers), in the read loop.
Everything else (INFO, PING/PONG, -ERR, messages of other subscriptions such
as nats-py's request inbox) goes to nats-py exactly as its own parser would
hand it over.

A handler runs inside nats-py's read loop: it must not block, and must not
raise (an exception there makes nats-py reconnect); ``route`` wraps it so an
exception is logged instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

from nats.aio.client import Client as NATS
from nats.errors import ProtocolError
from nats.protocol import parser as nats_parser

__all__ = ["FastReader", "RawHandler", "RawMsg", "install", "parse_headers"]

log = logging.getLogger(__name__)

_CRLF = b"\r\n"
_HEADER_LINE = b"NATS/1.0"
MAX_CONTROL_LINE = nats_parser.MAX_CONTROL_LINE_SIZE


class RawMsg(NamedTuple):
    """One message as the server sent it; ``headers`` None when it had none."""

    subject: str
    reply: str
    payload: bytes
    headers: dict[str, str] | None


RawHandler = Callable[[RawMsg], None]


def parse_headers(raw: bytes) -> dict[str, str]:
    """A ``NATS/1.0`` header block as a dict; an inline status becomes ``Status``/``Description``.

    ``NATS/1.0 503`` gives ``{"Status": "503"}``, ``NATS/1.0 408 Request
    Timeout`` adds ``"Description": "Request Timeout"``. For a name given
    twice the last value wins. Each call returns a dict of its own.
    """
    # Cached: a stream's deliveries mostly repeat a few blocks (``Nmqtt-Pub: 1``).
    return _parsed_block(raw).copy()


@lru_cache(maxsize=4096)
def _parsed_block(raw: bytes) -> dict[str, str]:
    return _parse_headers(raw)


def _parse_headers(raw: bytes) -> dict[str, str]:
    lines = raw.decode("utf-8", "replace").split("\r\n")
    out: dict[str, str] = {}
    status = lines[0][len(_HEADER_LINE) :].strip()
    if status:
        code, _, description = status.partition(" ")
        out["Status"] = code
        if description.strip():
            out["Description"] = description.strip()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name and not any(c.isspace() for c in name):
            out[name] = value.strip()
    return out


class FastReader:
    """The parser of one nats-py connection (see the module docstring).

    Keeps nats-py's parser interface: ``reset()`` and ``await parse(data)``.
    """

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.routes: dict[int, RawHandler] = {}
        #: Counts resets: a parse that sees it change stops (the input is of an old connection).
        self._generation = 0
        self.reset()

    def reset(self) -> None:
        """Forget partial input (nats-py calls this on a new connection)."""
        self._generation += 1
        #: Input not parsed yet (an incomplete command).
        self.buf = bytearray()
        # The message whose payload is awaited: sid, subject, reply, header size, total size.
        self._msg: tuple[int, bytes, bytes, int, int] | None = None

    def route(self, sid: int, handler: RawHandler) -> None:
        """Deliver the messages of subscription ``sid`` to ``handler`` (see the module docstring)."""

        def guarded(msg: RawMsg) -> None:
            try:
                handler(msg)
            except Exception:  # never into nats-py's read loop: it would reconnect
                log.exception("delivery on %s failed", msg.subject)

        self.routes[sid] = guarded

    def unroute(self, sid: int) -> None:
        """Stop routing ``sid`` (its messages go to nats-py again)."""
        self.routes.pop(sid, None)

    async def parse(self, data: bytes = b"") -> None:
        """Take bytes from the socket and dispatch every complete command in them."""
        generation = self._generation
        rest = self.buf
        if rest:
            rest += data
            buf = bytes(rest)
        else:
            buf = data  # the usual case: slices of ``bytes`` copy once, a bytearray's twice
        pos = 0
        end = len(buf)
        routes = self.routes
        # Counted here and added once per call: two dict updates per message add up.
        count = size_in = 0
        pending = self._msg
        self._msg = None
        try:
            while pos < end:
                if pending is None:
                    eol = buf.find(_CRLF, pos)
                    if eol < 0:
                        if end - pos > MAX_CONTROL_LINE:
                            raise ProtocolError("nats: control line too long")
                        break
                    line = buf[pos:eol]
                    pos = eol + 2
                    op = line[:1]
                    if op == b"M" or op == b"H":
                        pending = _message_args(line)
                    else:
                        await self._control(line)
                        if self._generation != generation:
                            return  # reset by a reconnect: the rest is of the old connection
                        continue
                sid, subject, reply, header_size, size = pending
                if end - pos < size + 2:
                    break
                payload = buf[pos + header_size : pos + size]
                raw_headers = buf[pos : pos + header_size] if header_size else None
                pos += size + 2
                pending = None
                handler = routes.get(sid)
                if handler is None:
                    await self.nc._process_msg(sid, subject, reply, payload, raw_headers)  # type: ignore[arg-type]
                    if self._generation != generation:
                        return
                    continue
                count += 1
                size_in += len(payload)
                handler(
                    RawMsg(
                        subject.decode(),
                        reply.decode(),
                        payload,
                        parse_headers(raw_headers) if raw_headers else None,
                    )
                )
        finally:
            if count:
                stats = self.nc.stats
                stats["in_msgs"] += count
                stats["in_bytes"] += size_in
            if self._generation == generation:
                rest = self.buf
                rest.clear()
                if pos < end:
                    rest += buf[pos:]
                self._msg = pending  # a message whose payload has not all come yet

    async def _control(self, line: bytes) -> None:
        nc = self.nc
        if line.startswith(b"PING"):
            await nc._process_ping()
        elif line.startswith(b"PONG"):
            await nc._process_pong()
        elif line.startswith(b"+OK"):
            pass
        elif line.startswith(b"-ERR"):
            await nc._process_err(line[4:].strip().decode("utf-8", "replace").lower())
        elif line.startswith(b"INFO"):
            await nc._process_info(json.loads(line[4:]))
        else:
            raise ProtocolError("nats: unknown protocol")


def _message_args(line: bytes) -> tuple[int, bytes, bytes, int, int]:
    """``MSG subject sid [reply] size`` or ``HMSG subject sid [reply] hsize size``."""
    parts = line.split()
    try:
        if parts[0] == b"MSG":
            if len(parts) == 4:
                return int(parts[2]), parts[1], b"", 0, int(parts[3])
            if len(parts) == 5:
                return int(parts[2]), parts[1], parts[3], 0, int(parts[4])
        elif parts[0] == b"HMSG":
            if len(parts) == 5:
                return int(parts[2]), parts[1], b"", int(parts[3]), int(parts[4])
            if len(parts) == 6:
                return int(parts[2]), parts[1], parts[3], int(parts[4]), int(parts[5])
    except ValueError:
        pass
    raise ProtocolError("nats: malformed MSG")


def install(nc: NATS) -> FastReader:
    """Make a ``FastReader`` the parser of ``nc`` (idempotent), taking over partial input."""
    current = nc._ps
    if isinstance(current, FastReader):
        return current
    reader = FastReader(nc)
    reader.buf += current.buf
    if current.state == nats_parser.AWAITING_MSG_PAYLOAD:
        arg = current.msg_arg
        reader._msg = (
            int(arg["sid"]),
            bytes(arg["subject"]),
            bytes(arg["reply"]),
            current.header_needed,
            current.needed,
        )
    nc._ps = reader  # type: ignore[assignment]
    return reader
