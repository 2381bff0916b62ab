"""``FastReader``: control lines and routed messages, whatever the read boundaries.

The reader sits on a real (unconnected) nats-py client; only routed messages
are fed here, so nothing reaches the network. The unrouted path, INFO,
PING/PONG and -ERR run against a real nats-server in the upstream suites.
"""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS
from nats.errors import ProtocolError
from nats.protocol.parser import Parser

from gateway.bus.nats_reader import FastReader, RawMsg, install, parse_headers

WIRE = (
    b"MSG a.b 1 5\r\nhello\r\n"
    b"MSG a.c 1 _INBOX.x.1 0\r\n\r\n"
    b"HMSG a.d 1 26 31\r\nNATS/1.0\r\nNmqtt-Pub: 1\r\n\r\nworld\r\n"
    b"HMSG a.e 1 r.1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    b"+OK\r\n"
    b"MSG a.f 1 7\r\nx\r\ny\r\nz\r\n"
)
EXPECTED = [
    RawMsg("a.b", "", b"hello", None),
    RawMsg("a.c", "_INBOX.x.1", b"", None),
    RawMsg("a.d", "", b"world", {"Nmqtt-Pub": "1"}),
    RawMsg("a.e", "r.1", b"", {"Status": "503"}),
    RawMsg("a.f", "", b"x\r\ny\r\nz", None),
]


def reader() -> tuple[FastReader, list[RawMsg]]:
    got: list[RawMsg] = []
    fast = FastReader(NATS())
    fast.route(1, got.append)
    return fast, got


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, len(WIRE)])
async def test_messages_come_out_whole_whatever_the_read_size(piece: int) -> None:
    fast, got = reader()
    for i in range(0, len(WIRE), piece):
        await fast.parse(WIRE[i : i + piece])
    assert got == EXPECTED
    assert fast.buf == bytearray()
    assert fast.nc.stats["in_msgs"] == len(EXPECTED)


async def test_a_handler_that_raises_does_not_stop_the_reader() -> None:
    fast = FastReader(NATS())
    got: list[RawMsg] = []

    def handler(msg: RawMsg) -> None:
        got.append(msg)
        raise RuntimeError("bug")

    fast.route(1, handler)
    await fast.parse(WIRE)
    assert len(got) == len(EXPECTED)


@pytest.mark.parametrize(
    "line",
    [b"MSG a.b x 5\r\n", b"MSG a.b 1\r\n", b"HMSG a 1 2\r\n", b"MSG a 1 b c d e\r\n", b"WAT\r\n"],
)
async def test_malformed_or_unknown_lines_are_protocol_errors(line: bytes) -> None:
    fast, _ = reader()
    with pytest.raises(ProtocolError):
        await fast.parse(line)


async def test_an_endless_control_line_is_a_protocol_error() -> None:
    fast, _ = reader()
    with pytest.raises(ProtocolError):
        await fast.parse(b"MSG " + b"a" * 5000)


async def test_install_takes_over_what_nats_py_half_read() -> None:
    nc = NATS()
    old: Parser = nc._ps
    old.buf.extend(b"hel")  # nats-py read "MSG a.b 1 5\r\n" and waits for the payload
    old.state = 2  # AWAITING_MSG_PAYLOAD
    old.msg_arg = {"subject": b"a.b", "sid": 1, "reply": b""}
    old.needed = 5
    fast = install(nc)
    assert nc._ps is fast and install(nc) is fast
    got: list[RawMsg] = []
    fast.route(1, got.append)
    await fast.parse(b"lo\r\nMSG a.c 1 1\r\n!\r\n")
    assert got == [RawMsg("a.b", "", b"hello", None), RawMsg("a.c", "", b"!", None)]


async def test_unrouted_sids_are_not_handed_to_the_route() -> None:
    fast, got = reader()
    fast.unroute(1)
    fast.route(2, got.append)
    await fast.parse(b"MSG a 2 1\r\nx\r\n")
    assert got == [RawMsg("a", "", b"x", None)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"NATS/1.0\r\nA: 1\r\nB:  two words \r\n\r\n", {"A": "1", "B": "two words"}),
        (
            b"NATS/1.0 408 Request Timeout\r\n\r\n",
            {"Status": "408", "Description": "Request Timeout"},
        ),
        (
            b"NATS/1.0 100 Idle Heartbeat\r\nX: y\r\n\r\n",
            {"Status": "100", "Description": "Idle Heartbeat", "X": "y"},
        ),
        (b"NATS/1.0\r\nA: 1\r\nA: 2\r\n\r\n", {"A": "2"}),
        (b"NATS/1.0\r\nbad name: 1\r\nno colon\r\n\r\n", {}),
    ],
)
def test_parse_headers(raw: bytes, expected: dict[str, str]) -> None:
    assert parse_headers(raw) == expected


def test_parsed_headers_are_a_dict_of_each_call() -> None:
    raw = b"NATS/1.0\r\nNmqtt-Pub: 1\r\n\r\n"
    first = parse_headers(raw)
    first["changed"] = "by one subscriber"
    assert parse_headers(raw) == {"Nmqtt-Pub": "1"}
