"""The PUB/HPUB bytes UpstreamBus writes: a table of exact commands, refusals, and a
header round trip through the gateway's own NATS header reader."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.bus.upstream_wire import (
    InvalidHeader,
    PayloadTooLarge,
    encode_headers,
    pub_command,
    pub_commands,
)
from gateway.nats.headers import decode_headers

MAX = 1024


@pytest.mark.parametrize(
    ("subject", "reply", "payload", "headers", "expected"),
    [
        ("a", "", b"", None, b"PUB a 0\r\n\r\n"),
        ("a.b", "", b"hello", None, b"PUB a.b 5\r\nhello\r\n"),
        ("a", "_INBOX.x", b"hi", None, b"PUB a _INBOX.x 2\r\nhi\r\n"),
        ("a", "", b"hi", {}, b"PUB a 2\r\nhi\r\n"),
        ("a", "", b"hi", {"K": "v"}, b"HPUB a 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nhi\r\n"),
        ("a", "r", b"", {"Status": "503"}, b"HPUB a r 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"),
        (
            "a",
            "",
            b"",
            {"Status": "408", "Description": "Request Timeout", "X": "1"},
            b"HPUB a 38 38\r\nNATS/1.0 408 Request Timeout\r\nX: 1\r\n\r\n\r\n",
        ),
        # A Status that is not a three-digit code is an ordinary header.
        ("a", "", b"", {"Status": "ok"}, b"HPUB a 24 24\r\nNATS/1.0\r\nStatus: ok\r\n\r\n\r\n"),
    ],
)
def test_pub_commands(
    subject: str, reply: str, payload: bytes, headers: dict[str, str] | None, expected: bytes
) -> None:
    assert pub_command(subject, reply, payload, headers, MAX) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"Bad Name": "v"},
        {"": "v"},
        {"K:": "v"},
        {"K": "a\r\nPUB x 0"},
        {"K": "a\nb"},
        {"Status": "503", "Description": "a\r\nb"},
    ],
)
def test_headers_that_could_inject_lines_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidHeader):
        pub_command("a", "", b"", headers, MAX)


def test_max_payload_counts_headers_too() -> None:
    assert pub_command("a", "", b"x" * MAX, None, MAX).endswith(b"x\r\n")
    with pytest.raises(PayloadTooLarge):
        pub_command("a", "", b"x" * (MAX + 1), None, MAX)
    with pytest.raises(PayloadTooLarge):
        pub_command("a", "", b"x" * (MAX - 10), {"K": "v"}, MAX)


_token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    min_size=1,
    max_size=12,
)
_value = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20).map(
    str.strip
)


@given(
    st.dictionaries(
        _token.filter(lambda k: k not in ("Status", "Description")), _value, max_size=5
    ),
    st.sampled_from(["", "100", "503"]),
)
def test_headers_round_trip_through_a_nats_header_reader(
    headers: dict[str, str], status: str
) -> None:
    if status:
        headers = {"Status": status, **headers}
    block = encode_headers(headers)
    assert block.startswith(b"NATS/1.0") and block.endswith(b"\r\n\r\n")
    assert decode_headers(block[:-2]) == headers


@pytest.mark.parametrize("payloads", [[b"x"], [b"ab"] * 5, [b"", b"a", b"bcd" * 50]])
def test_pub_commands_are_pub_command_for_each_payload(payloads: list[bytes]) -> None:
    expected = b"".join(pub_command("s.t", "", p, None, 1024) for p in payloads)
    assert pub_commands("s.t", payloads, 1024) == expected


def test_pub_commands_refuse_a_batch_with_one_payload_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        pub_commands("s", [b"ok", b"x" * 11], 10)


def test_a_repeated_header_block_is_the_same_and_a_bad_one_is_refused_every_time() -> None:
    first = encode_headers({"Nmqtt-Pub": "1"})
    assert encode_headers({"Nmqtt-Pub": "1"}) == first == b"NATS/1.0\r\nNmqtt-Pub: 1\r\n\r\n"
    assert encode_headers({"Nmqtt-Pub": "2"}) != first
    for _ in range(2):
        with pytest.raises(InvalidHeader):
            encode_headers({"X": "a\r\nPUB evil 1"})
