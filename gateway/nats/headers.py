"""NATS message headers: the ``NATS/1.0`` block <-> a mapping, as nats-py represents it.

A status line (``NATS/1.0 503`` or ``NATS/1.0 408 Request Timeout``) becomes
the ``Status`` and ``Description`` keys, as nats-py reads it, and is written
back from them. Repeated header names keep their last value (the Bus carries
a plain mapping).
"""

from __future__ import annotations

from collections.abc import Mapping

VERSION_LINE = b"NATS/1.0"
STATUS = "Status"
DESCRIPTION = "Description"
NO_RESPONDERS = {STATUS: "503"}


class HeaderError(ValueError):
    """A header block that does not start with ``NATS/1.0`` or has a malformed line."""


def decode_headers(block: bytes) -> dict[str, str]:
    """The mapping of a raw header block (``NATS/1.0\\r\\nKey: value\\r\\n\\r\\n``)."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise HeaderError("headers are not UTF-8") from None
    lines = text.split("\r\n")
    first = lines[0]
    if not first.startswith("NATS/1.0"):
        raise HeaderError("headers must start with NATS/1.0")
    headers: dict[str, str] = {}
    status = first[len("NATS/1.0") :].strip()
    if status:
        code, _, description = status.partition(" ")
        headers[STATUS] = code
        if description:
            headers[DESCRIPTION] = description.strip()
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HeaderError(f"malformed header line {line[:64]!r}")
        headers[name] = value.strip()
    return headers


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """The raw header block for ``headers`` (with a status line from ``Status``)."""
    status = headers.get(STATUS)
    first = "NATS/1.0"
    if status:
        description = headers.get(DESCRIPTION)
        first = f"NATS/1.0 {status} {description}" if description else f"NATS/1.0 {status}"
    parts = [first]
    for name, value in headers.items():
        if status and name in (STATUS, DESCRIPTION):
            continue
        parts.append(f"{name}: {value}")
    return ("\r\n".join(parts) + "\r\n\r\n").encode()
