"""Clients for the auth tests: nats-py over TCP and WebSocket, MQTT over TCP and WebSocket.

Every helper talks to a real in-process gateway over real sockets. NATS errors
the server reports asynchronously (permission violations) are collected by
:class:`NatsErrors`, so a test awaits the error instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from nats.aio.client import Client

from gateway.mqtt.packets import Connect
from gateway.server import Gateway
from tests.integration.mqtt.helpers import TIMEOUT, PahoClient, RawSession, TcpSession, WsSession

USER_SEED = "SUAAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBAEAQCAIBH4FY"
USER_NKEY = "UDFJHLAXAUMHA4OWPOB4P7YO72AQR2HMIUYFOXLXE2DZGM633K7HYREV"

#: How long a test waits to conclude that something does NOT arrive.
QUIET = 0.3

#: MQTT 5.0 reason codes the tests expect.
SUCCESS = 0x00
UNSPECIFIED_ERROR = 0x80
BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
#: The 3.1.1 SUBACK failure code (the codec leaves it as is).
REFUSED_311_SUBSCRIBE = 0x80

#: The 3.1.1 CONNACK the NATS server sends for every authentication failure (rc=5).
CONNACK_311_NOT_AUTHORIZED = b"\x20\x02\x00\x05"


def nats_url(gateway: Gateway, ws: bool = False) -> str:
    """The NATS URL of the gateway's TCP listener, or of its WebSocket listener."""
    if ws:
        assert gateway.websocket is not None
        return f"ws://127.0.0.1:{gateway.websocket.port}"
    assert gateway.nats is not None
    return f"nats://127.0.0.1:{gateway.nats.port}"


def mqtt_port(gateway: Gateway, ws: bool = False) -> int:
    """The port MQTT clients use: the MQTT listener, or the WebSocket one (subprotocol mqtt)."""
    if ws:
        assert gateway.websocket is not None
        return gateway.websocket.port
    listener = gateway.mqtt
    assert listener is not None
    port: int = listener.port
    return port


class NatsErrors:
    """An ``error_cb`` (``report``) for nats-py that queues every error text the client reports."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    async def report(self, error: Exception) -> None:
        """The ``error_cb`` itself (nats-py wants a coroutine function)."""
        self.queue.put_nowait(str(error))

    async def next(self, timeout: float = TIMEOUT) -> str:
        """The next error reported to the client."""
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def violation(self, kind: str, subject: str, timeout: float = TIMEOUT) -> None:
        """Wait for the server's ``Permissions Violation for <kind> to "<subject>"``.

        nats-py lower-cases the text of ``-ERR`` lines, so the comparison ignores case.
        """
        error = await self.next(timeout)
        expected = f'nats: Permissions Violation for {kind} to "{subject}"'
        assert error.lower() == expected.lower(), error

    async def none(self, nc: Client) -> None:
        """Assert the server reported no error so far: a PING/PONG round trip, then nothing queued.

        The server answers operations in order, so any ``-ERR`` for an earlier
        operation arrives (and reaches ``error_cb``) before the PONG.
        """
        await nc.flush(timeout=5)
        assert self.queue.empty(), f"unexpected NATS error: {self.queue.get_nowait()}"


async def nats_connect(
    gateway: Gateway, ws: bool = False, errors: NatsErrors | None = None, **kwargs: Any
) -> Client:
    """A nats-py client connected over TCP (or WebSocket); no reconnects."""

    async def ignore(_error: Exception) -> None:
        return None

    nc = Client()
    try:
        await nc.connect(
            nats_url(gateway, ws),
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=5,
            error_cb=errors.report if errors is not None else ignore,
            **kwargs,
        )
    except BaseException:
        # A refused client keeps its transport (an aiohttp session over WebSocket) open.
        with contextlib.suppress(Exception):
            await nc.close()
        raise
    return nc


async def nats_refusal(gateway: Gateway, ws: bool = False, **kwargs: Any) -> str:
    """Connect with nats-py, expecting a refusal; return the error text the client got."""
    try:
        nc = await nats_connect(gateway, ws, **kwargs)
    except Exception as exc:
        return str(exc)
    await nc.close()
    raise AssertionError("the connection was accepted")


async def nats_accepted(gateway: Gateway, ws: bool = False, **kwargs: Any) -> bool:
    """Whether a nats-py client with these credentials gets connected (then closed)."""
    try:
        nc = await nats_connect(gateway, ws, **kwargs)
    except Exception as exc:
        assert "Authorization Violation" in str(exc), f"refused for another reason: {exc}"
        return False
    try:
        await nc.flush(timeout=5)  # a PING/PONG round trip after CONNECT
        return nc.is_connected
    finally:
        await nc.close()


async def mqtt_session(gateway: Gateway, version: int, ws: bool = False) -> RawSession:
    """A raw MQTT session (not yet connected) over TCP or WebSocket."""
    if ws:
        return await WsSession.open(mqtt_port(gateway, ws=True), version)
    return await TcpSession.open(mqtt_port(gateway), version)


async def mqtt_connected(
    gateway: Gateway,
    version: int,
    username: str | None = None,
    password: str | None = None,
    ws: bool = False,
    client_id: str = "",
) -> RawSession:
    """A raw MQTT session whose CONNECT was accepted."""
    session = await mqtt_session(gateway, version, ws)
    connack = await session.connect(
        client_id,
        username=username,
        password=None if password is None else password.encode(),
    )
    assert connack.reason_code == SUCCESS, f"CONNECT refused: 0x{connack.reason_code:02X}"
    return session


async def mqtt_connack(
    gateway: Gateway,
    version: int,
    username: str | None = None,
    password: str | None = None,
    ws: bool = False,
) -> int:
    """The CONNACK reason code (5.0 numbering) a raw MQTT client gets; the session is closed."""
    session = await mqtt_session(gateway, version, ws)
    try:
        connack = await session.connect(
            username=username, password=None if password is None else password.encode()
        )
        if connack.reason_code != SUCCESS:
            await session.closed()  # [MQTT-3.2.2-5] a refusal closes the connection
        return connack.reason_code
    finally:
        with contextlib.suppress(Exception):
            await session.aclose()


async def connack_311_bytes(
    gateway: Gateway, username: str | None = None, password: str | None = None
) -> bytes:
    """The exact CONNACK bytes an MQTT 3.1.1 client gets over TCP."""
    reader, writer = await asyncio.open_connection("127.0.0.1", mqtt_port(gateway))
    try:
        writer.write(
            Connect(
                "",
                username=username,
                password=None if password is None else password.encode(),
                protocol_level=4,
            ).encode(4)
        )
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(4), TIMEOUT)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()


async def paho_connack(
    gateway: Gateway,
    version: int,
    username: str | None = None,
    password: str | None = None,
    ws: bool = False,
) -> int:
    """The CONNACK reason code paho-mqtt reports (3.1.1 rc 5 reads as 0x87, rc 4 as 0x86)."""
    client = PahoClient(mqtt_port(gateway, ws), version, transport="websockets" if ws else "tcp")
    if username is not None:
        client.client.username_pw_set(username, password)
    try:
        _flags, reason, _props = await client.connect()
        value: int = reason.value
        return value
    finally:
        await client.stop()
