"""WebSocket listener (``websockets`` library): MQTT over WebSocket and NATS over WebSocket.

One port serves both, as in the NATS server's ``websocket`` block: a client
that offers the ``mqtt`` subprotocol is an MQTT_WS connection, any other is a
NATS WEBSOCKET connection. MQTT packets may span frames and one frame may hold
several packets, so the session sees a plain byte stream.

With TLS (``wss://``) the listener does the handshake itself rather than
through ``serve(ssl=...)``, whose failed handshakes asyncio drops without a
word: each accepted connection is a ``_TlsServerConnection`` that turns its
transport into TLS with ``loop.start_tls`` before websockets sees a byte, so a
failure (a plain client, an unknown CA, no certificate, a timeout) is counted
in ``tls_failures`` by reason and logged, as on the TCP listener.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http
import logging
import ssl
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import ClassVar, cast
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from gateway.listeners.conninfo import ConnInfo
from gateway.listeners.ids import next_connection_id
from gateway.listeners.stream import LISTEN_BACKLOG, ByteStream, ConnectionHandler
from gateway.options.model import ConnectionType
from gateway.tls.handshake import failure_reason

log = logging.getLogger("jetgate.listeners")

MQTT_SUBPROTOCOLS = (Subprotocol("mqtt"), Subprotocol("mqttv3.1"))
CLOSE_DEADLINE = 2.0


class WebSocketStream(ByteStream):
    """One WebSocket connection as a byte stream: binary frames in and out."""

    def __init__(self, connection: ServerConnection, info: ConnInfo) -> None:
        self._ws = connection
        self.info = info
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._flushing: asyncio.Task[None] | None = None
        self._closed = False

    def peer_certificate_der(self) -> bytes | None:
        ssl_object = self._ws.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        return der if isinstance(der, bytes) else None

    async def read(self) -> bytes:
        if self._closed:
            return b""
        try:
            message = await self._ws.recv()
        except ConnectionClosed:
            self._closed = True
            return b""
        if isinstance(message, str):
            if self.info.kind is ConnectionType.MQTT_WS:
                # [MQTT-6.0.0-1] MQTT travels in binary frames only; any other closes.
                log.debug("cid:%d: text frame on an MQTT WebSocket, closing", self.info.id)
                self._closed = True
                return b""
            return message.encode()
        return message

    def write(self, data: bytes) -> None:
        if self._closed:
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending and not self._closed:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            try:
                await self._ws.send(data)
            except ConnectionClosed:
                self._closed = True

    async def drain(self) -> None:
        task = self._flushing
        if task is not None and not task.done():
            await asyncio.shield(task)

    def buffered(self) -> int:
        transport = self._ws.transport
        return self._pending_size + (transport.get_write_buffer_size() if transport else 0)

    async def close(self) -> None:
        if self._closed and self._ws.state.name == "CLOSED":
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), CLOSE_DEADLINE)
        self._closed = True
        with contextlib.suppress(ConnectionClosed, TimeoutError, OSError):
            await asyncio.wait_for(self._ws.close(), CLOSE_DEADLINE)

    @property
    def closed(self) -> bool:
        return self._closed


class _TlsServerConnection(ServerConnection):
    """A websockets connection whose transport becomes TLS before the HTTP upgrade.

    ``connection_made`` (plain transport) pauses reading and starts the
    server-side handshake; once it is done, websockets gets the TLS transport
    as if asyncio had made it. Bytes, EOF or loss that the TLS layer reports
    before the connection is handed over are kept and replayed in order.
    A per-listener subclass sets ``tls``.
    """

    tls: ClassVar[_WebSocketTLS]
    _early: list[Callable[[], object]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        plain = cast(asyncio.Transport, transport)
        plain.pause_reading()  # the ClientHello must reach the TLS layer whole
        self._early = []
        self.tls.secure(self, plain)

    def handed_over(self, transport: asyncio.Transport) -> None:
        """The handshake is done: websockets takes over ``transport`` (TLS)."""
        early, self._early = self._early or [], None
        super().connection_made(transport)
        for event in early:
            event()

    def data_received(self, data: bytes) -> None:
        if self._early is not None:
            self._early.append(lambda: self.data_received(data))
        else:
            super().data_received(data)

    def eof_received(self) -> None:
        if self._early is not None:
            self._early.append(self.eof_received)
        else:
            super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._early is not None:
            self._early.append(lambda: self.connection_lost(exc))
        else:
            super().connection_lost(exc)


class _WebSocketTLS:
    """The TLS handshakes of one WebSocket listener, with their failures counted."""

    def __init__(
        self, context: ssl.SSLContext, timeout: float | None, failures: collections.Counter[str]
    ) -> None:
        self.context = context
        self.timeout = timeout or None
        self.failures = failures
        self.pending: set[asyncio.Task[None]] = set()

    def connection_class(self) -> type[ServerConnection]:
        """A ``_TlsServerConnection`` subclass bound to this listener."""
        return type("TlsServerConnection", (_TlsServerConnection,), {"tls": self})

    def secure(self, connection: _TlsServerConnection, plain: asyncio.Transport) -> None:
        """Start the handshake of a new connection in the background."""
        task = asyncio.get_running_loop().create_task(self._handshake(connection, plain))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _handshake(self, connection: _TlsServerConnection, plain: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        peer = plain.get_extra_info("peername") or ("?", 0)
        try:
            secure = await loop.start_tls(
                plain,
                connection,
                self.context,
                server_side=True,
                ssl_handshake_timeout=self.timeout,
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            reason = failure_reason(exc)
            self.failures[reason] += 1
            log.warning("TLS handshake with %s:%s (WebSocket) failed: %s", peer[0], peer[1], reason)
            plain.abort()
            return
        if secure is None:  # closed the moment the handshake ended
            plain.abort()
            return
        connection.handed_over(secure)

    async def stop(self) -> None:
        """Abandon handshakes still running (their connections are closed)."""
        for task in list(self.pending):
            task.cancel()
        if self.pending:
            await asyncio.wait(self.pending, timeout=CLOSE_DEADLINE)


def _select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    for subprotocol in MQTT_SUBPROTOCOLS:
        if subprotocol in offered:
            return subprotocol
    return None  # NATS over WebSocket: no subprotocol needed


class WebSocketListener:
    """Accepts WebSocket connections on host:port and runs ``handler`` for each."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: ConnectionHandler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 2.0,
        compression: bool = False,
        same_origin: bool = False,
        allowed_origins: Sequence[str] = (),
        max_message_size: int | None = None,
        tls_handshake_timeout: float | None = None,
        tls_failures: collections.Counter[str] | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self._handler = handler
        self._ssl = ssl_context
        self._handshake_timeout = handshake_timeout
        self._compression = compression
        self._same_origin = same_origin
        self._allowed_origins = {_origin_key(o) for o in allowed_origins}
        self._max_message_size = max_message_size
        self._server: Server | None = None
        #: Failed TLS handshakes by reason (see ``gateway.tls.handshake``); a
        #: counter may be shared with the listener's certificate policy.
        self.tls_failures: collections.Counter[str] = (
            collections.Counter() if tls_failures is None else tls_failures
        )
        self._tls = (
            _WebSocketTLS(ssl_context, tls_handshake_timeout, self.tls_failures)
            if ssl_context is not None
            else None
        )

    async def start(self) -> None:
        """Bind and start accepting."""
        self._server = await serve(
            self._accept,
            self.host,
            self.requested_port,
            # TLS is done by _TlsServerConnection, not by asyncio (see the module docstring).
            create_connection=self._tls.connection_class() if self._tls is not None else None,
            select_subprotocol=_select_subprotocol,
            compression="deflate" if self._compression else None,
            process_request=self._check_origin,
            open_timeout=self._handshake_timeout,
            # Keep-alive is the protocols' business (MQTT keep alive, NATS PING).
            ping_interval=None,
            max_size=self._max_message_size,
            backlog=LISTEN_BACKLOG,
        )

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("listener is not started")
        return int(next(iter(self._server.sockets)).getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting and close open WebSocket connections."""
        if self._server is not None:
            self._server.close()
            if self._tls is not None:
                await self._tls.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_DEADLINE)
            self._server = None

    def _check_origin(self, connection: ServerConnection, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if origin is None:
            return None  # not a browser: nothing to check, as in the NATS server
        key = _origin_key(origin)
        if self._allowed_origins and key not in self._allowed_origins:
            return connection.respond(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")
        if self._same_origin:
            host = request.headers.get("Host", "")
            scheme = "https" if self._ssl else "http"
            if key != _origin_key(f"{scheme}://{host}"):
                return connection.respond(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")
        return None

    async def _accept(self, connection: ServerConnection) -> None:
        request = connection.request
        peer = connection.remote_address or ("", 0)
        local = connection.local_address or ("", 0)
        subprotocol = connection.subprotocol
        kind = ConnectionType.MQTT_WS if subprotocol else ConnectionType.WEBSOCKET
        ssl_object = connection.transport.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert() if ssl_object is not None else None
        headers: Headers = request.headers if request is not None else Headers()
        info = ConnInfo(
            id=next_connection_id(),
            kind=kind,
            peer_host=str(peer[0]),
            peer_port=int(peer[1]),
            local_port=int(local[1]),
            tls=ssl_object is not None,
            peer_certificate=certificate or None,
            path=request.path if request is not None else None,
            subprotocol=subprotocol,
            headers=MappingProxyType({k.lower(): v for k, v in headers.raw_items()}),
        )
        stream = WebSocketStream(connection, info)
        error: BaseException | None = None
        try:
            await self._handler(stream)
        except Exception:
            # A session bug must not take the listener down; it is logged once here.
            log.exception("cid:%d: connection handler failed", info.id)
        except BaseException as exc:  # cancelled: re-raised once the stream is closed
            error = exc
        # No await in except/finally blocks: compiled (mypyc) coroutines would leave
        # their exception visible to other tasks while suspended there.
        await stream.close()
        if error is not None:
            raise error


def _origin_key(origin: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an origin, with default ports filled in, for comparison."""
    parts = urlsplit(origin.strip().lower())
    scheme = parts.scheme or "http"
    default = 443 if scheme in ("https", "wss") else 80
    try:
        port = parts.port or default
    except ValueError:
        port = default
    return scheme, parts.hostname or "", port
