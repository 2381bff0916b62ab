"""JWT limits over the wire: ``subs`` and ``payload`` of the user and its account, as nats-server.

What nats-server 2.15 does (observed against the binary the suite installs):
a subscription beyond the limit gets ``-ERR 'maximum subscriptions exceeded'``
and the connection stays; the INFO after CONNECT carries the lowered
``max_payload`` and a bigger publish gets ``-ERR 'Maximum Payload Violation'``
and is closed; a v2 user JWT without ``subs`` may not subscribe at all and is
closed at once.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.auth.jwt import decode, encode
from gateway.auth.nkeys import Role
from gateway.server import Gateway
from tests.integration.auth.helpers import NatsErrors, nats_connect
from tests.integration.operator.conftest import Identities, StartGateway, keypair

pytestmark = pytest.mark.integration

MAX_SUBS = "maximum subscriptions exceeded"
MAX_PAYLOAD = "Maximum Payload Violation"
TIMEOUT = 5.0


class RawNats:
    """A NATS client on a bare socket: the exact lines the gateway sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, gateway: Gateway, token: str, then: str = ""
    ) -> tuple[RawNats, dict[str, Any]]:
        """Connect with a bearer user JWT (``then`` in the same write); returns the first INFO."""
        assert gateway.nats is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.nats.port)
        raw = cls(reader, writer)
        info = await raw.info()
        connect = {"jwt": token, "verbose": False, "protocol": 1, "headers": True}
        raw.send(f"CONNECT {json.dumps(connect)}\r\n{then}")
        return raw, info

    def send(self, text: str) -> None:
        self.writer.write(text.encode())

    async def line(self) -> bytes:
        """The next line the gateway sends (b"" at end of stream)."""
        return await asyncio.wait_for(self.reader.readline(), TIMEOUT)

    async def info(self) -> dict[str, Any]:
        line = await self.line()
        assert line.startswith(b"INFO "), line
        info: dict[str, Any] = json.loads(line[5:])
        return info

    async def rest(self) -> bytes:
        """Everything until the gateway closes the connection."""
        return await asyncio.wait_for(self.reader.read(), TIMEOUT)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def user_without_limits(ids: Identities, account: str = "A") -> str:
    """A bearer user JWT that leaves out ``subs``, ``payload`` and ``data`` (limit 0 in v2)."""
    _, token = ids.user_jwt(account, keypair(Role.USER), bearer=True)
    payload = dict(decode(token).payload)
    payload["nats"] = {
        k: v for k, v in payload["nats"].items() if k not in ("subs", "payload", "data")
    }
    return encode(payload, ids.accounts[account].key)


async def test_user_subscription_limit(start: StartGateway, ids: Identities) -> None:
    gateway = await start()
    raw, _ = await RawNats.connect(gateway, ids.bearer("A", max_subscriptions=2))
    try:
        raw.send("SUB a 1\r\nSUB b 2\r\nPING\r\n")
        assert await raw.line() == b"PONG\r\n"
        raw.send("SUB c 3\r\nPING\r\n")
        assert await raw.line() == f"-ERR '{MAX_SUBS}'\r\n".encode()
        assert await raw.line() == b"PONG\r\n"  # refused, still connected
        raw.send("UNSUB 1\r\nSUB d 4\r\nPUB d 2\r\nhi\r\nPING\r\n")
        assert await raw.line() == b"MSG d 4 2\r\n"
        assert await raw.line() == b"hi\r\n"
        assert await raw.line() == b"PONG\r\n"
    finally:
        await raw.close()


async def test_account_subscription_limit_tightens_the_users(
    start: StartGateway, ids: Identities
) -> None:
    ids.accounts["A"].options["max_subscriptions"] = 1
    gateway = await start()
    raw, _ = await RawNats.connect(gateway, ids.bearer("A", max_subscriptions=5))
    try:
        raw.send("SUB a 1\r\nSUB b 2\r\nPING\r\n")
        assert await raw.line() == f"-ERR '{MAX_SUBS}'\r\n".encode()
        assert await raw.line() == b"PONG\r\n"
    finally:
        await raw.close()
    # Account B has no such limit: nats-py with a creds file (nonce signed).
    errors = NatsErrors()
    nc = await nats_connect(gateway, errors=errors, user_credentials=ids.creds("B"))
    try:
        for subject in ("a", "b", "c"):
            await nc.subscribe(subject)
        await errors.none(nc)
    finally:
        await nc.close()


async def test_payload_limit_lowers_info_and_closes_on_violation(
    start: StartGateway, ids: Identities
) -> None:
    gateway = await start()
    raw, first = await RawNats.connect(gateway, ids.bearer("A", max_payload=5))
    try:
        assert first["max_payload"] == 1024 * 1024  # before CONNECT: the server's
        raw.send("SUB s 1\r\nPING\r\n")
        lines = [await raw.line(), await raw.line()]
        info_line = next(line for line in lines if line.startswith(b"INFO "))
        assert json.loads(info_line[5:])["max_payload"] == 5
        assert b"PONG\r\n" in lines
        raw.send("PUB s 5\r\nhello\r\nPING\r\n")
        assert await raw.line() == b"MSG s 1 5\r\n"
        assert await raw.line() == b"hello\r\n"
        assert await raw.line() == b"PONG\r\n"
        raw.send("PUB s 6\r\nhello!\r\n")
        assert await raw.rest() == f"-ERR '{MAX_PAYLOAD}'\r\n".encode()
    finally:
        await raw.close()


async def test_account_payload_limit(start: StartGateway, ids: Identities) -> None:
    ids.accounts["A"].options["max_payload"] = 8
    gateway = await start()
    # nats-py with a creds file takes the second INFO in its stride; 8 bytes pass.
    nc = await nats_connect(gateway, user_credentials=ids.creds("A"))
    try:
        sub = await nc.subscribe("x")
        await nc.publish("x", b"12345678")
        assert (await sub.next_msg(timeout=TIMEOUT)).data == b"12345678"
    finally:
        await nc.close()
    raw, _ = await RawNats.connect(gateway, ids.bearer("A"), then="PUB x 9\r\n123456789\r\n")
    try:
        # Sent with CONNECT, before the limit was known: refused all the same.
        assert await raw.rest() == f"-ERR '{MAX_PAYLOAD}'\r\n".encode()
    finally:
        await raw.close()


async def test_server_max_payload_stays_when_lower(start: StartGateway, ids: Identities) -> None:
    gateway = await start(extra="max_payload: 100\n")
    raw, first = await RawNats.connect(gateway, ids.bearer("A", max_payload=1000))
    try:
        assert first["max_payload"] == 100
        raw.send("PING\r\n")
        assert await raw.line() == b"PONG\r\n"  # no second INFO: nothing was lowered
        raw.send("PUB s 101\r\n" + "x" * 101 + "\r\n")
        assert await raw.rest() == f"-ERR '{MAX_PAYLOAD}'\r\n".encode()
    finally:
        await raw.close()


async def test_user_jwt_without_subs_is_closed_at_once(
    start: StartGateway, ids: Identities
) -> None:
    gateway = await start()
    raw, _ = await RawNats.connect(gateway, user_without_limits(ids), then="PING\r\n")
    try:
        lines = (await raw.rest()).split(b"\r\n")
        assert lines[0] == b"PONG"  # then the INFO with max_payload 0, then the error
        assert json.loads(lines[1][5:])["max_payload"] == 0
        assert lines[2:] == [f"-ERR '{MAX_SUBS}'".encode(), b""]
    finally:
        await raw.close()
