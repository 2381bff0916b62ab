"""Plain TCP (and TLS from the first byte) listener: asyncio streams as ``ByteStream``.

TLS is done here rather than by ``asyncio.start_server(ssl=...)``, whose failed
handshakes vanish silently: each failure (a plain client on a TLS port, an
unknown CA, an expired certificate, no certificate, a timeout) is counted in
``tls_failures`` by reason and logged. ``TcpStream.start_tls`` upgrades a
connection after its first bytes (the NATS ``tls_required`` INFO); TLS runs on
memory BIOs between the socket and the stream's reader (``tls_layer``).

``TcpStream.peek`` waits for the client's first bytes without consuming them,
so that a port can serve TLS and plain clients both: the NATS port's
``handshake_first`` with a fallback delay (a client silent for the delay gets
INFO and the upgrade after it) and ``allow_non_tls`` (a first byte 0x16, a TLS
ClientHello, is upgraded, anything else is plain), as the NATS server does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterable, Sequence
from typing import SupportsIndex, cast

from OpenSSL import SSL

from gateway.listeners.conninfo import ConnInfo
from gateway.listeners.ids import next_connection_id
from gateway.listeners.stream import LISTEN_BACKLOG, ByteStream, ConnectionHandler, SyncReader
from gateway.listeners.tls_layer import TlsLayer
from gateway.options.model import ConnectionType
from gateway.tls.handshake import failure_reason

log = logging.getLogger("jetgate.listeners")

# Reads are kept small enough that no one client's burst monopolises the event
# loop: in upstream mode a 256 KiB read of publishes starved the NATS connection
# that carries deliveries back (QoS 0 fan-in delivered half as much).
READ_CHUNK = 64 * 1024
CLOSE_DEADLINE = 2.0


class _OfferingReader(asyncio.StreamReader):
    """A StreamReader that first offers new bytes to a synchronous handler.

    Offered only while the session is blocked in ``read`` with nothing
    buffered (``_waiter`` set, ``_buffer`` empty), so nothing is overtaken.
    Under TLS (``tls`` set) the bytes from the socket are decrypted first.
    """

    sync_reader: SyncReader | None = None
    tls: TlsLayer | None = None

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        tls = self.tls
        if tls is not None:
            try:
                data = tls.receive(cast(bytes, data))
            except ssl.SSLError as exc:
                self.set_exception(exc)
                return
            if tls.finished:
                self.feed_plaintext(data)
                super().feed_eof()
                return
            if not data:
                return
        self.feed_plaintext(cast(bytes, data))

    def feed_plaintext(self, data: bytes) -> None:
        """Bytes the session reads (what the socket carried, decrypted under TLS)."""
        handler = self.sync_reader
        if (
            handler is not None
            and type(data) is bytes
            and data
            and self._waiter is not None  # type: ignore[attr-defined]
            and not self._buffer  # type: ignore[attr-defined]
            and handler(data)
        ):
            return
        super().feed_data(data)

    def feed_eof(self) -> None:
        if self.tls is not None:
            self.tls.receive_eof()
        super().feed_eof()

    def take_buffered(self) -> bytes:
        """What was received but not read yet, removed from the buffer."""
        buffer: bytearray = self._buffer  # type: ignore[attr-defined]
        data = bytes(buffer)
        buffer.clear()
        return data


def _no_read() -> None:
    pass


def release_transport(transport: asyncio.BaseTransport) -> None:
    """Cut the reference cycle of a closed asyncio socket transport.

    It keeps its read callback, a bound method of itself, so a closed connection's
    transport, protocol and streams (and whatever refers to them) waited for the cycle
    collector. Once ``close`` has run it reads no more: the callback can go.
    """
    if hasattr(transport, "_read_ready_cb"):  # asyncio's selector transports
        transport._read_ready_cb = _no_read


class TcpStream(ByteStream):
    """One TCP connection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnInfo
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.info = info
        self._closed = False
        self._paused = False
        self._peeking: asyncio.Future[None] | None = None
        self._tls: TlsLayer | None = None
        self._half_closed = False

    async def read(self) -> bytes:
        if self._closed:
            return b""
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        try:
            return await self._reader.read(READ_CHUNK)
        except (ConnectionError, ssl.SSLError, OSError):
            self._closed = True
            return b""

    def write(self, data: bytes) -> None:
        if not self._closed and not self._half_closed and not self._writer.is_closing():
            if self._tls is None:
                self._writer.write(data)
                return
            try:
                self._tls.send(data)
            except ssl.SSLError:
                # The TLS session failed (a bad record was received): nothing more can be sent.
                self._closed = True
                self._transport.abort()

    async def drain(self) -> None:
        if self._closed:
            return
        try:
            await self._writer.drain()
        except (ConnectionError, ssl.SSLError, OSError):
            self._closed = True

    def buffered(self) -> int:
        return self._writer.transport.get_write_buffer_size()

    @property
    def _transport(self) -> asyncio.Transport:
        return cast(asyncio.Transport, self._writer.transport)

    def peer_certificate_der(self) -> bytes | None:
        certificate = self._tls.peer_certificate if self._tls is not None else None
        return certificate.der if certificate is not None else None

    async def peek(self, timeout: float) -> bytes:
        """Up to 4 first bytes of the client, left unread; b"" if none came within ``timeout``.

        Reading stays paused afterwards until the next ``read`` (or
        ``start_tls``), so a TLS ClientHello seen here is still whole for the
        handshake. Must be called before anything was read. b"" also when
        the client closed.
        """
        raw = self._writer.get_extra_info("socket")
        if raw is None or self._closed:
            return b""
        self._transport.pause_reading()
        self._paused = True
        # The transport owns the descriptor: wait on a duplicate of it, and look
        # with MSG_PEEK so that the bytes stay in the socket for whoever reads next.
        sock: socket.socket = raw.dup()
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(sock.fileno(), ready)
        self._peeking = readable  # close() ends the wait
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(readable, timeout)
            try:
                return sock.recv(4, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return b""  # nothing yet
            except OSError:
                return b""  # reset: the next read or handshake reports it
        finally:
            self._peeking = None
            loop.remove_reader(sock.fileno())
            sock.close()

    async def start_tls(self, context: SSL.Context, timeout: float | None = None) -> None:
        """Upgrade to TLS as the server side; ``info`` then tells the peer's certificate.

        Nothing may have been read past the point of the upgrade (the client's
        first TLS record must still be unread). Raises ``ssl.SSLError``,
        ``ConnectionError`` or ``TimeoutError`` when the handshake fails.
        """
        reader = self._reader
        assert isinstance(reader, _OfferingReader), "TcpListener makes every reader"
        tls = self._tls = TlsLayer(context, self._transport.write)
        early = reader.take_buffered()  # the ClientHello, when it came before this call
        reader.tls = tls
        if early:
            tls.receive(early)
        if reader.at_eof():
            tls.receive_eof()
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        await tls.handshake(timeout)
        plaintext = tls.pending_plaintext()
        if plaintext:
            reader.feed_plaintext(plaintext)
        self.info = self.info.secured(tls.peer_certificate)

    async def close(self) -> None:
        if self._closed and self._writer.is_closing():
            return
        self._closed = True
        if self._peeking is not None and not self._peeking.done():
            self._peeking.set_result(None)
        if self._tls is not None and not self._writer.is_closing():
            with contextlib.suppress(ssl.SSLError):
                self._tls.close_notify()
        writer = self._writer
        unsent = writer.transport.get_write_buffer_size()
        writer.close()
        release_transport(writer.transport)
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError, TimeoutError):
            if not unsent:
                # Nothing to flush: the transport has already scheduled connection_lost,
                # so no deadline (a task and a timer per connection) is needed.
                await writer.wait_closed()
                return
            async with asyncio.timeout(CLOSE_DEADLINE):
                await writer.wait_closed()

    async def close_after_reply(self, linger: float) -> None:
        writer = self._writer
        if self._closed or writer.is_closing() or not writer.can_write_eof():
            await self.close()
            return
        with contextlib.suppress(TimeoutError, OSError, RuntimeError):
            async with asyncio.timeout(linger):
                await self.drain()  # what was sent last is with the kernel first
                if self._tls is not None:
                    self._tls.close_notify()
                self._half_closed = True
                writer.write_eof()
                self.set_sync_reader(None)
                while await self.read():
                    pass  # dropped: the peer's last words after ours
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed or self._writer.is_closing()

    def set_sync_reader(self, handler: SyncReader | None) -> None:
        if isinstance(self._reader, _OfferingReader):
            self._reader.sync_reader = handler


class TcpListener:
    """Accepts TCP (or TLS) connections on host:port and runs ``handler`` for each."""

    def __init__(
        self,
        host: str,
        port: int,
        kind: ConnectionType,
        handler: ConnectionHandler,
        ssl_context: SSL.Context | None = None,
        tls_handshake_timeout: float | None = None,
        tls_failures: collections.Counter[str] | None = None,
        tls_first_fallback: float | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.kind = kind
        self._handler = handler
        self._ssl = ssl_context
        self._tls_timeout = tls_handshake_timeout
        #: With TLS: how long to wait for the client's first byte before handing
        #: over a plain stream (``None``: TLS from the first byte, no fallback).
        self._tls_fallback = tls_first_fallback or None
        self._server: asyncio.Server | None = None
        #: Failed TLS handshakes by reason (see ``gateway.tls.handshake``); a
        #: counter may be shared with the listener's certificate policy.
        self.tls_failures: collections.Counter[str] = (
            collections.Counter() if tls_failures is None else tls_failures
        )

    async def start(self) -> None:
        """Bind and start accepting."""
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.StreamReaderProtocol:
            # What asyncio.start_server builds, with a reader that can offer bytes.
            return asyncio.StreamReaderProtocol(_OfferingReader(READ_CHUNK, loop), self._accept)

        self._server = await loop.create_server(
            protocol, self.host, self.requested_port, backlog=LISTEN_BACKLOG
        )

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        # Another event loop's server may list its sockets differently: read it untyped.
        sockets: Sequence[socket.socket] = getattr(self._server, "sockets", None) or ()
        if not sockets:
            raise RuntimeError("listener is not started")
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting; connections already accepted are closed by their sessions."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_DEADLINE)
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        sock = writer.get_extra_info("sockname") or ("", 0)
        info = ConnInfo(
            id=next_connection_id(),
            kind=self.kind,
            peer_host=str(peer[0]),
            peer_port=int(peer[1]),
            local_port=int(sock[1]),
        )
        stream = TcpStream(reader, writer, info)
        if (
            self._ssl is not None
            and await self._wants_tls(stream)
            and not await self._handshake(stream)
        ):
            await stream.close()
            return
        info = stream.info
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

    async def _wants_tls(self, stream: TcpStream) -> bool:
        """Whether to do TLS now: always, or with a fallback when the client spoke first.

        As the NATS server: any byte within the delay means the client started
        TLS (a plain client waits for INFO); a bad first byte fails the handshake.
        """
        if self._tls_fallback is None:
            return True
        return bool(await stream.peek(self._tls_fallback))

    async def _handshake(self, stream: TcpStream) -> bool:
        """TLS from the first byte; a failure is counted, logged and False."""
        assert self._ssl is not None
        try:
            await stream.start_tls(self._ssl, self._tls_timeout)
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as exc:
            reason = failure_reason(exc)
            self.tls_failures[reason] += 1
            log.warning(
                "cid:%d: TLS handshake with %s failed: %s", stream.info.id, stream.info.peer, reason
            )
            return False
        return True
