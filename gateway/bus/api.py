"""The Bus interface: core NATS publish/subscribe as every part of jetgate sees it.

Two implementations exist: ``LocalBus`` (an in-process subject router, embedded
mode) and an upstream bus on nats-py (upstream mode). Protocol sessions and the
log talk only to this interface.

Design choices, made for the hot path:

- ``publish`` is a plain method. It validates the subject, enqueues the message
  and returns; delivery happens later on the event loop (never inside the
  caller's stack). An implementation on nats-py buffers outbound messages and
  writes them from one writer, so no task is created per message.
  ``await flush()`` is the back-pressure and ordering point.
- ``subscribe`` is a coroutine (a subscription on a real server is a round
  trip). A subscription either calls a synchronous ``callback`` for each
  message, or, without a callback, queues messages in a bounded per-subscription
  queue read with ``await sub.next_msg()`` or ``async for msg in sub``.
  A callback must not block; one that needs to await hands the message to its
  own task or queue. When a queue is full, further messages for that
  subscription are dropped and counted, as a NATS server does for a slow
  consumer.
- Subjects follow NATS rules (see ``gateway.bus.subjects``); ``*`` and ``>``
  are allowed in subscriptions only. A queue group delivers each message to
  one member of the group.
"""

from __future__ import annotations

import asyncio
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping

__all__ = [
    "DEFAULT_PENDING_LIMIT",
    "Bus",
    "BusClosed",
    "BusError",
    "BusTimeout",
    "Headers",
    "Msg",
    "MsgBatch",
    "MsgBatchHandler",
    "MsgHandler",
    "NoResponders",
    "SlowConsumer",
    "Subscription",
    "new_inbox",
]

Headers = Mapping[str, str]

DEFAULT_PENDING_LIMIT = 65536
"""Messages a callback-less subscription holds before it drops new ones."""


class BusError(Exception):
    """Root of every error raised by a Bus."""


class BusClosed(BusError):
    """The bus (or the subscription) was closed."""


class BusTimeout(BusError, TimeoutError):
    """A request or flush did not complete within its timeout."""


class NoResponders(BusError):
    """A request found no subscriber on its subject."""


class SlowConsumer(BusError):
    """A subscription's bounded queue overflowed and messages were dropped."""


class Msg:
    """One core message. Treat it as immutable: one instance may reach many subscribers.

    ``subject`` is the subject the message carries (for a message pushed by a
    log consumer, the original stream subject, not the deliver subject);
    ``reply`` is "" when there is none; ``headers`` is None when there are none.
    """

    __slots__ = ("headers", "origin", "payload", "reply", "subject")

    def __init__(
        self,
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: Headers | None = None,
        origin: object | None = None,
    ) -> None:
        self.subject = subject
        self.payload = payload
        self.reply = reply
        self.headers = headers
        self.origin = origin
        """The publishing connection, where the bus knows it (for NATS ``echo: false``)."""

    def __repr__(self) -> str:
        return (
            f"Msg(subject={self.subject!r}, payload={self.payload[:32]!r}, "
            f"reply={self.reply!r}, headers={self.headers!r})"
        )


MsgHandler = Callable[[Msg], None]
"""A synchronous per-message callback. It must not block."""


class MsgBatch:
    """Several header-less, reply-less messages on one subject, in publish order.

    What ``Bus.publish_many`` hands to subscriptions with a batch handler: the
    hot path of QoS 0 and NATS publish traffic, routed and encoded once per
    batch instead of once per message. Treat it as immutable (shared by every
    subscriber).
    """

    __slots__ = ("origin", "payloads", "subject")

    def __init__(self, subject: str, payloads: list[bytes], origin: object | None = None) -> None:
        self.subject = subject
        self.payloads = payloads
        self.origin = origin

    def messages(self) -> list[Msg]:
        """The batch as single messages."""
        subject, origin = self.subject, self.origin
        return [Msg(subject, payload, "", None, origin) for payload in self.payloads]


MsgBatchHandler = Callable[[MsgBatch], None]
"""A synchronous callback taking a whole ``MsgBatch``. It must not block."""


def new_inbox(prefix: str = "_INBOX") -> str:
    """A fresh unique subject for replies."""
    return f"{prefix}.{secrets.token_hex(11)}"


class Subscription(ABC):
    """Interest in a subject (or filter), optionally as a member of a queue group.

    Owns its delivery mode (callback or bounded queue), its auto-unsubscribe
    limit and its counters of delivered and dropped messages.
    """

    subject: str
    queue: str | None

    @property
    @abstractmethod
    def delivered(self) -> int:
        """Messages handed to this subscription so far."""

    @property
    @abstractmethod
    def dropped(self) -> int:
        """Messages dropped because the queue was full."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Messages queued and not yet read (0 for callback subscriptions)."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once unsubscribed (explicitly, by max_msgs or by bus close)."""

    @abstractmethod
    async def unsubscribe(self) -> None:
        """Stop receiving. Idempotent."""

    @abstractmethod
    def auto_unsubscribe(self, max_msgs: int) -> None:
        """Unsubscribe once ``max_msgs`` messages in total have been delivered."""

    @abstractmethod
    async def next_msg(self, timeout: float | None = None) -> Msg:
        """Next queued message; BusTimeout on timeout, BusClosed once closed and drained.

        Only for subscriptions made without a callback.
        """

    def set_batch_handler(self, handler: MsgBatchHandler) -> None:  # noqa: B027
        """Take messages published together by ``publish_many`` in one call.

        Optional for a bus: one that ignores it delivers those messages one by
        one through the per-message callback, which is always correct.
        """

    def __aiter__(self) -> AsyncIterator[Msg]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Msg]:
        while True:
            try:
                yield await self.next_msg()
            except BusClosed:
                return


class Bus(ABC):
    """Core publish/subscribe on NATS subjects (see the module docstring for the contract)."""

    @abstractmethod
    def publish(
        self,
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: Headers | None = None,
        origin: object | None = None,
    ) -> None:
        """Send a message to ``subject`` (literal, no wildcards).

        ``origin`` identifies the publisher to subscribers in the same process
        (``Msg.origin``); a bus that cannot carry it delivers None.
        Raises InvalidSubject for a bad subject and BusClosed after close.
        Delivery is asynchronous and in publish order per publisher.
        """

    def publish_many(
        self, subject: str, payloads: list[bytes], origin: object | None = None
    ) -> None:
        """Publish header-less, reply-less ``payloads`` to ``subject``, in order.

        The same as calling ``publish`` for each, which is what this default
        does; a bus may deliver them as one ``MsgBatch`` to subscriptions with a
        batch handler. The caller must not change ``payloads`` afterwards.
        """
        for payload in payloads:
            self.publish(subject, payload, "", None, origin)

    @abstractmethod
    async def subscribe(
        self,
        subject: str,
        callback: MsgHandler | None = None,
        queue: str | None = None,
        max_msgs: int = 0,
        pending_limit: int = DEFAULT_PENDING_LIMIT,
    ) -> Subscription:
        """Register interest in ``subject`` (wildcards allowed).

        With ``queue``, each message goes to one member of that group.
        With ``max_msgs`` > 0, the subscription ends after that many messages.
        """

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float = 2.0,
        headers: Headers | None = None,
    ) -> Msg:
        """Publish with a fresh reply subject and return the first reply.

        Raises NoResponders when nothing subscribes to ``subject`` and
        BusTimeout when no reply comes within ``timeout`` seconds.
        """
        inbox = new_inbox()
        sub = await self.subscribe(inbox, max_msgs=1)
        try:
            if not self.has_interest(subject):
                raise NoResponders(subject)
            self.publish(subject, payload, reply=inbox, headers=headers)
            return await sub.next_msg(timeout)
        finally:
            await sub.unsubscribe()

    def run_pending(self) -> None:  # noqa: B027
        """Make the in-process deliveries queued so far now, if this bus queues them.

        For a driver that has just handled a whole read of its client: the
        deliveries its publishes caused go out in this event-loop turn, not the
        next one. Subscriber callbacks then run in the caller's task, but never
        in the middle of a publish. A bus that delivers otherwise does nothing.
        """

    def call_after_deliveries(self, callback: Callable[[], None]) -> bool:
        """While deliveries are being made: call ``callback`` once they are all made.

        Returns False (and will not call it) when no delivery is under way; the
        caller then schedules ``callback`` itself. Subscribers use it to write
        everything one batch of deliveries gave them in one go, without waiting
        for another event-loop turn.
        """
        return False

    @property
    def connected(self) -> bool:
        """Whether messages can flow now (an upstream bus is False while reconnecting)."""
        return True

    @abstractmethod
    def has_interest(self, subject: str) -> bool:
        """True when some subscription would receive a message on ``subject``.

        An upstream bus may answer True when it cannot know; request() then
        relies on the server's no-responders status instead.
        """

    @abstractmethod
    async def flush(self, timeout: float | None = None) -> None:
        """Wait until everything published so far has been handed on.

        For LocalBus: delivered to every callback and queue. For an upstream
        bus: written and acknowledged by the server (PING/PONG).
        """

    @abstractmethod
    async def close(self) -> None:
        """Flush, end every subscription and refuse further use. Idempotent."""


async def wait_for(fut: asyncio.Future[Msg], timeout: float | None) -> Msg:
    """Await ``fut`` with a timeout expressed as BusTimeout."""
    try:
        return await asyncio.wait_for(fut, timeout)
    except TimeoutError:
        raise BusTimeout("timed out") from None
