"""TCP and WebSocket listeners with real sockets and a real WebSocket client."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from gateway.listeners.conninfo import ConnInfo
from gateway.listeners.stream import ByteStream
from gateway.listeners.tcp import TcpListener
from gateway.listeners.websocket import WebSocketListener
from gateway.options.model import ConnectionType


class EchoSessions:
    """A handler that echoes bytes back and remembers what it was told about each client."""

    def __init__(self) -> None:
        self.infos: list[ConnInfo] = []
        self.ended = asyncio.Event()

    async def __call__(self, stream: ByteStream) -> None:
        self.infos.append(stream.info)
        try:
            while data := await stream.read():
                stream.write(data)
                await stream.drain()
        finally:
            self.ended.set()


@pytest.fixture
async def echo() -> EchoSessions:
    return EchoSessions()


@pytest.fixture
async def tcp(echo: EchoSessions) -> AsyncIterator[TcpListener]:
    listener = TcpListener("127.0.0.1", 0, ConnectionType.MQTT, echo)
    await listener.start()
    yield listener
    await listener.stop()


@pytest.fixture
async def ws(echo: EchoSessions) -> AsyncIterator[WebSocketListener]:
    listener = WebSocketListener(
        "127.0.0.1", 0, echo, allowed_origins=["http://good.example"], max_message_size=1 << 16
    )
    await listener.start()
    yield listener
    await listener.stop()


async def test_tcp_bytes_round_trip_and_conninfo(tcp: TcpListener, echo: EchoSessions) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp.port)
    writer.write(b"\x10\x00hello")
    await writer.drain()
    assert await reader.readexactly(7) == b"\x10\x00hello"
    info = echo.infos[0]
    assert info.kind is ConnectionType.MQTT
    assert info.peer_host == "127.0.0.1"
    assert info.local_port == tcp.port
    assert not info.tls
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(echo.ended.wait(), 5)


async def test_tcp_connection_ids_are_unique(tcp: TcpListener, echo: EchoSessions) -> None:
    clients = [await asyncio.open_connection("127.0.0.1", tcp.port) for _ in range(3)]
    for reader, writer in clients:
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
    assert len({info.id for info in echo.infos}) == 3
    for _, writer in clients:
        writer.close()


async def test_websocket_mqtt_subprotocol_makes_an_mqtt_ws_connection(
    ws: WebSocketListener, echo: EchoSessions
) -> None:
    async with connect(
        f"ws://127.0.0.1:{ws.port}/mqtt", subprotocols=[Subprotocol("mqtt")]
    ) as client:
        assert client.subprotocol == "mqtt"
        # Two packets in one frame, then one packet split over two frames.
        await client.send(b"\xc0\x00\xc0\x00")
        assert await client.recv() == b"\xc0\x00\xc0\x00"
        await client.send(b"\xc0")
        assert await client.recv() == b"\xc0"
    info = echo.infos[0]
    assert info.kind is ConnectionType.MQTT_WS
    assert info.path == "/mqtt"
    assert info.subprotocol == "mqtt"


async def test_websocket_without_subprotocol_is_a_nats_connection(
    ws: WebSocketListener, echo: EchoSessions
) -> None:
    async with connect(f"ws://127.0.0.1:{ws.port}/") as client:
        await client.send("PING\r\n")  # NATS clients may send text frames
        assert await client.recv() == b"PING\r\n"
    assert echo.infos[0].kind is ConnectionType.WEBSOCKET


async def test_text_frame_on_mqtt_websocket_closes(
    ws: WebSocketListener, echo: EchoSessions
) -> None:
    async with connect(
        f"ws://127.0.0.1:{ws.port}/mqtt", subprotocols=[Subprotocol("mqtt")]
    ) as client:
        await client.send("not binary")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.recv(), 5)
    await asyncio.wait_for(echo.ended.wait(), 5)


async def test_origin_not_allowed_is_refused(ws: WebSocketListener, echo: EchoSessions) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{ws.port}/", origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert info.value.response.status_code == 403
    assert echo.infos == []


async def test_allowed_origin_is_accepted(ws: WebSocketListener, echo: EchoSessions) -> None:
    async with connect(f"ws://127.0.0.1:{ws.port}/", origin="http://good.example") as client:  # type: ignore[arg-type]
        await client.send(b"x")
        assert await client.recv() == b"x"
    assert echo.infos[0].headers["origin"] == "http://good.example"


async def test_same_origin_requires_matching_host(echo: EchoSessions) -> None:
    listener = WebSocketListener("127.0.0.1", 0, echo, same_origin=True)
    await listener.start()
    try:
        url = f"ws://127.0.0.1:{listener.port}/"
        with pytest.raises(InvalidStatus):
            async with connect(url, origin="http://other:1"):  # type: ignore[arg-type]
                pass
        async with connect(url, origin=f"http://127.0.0.1:{listener.port}") as client:  # type: ignore[arg-type]
            await client.send(b"ok")
            assert await client.recv() == b"ok"
    finally:
        await listener.stop()


async def test_failing_handler_does_not_stop_the_listener(echo: EchoSessions) -> None:
    calls = 0

    async def broken(stream: ByteStream) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("session bug")

    listener = TcpListener("127.0.0.1", 0, ConnectionType.STANDARD, broken)
    await listener.start()
    try:
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the listener
            writer.close()
        assert calls == 2
    finally:
        await listener.stop()


def _connect_while_busy(port: int, count: int, within: float) -> int:
    """Start ``count`` TCP connections to ``port``; how many complete within ``within`` s."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            socks.append(sock)
        waiting = set(socks)
        deadline = time.monotonic() + within
        while waiting and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(waiting), [], 0.05)
            for sock in writable:
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    waiting.discard(sock)
        return count - len(waiting)
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("kind", ["tcp", "ws"])
async def test_a_connection_storm_waits_in_the_kernel_while_the_gateway_is_busy(
    tcp: TcpListener, ws: WebSocketListener, kind: str
) -> None:
    """120 clients connect while the event loop cannot accept: all get in at once.

    asyncio's default listen backlog (100) makes the kernel drop the rest, which then
    wait a SYN retransmission (1 s or more) each.
    """
    port = tcp.port if kind == "tcp" else ws.port
    done: list[int] = []
    storm = threading.Thread(target=lambda: done.append(_connect_while_busy(port, 120, 0.5)))
    storm.start()
    storm.join()  # blocks the event loop, so nothing is accepted meanwhile
    assert done == [120]
