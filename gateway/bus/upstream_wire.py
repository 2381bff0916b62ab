"""The bytes UpstreamBus writes for a publish: NATS ``PUB`` and ``HPUB`` commands.

Pure functions, no I/O. Headers are a ``Mapping[str, str]`` as the Bus carries
them; a ``Status`` key (three digits) with an optional ``Description`` becomes
the status line (``NATS/1.0 503 No Responders``), which is how nats-py reads
one back, so a status survives the round trip through a real server.

A header name must be an RFC 7230 token (what nats-py and the server accept)
and a value must not hold CR or LF: either would let a publisher inject
header lines or protocol commands, so both are refused with InvalidHeader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import ClassVar

from gateway.bus.api import BusError
from gateway.joins import interleave

__all__ = [
    "DESCRIPTION",
    "STATUS",
    "InvalidHeader",
    "PayloadTooLarge",
    "encode_headers",
    "pub_command",
]

STATUS = "Status"
DESCRIPTION = "Description"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS_CODE = re.compile(r"[0-9]{3}")
_CRLF = b"\r\n"


class InvalidHeader(BusError, ValueError):
    """A header name that is not a token, or a value holding CR or LF."""


class PayloadTooLarge(BusError, ValueError):
    """A message (headers and payload) larger than the server's ``max_payload``.

    The server would answer it by closing the connection, so it is never sent.
    """


class _LastView:
    """The read-only mapping encoded last, and its block (see ``encode_headers``)."""

    view: ClassVar[Mapping[str, str] | None] = None
    block: ClassVar[bytes] = b""


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """The ``NATS/1.0`` header block (ending in an empty line) for ``headers``.

    A ``MappingProxyType`` is taken to be fixed: its contents must not change after
    it was first encoded (the MQTT bare-QoS headers are such constants).
    """
    if type(headers) is MappingProxyType:
        # A read-only mapping shared by many messages (MQTT's bare ``Nmqtt-Pub: 1``),
        # often twice in a row (core and JetStream copy): known by identity.
        if headers is _LastView.view:
            return _LastView.block
        block = _encoded_block(tuple(headers.items()))
        _LastView.view, _LastView.block = headers, block
        return block
    # Cached: a stream's messages mostly repeat a few blocks.
    return _encoded_block(tuple(headers.items()))


@lru_cache(maxsize=4096)
def _encoded_block(items: tuple[tuple[str, str], ...]) -> bytes:
    return _encode_headers(dict(items))


def _encode_headers(headers: Mapping[str, str]) -> bytes:
    status = headers.get(STATUS, "")
    has_status = _STATUS_CODE.fullmatch(status) is not None
    if has_status:
        description = headers.get(DESCRIPTION, "")
        _check_value(DESCRIPTION, description)
        first = f"NATS/1.0 {status} {description}" if description else f"NATS/1.0 {status}"
    else:
        first = "NATS/1.0"
    parts = [first]
    for name, value in headers.items():
        if has_status and name in (STATUS, DESCRIPTION):
            continue
        if _TOKEN.fullmatch(name) is None:
            raise InvalidHeader(f"invalid header name {name[:64]!r}")
        _check_value(name, value)
        parts.append(f"{name}: {value}")
    parts.append("\r\n")
    return "\r\n".join(parts).encode()


def _check_value(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise InvalidHeader(f"header {name!r} holds a line break")


def pub_command(
    subject: str,
    reply: str,
    payload: bytes,
    headers: Mapping[str, str] | None,
    max_payload: int,
) -> bytes:
    """One ``PUB`` (or, with headers, ``HPUB``) command, ready for the socket.

    ``subject`` and ``reply`` must already be valid subjects. Raises
    PayloadTooLarge when headers and payload exceed ``max_payload`` bytes.
    """
    if not headers:
        if len(payload) > max_payload:
            raise PayloadTooLarge(f"{len(payload)} bytes exceed max_payload {max_payload}")
        if reply:
            head = f"PUB {subject} {reply} {len(payload)}\r\n"
        else:
            head = f"PUB {subject} {len(payload)}\r\n"
        return head.encode() + payload + _CRLF
    block = encode_headers(headers)
    size = len(block) + len(payload)
    if size > max_payload:
        raise PayloadTooLarge(f"{size} bytes exceed max_payload {max_payload}")
    if reply:
        head = f"HPUB {subject} {reply} {len(block)} {size}\r\n"
    else:
        head = f"HPUB {subject} {len(block)} {size}\r\n"
    return head.encode() + block + payload + _CRLF


def pub_commands(subject: str, payloads: list[bytes], max_payload: int) -> bytes:
    """``PUB`` commands for header-less, reply-less ``payloads`` on one subject, joined.

    Raises PayloadTooLarge (and sends none) when one of them exceeds ``max_payload``.
    """
    sizes = set(map(len, payloads))
    if max(sizes) > max_payload:
        raise PayloadTooLarge(f"{max(sizes)} bytes exceed max_payload {max_payload}")
    if len(sizes) == 1:
        # One length: every command starts with the same bytes; a single join.
        head = f"PUB {subject} {len(payloads[0])}\r\n".encode()
        return interleave(head, payloads, _CRLF + head, _CRLF)
    return b"".join(
        f"PUB {subject} {len(payload)}\r\n".encode() + payload + _CRLF for payload in payloads
    )
