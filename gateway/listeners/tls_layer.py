"""Server-side TLS for a TCP connection, on memory BIOs: the handshake, then records both ways.

``TcpStream.start_tls`` puts a ``TlsLayer`` between the socket and the
stream's reader: bytes from the socket are decrypted in the transport's
callback (so a reader sees plaintext exactly as it would without TLS), and
writes are encrypted before they reach the transport.

The TLS object is a pyOpenSSL ``Connection`` (see ``gateway.tls.openssl`` for
why not ``ssl``); its failures come out as the ``ssl`` exceptions the rest of
the gateway knows. Why not ``asyncio``'s own TLS (``loop.start_tls``): its
protocol allocates a 256 KiB buffer per connection and runs a state machine per
read; this layer costs about 15% less CPU per handshake (bench/tls.py).
Handshake steps stay on the event loop's thread: handing each step to a thread
pool cost more (a GIL hand-over per step) than it saved.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from OpenSSL import SSL

from gateway.tls.errors import TlsClosedError
from gateway.tls.openssl import (
    PeerCertificate,
    expired_error,
    peer_certificate_der,
    resumed,
    ssl_error,
    verify_code,
)

#: Plaintext taken from the TLS object per call (a TLS record holds at most 16 KiB).
RECORD_PLAINTEXT = 17 * 1024
#: Ciphertext taken from the outgoing memory BIO per call.
FLUSH_CHUNK = 256 * 1024


class TlsLayer:
    """One connection's TLS state: a pyOpenSSL ``Connection`` on memory BIOs.

    ``send`` writes ciphertext to the socket (the transport's ``write``).
    During the handshake ``receive`` advances it (``handshake`` awaits the outcome);
    afterwards it returns the plaintext the bytes carried. Failures raise
    ``ssl.SSLError`` (``ssl.SSLCertVerificationError`` for a refused certificate).
    """

    def __init__(self, context: SSL.Context, send: Callable[[bytes], None]) -> None:
        connection = self._connection = SSL.Connection(context, None)
        connection.set_accept_state()
        self._send = send
        #: The client certificate (``getpeercert()``'s dictionary, and ``.der``), once known.
        self.peer_certificate: PeerCertificate | None = None
        self.handshaking = True
        #: The peer sent close_notify: no plaintext follows.
        self.finished = False
        self._unsent: list[bytes] = []
        #: Why the handshake cannot finish (failed, abandoned, or the client left).
        self._failure: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._notified = False

    async def handshake(self, timeout: float | None = None) -> None:
        """Complete the server handshake, raising ``ssl.SSLError``, ``TlsClosedError``, or
        ``TimeoutError`` when it takes longer than ``timeout`` seconds (0/None: no limit).

        The steps run as the client's flights arrive (``receive``), in the transport's
        callback; this only waits for the outcome. Cancelling abandons the handshake; the
        caller then closes the socket.
        """
        if self.handshaking and self._failure is None:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            # A plain timer, not asyncio.timeout: one fewer object and task check per client.
            deadline = loop.call_later(timeout, self._expire) if timeout else None
            try:
                await waiter
            finally:
                self._waiter = None
                if deadline is not None:
                    deadline.cancel()
                self._abandon()
        self._raise_failure()

    def _expire(self) -> None:
        if self.handshaking and self._failure is None:
            self._fail(TimeoutError("TLS handshake took longer than its timeout"))

    # Two methods, not inline code: mypyc would keep ``_failure`` narrowed to None
    # across the ``await`` above, where ``receive`` may have set it.
    def _abandon(self) -> None:
        if self.handshaking and self._failure is None:
            self._failure = TlsClosedError("TLS handshake abandoned")

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def receive(self, data: bytes) -> bytes:
        """Ciphertext from the socket in; the plaintext it completes out (b"" if none yet).

        During the handshake the bytes advance it, and b"" comes back: plaintext that
        came with the client's last flight waits for ``pending_plaintext``. Raises
        ``ssl.SSLError`` for a record that does not decrypt.
        """
        self._connection.bio_write(data)
        if self.handshaking:
            if self._failure is None:
                self._step()
            return b""
        return self._decrypt()

    def receive_eof(self) -> None:
        """The socket reached end of file."""
        if self.handshaking and self._failure is None:
            self._fail(TlsClosedError("closed during the TLS handshake"))

    def _step(self) -> None:
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            self._flush()
            return
        except SSL.Error as exc:
            self._flush()  # the alert tells the client why
            self._fail(ssl_error(exc, verify_code(self._connection)))
            return
        self.handshaking = False
        der = peer_certificate_der(self._connection)
        if der is not None:
            self.peer_certificate = PeerCertificate(der)
            if resumed(self._connection):
                # Checked when the session began, and not since: it may have expired.
                expired = expired_error(der)
                if expired is not None:
                    self._fail(expired)
                    return
        if self._unsent:
            self._connection.sendall(b"".join(self._unsent))
            self._unsent.clear()
            self._flush()
        elif self._connection.get_protocol_version() != SSL.TLS1_3_VERSION:
            self._flush()  # TLS 1.2: the server's Finished
        # TLS 1.3 with nothing to say: all that is pending is session tickets, and they go
        # with the first reply (one write and one wake-up less for both ends).
        self._wake()

    def _fail(self, failure: BaseException) -> None:
        self._failure = failure
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pending_plaintext(self) -> bytes:
        """Plaintext of records that arrived together with the end of the handshake."""
        return self._decrypt()

    def send(self, data: bytes) -> None:
        """Encrypt ``data`` and hand the records to the socket (after the handshake, if
        it is still going on)."""
        if self.handshaking:
            self._unsent.append(data)
            return
        try:
            self._connection.sendall(data)
        except SSL.Error as exc:
            raise ssl_error(exc) from None
        self._flush()

    def close_notify(self) -> None:
        """Send the TLS close_notify alert, once (best effort: the socket closes next)."""
        if self.handshaking or self._notified:
            return
        self._notified = True
        # No answer is awaited: ``shutdown`` only sends ours.
        with contextlib.suppress(SSL.Error):
            self._connection.shutdown()
        self._flush()

    def _decrypt(self) -> bytes:
        chunks = []
        read = self._connection.recv
        while True:
            try:
                chunk = read(RECORD_PLAINTEXT)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:  # close_notify
                self.finished = True
                break
            except SSL.Error as exc:
                raise ssl_error(exc) from None
            if not chunk:
                self.finished = True
                break
            chunks.append(chunk)
        # No flush: reading makes OpenSSL write nothing that cannot wait for our next
        # record (it answers a TLS 1.3 KeyUpdate with the next write), and an empty
        # outgoing buffer costs pyOpenSSL an exception to report.
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _flush(self) -> None:
        connection = self._connection
        while True:
            try:
                data = connection.bio_read(FLUSH_CHUNK)
            except SSL.WantReadError:  # nothing (more) to send
                return
            self._send(data)
            if len(data) < FLUSH_CHUNK:
                return
