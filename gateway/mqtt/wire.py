"""MQTT data representations (MQTT 5.0 section 1.5, 3.1.1 section 1.5).

Readers take the packet bytes, a position and the end of the region they may
read (the packet or property block end), and return the value and the next
position; they raise :class:`~gateway.mqtt.errors.MQTTError` (0x81) on
truncated or ill-formed input, never anything else. Writers return bytes and
raise ``MQTTError`` for values that cannot be represented.
"""

from __future__ import annotations

from struct import Struct

from gateway.mqtt.errors import MQTTError, malformed
from gateway.mqtt.reason_codes import ReasonCode

#: Largest value of a variable byte integer (four bytes).
VARINT_MAX = 268_435_455

U16 = Struct(">H")
U32 = Struct(">I")
unpack_u16 = U16.unpack_from
unpack_u32 = U32.unpack_from
pack_u16 = U16.pack
pack_u32 = U32.pack

_ONE_BYTE = tuple(bytes((i,)) for i in range(256))


def read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A variable byte integer at ``pos``: at most 4 bytes, minimally encoded.

    [MQTT-1.5.5-1] requires the minimum number of bytes; a longer encoding
    (``0x80 0x00``) is refused like a fifth byte, so one value has one form.
    """
    value = 0
    shift = 0
    for i in range(pos, min(pos + 4, end)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and i > pos:
                raise malformed("variable byte integer not minimally encoded")
            return value, i + 1
        shift += 7
    if end - pos >= 4:
        raise malformed("variable byte integer longer than 4 bytes")
    raise malformed("truncated variable byte integer")


def encode_varint(value: int) -> bytes:
    """The variable byte integer encoding of ``value`` (0 .. 268,435,455)."""
    if value < 0x80:
        if value < 0:
            raise MQTTError(ReasonCode.MALFORMED_PACKET, f"negative varint {value}")
        return _ONE_BYTE[value]
    if value > VARINT_MAX:
        raise MQTTError(ReasonCode.PACKET_TOO_LARGE, f"{value} does not fit a varint")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_u8(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A one-byte integer."""
    if pos >= end:
        raise malformed("truncated byte")
    return data[pos], pos + 1


def read_u16(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A two-byte big-endian integer."""
    if pos + 2 > end:
        raise malformed("truncated two-byte integer")
    return unpack_u16(data, pos)[0], pos + 2


def read_u32(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A four-byte big-endian integer."""
    if pos + 4 > end:
        raise malformed("truncated four-byte integer")
    return unpack_u32(data, pos)[0], pos + 4


def read_binary(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """Binary data: a two-byte length then that many bytes."""
    if pos + 2 > end:
        raise malformed("truncated binary data length")
    stop = pos + 2 + unpack_u16(data, pos)[0]
    if stop > end:
        raise malformed("binary data longer than its packet")
    return data[pos + 2 : stop], stop


def read_string(data: bytes, pos: int, end: int) -> tuple[str, int]:
    """A UTF-8 encoded string (section 1.5.4).

    Python's strict UTF-8 decoder refuses ill-formed sequences, overlong
    forms and encoded surrogates [MQTT-1.5.4-1]; U+0000 is refused here
    [MQTT-1.5.4-2].
    """
    if pos + 2 > end:
        raise malformed("truncated string length")
    stop = pos + 2 + unpack_u16(data, pos)[0]
    if stop > end:
        raise malformed("string longer than its packet")
    try:
        text = data[pos + 2 : stop].decode()
    except UnicodeDecodeError:
        raise malformed("string is not well-formed UTF-8") from None
    if "\x00" in text:
        raise malformed("string contains U+0000")
    return text, stop


def encode_string(text: str) -> bytes:
    """A string with its two-byte length; refuses U+0000, surrogates, > 65535 bytes."""
    try:
        raw = text.encode()
    except UnicodeEncodeError:
        raise malformed("string contains a surrogate code point") from None
    if len(raw) > 0xFFFF:
        raise malformed("string longer than 65535 bytes")
    if "\x00" in text:
        raise malformed("string contains U+0000")
    return pack_u16(len(raw)) + raw


def encode_binary(value: bytes) -> bytes:
    """Binary data with its two-byte length."""
    if len(value) > 0xFFFF:
        raise malformed("binary data longer than 65535 bytes")
    return pack_u16(len(value)) + value


def fixed_header(first_byte: int, remaining_length: int) -> bytes:
    """The fixed header: the type-and-flags byte, then the remaining length."""
    if remaining_length < 0x80:
        return bytes((first_byte, remaining_length))
    return _ONE_BYTE[first_byte] + encode_varint(remaining_length)
