"""The asyncio driver of one NATS client: bytes from a ByteStream through a NatsSession.

Owns what the sans-I/O session cannot: the clocks (authorization timeout,
keep-alive PINGs and stale-connection detection), the Bus subscriptions, the
asynchronous authentication, and back-pressure (a client whose unsent bytes
exceed ``max_pending`` is a slow consumer and is disconnected, as the NATS
server does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway import __version__
from gateway.accounts_errors import AccountUnavailable
from gateway.auth.users import AuthenticationFailed, UserTable
from gateway.bus.api import Bus, BusError, Msg, MsgBatch, Subscription
from gateway.listeners.stream import ByteStream
from gateway.nats.headers import NO_RESPONDERS
from gateway.nats.protocol import encode_info
from gateway.nats.session import (
    Authenticate,
    Close,
    Event,
    NatsSession,
    Publish,
    PublishMany,
    Send,
    State,
    Subscribe,
    Unsubscribe,
)
from gateway.options.model import Options
from gateway.tls.handshake import failure_reason
from gateway.tls.runtime import ListenerTLS

log = logging.getLogger("jetgate.nats")

ERR_AUTH_TIMEOUT = "Authentication Timeout"
ERR_STALE = "Stale Connection"
#: The first byte of a TLS handshake record (a ClientHello).
TLS_HANDSHAKE_RECORD = b"\x16"


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """What INFO says about this gateway."""

    server_id: str
    server_name: str
    host: str
    port: int


#: How long a connection that ends waits for the rest of a read it was handling.
_TURN_DEADLINE = 5.0


class NatsConnection:
    """Serves one NATS client until it leaves or is closed."""

    def __init__(
        self,
        stream: ByteStream,
        options: Options,
        users: UserTable,
        bus: Bus,
        server: ServerIdentity,
        needs_nonce: bool,
        *,
        tls: ListenerTLS | None = None,
        bus_for: Callable[[str], Awaitable[Bus]] | None = None,
    ) -> None:
        self.stream = stream
        self._bus_for = bus_for
        self.tls = tls
        self.options = options
        self.users = users
        self.bus = bus
        self.server = server
        self.cid = stream.info.id
        kind = stream.info.kind
        self._nonce = secrets.token_urlsafe(16).encode() if needs_nonce else None
        self.session = NatsSession(
            auth_required=users.auth_required(kind),
            nonce=self._nonce,
            max_payload=options.max_payload,
            max_control_line=options.max_control_line,
            max_subscriptions=options.max_subscriptions,
        )
        self._subs: dict[str, Subscription] = {}
        self._closing = False
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._flush_scheduled = False
        self._unwatch: Callable[[], None] | None = None
        self._ending: asyncio.Task[None] | None = None
        self._turn: asyncio.Task[None] | None = None
        """The awaiting rest of a read the transport handed over (see ``_take_now``)."""

    def info(self) -> dict[str, Any]:
        """The INFO sent on connect."""
        info: dict[str, Any] = {
            "server_id": self.server.server_id,
            "server_name": self.server.server_name,
            "version": __version__,
            "proto": 1,
            "host": self.server.host,
            "port": self.server.port,
            "headers": True,
            "max_payload": self.session.max_payload,
            "client_id": self.cid,
            "client_ip": self.stream.info.peer_host,
        }
        if self.session.auth_required:
            info["auth_required"] = True
        if self._nonce is not None:
            info["nonce"] = self._nonce.decode()
        if self.tls is not None:
            # As the NATS server: the client upgrades right after this INFO,
            # unless the listener did the handshake first (handshake_first);
            # with allow_non_tls TLS is only offered and the client chooses.
            if self.stream.info.tls or not self.options.allow_non_tls:
                info["tls_required"] = True
            else:
                info["tls_available"] = True
            if self.tls.options.wants_client_certificate:
                info["tls_verify"] = True
        return info

    async def _client_starts_tls(self) -> bool:
        """Whether to upgrade now: always, or with ``allow_non_tls`` when the client starts TLS.

        As the NATS server: the first byte after INFO decides (0x16 opens a
        TLS ClientHello); a client silent for the TLS timeout stays plain.
        """
        assert self.tls is not None
        peek = getattr(self.stream, "peek", None)
        if not self.options.allow_non_tls or peek is None:
            return True
        first: bytes = await peek(self.tls.timeout)
        return first[:1] == TLS_HANDSHAKE_RECORD

    async def _upgrade(self) -> bool:
        """TLS after INFO (``tls_required``); False when the client is refused."""
        assert self.tls is not None
        start_tls = getattr(self.stream, "start_tls", None)
        if start_tls is None:
            log.warning("cid:%d: this transport cannot be upgraded to TLS", self.cid)
            return False
        try:
            await start_tls(self.tls.openssl, self.tls.timeout)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            reason = failure_reason(exc)
            self.tls.refused[reason] += 1
            log.warning(
                "cid:%d: TLS handshake with %s failed: %s", self.cid, self.stream.info.peer, reason
            )
            return False
        return self.tls.admit(self.stream) is None

    async def run(self) -> None:
        """Serve the client: INFO, then read, handle and answer until the end."""
        self.stream.write(encode_info(self.info()))
        if (
            self.tls is not None
            and not self.stream.info.tls
            and await self._client_starts_tls()
            and not await self._upgrade()
        ):
            await self.stream.close()
            return
        timers = [
            asyncio.create_task(self._auth_deadline()),
            asyncio.create_task(self._keepalive()),
        ]
        # No await in except/finally blocks: compiled (mypyc) coroutines would leave
        # their exception visible to other tasks while suspended there.
        error: BaseException | None = None
        try:
            await self._serve()
        except BaseException as exc:  # re-raised once the connection is released
            error = exc
        self.stream.set_sync_reader(None)
        for timer in timers:
            timer.cancel()
        turn = self._turn
        if turn is not None and not turn.done():
            # What the client sent before it left is still carried out (bounded).
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, BusError):
                await asyncio.wait_for(turn, _TURN_DEADLINE)
        await self._release()
        if error is not None:
            raise error

    async def _serve(self) -> None:
        while not self._closing:
            data = await self.stream.read()
            if not data:
                return
            if self._turn is not None:
                await self._turn  # a read handed over earlier finishes first
                self._turn = None
            await self._process(self.session.receive_data(data))
            if self.stream.buffered() > self.options.max_pending:
                await self.stream.drain()

    async def _process(self, events: list[Event], published: bool = False) -> None:
        """Carry out the events of one read, then answer."""
        published = await self._handle(events) or published
        if published:
            self.bus.run_pending()  # deliveries in this turn, not the next
            if self.session.outstanding_output:
                # A PONG (or +OK) after a PUB promises the PUB was processed:
                # let in-process deliveries, the client's own included, go first.
                await self.bus.flush()
        self._flush()

    def _take_now(self, data: bytes) -> bool:
        """Bytes the transport hands over while ``run`` waits: answered in this turn.

        What needs no await (publishes, protocol answers) is done here; the rest
        of the read, from the first event that must await, goes to a task that
        ``run`` waits for before its next read. False declines the bytes.
        """
        if (
            self._closing
            or self.session.state is not State.OPEN
            or (self._turn is not None and not self._turn.done())
            or self.stream.buffered() > self.options.max_pending
        ):
            return False
        try:
            events = self.session.receive_data(data)
            published = False
            for i, event in enumerate(events):
                done = self._handle_now(event)
                if done is None:
                    self._turn = asyncio.get_running_loop().create_task(
                        self._process(events[i:], published)
                    )
                    return True
                published = published or done
            if published:
                self.bus.run_pending()
                if self.session.outstanding_output:
                    self._turn = asyncio.get_running_loop().create_task(self._process([], True))
                    return True
            self._flush()
        except Exception:
            # In the transport's callback: never let a bug escape into asyncio.
            log.exception("cid:%d: handling a read failed", self.cid)
            self._ending = asyncio.get_running_loop().create_task(self._close())
        return True

    def _handle_now(self, event: Event) -> bool | None:
        """Carry out ``event`` if it needs no await: True if it published, None if it must wait."""
        bus = self.bus
        if isinstance(event, Publish):
            try:
                bus.publish(event.subject, event.payload, event.reply, event.headers, self)
                if event.check_responders and not bus.has_interest(event.subject):
                    bus.publish(event.reply, b"", "", NO_RESPONDERS)
            except BusError as exc:
                log.warning("cid:%d: publish to %s failed: %s", self.cid, event.subject, exc)
            return True
        if isinstance(event, PublishMany):
            try:
                bus.publish_many(event.subject, event.payloads, self)
            except BusError as exc:
                log.warning("cid:%d: publish to %s failed: %s", self.cid, event.subject, exc)
            return True
        if isinstance(event, Send):
            self.stream.write(event.data)
            return False
        return None

    async def _handle(self, events: list[Event]) -> bool:
        """Carry out ``events``; True when any message was published."""
        published = False
        queue: deque[Event] = deque(events)
        while queue:
            event = queue.popleft()
            done = self._handle_now(event)
            if done is not None:
                published = published or done
            elif isinstance(event, Subscribe):
                await self._subscribe(event)
            elif isinstance(event, Unsubscribe):
                if published:
                    # As in the NATS server, a PUB before the UNSUB still reaches it.
                    self.bus.run_pending()
                await self._unsubscribe(event)
            elif isinstance(event, Authenticate):
                queue.extend(await self._authenticate(event))
            elif isinstance(event, Close):
                log.info("cid:%d: closing: %s", self.cid, event.reason)
                await self._close()
                break
        return published

    async def _authenticate(self, event: Authenticate) -> list[Event]:
        try:
            identity = await self.users.authenticate(
                self.stream.info.kind,
                event.credentials,
                self._nonce,
                self.stream.info.peer_host,
                certificate=self.stream.info.peer_certificate,
            )
        except AuthenticationFailed as exc:
            log.warning("cid:%d: authentication error - %s", self.cid, exc.reason)
            return self.session.reject(exc.reason)
        if self._bus_for is not None:
            try:
                self.bus = await self._bus_for(identity.account)  # accounts isolate subjects
            except AccountUnavailable as exc:
                log.warning("cid:%d: %s", self.cid, exc)
                return self.session.reject(str(exc))
        log.debug("cid:%d: connected as %r (%s)", self.cid, identity.name, identity.method)
        self.stream.set_sync_reader(self._take_now)
        self._unwatch = self.users.watch(identity, self._authentication_ended)
        payload = identity.limits.payload
        if payload is not None and payload < self.session.max_payload:
            # As the NATS server: an INFO after CONNECT carries the user's lower max_payload.
            info = {k: v for k, v in self.info().items() if k != "nonce"}
            info.update(max_payload=payload, connect_info=True)
            return self.session.accept(identity, encode_info(info))
        return self.session.accept(identity)

    def _authentication_ended(self, reason: str) -> None:
        """Operator mode: the user expired or was revoked: ``-ERR '<reason>'`` and close."""
        if self._closing:
            return
        log.info("cid:%d: closing: %s", self.cid, reason)
        self.session.fail(reason, reason)
        self._ending = asyncio.get_running_loop().create_task(self._close())

    async def _subscribe(self, event: Subscribe) -> None:
        sid = event.sid

        def on_msg(msg: Msg) -> None:
            self._deliver(sid, msg)

        def on_batch(batch: MsgBatch) -> None:
            self._deliver_batch(sid, batch)

        try:
            sub = await self.bus.subscribe(event.subject, on_msg, queue=event.queue)
            sub.set_batch_handler(on_batch)
            self._subs[sid] = sub
        except BusError as exc:
            log.warning("cid:%d: subscribe to %s failed: %s", self.cid, event.subject, exc)
            self.session.subscription_ended(sid)

    async def _unsubscribe(self, event: Unsubscribe) -> None:
        sub = self._subs.get(event.sid)
        if event.max_msgs is None:
            self.session.unsubscribed(event.sid)
        if sub is None:
            return
        if event.max_msgs is None or sub.delivered >= event.max_msgs:
            del self._subs[event.sid]
            if event.max_msgs is not None:
                self.session.subscription_ended(event.sid)
            await sub.unsubscribe()
        else:
            sub.auto_unsubscribe(event.max_msgs)

    def _deliver(self, sid: str, msg: Msg) -> None:
        if msg.origin is self and not self.session.echo:
            return  # CONNECT echo: false
        data = self.session.deliver(sid, msg)
        if data is not None:
            self._queue_delivery(sid, data)

    def _deliver_batch(self, sid: str, batch: MsgBatch) -> None:
        if batch.origin is self and not self.session.echo:
            return  # CONNECT echo: false
        data = self.session.deliver_batch(sid, batch)
        if data is not None:
            self._queue_delivery(sid, data)

    def _queue_delivery(self, sid: str, data: bytes) -> None:
        # Many deliveries arrive in one event-loop turn: write them once, after it.
        self._pending.append(data)
        self._pending_size += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if not self.bus.call_after_deliveries(self._write_pending):
                asyncio.get_running_loop().call_soon(self._write_pending)
        sub = self._subs.get(sid)
        if sub is not None and sub.closed:
            del self._subs[sid]
            self.session.subscription_ended(sid)
        if (
            self._pending_size + self.stream.buffered() > self.options.max_pending
            and not self._closing
        ):
            log.warning("cid:%d: slow consumer: %d bytes pending", self.cid, self._pending_size)
            self._closing = True
            asyncio.get_running_loop().create_task(self._close())

    def _write_pending(self) -> None:
        self._flush_scheduled = False
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            self.stream.write(data)

    def _flush(self) -> None:
        self._write_pending()  # deliveries queued so far go first
        data = self.session.data_to_send()
        if data:
            self.stream.write(data)

    async def _auth_deadline(self) -> None:
        await asyncio.sleep(self.options.authorization.timeout)
        if self.session.state in (State.AWAITING_CONNECT, State.AUTHENTICATING):
            log.info("cid:%d: no CONNECT within the authorization timeout", self.cid)
            self.session.fail(ERR_AUTH_TIMEOUT, "authorization timeout")
            self._flush()
            await self._close()

    async def _keepalive(self) -> None:
        interval = self.options.ping_interval
        if interval <= 0:
            return
        while not self._closing:
            await asyncio.sleep(interval)
            if self.session.outstanding_pings >= self.options.ping_max:
                self.session.fail(ERR_STALE, "no PONG to the last PINGs")
                self._flush()
                await self._close()
                return
            self.session.ping()
            self._flush()

    async def _close(self) -> None:
        self._closing = True
        self._flush()
        await self.stream.close()

    async def _release(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
        subs = list(self._subs.values())
        self._subs.clear()
        for sub in subs:
            with contextlib.suppress(BusError):
                await sub.unsubscribe()
