"""Every violation the decoder detects, named after the specification statement.

Each row: (statement, version, side, bytes, reason code). ``version`` None
means a fresh server decoder (CONNECT not seen yet).
"""

from __future__ import annotations

import pytest

from gateway.mqtt.codec import Decoder
from gateway.mqtt.errors import MQTTError
from gateway.mqtt.reason_codes import ReasonCode as R
from gateway.mqtt.wire import encode_varint
from tests.unit.mqtt.vectors import h

MAL = R.MALFORMED_PACKET
PROTO = R.PROTOCOL_ERROR
CONNECT_311 = h("10 0E 0004'MQTT' 04 02 003C 0002'c1'")

ROWS: list[tuple[str, int | None, str, bytes, int]] = [
    # Framing and fixed header
    ("MQTT-3.1.0-1 first packet must be CONNECT", None, "server", h("C0 00"), PROTO),
    ("MQTT-3.1.0-1 PUBLISH before CONNECT", None, "server", h("30 03 0001'a'"), PROTO),
    ("MQTT-3.1.0-2 second CONNECT", 4, "server", CONNECT_311, PROTO),
    ("MQTT-2.2.2-2 PUBACK flags must be 0", 4, "server", h("41 02 0001"), MAL),
    ("MQTT-3.6.1-1 PUBREL flags must be 2", 4, "server", h("60 02 0001"), MAL),
    ("MQTT-3.8.1-1 SUBSCRIBE flags must be 2", 4, "server", h("80 06 0001 0001'a' 00"), MAL),
    ("MQTT-3.10.1-1 UNSUBSCRIBE flags must be 2", 4, "server", h("A0 05 0001 0001'a'"), MAL),
    ("MQTT-2.2.2-2 DISCONNECT flags must be 0", 4, "server", h("E1 00"), MAL),
    ("reserved packet type 0", 4, "server", h("00 00"), MAL),
    ("a server never receives CONNACK", 4, "server", h("20 02 00 00"), PROTO),
    ("a server never receives SUBACK", 5, "server", h("90 04 0001 00 00"), PROTO),
    ("a client never receives SUBSCRIBE", 4, "client", h("82 06 0001 0001'a' 00"), PROTO),
    ("a client never receives PINGREQ", 4, "client", h("C0 00"), PROTO),
    ("a 3.1.1 server never sends DISCONNECT", 4, "client", h("E0 00"), PROTO),
    ("AUTH does not exist before 5.0", 4, "server", h("F0 00"), MAL),
    ("MQTT-1.5.5 remaining length of 5 bytes", 4, "server", h("30 FF FF FF FF 01"), MAL),
    ("MQTT-1.5.5-1 remaining length not minimal", 4, "server", h("C0 80 00"), MAL),
    # CONNECT
    (
        "MQTT-3.1.2-2 unsupported level 6",
        None,
        "server",
        h("10 0E 0004'MQTT' 06 02 003C 0002'c1'"),
        R.UNSUPPORTED_PROTOCOL_VERSION,
    ),
    (
        "MQTT-3.1.2-2 MQTT name with level 3",
        None,
        "server",
        h("10 0E 0004'MQTT' 03 02 003C 0002'c1'"),
        R.UNSUPPORTED_PROTOCOL_VERSION,
    ),
    (
        "MQTT-3.1.2-1 unknown protocol name",
        None,
        "server",
        h("10 0E 0004'MQTX' 04 02 003C 0002'c1'"),
        R.UNSUPPORTED_PROTOCOL_VERSION,
    ),
    (
        "MQTT-3.1.2-3 reserved connect flag",
        None,
        "server",
        h("10 0E 0004'MQTT' 04 03 003C 0002'c1'"),
        MAL,
    ),
    (
        "MQTT-3.1.2-14 Will QoS 3",
        None,
        "server",
        h("10 13 0004'MQTT' 04 1E 003C 0002'c1' 0001't' 0000"),
        MAL,
    ),
    (
        "MQTT-3.1.2-13 Will QoS without Will flag",
        None,
        "server",
        h("10 0E 0004'MQTT' 04 0A 003C 0002'c1'"),
        MAL,
    ),
    (
        "MQTT-3.1.2-15 Will retain without Will flag",
        None,
        "server",
        h("10 0E 0004'MQTT' 04 22 003C 0002'c1'"),
        MAL,
    ),
    (
        "MQTT-3.1.2-22 password without user name in 3.1.1",
        None,
        "server",
        h("10 12 0004'MQTT' 04 42 003C 0002'c1' 0002'pw'"),
        MAL,
    ),
    (
        "bytes after the CONNECT payload",
        None,
        "server",
        h("10 0F 0004'MQTT' 04 02 003C 0002'c1' 00"),
        MAL,
    ),
    (
        "CONNECT truncated inside the client id",
        None,
        "server",
        h("10 0E 0004'MQTT' 04 02 003C 0004'c1'"),
        MAL,
    ),
    (
        "MQTT-1.5.4-1 client id not UTF-8",
        None,
        "server",
        h("10 0E 0004'MQTT' 04 02 003C 0002 C328"),
        MAL,
    ),
    (
        "MQTT-1.5.4-1 client id holds an encoded surrogate",
        None,
        "server",
        h("10 0F 0004'MQTT' 04 02 003C 0003 EDA080"),
        MAL,
    ),
    (
        "MQTT-1.5.4-2 client id holds U+0000",
        None,
        "server",
        h("10 0E 0004'MQTT' 04 02 003C 0002 6100"),
        MAL,
    ),
    (
        "MQTT-3.1.3-11 Will topic with a wildcard",
        None,
        "server",
        h("10 13 0004'MQTT' 04 06 003C 0002'c1' 0001'#' 0000"),
        MAL,
    ),
    (
        "MQTT-3.1.2-11 property not allowed in CONNECT (topic alias)",
        None,
        "server",
        h("10 11 0004'MQTT' 05 02 003C 03 23 0001 0002'c1'"),
        MAL,
    ),
    (
        "MQTT-3.1.2 receive maximum 0",
        None,
        "server",
        h("10 11 0004'MQTT' 05 02 003C 03 21 0000 0002'c1'"),
        PROTO,
    ),
    (
        "MQTT-3.1.2 request problem information 2",
        None,
        "server",
        h("10 10 0004'MQTT' 05 02 003C 02 17 02 0002'c1'"),
        PROTO,
    ),
    (
        "MQTT-3.1.2 maximum packet size twice",
        None,
        "server",
        h("10 19 0004'MQTT' 05 02 003C 0A 27 00000100 27 00000100 0002'c1'"),
        PROTO,
    ),
    # PUBLISH
    ("MQTT-3.3.1-4 QoS 3", 4, "server", h("36 05 0001'a' 0001"), MAL),
    ("MQTT-3.3.1-2 DUP on QoS 0", 4, "server", h("38 03 0001'a'"), MAL),
    ("MQTT-2.3.1-1 packet identifier 0", 4, "server", h("32 05 0001'a' 0000"), PROTO),
    ("MQTT-3.3.2-2 wildcard in topic name", 4, "server", h("30 05 0003'a/#'"), MAL),
    ("MQTT-3.3.2-2 plus in topic name", 4, "server", h("30 05 0003'a+b'"), MAL),
    ("MQTT-4.7.3-1 empty topic in 3.1.1", 4, "server", h("30 02 0000"), PROTO),
    ("MQTT-3.3.2-8 empty topic without topic alias", 5, "server", h("30 03 0000 00"), PROTO),
    ("MQTT-1.5.4-2 topic holds U+0000", 4, "server", h("30 04 0002 6100"), MAL),
    ("MQTT-1.5.4-1 topic not UTF-8", 4, "server", h("30 04 0002 FFFE"), MAL),
    ("topic longer than the packet", 4, "server", h("30 04 0009'ab'"), MAL),
    ("PUBLISH too short for a topic length", 4, "server", h("30 01 00"), MAL),
    ("PUBLISH too short for its packet identifier", 4, "server", h("32 04 0001'a' 00"), MAL),
    (
        "MQTT-3.3.2-8 topic alias 0",
        5,
        "server",
        h("30 07 0001'a' 03 23 0000"),
        R.TOPIC_ALIAS_INVALID,
    ),
    (
        "MQTT-3.3.4-6 subscription identifier from a client",
        5,
        "server",
        h("30 06 0001'a' 02 0B 01"),
        PROTO,
    ),
    (
        "MQTT-3.3.2 duplicated message expiry",
        5,
        "server",
        h("30 0E 0001'a' 0A 02 00000001 02 00000001"),
        PROTO,
    ),
    ("MQTT-3.3.2 payload format indicator 2", 5, "server", h("30 06 0001'a' 02 01 02"), PROTO),
    ("2.2.2.2 unknown property identifier", 5, "server", h("30 06 0001'a' 02 7F 00"), MAL),
    ("2.2.2.2 property identifier >= 0x80", 5, "server", h("30 06 0001'a' 02 81 01"), MAL),
    ("2.2.2.2 property not allowed in PUBLISH", 5, "server", h("30 08 0001'a' 04 11 000000"), MAL),
    ("property length beyond the packet", 5, "server", h("30 05 0001'a' 09 01"), MAL),
    (
        "property value cut by the property length",
        5,
        "server",
        h("30 08 0001'a' 02 02 0000 0000"),
        MAL,
    ),
    ("PUBLISH without property length in 5.0", 5, "server", h("30 03 0001'a'"), MAL),
    ("user property value not UTF-8", 5, "server", h("30 0C 0001'a' 08 26 0001'k' 0002 C328"), MAL),
    # Acks
    ("MQTT-3.4.2 PUBACK length 3 in 3.1.1", 4, "server", h("40 03 0001 00"), MAL),
    ("PUBACK shorter than 2 bytes", 4, "server", h("40 01 00"), MAL),
    ("MQTT-2.3.1-1 PUBACK packet identifier 0", 4, "server", h("40 02 0000"), PROTO),
    ("MQTT-3.4.2-1 PUBACK reason code not allowed", 5, "server", h("40 03 0001 05"), MAL),
    ("MQTT-3.6.2-1 PUBREL reason code not allowed", 5, "server", h("62 03 0001 10"), MAL),
    ("PUBACK with bytes after its properties", 5, "server", h("40 05 0001 00 00 00"), MAL),
    ("PUBREC property not allowed (topic alias)", 5, "server", h("50 07 0001 00 03 23 0001"), MAL),
    # SUBSCRIBE / UNSUBSCRIBE
    ("MQTT-3.8.3-3 SUBSCRIBE without a filter", 4, "server", h("82 02 0001"), PROTO),
    ("MQTT-3.8.3-3 SUBSCRIBE 5.0 without a filter", 5, "server", h("82 03 0001 00"), PROTO),
    ("MQTT-2.3.1-1 SUBSCRIBE packet identifier 0", 4, "server", h("82 06 0000 0001'a' 00"), PROTO),
    (
        "MQTT-3-8.3-4 SUBSCRIBE reserved option bits in 3.1.1",
        4,
        "server",
        h("82 06 0001 0001'a' 04"),
        MAL,
    ),
    ("MQTT-3-8.3-4 SUBSCRIBE QoS 3", 4, "server", h("82 06 0001 0001'a' 03"), MAL),
    (
        "MQTT-3.8.3-5 SUBSCRIBE reserved option bits in 5.0",
        5,
        "server",
        h("82 07 0001 00 0001'a' 40"),
        MAL,
    ),
    ("MQTT-3.8.3 retain handling 3", 5, "server", h("82 07 0001 00 0001'a' 30"), PROTO),
    (
        "MQTT-3.8.3-4 no local on a shared subscription",
        5,
        "server",
        h("82 10 0001 00 000A'$share/g/t' 04"),
        PROTO,
    ),
    ("SUBSCRIBE filter without options", 4, "server", h("82 05 0001 0001'a'"), MAL),
    ("MQTT-4.7.1-1 '#' not last", 4, "server", h("82 0A 0001 0005'a/#/b' 00"), MAL),
    ("MQTT-4.7.1-2 '+' inside a level", 4, "server", h("82 09 0001 0004'foo+' 00"), MAL),
    ("MQTT-4.7.1-1 '#' inside a level", 4, "server", h("82 09 0001 0004'a/b#' 00"), MAL),
    ("MQTT-4.7.3-1 empty filter", 4, "server", h("82 05 0001 0000 00"), MAL),
    ("MQTT-4.8.2-1 empty share name", 5, "server", h("82 0E 0001 00 0009'$share//t' 00"), MAL),
    (
        "MQTT-4.8.2-2 share name with a wildcard",
        5,
        "server",
        h("82 0F 0001 00 000A'$share/+/t' 00"),
        MAL,
    ),
    (
        "MQTT-4.8.2-2 no filter after the share name",
        5,
        "server",
        h("82 0E 0001 00 0008'$share/g' 01"),
        MAL,
    ),
    (
        "MQTT-3.8.3 two subscription identifiers",
        5,
        "server",
        h("82 0B 0001 04 0B 01 0B 02 0001'a' 00"),
        PROTO,
    ),
    (
        "MQTT-3.8.2 subscription identifier 0",
        5,
        "server",
        h("82 09 0001 02 0B 00 0001'a' 00"),
        PROTO,
    ),
    ("MQTT-3.10.3-2 UNSUBSCRIBE without a filter", 4, "server", h("A2 02 0001"), PROTO),
    ("UNSUBSCRIBE with a bad filter", 4, "server", h("A2 06 0001 0002'#a'"), MAL),
    # Server-to-client packets
    ("MQTT-3.2.2-1 CONNACK reserved flags", 4, "client", h("20 02 02 00"), MAL),
    ("MQTT-3.2.2-3 CONNACK return code 6", 4, "client", h("20 02 00 06"), MAL),
    ("MQTT-3.2.2-6 session present on a refusal", 4, "client", h("20 02 01 05"), PROTO),
    ("CONNACK 3.1.1 length 3", 4, "client", h("20 03 00 00 00"), MAL),
    ("MQTT-3.2.2 CONNACK 5.0 reason code not allowed", 5, "client", h("20 03 00 10 00"), MAL),
    ("CONNACK 5.0 maximum QoS 2", 5, "client", h("20 05 00 00 02 24 02"), PROTO),
    ("MQTT-3.9.3 SUBACK return code 3 in 3.1.1", 4, "client", h("90 03 0001 03"), MAL),
    ("MQTT-3.9.3 SUBACK reason code not allowed", 5, "client", h("90 04 0001 00 10"), MAL),
    ("SUBACK without a reason code", 4, "client", h("90 02 0001"), PROTO),
    ("UNSUBACK 3.1.1 length 3", 4, "client", h("B0 03 0001 00"), MAL),
    ("UNSUBACK 5.0 without a reason code", 5, "client", h("B0 03 0001 00"), PROTO),
    ("MQTT-3.11.3 UNSUBACK reason code not allowed", 5, "client", h("B0 04 0001 00 10"), MAL),
    # Empty packets and DISCONNECT / AUTH
    ("MQTT-3.12 PINGREQ with a body", 4, "server", h("C0 01 00"), MAL),
    ("MQTT-3.13 PINGRESP with a body", 4, "client", h("D0 01 00"), MAL),
    ("MQTT-3.14 DISCONNECT 3.1.1 with a body", 4, "server", h("E0 01 00"), MAL),
    ("MQTT-3.14.2-1 DISCONNECT reason code not allowed", 5, "server", h("E0 01 03"), MAL),
    ("DISCONNECT property not allowed", 5, "server", h("E0 05 00 03 23 0001"), MAL),
    ("MQTT-3.15.2-1 AUTH reason code not allowed", 5, "server", h("F0 01 01"), MAL),
    (
        "MQTT-3.1.2 authentication data without a method",
        None,
        "server",
        h("10 13 0004'MQTT' 05 02 003C 05 16 0002 0102 0002'c1'"),
        PROTO,
    ),
    (
        "AUTH duplicate authentication method",
        5,
        "server",
        h("F0 0A 18 08 15 0001'a' 15 0001'b'"),
        PROTO,
    ),
]


def decoder(version: int | None, side: str) -> Decoder:
    if version is None:
        return Decoder()
    return Decoder(server=side == "server", version=version)


@pytest.mark.parametrize(("rule", "version", "side", "raw", "code"), ROWS, ids=[r[0] for r in ROWS])
def test_violation(rule: str, version: int | None, side: str, raw: bytes, code: int) -> None:
    dec = decoder(version, side)
    with pytest.raises(MQTTError) as info:
        dec.feed(raw)
    assert info.value.reason_code == code, info.value.message
    assert info.value.message
    # The decoder stays failed: a stream out of sync is never read on.
    with pytest.raises(MQTTError) as again:
        dec.feed(b"\xc0\x00")
    assert again.value is info.value


@pytest.mark.parametrize(("rule", "version", "side", "raw", "code"), ROWS, ids=[r[0] for r in ROWS])
def test_violation_byte_by_byte(
    rule: str, version: int | None, side: str, raw: bytes, code: int
) -> None:
    dec = decoder(version, side)
    with pytest.raises(MQTTError) as info:
        for i in range(len(raw)):
            dec.feed(raw[i : i + 1])
    assert info.value.reason_code == code


def test_packet_too_large_is_refused_from_the_header_alone() -> None:
    dec = Decoder(server=True, version=4, max_packet_size=1024)
    with pytest.raises(MQTTError) as info:
        dec.feed(b"\x30\xff\xff\xff\x7f")  # announces 268,435,455 bytes; none sent
    assert info.value.reason_code == R.PACKET_TOO_LARGE
    assert dec.buffered == 0


def test_maximum_packet_size_counts_the_fixed_header() -> None:
    # MQTT 5.0 3.1.2.11.4: the size is the whole packet. 1 + 1 + 8 = 10 bytes.
    packet = h("30 08 0002'ab' 'xyzw'")
    assert Decoder(server=True, version=4, max_packet_size=10).feed(packet)
    with pytest.raises(MQTTError):
        Decoder(server=True, version=4, max_packet_size=9).feed(packet)


def test_max_packet_size_change_applies_to_the_next_packet() -> None:
    dec = Decoder(server=True, version=4)
    big = h("30 0A 0001'a' 'xxxxxxx'")
    assert len(dec.feed(big)) == 1
    dec.max_packet_size = 8
    with pytest.raises(MQTTError) as info:
        dec.feed(big[:2])
    assert info.value.reason_code == R.PACKET_TOO_LARGE


def test_partial_packet_buffer_is_bounded_by_the_packet() -> None:
    dec = Decoder(server=True, version=4, max_packet_size=70_000)
    body = h("0001'a'") + bytes(60_000)
    raw = b"\x30" + encode_varint(len(body)) + body
    got = []
    for i in range(0, len(raw), 1000):
        got += dec.feed(raw[i : i + 1000])
        assert dec.buffered <= len(raw)
    assert len(got) == 1
    assert dec.buffered == 0


def test_decoder_arguments() -> None:
    with pytest.raises(ValueError):
        Decoder(version=6)
    with pytest.raises(ValueError):
        Decoder(server=False)


def test_error_repr_names_the_code() -> None:
    assert "0x81" in repr(MQTTError(R.MALFORMED_PACKET, "x"))
