"""NATS clients (nats-py, raw sockets, WebSocket) against a running embedded gateway."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError
from websockets.asyncio.client import connect as ws_connect

from conf import loads
from gateway.auth.nkeys import KeyPair
from gateway.options import build_options
from gateway.server import Gateway

USER_SEED = "SUAAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBH4FY"
USER_NKEY = "UDFJHLAXAUMHA4OWPOB4P7YO72AQR2HMIUYFOXLXE2DZGM633K7HYREV"

StartGateway = Callable[[str], Awaitable[Gateway]]


@pytest.fixture
async def start_gateway(tmp_path: Any) -> AsyncIterator[StartGateway]:
    gateways: list[Gateway] = []

    async def start(extra: str = "") -> Gateway:
        text = (
            f"listen: 127.0.0.1:-1\nmqtt {{ port: 0 }}\n"
            f'jetstream {{ store_dir: "{tmp_path}" }}\n{extra}'
        )
        gateway = Gateway(build_options(loads(text)))
        await gateway.start()
        gateways.append(gateway)
        return gateway

    yield start
    for gateway in gateways:
        await gateway.stop()


def url(gateway: Gateway) -> str:
    assert gateway.nats is not None
    return f"nats://127.0.0.1:{gateway.nats.port}"


async def client(gateway: Gateway, **kwargs: Any) -> Client:
    return await nats.connect(url(gateway), allow_reconnect=False, connect_timeout=5, **kwargs)


async def raw(
    gateway: Gateway,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
    assert gateway.nats is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.nats.port)
    line = await asyncio.wait_for(reader.readline(), 5)
    assert line.startswith(b"INFO ")
    return reader, writer, json.loads(line[5:])


async def test_info_describes_the_server(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("")
    _reader, writer, info = await raw(gateway)
    assert info["headers"] is True
    assert info["max_payload"] == 1024 * 1024
    assert info["client_ip"] == "127.0.0.1"
    assert "auth_required" not in info
    writer.close()


async def test_publish_subscribe_and_queue_groups(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("")
    nc = await client(gateway)
    try:
        plain = await nc.subscribe("orders.>")
        q1 = await nc.subscribe("orders.*", queue="workers")
        q2 = await nc.subscribe("orders.*", queue="workers")
        await nc.flush()
        for i in range(20):
            await nc.publish("orders.new", str(i).encode(), headers={"k": "v"})
        await nc.flush()
        got = [await plain.next_msg(timeout=5) for _ in range(20)]
        assert [m.data for m in got] == [str(i).encode() for i in range(20)]
        assert got[0].headers == {"k": "v"}
        assert got[0].subject == "orders.new"
        shared = 0
        for sub in (q1, q2):
            while True:
                try:
                    await sub.next_msg(timeout=0.2)
                except nats.errors.TimeoutError:
                    break
                shared += 1
        assert shared == 20  # each message to exactly one member of the group
    finally:
        await nc.close()


async def test_request_reply_and_no_responders(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("")
    responder = await client(gateway)
    requester = await client(gateway)
    try:

        async def answer(msg: Any) -> None:
            await msg.respond(b"pong:" + msg.data)

        await responder.subscribe("svc.ping", cb=answer)
        await responder.flush()
        reply = await requester.request("svc.ping", b"1", timeout=5)
        assert reply.data == b"pong:1"
        with pytest.raises(NoRespondersError):
            await requester.request("svc.nobody", b"", timeout=5)
    finally:
        await responder.close()
        await requester.close()


async def test_unsubscribe_after_max_messages(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("")
    nc = await client(gateway)
    try:
        sub = await nc.subscribe("limited")
        await sub.unsubscribe(limit=2)
        for _ in range(5):
            await nc.publish("limited", b"x")
        await nc.flush()
        await sub.next_msg(timeout=5)
        await sub.next_msg(timeout=5)
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(timeout=0.3)
    finally:
        await nc.close()


USERS = f"""
authorization {{
  users = [
    {{user: app, password: apppass, permissions: {{publish: ["app.>"], subscribe: ["app.>", "_INBOX.>"]}}}}
    {{user: device, password: devpass, allowed_connection_types: ["MQTT"]}}
    {{nkey: {USER_NKEY}}}
  ]
}}
"""


async def test_user_password_and_auth_required(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(USERS)
    _reader, writer, info = await raw(gateway)
    assert info["auth_required"] is True
    assert "nonce" in info  # an nkey user exists
    writer.close()
    nc = await client(gateway, user="app", password="apppass")
    assert nc.is_connected
    await nc.close()


@pytest.mark.parametrize(
    "credentials",
    [
        {"user": "app", "password": "wrong"},
        {"user": "ghost", "password": "x"},
        {},
        {"user": "device", "password": "devpass"},  # MQTT only
    ],
)
async def test_refused_credentials_get_authorization_violation(
    start_gateway: StartGateway, credentials: dict[str, str]
) -> None:
    gateway = await start_gateway(USERS)
    reader, writer, _ = await raw(gateway)
    connect = {"verbose": False, "pedantic": False, **credentials}
    if "password" in connect:
        connect["pass"] = connect.pop("password")
    writer.write(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 5) == b"-ERR 'Authorization Violation'\r\n"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
    writer.close()


async def test_nkey_user_signs_the_nonce(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(USERS)
    reader, writer, info = await raw(gateway)
    sig = KeyPair(USER_SEED).sign(info["nonce"].encode())
    connect = {
        "verbose": True,
        "nkey": USER_NKEY,
        "sig": base64.urlsafe_b64encode(sig).decode().rstrip("="),
    }
    writer.write(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 5) == b"+OK\r\n"
    assert await asyncio.wait_for(reader.readline(), 5) == b"PONG\r\n"
    writer.close()


async def test_permissions_violations_use_the_servers_texts(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(USERS)
    reader, writer, _ = await raw(gateway)
    writer.write(
        b'CONNECT {"user":"app","pass":"apppass"}\r\n'
        b"PUB other.subject 1\r\nx\r\n"
        b"SUB other.> 1\r\n"
        b"SUB app.> 2\r\n"
        b"PUB app.ok 2\r\nhi\r\n"
        b"PING\r\n"
    )
    await writer.drain()
    lines = [await asyncio.wait_for(reader.readline(), 5) for _ in range(5)]
    assert lines[0] == b"-ERR 'Permissions Violation for Publish to \"other.subject\"'\r\n"
    assert lines[1] == b"-ERR 'Permissions Violation for Subscription to \"other.>\"'\r\n"
    assert lines[2] == b"MSG app.ok 2 2\r\n"
    assert lines[3] == b"hi\r\n"
    assert lines[4] == b"PONG\r\n"  # the connection stays open
    writer.close()


async def test_verbose_mode_acknowledges_each_operation(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("")
    reader, writer, _ = await raw(gateway)
    writer.write(b'CONNECT {"verbose":true}\r\nSUB a 1\r\nPUB a 1\r\nx\r\nUNSUB 1\r\n')
    await writer.drain()
    lines = [await asyncio.wait_for(reader.readline(), 5) for _ in range(4)]
    assert lines.count(b"+OK\r\n") == 4
    writer.close()


async def test_oversized_payload_is_refused_and_closed(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("max_payload: 16\n")
    reader, writer, info = await raw(gateway)
    assert info["max_payload"] == 16
    writer.write(b"CONNECT {}\r\nPUB a 17\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 5) == b"-ERR 'Maximum Payload Violation'\r\n"
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_unknown_operation_is_refused_and_closed(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("")
    reader, writer, _ = await raw(gateway)
    writer.write(b"CONNECT {}\r\nHELLO there\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 5) == b"-ERR 'Unknown Protocol Operation'\r\n"
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_no_connect_within_the_timeout_is_closed(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("authorization { user: a, password: b, timeout: 0.3 }\n")
    reader, writer, _ = await raw(gateway)
    assert await asyncio.wait_for(reader.readline(), 5) == b"-ERR 'Authentication Timeout'\r\n"
    writer.close()


async def test_nats_over_websocket(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("websocket { listen: 127.0.0.1:-1, no_tls: true }\n")
    assert gateway.websocket is not None
    nc = await client(gateway)
    try:
        sub = await nc.subscribe("from.browser")
        await nc.flush()
        async with ws_connect(f"ws://127.0.0.1:{gateway.websocket.port}/") as ws:
            info = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(info, bytes) and info.startswith(b"INFO ")
            await ws.send(b'CONNECT {"verbose":false}\r\nPUB from.browser 5\r\nhello\r\nPING\r\n')
            assert await asyncio.wait_for(ws.recv(), 5) == b"PONG\r\n"
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b"hello"
    finally:
        await nc.close()


async def test_max_connections(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("max_connections: 1\n")
    first = await client(gateway)
    try:
        reader, writer, _ = await raw(gateway)
        assert await asyncio.wait_for(reader.readline(), 5) == (
            b"-ERR 'maximum connections exceeded'\r\n"
        )
        writer.close()
    finally:
        await first.close()


async def test_echo_false_skips_the_clients_own_messages(start_gateway: StartGateway) -> None:
    gateway = await start_gateway("")
    reader, writer, _ = await raw(gateway)
    other = await client(gateway)
    try:
        sub = await other.subscribe("echo.test")
        await other.flush()
        writer.write(
            b'CONNECT {"echo":false}\r\nSUB echo.test 1\r\nPUB echo.test 4\r\nmine\r\nPING\r\n'
        )
        await writer.drain()
        # The PONG comes after every delivery the PUB caused: none of them to us.
        assert await asyncio.wait_for(reader.readline(), 5) == b"PONG\r\n"
        assert (await sub.next_msg(timeout=5)).data == b"mine"  # others still get it
        await other.publish("echo.test", b"theirs")
        await other.flush()
        assert await asyncio.wait_for(reader.readline(), 5) == b"MSG echo.test 1 6\r\n"
    finally:
        writer.close()
        await other.close()


# -- pipelined PUBs: batched on the way through, unchanged on the wire ----------------------


async def test_a_pipelined_burst_reaches_subscribers_in_order_once_each(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway("")
    reader, writer, _ = await raw(gateway)
    watcher = await client(gateway)
    try:
        sub = await watcher.subscribe("burst.*")
        limited = await watcher.subscribe("burst.a")
        await limited.unsubscribe(3)  # UNSUB sid 3: ends inside the burst
        await watcher.flush()
        burst = b"".join(
            b"PUB burst.%s %d\r\n%s\r\n" % (b"ab"[i % 3 // 2 : i % 3 // 2 + 1], len(p), p)
            for i, p in enumerate(b"%04d" % n for n in range(300))
        )
        # echo:false and a subscription of its own: none of the burst comes back to us.
        writer.write(b'CONNECT {"echo":false}\r\nSUB burst.> 1\r\n' + burst + b"PING\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 5) == b"PONG\r\n"
        got = [(await sub.next_msg(timeout=5)) for _ in range(300)]
        assert [m.data for m in got] == [b"%04d" % n for n in range(300)]
        assert [m.subject for m in got[:3]] == ["burst.a", "burst.a", "burst.b"]
        limited_got = [(await limited.next_msg(timeout=5)).data for _ in range(3)]
        assert limited_got == [b"0000", b"0001", b"0003"]
        with pytest.raises(nats.errors.TimeoutError):
            await limited.next_msg(timeout=0.3)
    finally:
        writer.close()
        await watcher.close()


async def test_reads_answered_in_the_transport_callback_keep_the_order_of_operations(
    start_gateway: StartGateway,
) -> None:
    """After CONNECT, reads are handled as they arrive; one that needs an await (SUB)
    hands its rest to the connection's task, and later reads wait for it."""
    gateway = await start_gateway("")
    reader, writer, _ = await raw(gateway)
    try:
        writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 5) == b"PONG\r\n"
        for i in range(20):
            # A publish, then a subscribe and a publish it must see, in one write;
            # then the next round at once, without waiting for the answers.
            writer.write(
                b"PUB none.%d 1\r\nx\r\nSUB s.%d %d\r\nPUB s.%d 2\r\n%02d\r\nUNSUB %d\r\n"
                b"PUB s.%d 1\r\nz\r\n" % (i, i, i + 10, i, i, i + 10, i)
            )
        writer.write(b"PING\r\n")
        await writer.drain()
        expected = b"".join(b"MSG s.%d %d 2\r\n%02d\r\n" % (i, i + 10, i) for i in range(20))
        got = await asyncio.wait_for(reader.readexactly(len(expected)), 5)
        assert got == expected
        assert await asyncio.wait_for(reader.readline(), 5) == b"PONG\r\n"
    finally:
        writer.close()


async def test_what_a_client_sends_right_before_closing_is_carried_out(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway("")
    watcher = await client(gateway)
    try:
        sub = await watcher.subscribe("last.words")
        await watcher.flush()
        reader, writer, _ = await raw(gateway)
        writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 5) == b"PONG\r\n"
        # A SUB (which needs an await) then a PUB, and the connection closes at once.
        writer.write(b"SUB other 1\r\nPUB last.words 3\r\nbye\r\n")
        await writer.drain()
        writer.close()
        assert (await sub.next_msg(timeout=5)).data == b"bye"
    finally:
        await watcher.close()
