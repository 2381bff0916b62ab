"""Byte joins for batches: many encoded messages written with one copy of their bytes."""

from __future__ import annotations


def interleave(first: bytes, items: list[bytes], between: bytes, last: bytes) -> bytes:
    """``first + between.join(items) + last``, copying the bytes once.

    A batch of messages of one length shares its framing: ``MSG s 1 5\\r\\n``,
    ``PUB s 5\\r\\n`` or an MQTT fixed header and topic come before every payload.
    """
    parts: list[bytes] = [last] * (2 * len(items) + 1)
    parts[0] = first
    parts[1::2] = items
    parts[2:-1:2] = [between] * (len(items) - 1)
    return b"".join(parts)
