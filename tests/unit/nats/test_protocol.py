"""The NATS client protocol parser and encoders, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.nats.protocol import (
    ERR_MAX_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ERR_UNKNOWN_OPERATION,
    PING,
    PONG,
    ClientOp,
    ClientParser,
    Connect,
    ProtocolError,
    Pub,
    Sub,
    Unsub,
    encode_err,
    encode_hmsg,
    encode_info,
    encode_msg,
)

STREAM = (
    b'CONNECT {"verbose":false,"pedantic":false,"user":"a","pass":"b","headers":true}\r\n'
    b"PING\r\n"
    b"SUB foo.* 1\r\n"
    b"SUB bar workers 2\r\n"
    b"PUB foo.bar 5\r\nhello\r\n"
    b"PUB foo.bar _INBOX.x 0\r\n\r\n"
    b"HPUB foo.baz 24 29\r\nNATS/1.0\r\nA: b\r\nC: d\r\n\r\nhello\r\n"
    b"HPUB foo.baz reply 12 12\r\nNATS/1.0\r\n\r\n\r\n"
    b"UNSUB 1\r\n"
    b"UNSUB 2 10\r\n"
    b"pong\r\n"
    b"pub lower 2\nhi\r\n"
)

EXPECTED: list[ClientOp] = [
    Connect({"verbose": False, "pedantic": False, "user": "a", "pass": "b", "headers": True}),
    PING,
    Sub("foo.*", None, "1"),
    Sub("bar", "workers", "2"),
    Pub("foo.bar", None, b"hello"),
    Pub("foo.bar", "_INBOX.x", b""),
    Pub("foo.baz", None, b"hello", b"NATS/1.0\r\nA: b\r\nC: d\r\n\r\n"),
    Pub("foo.baz", "reply", b"", b"NATS/1.0\r\n\r\n"),
    Unsub("1", None),
    Unsub("2", 10),
    PONG,
    Pub("lower", None, b"hi"),
]


def test_stream_fed_whole() -> None:
    assert ClientParser().feed(STREAM) == EXPECTED


def test_stream_fed_byte_by_byte() -> None:
    parser = ClientParser()
    ops: list[ClientOp] = []
    for i in range(len(STREAM)):
        ops += parser.feed(STREAM[i : i + 1])
    assert ops == EXPECTED


@settings(max_examples=100)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM)), max_size=20))
def test_stream_fed_in_any_chunks(cuts: list[int]) -> None:
    parser = ClientParser()
    ops: list[ClientOp] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(STREAM)]:
        ops += parser.feed(STREAM[start:cut])
        start = cut
    assert ops == EXPECTED


def test_payload_may_contain_crlf() -> None:
    assert ClientParser().feed(b"PUB a 4\r\n\r\n\r\n\r\n") == [Pub("a", None, b"\r\n\r\n")]


@pytest.mark.parametrize(
    "data, wire",
    [
        (b"FOO bar\r\n", ERR_UNKNOWN_OPERATION),
        (b"\r\n", ERR_UNKNOWN_OPERATION),
        (b"PUB\r\n", ERR_UNKNOWN_OPERATION),
        (b"PUB a b c d\r\n", ERR_UNKNOWN_OPERATION),
        (b"PUB a x\r\n", ERR_UNKNOWN_OPERATION),
        (b"PUB a -1\r\n", ERR_UNKNOWN_OPERATION),
        (b"HPUB a 10 5\r\n", ERR_UNKNOWN_OPERATION),
        (b"PUB a 2\r\nabc\r\n", ERR_UNKNOWN_OPERATION),
        (b"SUB a\r\n", ERR_UNKNOWN_OPERATION),
        (b"SUB a b c d\r\n", ERR_UNKNOWN_OPERATION),
        (b"UNSUB\r\n", ERR_UNKNOWN_OPERATION),
        (b"UNSUB 1 x\r\n", ERR_UNKNOWN_OPERATION),
        (b"CONNECT {bad json\r\n", ERR_UNKNOWN_OPERATION),
        (b"CONNECT [1]\r\n", ERR_UNKNOWN_OPERATION),
        (b"PING extra\r\n", ERR_UNKNOWN_OPERATION),
        (b"PUB \xff\xfe 1\r\nx\r\n", ERR_UNKNOWN_OPERATION),
    ],
)
def test_violations_carry_the_servers_error_text(data: bytes, wire: str) -> None:
    with pytest.raises(ProtocolError) as info:
        ClientParser().feed(data)
    assert info.value.wire_text == wire
    assert info.value.fatal


def test_payload_limit_is_checked_from_the_header() -> None:
    parser = ClientParser(max_payload=100)
    with pytest.raises(ProtocolError) as info:
        # Only the header arrives: the 10 GB body is never waited for.
        parser.feed(b"PUB a 10000000000\r\n")
    assert info.value.wire_text == ERR_MAX_PAYLOAD


def test_payload_at_the_limit_is_accepted() -> None:
    parser = ClientParser(max_payload=3)
    assert parser.feed(b"PUB a 3\r\nabc\r\n") == [Pub("a", None, b"abc")]


def test_control_line_limit_is_checked_before_the_line_ends() -> None:
    parser = ClientParser(max_control_line=64)
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"SUB " + b"a" * 100)
    assert info.value.wire_text == ERR_MAX_CONTROL_LINE


def test_partial_line_within_limit_waits() -> None:
    parser = ClientParser(max_control_line=64)
    assert parser.feed(b"SUB " + b"a" * 30) == []
    assert parser.feed(b" 1\r\n") == [Sub("a" * 30, None, "1")]


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_give_operations_or_protocol_error(data: bytes) -> None:
    parser = ClientParser(max_payload=128, max_control_line=128)
    try:
        parser.feed(data)
    except ProtocolError:
        return
    assert len(parser._buffer) <= 128 + 2 + 128


def test_encoders() -> None:
    assert encode_msg("a.b", "7", None, b"hi") == b"MSG a.b 7 2\r\nhi\r\n"
    assert encode_msg("a.b", "7", "r.1", b"") == b"MSG a.b 7 r.1 0\r\n\r\n"
    headers = b"NATS/1.0\r\n\r\n"
    assert encode_hmsg("a", "1", None, headers, b"x") == b"HMSG a 1 12 13\r\nNATS/1.0\r\n\r\nx\r\n"
    assert encode_hmsg("a", "1", "r", headers, b"") == b"HMSG a 1 r 12 12\r\nNATS/1.0\r\n\r\n\r\n"
    assert encode_err("Authorization Violation") == b"-ERR 'Authorization Violation'\r\n"
    assert encode_info({"server_id": "x", "headers": True}) == (
        b'INFO {"server_id":"x","headers":true}\r\n'
    )
