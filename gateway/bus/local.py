"""LocalBus: the in-process subject router used in embedded mode.

Owns the subscription trie, a per-subject match cache, queue-group selection
and the delivery queue. ``publish`` appends (subscription, message) pairs to
one FIFO and schedules a single drain on the event loop; the drain calls
callbacks or fills per-subscription queues. So delivery costs no task per
message, never runs subscriber code inside the publisher's stack, and keeps
publish order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from itertools import repeat

from gateway.bus.api import (
    DEFAULT_PENDING_LIMIT,
    Bus,
    BusClosed,
    BusTimeout,
    Headers,
    Msg,
    MsgBatch,
    MsgBatchHandler,
    MsgHandler,
    Subscription,
)
from gateway.bus.subjects import validate_subject, validate_subscription
from gateway.bus.sublist import Sublist

__all__ = ["BufferedSubscription", "LocalBus", "LocalSubscription"]

log = logging.getLogger(__name__)

_CACHE_MAX = 8192

# A cached match: plain subscriptions, and one tuple of members per queue group.
_Match = tuple[tuple["LocalSubscription", ...], tuple[tuple["LocalSubscription", ...], ...]]
_Item = tuple["LocalSubscription", "Msg | MsgBatch"]
_EMPTY: _Match = ((), ())


class BufferedSubscription(Subscription):
    """A callback, or a bounded queue read by next_msg: the delivery end of a subscription.

    Shared by every Bus in this package. ``_deliver`` counts, enforces
    ``max_msgs`` and hands the message over; ``_close`` ends the subscription
    and calls ``_detach`` so the owning bus forgets it.
    """

    __slots__ = (
        "_batch_handler",
        "_callback",
        "_closed",
        "_delivered",
        "_dropped",
        "_limit",
        "_max_msgs",
        "_queue",
        "_waiters",
        "queue",
        "subject",
    )

    def __init__(
        self,
        subject: str,
        queue: str | None,
        callback: MsgHandler | None,
        max_msgs: int,
        pending_limit: int,
    ) -> None:
        self.subject = subject
        self.queue = queue
        self._callback = callback
        self._batch_handler: MsgBatchHandler | None = None
        self._max_msgs = max_msgs
        self._limit = pending_limit
        self._queue: deque[Msg] = deque()
        self._waiters: deque[asyncio.Future[Msg]] = deque()
        self._delivered = 0
        self._dropped = 0
        self._closed = False

    @property
    def delivered(self) -> int:
        return self._delivered

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    async def unsubscribe(self) -> None:
        self._close()

    def auto_unsubscribe(self, max_msgs: int) -> None:
        self._max_msgs = max_msgs
        if max_msgs and self._delivered >= max_msgs:
            self._close()

    async def next_msg(self, timeout: float | None = None) -> Msg:
        if self._callback is not None:
            raise TypeError("next_msg() on a callback subscription")
        if self._queue:
            return self._queue.popleft()
        if self._closed:
            raise BusClosed(self.subject)
        fut: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise BusTimeout(f"no message on {self.subject!r} within {timeout}s") from None
        finally:
            if not fut.done() or fut.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)

    def set_batch_handler(self, handler: MsgBatchHandler) -> None:
        self._batch_handler = handler

    def _deliver_batch(self, batch: MsgBatch) -> None:
        handler = self._batch_handler
        if handler is None or self._max_msgs:
            for msg in batch.messages():
                if self._closed:
                    return
                self._deliver(msg)
            return
        self._delivered += len(batch.payloads)
        try:
            handler(batch)
        except Exception:
            log.exception("subscription batch callback on %s failed", self.subject)

    def _deliver(self, msg: Msg) -> None:
        self._delivered += 1
        self._hand_over(msg)
        if self._max_msgs and self._delivered >= self._max_msgs:
            self._close()

    def _hand_over(self, msg: Msg) -> None:
        cb = self._callback
        if cb is not None:
            try:
                cb(msg)
            except Exception:
                log.exception("subscription callback on %s failed", self.subject)
            return
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(msg)
                return
        if len(self._queue) >= self._limit:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 10000 == 0:
                log.warning("slow consumer on %s: %d dropped", self.subject, self._dropped)
            return
        self._queue.append(msg)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._detach()
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_exception(BusClosed(self.subject))

    @abstractmethod
    def _detach(self) -> None:
        """Remove this (just closed) subscription from its bus."""


class LocalSubscription(BufferedSubscription):
    """A subscription on a LocalBus: a callback, or a bounded queue read by next_msg."""

    __slots__ = ("_bus",)

    def __init__(
        self,
        bus: LocalBus,
        subject: str,
        queue: str | None,
        callback: MsgHandler | None,
        max_msgs: int,
        pending_limit: int,
    ) -> None:
        super().__init__(subject, queue, callback, max_msgs, pending_limit)
        self._bus = bus

    def _detach(self) -> None:
        self._bus._remove(self)


class LocalBus(Bus):
    """In-process NATS-style router: subjects, wildcards, queue groups, request/reply."""

    def __init__(self) -> None:
        self._subs: Sublist[LocalSubscription] = Sublist()
        self._cache: dict[str, _Match] = {}
        self._cache_gen = 0
        self._pending: list[_Item] = []
        self._scheduled: asyncio.Handle | None = None
        self._draining = False
        self._after_drain: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._enqueued = 0
        self._drained = 0
        self._flushers: list[tuple[int, asyncio.Future[None]]] = []
        self._closed = False
        self._interest_listeners: list[Callable[[str], None]] = []

    def add_interest_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(subject)`` whenever a subscription is made (for push consumers)."""
        self._interest_listeners.append(listener)

    def remove_interest_listener(self, listener: Callable[[str], None]) -> None:
        with contextlib.suppress(ValueError):
            self._interest_listeners.remove(listener)

    # -- publishing ---------------------------------------------------------

    def publish(
        self,
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: Headers | None = None,
        origin: object | None = None,
    ) -> None:
        self.deliver(subject, Msg(subject, payload, reply, headers, origin))

    def publish_many(
        self, subject: str, payloads: list[bytes], origin: object | None = None
    ) -> None:
        if len(payloads) == 1:
            self.deliver(subject, Msg(subject, payloads[0], "", None, origin))
        elif payloads:
            self.deliver(subject, MsgBatch(subject, payloads, origin))

    def deliver(self, route_subject: str, msg: Msg | MsgBatch) -> None:
        """Route ``msg`` by ``route_subject`` (which may differ from ``msg.subject``).

        The embedded log uses this for push delivery: a message goes to a
        consumer's deliver subject yet carries its original stream subject,
        as JetStream does.
        """
        if self._closed:
            raise BusClosed("bus closed")
        match = self._match(route_subject)
        plain, groups = match
        if not plain and not groups:
            return
        pending = self._pending
        if len(plain) == 1:
            pending.append((plain[0], msg))
        else:
            pending.extend(zip(plain, repeat(msg)))  # fan-out without a Python-level loop
        count = len(plain)
        if groups:
            # A queue group picks a member per message, also within a batch.
            each = msg.messages() if msg.__class__ is MsgBatch else [msg]
            for members in groups:
                for one in each:
                    pending.append((members[random.randrange(len(members))], one))
            count += len(groups) * len(each)
        self._enqueued += count
        if self._scheduled is None:
            self._schedule()

    def _match(self, subject: str) -> _Match:
        if self._cache_gen != self._subs.generation:
            self._cache.clear()
            self._cache_gen = self._subs.generation
        hit = self._cache.get(subject)
        if hit is not None:
            return hit
        validate_subject(subject)
        subs = self._subs.match(subject)
        if not subs:
            result = _EMPTY
        else:
            plain: list[LocalSubscription] = []
            groups: dict[str, list[LocalSubscription]] = {}
            for s in subs:
                if s.queue is None:
                    plain.append(s)
                else:
                    groups.setdefault(s.queue, []).append(s)
            result = (tuple(plain), tuple(tuple(g) for g in groups.values()))
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[subject] = result
        return result

    def _schedule(self) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._scheduled = loop.call_soon(self._drain)

    def run_pending(self) -> None:
        if self._scheduled is not None and not self._draining:
            self._scheduled.cancel()
            self._drain()

    def call_after_deliveries(self, callback: Callable[[], None]) -> bool:
        if not self._draining:
            return False
        self._after_drain.append(callback)
        return True

    def _drain(self) -> None:
        self._scheduled = None
        self._draining = True
        try:
            batch = self._pending
            self._pending = []
            for sub, msg in batch:
                if not sub._closed:
                    if msg.__class__ is Msg:
                        sub._deliver(msg)
                    else:
                        sub._deliver_batch(msg)  # type: ignore[arg-type]
            self._drained += len(batch)
        finally:
            self._draining = False
            if self._after_drain:
                callbacks = self._after_drain
                self._after_drain = []
                for callback in callbacks:
                    try:
                        callback()
                    except Exception:
                        log.exception("after-delivery callback failed")
        if self._pending and self._scheduled is None:
            self._schedule()
        if self._flushers:
            done = self._drained
            keep: list[tuple[int, asyncio.Future[None]]] = []
            for target, fut in self._flushers:
                if target <= done:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    keep.append((target, fut))
            self._flushers = keep

    # -- subscribing --------------------------------------------------------

    async def subscribe(
        self,
        subject: str,
        callback: MsgHandler | None = None,
        queue: str | None = None,
        max_msgs: int = 0,
        pending_limit: int = DEFAULT_PENDING_LIMIT,
    ) -> LocalSubscription:
        return self.subscribe_nowait(subject, callback, queue, max_msgs, pending_limit)

    def subscribe_nowait(
        self,
        subject: str,
        callback: MsgHandler | None = None,
        queue: str | None = None,
        max_msgs: int = 0,
        pending_limit: int = DEFAULT_PENDING_LIMIT,
    ) -> LocalSubscription:
        """``subscribe`` without the await, for in-process users such as the embedded log."""
        if self._closed:
            raise BusClosed("bus closed")
        validate_subscription(subject, queue)
        sub = LocalSubscription(self, subject, queue, callback, max_msgs, pending_limit)
        self._subs.insert(subject, sub)
        for listener in self._interest_listeners:
            listener(subject)
        return sub

    def _remove(self, sub: LocalSubscription) -> None:
        self._subs.remove(sub.subject, sub)

    def has_interest(self, subject: str) -> bool:
        plain, groups = self._match(subject)
        return bool(plain or groups)

    @property
    def subscription_count(self) -> int:
        return len(self._subs)

    # -- lifecycle ----------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> None:
        if self._drained >= self._enqueued:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushers.append((self._enqueued, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise BusTimeout("flush timed out") from None

    async def close(self) -> None:
        if self._closed:
            return
        await self.flush()
        self._closed = True
        for sub in self._subs.items():
            sub._close()
