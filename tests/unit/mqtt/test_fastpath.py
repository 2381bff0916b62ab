"""The hot path (``gateway.mqtt.fastpath``) must produce exactly what the codec produces.

``encode_qos0`` is compared byte for byte with ``Publish(topic, payload).encode``
([MQTT-3.3.1]: QoS 0, DUP and RETAIN clear; [MQTT-2.2.3] remaining length as a
variable byte integer of 1 to 4 bytes), around every length boundary; the
cached topic <-> subject mappings must equal the uncached ones.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt.codec import Decoder
from gateway.mqtt.fastpath import (
    cached_subject_to_topic,
    cached_topic_to_subject,
    encode_publish,
    encode_qos0,
)
from gateway.mqtt.packets import Publish
from gateway.mqtt.topics import subject_to_topic, topic_to_subject

VERSIONS = pytest.mark.parametrize("version", [4, 5])

# Topic names: any UTF-8 but U+0000, '+' and '#' ([MQTT-3.3.2-2], [MQTT-1.5.4-2]).
topic_char = st.characters(exclude_categories=["Cs"], exclude_characters="\x00+#")
topics = st.text(topic_char, min_size=1, max_size=40)


def check(topic: str, payload: bytes, version: int) -> None:
    data = encode_qos0(topic, payload, version == 5)
    assert data == Publish(topic, payload).encode(version)
    assert Decoder(server=False, version=version).feed(data) == [Publish(topic, payload)]


@settings(max_examples=200, deadline=None)
@given(topics, st.binary(max_size=300), st.sampled_from([4, 5]))
def test_mqtt_3_3_1_encode_qos0_equals_the_codec(topic: str, payload: bytes, version: int) -> None:
    check(topic, payload, version)


@settings(max_examples=40, deadline=None)
@given(
    topics,
    st.sampled_from([120, 121, 122, 123, 124, 125, 126, 127, 16370, 16380, 16383, 16384, 16390]),
    st.integers(-4, 4),
    st.sampled_from([4, 5]),
)
def test_mqtt_2_2_3_remaining_length_boundaries(
    topic: str, target: int, shift: int, version: int
) -> None:
    # A payload that puts the remaining length around ``target`` + ``shift``.
    overhead = 2 + len(topic.encode()) + (1 if version == 5 else 0)
    size = max(0, target + shift - overhead)
    check(topic, b"\xab" * size, version)


@VERSIONS
@pytest.mark.parametrize("remaining", [0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000])
def test_mqtt_2_2_3_remaining_length_each_varint_width(version: int, remaining: int) -> None:
    topic = "a/b"
    overhead = 2 + len(topic) + (1 if version == 5 else 0)
    payload = bytes(remaining - overhead)
    data = encode_qos0(topic, payload, version == 5)
    width = 1 if remaining < 0x80 else 2 if remaining < 0x4000 else 3 if remaining < 0x200000 else 4
    assert len(data) == 1 + width + remaining
    assert data == Publish(topic, payload).encode(version)


@VERSIONS
def test_encode_qos0_empty_payload_and_long_topic(version: int) -> None:
    check("t", b"", version)
    check("x" * 300, b"", version)
    check("é/ü/" + "€" * 50, b"p", version)


@settings(max_examples=150, deadline=None)
@given(topics)
def test_cached_topic_to_subject_equals_uncached(topic: str) -> None:
    expected = topic_to_subject(topic)
    assert cached_topic_to_subject(topic) == expected
    assert cached_topic_to_subject(topic) == expected  # served from the cache
    assert cached_subject_to_topic(expected) == subject_to_topic(expected)


@settings(max_examples=150, deadline=None)
@given(st.text(st.sampled_from("ab./*>/ 2AE9"), max_size=12))
def test_cached_subject_to_topic_equals_uncached(subject: str) -> None:
    expected = subject_to_topic(subject)
    assert cached_subject_to_topic(subject) == expected
    assert cached_subject_to_topic(subject) == expected


@settings(max_examples=200, deadline=None)
@given(
    topics,
    st.binary(max_size=300),
    st.sampled_from([0, 1, 2]),
    st.integers(min_value=1, max_value=0xFFFF),
    st.booleans(),
    st.booleans(),
    st.sampled_from([4, 5]),
)
def test_mqtt_3_3_encode_publish_equals_the_codec(
    topic: str, payload: bytes, qos: int, pid: int, dup: bool, retain: bool, version: int
) -> None:
    dup = dup and qos > 0  # [MQTT-3.3.1-2]
    pid = pid if qos else 0
    expected = Publish(topic, payload, qos, retain, dup, pid).encode(version)
    assert encode_publish(topic, payload, qos, pid, dup, retain, version == 5) == expected
