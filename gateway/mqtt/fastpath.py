"""Encoding and mapping for the hot path: bare QoS 0 PUBLISHes and repeated topics.

Most traffic is QoS 0 messages without properties on a small set of topics.
These helpers build such a PUBLISH straight from bytes, with the topic's
length-prefixed form cached, and cache the topic <-> subject mapping, so the
per-message cost is a few dictionary look-ups and one join.
"""

from __future__ import annotations

from functools import lru_cache

from gateway.joins import interleave
from gateway.mqtt.topics import subject_to_topic, topic_to_subject

_CACHE = 16384


@lru_cache(maxsize=_CACHE)
def _topic_field(topic: str) -> bytes:
    raw = topic.encode()
    return len(raw).to_bytes(2, "big") + raw


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _LastEncoded:
    """The last packet built: a fan-out delivers one message to many clients in a row."""

    __slots__ = ("data", "payload", "topic", "v5")

    def __init__(self) -> None:
        self.topic = ""
        self.payload = b""
        self.v5 = False
        self.data = b""


_last = _LastEncoded()


def encode_qos0(topic: str, payload: bytes, v5: bool) -> bytes:
    """A QoS 0 PUBLISH without properties, RETAIN and DUP clear ([MQTT-3.3.1])."""
    last = _last
    if payload is last.payload and topic == last.topic and v5 is last.v5:
        return last.data  # the same message again (identity check: no byte comparison)
    data = _encode_qos0(topic, payload, v5)
    last.topic = topic
    last.payload = payload
    last.v5 = v5
    last.data = data
    return data


def _encode_qos0(topic: str, payload: bytes, v5: bool) -> bytes:
    field = _topic_field(topic)
    length = len(field) + len(payload) + (1 if v5 else 0)
    head = bytes((0x30, length)) if length < 128 else b"\x30" + _varint(length)
    if v5:
        return b"".join((head, field, b"\x00", payload))
    return b"".join((head, field, payload))


def encode_publish(
    topic: str, payload: bytes, qos: int, pid: int, dup: bool, retain: bool, v5: bool
) -> bytes:
    """A PUBLISH without properties at any QoS ([MQTT-3.3.1], [MQTT-3.3.2]): the codec's
    bytes, built without packet objects (QoS 1/2 deliveries go out one by one)."""
    field = _topic_field(topic)
    length = len(field) + len(payload) + (2 if qos else 0) + (1 if v5 else 0)
    first = 0x30 | qos << 1 | (8 if dup else 0) | (1 if retain else 0)
    head = bytes((first, length)) if length < 128 else bytes((first,)) + _varint(length)
    parts = [head, field]
    if qos:
        parts.append(pid.to_bytes(2, "big"))
    if v5:
        parts.append(b"\x00")
    parts.append(payload)
    return b"".join(parts)


class _LastBatch:
    """The last batch built: a fan-out delivers one batch to many clients in a row."""

    __slots__ = ("data", "payloads", "topic", "v5")

    def __init__(self) -> None:
        self.topic = ""
        self.payloads: list[bytes] = []
        self.v5 = False
        self.data = b""


_last_batch = _LastBatch()


def encode_qos0_many(topic: str, payloads: list[bytes], v5: bool) -> bytes:
    """``encode_qos0`` for each payload, concatenated (the payloads of one ``MsgBatch``)."""
    last = _last_batch
    if payloads is last.payloads and topic == last.topic and v5 is last.v5:
        return last.data
    field = _topic_field(topic)
    if v5:
        field += b"\x00"
    size = len(field)
    first = len(payloads[0])
    if len(set(map(len, payloads))) == 1:
        # One length: every packet starts with the same bytes; a single join.
        lead = _head(size + first) + field
        data = interleave(lead, payloads, lead, b"")
    else:
        parts: list[bytes] = []
        extend = parts.extend
        for payload in payloads:
            extend((_head(size + len(payload)), field, payload))
        data = b"".join(parts)
    last.topic = topic
    last.payloads = payloads
    last.v5 = v5
    last.data = data
    return data


@lru_cache(maxsize=4096)
def _head(length: int) -> bytes:
    """The fixed header of a QoS 0 PUBLISH whose remaining length is ``length``."""
    return bytes((0x30, length)) if length < 128 else b"\x30" + _varint(length)


def qos0_overhead(topic: str, v5: bool) -> int:
    """Bytes a bare QoS 0 PUBLISH on ``topic`` adds to its payload, at most."""
    return 5 + len(_topic_field(topic)) + (1 if v5 else 0)


cached_topic_to_subject = lru_cache(maxsize=_CACHE)(topic_to_subject)
cached_subject_to_topic = lru_cache(maxsize=_CACHE)(subject_to_topic)
