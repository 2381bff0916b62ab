"""The byte stream every listener hands to a protocol session, whatever the transport."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable

from mypy_extensions import mypyc_attr

from gateway.listeners.conninfo import ConnInfo


# Compiled with the message path, and still a base for WebSocketStream, which is not.
@mypyc_attr(allow_interpreted_subclasses=True)
class ByteStream(abc.ABC):
    """A connected client as bytes in and bytes out.

    ``read`` returns the next chunk of bytes (b"" once the peer has closed),
    ``write`` queues bytes without waiting, ``drain`` waits until the queue is
    below the transport's high-water mark (back-pressure), ``buffered`` tells
    how many bytes wait to be sent (so a session can drop QoS 0 traffic for a
    client that does not keep up), and ``close`` is idempotent.
    """

    info: ConnInfo
    #: Set by a protocol session that can say why it ends (MQTT 5.0: DISCONNECT 0x87):
    #: called instead of ``close`` when the client's credentials stop being valid
    #: mid-connection (its TLS certificate revoked, say), with the reason.
    on_revoked: Callable[[str], None] | None = None

    @abc.abstractmethod
    async def read(self) -> bytes:
        """The next bytes from the client; b"" when the connection has ended."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending."""

    @abc.abstractmethod
    async def drain(self) -> None:
        """Wait until queued bytes are below the high-water mark."""

    @abc.abstractmethod
    def buffered(self) -> int:
        """Bytes queued and not yet handed to the operating system."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection (flushing what was queued, within a short deadline)."""

    async def close_after_reply(self, linger: float) -> None:
        """Close once the peer has had the chance to read what was sent last (a reason code).

        Closing a TCP socket with unread input makes the kernel reset the
        connection, which can destroy the last packets before the peer reads
        them. A transport that can half-close sends its end of stream, drops
        what the peer still sends until the peer closes (at most ``linger``
        seconds), then closes. By default: ``close``.
        """
        await self.close()

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once the connection is closed or lost."""

    def peer_certificate_der(self) -> bytes | None:
        """The client certificate as DER, when the client presented one over TLS."""
        return None

    def set_sync_reader(self, handler: SyncReader | None) -> None:  # noqa: B027
        """Offer bytes to ``handler`` as they arrive, while the session waits in ``read``.

        ``handler(data)`` runs in the transport's callback, so a request is
        answered in the event-loop turn its bytes arrived in, not the next one.
        It returns False to decline (the bytes then come from ``read`` as
        usual) and True when it took them. Only offered when nothing is
        buffered, so the order of bytes is kept. Optional: a transport that
        does not offer bytes this way always delivers through ``read``.
        """


#: Pending connections the kernel queues for a listener before it drops new ones (clamped
#: to net.core.somaxconn). asyncio's default of 100 overflows when devices reconnect in a
#: storm: each dropped connection then waits a whole SYN retransmission (1 s) to get in.
LISTEN_BACKLOG = 4096


#: See ``ByteStream.set_sync_reader``.
SyncReader = Callable[[bytes], bool]


#: What a listener calls for each accepted connection; it owns the stream until it returns.
ConnectionHandler = Callable[[ByteStream], Awaitable[None]]
