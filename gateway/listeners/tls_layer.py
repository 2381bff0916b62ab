"""Server-side TLS for a TCP connection, on memory BIOs: the handshake, then records both ways.

``TcpStream.start_tls`` puts a ``TlsLayer`` between the socket and the
stream's reader: bytes from the socket are decrypted in the transport's
callback (so a reader sees plaintext exactly as it would without TLS), and
writes are encrypted before they reach the transport.

Why not ``asyncio``'s own TLS (``loop.start_tls``): its protocol allocates a
256 KiB buffer per connection and runs a state machine per read; this layer
costs about 15% less CPU per handshake (bench/tls.py). Handshake steps
stay on the event loop's thread: ``do_handshake`` releases the GIL, but handing
each step to a thread pool cost more (a GIL hand-over per step) than it saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable

from gateway.tls.errors import TlsClosedError

#: Plaintext taken from the TLS object per call (a TLS record holds at most 16 KiB).
RECORD_PLAINTEXT = 17 * 1024


class TlsLayer:
    """One connection's TLS state: an ``ssl.SSLObject`` between two memory BIOs.

    ``send`` writes ciphertext to the socket (the transport's ``write``).
    During the handshake ``receive`` only queues ciphertext for ``handshake``;
    afterwards it returns the plaintext the bytes carried.
    """

    def __init__(self, context: ssl.SSLContext, send: Callable[[bytes], None]) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._send = send
        self.handshaking = True
        #: The peer sent close_notify: no plaintext follows.
        self.finished = False
        self._arrived: list[bytes] = []
        self._unsent: list[bytes] = []
        self._raw_eof = False
        self._wakeup: asyncio.Future[None] | None = None
        self._notified = False

    async def handshake(self) -> None:
        """Complete the server handshake, raising ``ssl.SSLError`` or ``TlsClosedError``.

        Cancelling (a deadline) abandons the handshake; the caller then closes the socket.
        """
        loop = asyncio.get_running_loop()
        while True:
            while not self._arrived:
                if self._raw_eof:
                    raise TlsClosedError("closed during the TLS handshake")
                self._wakeup = loop.create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
            self._take_arrived()
            try:
                self.ssl_object.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                continue
            except ssl.SSLError:
                self._flush()  # the alert tells the client why
                raise
            self.handshaking = False
            if self._unsent:
                self.ssl_object.write(b"".join(self._unsent))
                self._unsent.clear()
            self._flush()
            self._take_arrived()  # records that came right behind the handshake
            return

    def receive(self, data: bytes) -> bytes:
        """Ciphertext from the socket in; the plaintext it completes out (b"" if none yet).

        Raises ``ssl.SSLError`` for a record that does not decrypt.
        """
        if self.handshaking:
            self._arrived.append(data)
            self._wake()
            return b""
        self._incoming.write(data)
        return self._decrypt()

    def receive_eof(self) -> None:
        """The socket reached end of file."""
        self._raw_eof = True
        self._wake()

    def pending_plaintext(self) -> bytes:
        """Plaintext of records that arrived together with the end of the handshake."""
        return self._decrypt() if self._incoming.pending else b""

    def send(self, data: bytes) -> None:
        """Encrypt ``data`` and hand the records to the socket (after the handshake, if
        it is still going on)."""
        if self.handshaking:
            self._unsent.append(data)
            return
        self.ssl_object.write(data)
        self._flush()

    def close_notify(self) -> None:
        """Send the TLS close_notify alert, once (best effort: the socket closes next)."""
        if self.handshaking or self._notified:
            return
        self._notified = True
        # No answer is awaited: a memory BIO reports waiting for one as want-read.
        with contextlib.suppress(ssl.SSLError):
            self.ssl_object.unwrap()
        self._flush()

    def _decrypt(self) -> bytes:
        chunks = []
        read = self.ssl_object.read
        while True:
            try:
                chunk = read(RECORD_PLAINTEXT)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.finished = True
                break
            if not chunk:  # close_notify: ``read`` answers b"" rather than raising
                self.finished = True
                break
            chunks.append(chunk)
        if self._outgoing.pending:  # e.g. the answer to a TLS 1.3 key update
            self._flush()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _take_arrived(self) -> None:
        if self._arrived:
            data = b"".join(self._arrived)
            self._arrived.clear()
            self._incoming.write(data)

    def _flush(self) -> None:
        if self._outgoing.pending:
            self._send(self._outgoing.read())

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
