"""TLS as the running gateway uses it: one ``ListenerTLS`` per listener, list watching, revocation.

``TLSRuntime(options)`` builds the context of every listener with a ``tls``
block; a block without ``cert_file`` gets the built-in CA's broker certificate
(created on first start, reused afterwards, and the CA's ``revoked.txt`` joins
its revoked list). ``guard`` wraps a listener's connection handler: a TLS
client whose certificate the policy refuses (revoked, not authorized, not
pinned) is closed before any protocol byte, counted and logged. While the
gateway runs, the lists are re-read when their files change (checked every
``WATCH_INTERVAL`` seconds) and connections whose certificate is now refused
are closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

from OpenSSL import SSL

from gateway.listeners.stream import ByteStream, ConnectionHandler
from gateway.options.model import Options, TLSOptions
from gateway.tls.ca import BuiltinCA, default_ca_dir
from gateway.tls.context import listener_blocks, refresh_trust, server_context
from gateway.tls.lists import CertificatePolicy
from gateway.tls.openssl import openssl_context, refresh_openssl_trust

log = logging.getLogger("jetgate.tls")

WATCH_INTERVAL = 0.25
_WILDCARDS = ("", "0.0.0.0", "::")


@dataclass
class ListenerTLS:
    """One listener's TLS: its block, context and certificate policy, and who is connected."""

    where: str
    options: TLSOptions
    #: For the WebSocket listener (asyncio's TLS).
    context: ssl.SSLContext
    #: For the TCP listeners (``TlsLayer``): the same settings on pyOpenSSL.
    openssl: SSL.Context
    policy: CertificatePolicy
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    streams: dict[ByteStream, bytes | None] = field(default_factory=dict)

    @property
    def timeout(self) -> float:
        """The handshake deadline in seconds."""
        return self.options.timeout

    def admit(self, stream: ByteStream) -> str | None:
        """Check the certificate of a stream whose handshake is done; remember it if accepted."""
        der = stream.peer_certificate_der()
        reason = self.policy.refusal(der)
        if reason is not None:
            self.refused[reason] += 1
            log.warning(
                "cid:%d: TLS client %s refused on the %s listener: %s",
                stream.info.id,
                stream.info.peer,
                self.where,
                reason,
            )
            return reason
        self.streams[stream] = der
        return None

    def release(self, stream: ByteStream) -> None:
        """Forget a stream that ended."""
        self.streams.pop(stream, None)

    def recheck(self) -> list[ByteStream]:
        """The connected streams whose certificate the policy refuses now."""
        out = []
        for stream, der in list(self.streams.items()):
            if der is None:
                continue
            reason = self.policy.refusal(der)
            if reason is not None:
                self.refused[reason] += 1
                log.warning(
                    "cid:%d: certificate of %s is now %s: closing",
                    stream.info.id,
                    stream.info.peer,
                    reason,
                )
                out.append(stream)
        return out


class TLSRuntime:
    """Every listener's ``ListenerTLS``, the built-in CA when used, and the list watcher."""

    def __init__(self, options: Options) -> None:
        """Build the contexts; raises ``ConfigErrors`` or ``TLSError`` (built-in CA)."""
        self.ca: BuiltinCA | None = None
        self.listeners: dict[str, ListenerTLS] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        for where, tls in listener_blocks(options):
            self.listeners[where] = self._build(options, where, tls)

    @property
    def nats(self) -> ListenerTLS | None:
        """The NATS client port's TLS (top-level ``tls``)."""
        return self.listeners.get("top-level")

    @property
    def mqtt(self) -> ListenerTLS | None:
        """The MQTT port's TLS."""
        return self.listeners.get("mqtt")

    @property
    def websocket(self) -> ListenerTLS | None:
        """The WebSocket port's TLS."""
        return self.listeners.get("websocket")

    def _builtin(self, options: Options, tls: TLSOptions) -> BuiltinCA:
        directory = tls.ca_dir or default_ca_dir(options.jetstream.store_dir)
        if self.ca is not None and str(self.ca.directory) == directory:
            return self.ca
        ca, created = BuiltinCA.open_or_init(directory)
        if created:
            log.info("built-in CA created in %s", directory)
        self.ca = ca
        return ca

    def _build(self, options: Options, where: str, tls: TLSOptions) -> ListenerTLS:
        extra_revoked: Sequence[str] = ()
        cert_file, key_file, client_ca = tls.cert_file, tls.key_file, None
        if tls.builtin_ca:
            ca = self._builtin(options, tls)
            cert, key, created = ca.server_certificate(_server_hosts(options))
            if created:
                log.info("built-in CA issued the broker certificate %s", cert)
            log.info("%s TLS uses the built-in CA: clients trust %s", where, ca.cert_path)
            cert_file, key_file, client_ca = str(cert), str(key), str(ca.cert_path)
            extra_revoked = (str(ca.revoked_path),)
        context = server_context(
            tls, where, cert_file=cert_file, key_file=key_file, client_ca=client_ca
        )
        # server_context has checked that the files exist and fit together.
        assert cert_file is not None and key_file is not None
        fast = openssl_context(tls, cert_file, key_file, tls.ca_file or client_ca)
        return ListenerTLS(where, tls, context, fast, CertificatePolicy(tls, extra_revoked))

    def guard(self, listener: ListenerTLS, handler: ConnectionHandler) -> ConnectionHandler:
        """``handler`` behind the certificate policy of ``listener``."""

        async def guarded(stream: ByteStream) -> None:
            if stream.info.tls and listener.admit(stream) is not None:
                return
            try:
                await handler(stream)
            finally:
                listener.release(stream)

        return guarded

    async def start(self) -> None:
        """Start watching the certificate lists."""
        if self.listeners and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        """Stop watching. Idempotent."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    def check_lists(self) -> list[ByteStream]:
        """Re-read changed lists; close (in the background) connections now refused."""
        closing: list[ByteStream] = []
        for listener in self.listeners.values():
            if listener.policy.reload_if_changed():
                log.info("%s TLS: certificate lists re-read", listener.where)
                authorized = listener.policy.authorized
                refresh_trust(listener.context, listener.options, authorized)
                refresh_openssl_trust(listener.openssl, listener.options, authorized)
                closing.extend(listener.recheck())
        loop = asyncio.get_running_loop()
        for stream in closing:
            if stream.on_revoked is not None:
                stream.on_revoked("client certificate no longer accepted")  # it closes
                continue
            task = loop.create_task(stream.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return closing

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                self.check_lists()
            except Exception:  # the watcher must outlive any one bad read
                log.exception("certificate list check failed")


def _server_hosts(options: Options) -> list[str]:
    hosts = ["localhost", "127.0.0.1", "::1"]
    with contextlib.suppress(OSError):
        hosts.append(socket.gethostname())
    for host in (options.host, options.mqtt.host, options.websocket.host):
        if host not in _WILDCARDS:
            hosts.append(host)
    return list(dict.fromkeys(hosts))
