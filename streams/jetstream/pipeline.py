"""The outbound pipeline of the JetStream backend: pipelined publishes and confirmed acks.

Every message this backend sends on its own (stream publishes, consumer acks)
is written into the connection's outbound buffer by a plain call
(``gateway.bus.nats_outbox``), so ``publish_async`` stays a plain method, no
coroutine or task is made per message and wire order equals call order.
Answers are handled in nats-py's read loop as they are parsed (the reply
inbox is routed by ``gateway.bus.nats_reader``), not by a task per message.

A publish carries a reply subject ``<inbox>.<n>``; the server answers there
with the PubAck JSON (or a 503 no-responders status when no stream captures
the subject). Answers may arrive in any order across streams; futures are
resolved strictly in publish order, by holding an answer until every earlier
publish has its own. One timer, armed for the oldest publish, fails publishes
that get no answer within ``timeout`` with ``LogTimeout``.

A JetStream API request can go the same way (``request_then``), its answer
turned into the result by the caller: the QoS 2 release's message delete, one
per message, costs no task, future or request inbox.

A consumer ack (``+ACK``, ``-NAK``, ``+WPI``, ``+TERM``) carries a reply
subject ``<inbox>.a<n>``: the server answers once it has processed the ack.
``settle()`` waits for those answers, so a ``consumer_info`` issued after an
ack sees its effect (JetStream processes acks asynchronously otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription as NatsSubscription

from gateway.bus.nats_outbox import NatsOutbox
from gateway.bus.nats_reader import RawMsg
from gateway.bus.nats_reader import install as install_reader
from gateway.bus.upstream_wire import InvalidHeader, PayloadTooLarge, pub_command
from streams.errors import (
    BadRequest,
    LogClosed,
    LogError,
    LogTimeout,
    MessageTooLarge,
    NoStreamForSubject,
)
from streams.jetstream.wire import pub_ack_from_json
from streams.types import PubAck

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)


class _Pending:
    """One publish (or API request) awaiting its answer."""

    __slots__ = ("deadline", "fut", "n", "parse", "result", "then")

    def __init__(
        self,
        n: int,
        fut: asyncio.Future[PubAck] | None,
        then: Callable[[PubAck | LogError], None] | None,
        deadline: float,
        parse: Callable[[bytes], PubAck | LogError] | None = None,
    ) -> None:
        self.n = n
        #: For an API request: turns its answer into the result (a PubAck stands for success).
        self.parse = parse
        #: Exactly one of the two hears the outcome (``publish`` / ``publish_then``).
        self.fut = fut
        self.then = then
        self.deadline = deadline
        self.result: PubAck | LogError | None = None


def _check_ack_subject(reply: str) -> None:
    """A reply subject the server gave is one token run; this keeps a caller's from the wire.

    Cheaper than ``validate_subject``, whose cache every (unique) ack subject misses.
    """
    if " " in reply or not reply.isprintable() or not reply:
        raise BadRequest(f"not a subject: {reply!r}")


class Pipeline:
    """Pipelined publishing with in-order acks, and confirmed consumer acks, on one connection."""

    def __init__(self, nc: NATS, timeout: float = 5.0) -> None:
        self._nc = nc
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._prefix = ""
        self._sub: NatsSubscription | None = None
        self._outbox = NatsOutbox(nc)
        self._next = 0
        self._order: deque[_Pending] = deque()
        #: Set by ``close`` while it waits for the publishes in flight to be answered.
        self._idle: asyncio.Future[None] | None = None
        self._by_id: dict[int, _Pending] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._acks: dict[int, float] = {}
        self._ack_next = 0
        self._ack_event = asyncio.Event()
        self._closed = False

    async def start(self) -> None:
        """Subscribe to the reply inbox."""
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(
            self._prefix + "*", pending_msgs_limit=0, pending_bytes_limit=0
        )
        install_reader(self._nc).route(self._sub._id, self._on_reply)

    @property
    def in_flight(self) -> int:
        """Publishes sent and not yet answered."""
        return len(self._order)

    # -- publishing -------------------------------------------------------------

    def publish(
        self, subject: str, payload: bytes, headers: Mapping[str, str] | None
    ) -> asyncio.Future[PubAck]:
        """Publish on ``subject`` (already validated by ``JetStreamLog.publish_async``)."""
        fut: asyncio.Future[PubAck] = self._loop.create_future()
        if self._closed:
            fut.set_exception(LogClosed("log closed"))
            return fut
        self._publish(subject, payload, headers, fut, None)
        return fut

    def publish_then(
        self,
        subject: str,
        payload: bytes,
        headers: Mapping[str, str] | None,
        then: Callable[[PubAck | LogError], None],
    ) -> None:
        """``publish`` with a callback, called from the reply's read, in publish order."""
        if self._closed:
            then(LogClosed("log closed"))
            return
        self._publish(subject, payload, headers, None, then)

    def request_then(
        self,
        subject: str,
        body: bytes,
        parse: Callable[[bytes], PubAck | LogError],
        then: Callable[[PubAck | LogError], None],
    ) -> None:
        """A JetStream API request answered on the reply inbox and in order with the
        publishes; ``parse`` makes the result of the answer. No coroutine or future."""
        if self._closed:
            then(LogClosed("log closed"))
            return
        self._publish(subject, body, None, None, then, parse)

    def _publish(
        self,
        subject: str,
        payload: bytes,
        headers: Mapping[str, str] | None,
        fut: asyncio.Future[PubAck] | None,
        then: Callable[[PubAck | LogError], None] | None,
        parse: Callable[[bytes], PubAck | LogError] | None = None,
    ) -> None:
        n = self._next
        self._next = n + 1
        p = _Pending(n, fut, then, self._loop.time() + self._timeout, parse)
        self._order.append(p)
        self._by_id[n] = p
        self._send(subject, payload, f"{self._prefix}{n}", headers, p)
        if self._timer is None:
            self._arm()

    def _send(
        self,
        subject: str,
        payload: bytes,
        reply: str,
        headers: Mapping[str, str] | None,
        tag: _Pending | int | None,
    ) -> None:
        """Write one PUB; ``subject`` was checked by the caller (``JetStreamLog`` or the
        ack methods)."""
        nc = self._nc
        if nc.is_closed or nc.is_draining_pubs:
            self._fail(tag, LogClosed("connection closed"))
            return
        try:
            cmd = pub_command(subject, reply, payload, headers, nc._max_payload)
        except PayloadTooLarge:
            self._fail(tag, MessageTooLarge("payload exceeds the server's max_payload"))
            return
        except InvalidHeader as exc:
            self._fail(tag, BadRequest(f"cannot publish on {subject!r}: {exc}"))
            return
        if not self._outbox.send(cmd, 1, len(payload)):
            self._fail(tag, LogClosed("disconnected, and the reconnect buffer is full"))

    def _fail(self, tag: _Pending | int | None, exc: LogError) -> None:
        if isinstance(tag, _Pending):
            if self._by_id.pop(tag.n, None) is not None:
                tag.result = exc
                self._resolve()
        elif tag is not None:
            self._acks.pop(tag, None)
            self._ack_event.set()

    def _on_reply(self, msg: RawMsg) -> None:
        token = msg.subject[len(self._prefix) :]
        if token.startswith("a"):
            with contextlib.suppress(ValueError):
                self._acks.pop(int(token[1:]), None)
                self._ack_event.set()
            return
        try:
            p = self._by_id.pop(int(token))
        except (ValueError, KeyError):
            return  # timed out already, or not ours
        headers = msg.headers
        if headers and headers.get("Status") == "503":
            p.result = NoStreamForSubject(f"no stream captures {msg.subject!r}")
        elif p.parse is not None:
            p.result = p.parse(msg.payload)
        else:
            try:
                p.result = pub_ack_from_json(msg.payload)
            except LogError as exc:
                p.result = exc
        self._resolve()

    def _resolve(self) -> None:
        order = self._order
        while order and order[0].result is not None:
            p = order.popleft()
            result = p.result
            assert result is not None
            fut = p.fut
            if fut is None:
                assert p.then is not None
                try:
                    p.then(result)
                except Exception:  # as asyncio does for a callback: log it, go on
                    log.exception("publish callback failed")
            elif fut.done():
                continue
            elif isinstance(result, PubAck):
                fut.set_result(result)
            else:
                fut.set_exception(result)
        idle = self._idle
        if not order and idle is not None and not idle.done():
            idle.set_result(None)

    def _arm(self) -> None:
        if self._order:
            self._timer = self._loop.call_at(self._order[0].deadline, self._expire)
        else:
            self._timer = None

    def _expire(self) -> None:
        now = self._loop.time()
        for n, p in list(self._by_id.items()):
            if p.deadline > now:
                break  # ids and deadlines grow together
            del self._by_id[n]
            p.result = LogTimeout(f"no PubAck within {self._timeout}s")
        self._resolve()
        self._arm()

    # -- consumer acks ------------------------------------------------------------

    def ack(self, reply: str, body: bytes) -> None:
        """Send an ack kind (``+ACK`` ...) to a delivery's reply subject, asking for a reply."""
        if self._closed:
            raise LogClosed("log closed")
        _check_ack_subject(reply)
        n = self._ack_next
        self._ack_next = n + 1
        self._acks[n] = self._loop.time()
        self._send(reply, body, f"{self._prefix}a{n}", None, n)

    def ack_nowait(self, reply: str, body: bytes) -> None:
        """Send an ack kind to a delivery's reply subject, with no answer asked for."""
        if self._closed:
            raise LogClosed("log closed")
        _check_ack_subject(reply)
        self._send(reply, body, "", None, None)

    async def settle(self, timeout: float = 2.0) -> None:
        """Wait until the server has processed every ack sent so far (at most ``timeout``).

        An ack for a consumer or message that no longer exists gets no answer;
        such acks are forgotten once the timeout passes.
        """
        upto = self._ack_next
        deadline = self._loop.time() + timeout
        while self._acks and next(iter(self._acks)) < upto:
            self._ack_event.clear()
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                for n in [n for n in self._acks if n < upto]:
                    del self._acks[n]
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ack_event.wait(), remaining)

    # -- lifecycle ------------------------------------------------------------------

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until everything queued has been handed to the connection: it always has."""

    async def close(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout``) for in-flight publishes, then fail the rest. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._order:
            idle = self._idle = self._loop.create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle, timeout)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for p in self._order:
            p.result = LogClosed("log closed before the PubAck arrived")
        self._by_id.clear()
        self._resolve()
        if self._sub is not None:
            install_reader(self._nc).unroute(self._sub._id)
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
