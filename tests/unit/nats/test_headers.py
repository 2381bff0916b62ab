"""NATS message headers (``gateway.nats.headers``): the ``NATS/1.0`` block <-> a mapping.

The block is ``NATS/1.0[ status[ description]]\\r\\n``, then ``Name: value``
lines, then an empty line (ADR-4, NATS message headers); a status line maps
to the ``Status`` and ``Description`` keys as nats-py reads it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.nats.headers import (
    DESCRIPTION,
    NO_RESPONDERS,
    STATUS,
    HeaderError,
    decode_headers,
    encode_headers,
)

# Header names: printable ASCII without ':' or spaces; values: no CR/LF, no edge spaces.
names = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
    min_size=1,
    max_size=20,
).filter(lambda n: n not in (STATUS, DESCRIPTION))
values = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters="\x85"),
    max_size=40,
).map(str.strip)
mappings = st.dictionaries(names, values, max_size=8)


@settings(max_examples=200, deadline=None)
@given(mappings)
def test_headers_round_trip(headers: dict[str, str]) -> None:
    block = encode_headers(headers)
    assert block.startswith(b"NATS/1.0\r\n")
    assert block.endswith(b"\r\n\r\n")
    assert decode_headers(block) == headers


@settings(max_examples=100, deadline=None)
@given(
    mappings,
    st.sampled_from(["100", "404", "408", "409", "503"]),
    st.one_of(
        st.none(),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
    ),
)
def test_status_headers_round_trip(
    headers: dict[str, str], status: str, description: str | None
) -> None:
    with_status = {STATUS: status, **headers}
    if description is not None:
        with_status[DESCRIPTION] = description
    block = encode_headers(with_status)
    first = block.split(b"\r\n", 1)[0]
    expected_first = f"NATS/1.0 {status}" + (f" {description}" if description else "")
    assert first == expected_first.encode()
    assert decode_headers(block) == with_status


def test_no_responders_status_line() -> None:
    assert encode_headers(NO_RESPONDERS) == b"NATS/1.0 503\r\n\r\n"
    assert decode_headers(b"NATS/1.0 503\r\n\r\n") == {STATUS: "503"}


def test_status_with_description() -> None:
    block = b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\n\r\n"
    headers = {STATUS: "408", DESCRIPTION: "Request Timeout", "Nats-Pending-Messages": "5"}
    assert decode_headers(block) == headers
    assert encode_headers(headers) == block


def test_plain_block() -> None:
    block = b"NATS/1.0\r\nA: b\r\nC-D: e f\r\n\r\n"
    assert decode_headers(block) == {"A": "b", "C-D": "e f"}
    assert encode_headers({"A": "b", "C-D": "e f"}) == block
    assert decode_headers(b"NATS/1.0\r\n\r\n") == {}
    assert encode_headers({}) == b"NATS/1.0\r\n\r\n"


def test_values_are_trimmed_and_may_hold_colons() -> None:
    assert decode_headers(b"NATS/1.0\r\nUrl:  http://x:1/  \r\nEmpty:\r\n\r\n") == {
        "Url": "http://x:1/",
        "Empty": "",
    }


def test_a_repeated_name_keeps_its_last_value() -> None:
    assert decode_headers(b"NATS/1.0\r\nA: 1\r\nA: 2\r\n\r\n") == {"A": "2"}


@pytest.mark.parametrize(
    "block",
    [
        b"",
        b"HTTP/1.1 200\r\n\r\n",
        b"nats/1.0\r\n\r\n",
        b"NATS/1.0\r\nno colon here\r\n\r\n",
        b"NATS/1.0\r\n: empty name\r\n\r\n",
        b"NATS/1.0\r\n Lead: space\r\n\r\n",
        b"NATS/1.0\r\nTrail : space\r\n\r\n",
        b"NATS/1.0\r\nA: \xff\xfe\r\n\r\n",
    ],
    ids=["empty", "http", "lowercase", "no-colon", "no-name", "lead-space", "trail-space", "utf8"],
)
def test_malformed_blocks_raise_header_error(block: bytes) -> None:
    with pytest.raises(HeaderError):
        decode_headers(block)


def test_header_error_is_a_value_error() -> None:
    assert issubclass(HeaderError, ValueError)
