"""Record framing for segment files: length-prefixed, checksummed msgpack.

A frame is ``<u32 length><u32 crc32(body)><body>`` (little endian), where the
body is a msgpack array whose first item is the record kind:

- ``[MSG, seq, time_ns, subject, headers | None, data]`` a stored message
- ``[DEL, seq]`` one message removed (explicit delete or acknowledged)
- ``[PURGE, upto_seq, subject | None]`` messages up to ``upto_seq`` (on a subject) removed
- ``[BASE, last_seq]`` written first in each segment: the sequence before it

``scan`` yields whole, verified records and reports where valid data ends, so
a torn tail left by a crash is detected and truncated, and a record whose
checksum fails is never returned.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any

import msgpack

__all__ = ["BASE", "DEL", "MAX_RECORD", "MSG", "PURGE", "encode", "frame_msg", "scan"]

MSG = 0
DEL = 1
PURGE = 2
BASE = 3

MAX_RECORD = 64 * 1024 * 1024
"""No record is larger; a bigger length field means a torn or corrupt frame."""

_HEAD = struct.Struct("<II")
_pack_head = _HEAD.pack
_crc = zlib.crc32
_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack


def encode(record: list[Any]) -> bytes:
    """Frame one record."""
    body: bytes = _packb(record)
    return _pack_head(len(body), _crc(body)) + body


def frame_msg(
    seq: int, time_ns: int, subject: str, headers: dict[str, str] | None, data: bytes
) -> bytes:
    """Frame a message record (the hot path, spelled out)."""
    body: bytes = _packb([MSG, seq, time_ns, subject, headers, data])
    return _pack_head(len(body), _crc(body)) + body


def scan(buf: bytes | memoryview) -> Iterator[tuple[int, list[Any]]]:
    """Yield ``(end_offset, record)`` for each valid record from the start of ``buf``.

    Stops at the first incomplete or corrupt frame; the last ``end_offset``
    yielded (or 0) is where valid data ends.
    """
    view = memoryview(buf)
    size = len(view)
    off = 0
    head = _HEAD.size
    while off + head <= size:
        length, crc = _HEAD.unpack_from(view, off)
        start = off + head
        end = start + length
        if length == 0 or length > MAX_RECORD or end > size:
            return
        body = view[start:end]
        if _crc(body) != crc:
            return
        try:
            record = msgpack.unpackb(body, raw=False, use_list=True)
        except (ValueError, msgpack.UnpackException):
            return
        if not isinstance(record, list) or not record:
            return
        yield end, record
        off = end
