"""NatsBus: the ``Bus`` interface on a nats-py connection (a small adapter).

The JetStream backend delivers pushed messages on real NATS subjects, so its
``Log.bus`` must be a Bus whose subscribers are NATS subscribers. The gateway's
own ``UpstreamBus`` (a later issue) will be that Bus; until it exists this
adapter is the one ``JetStreamLog`` builds when it is given none. It keeps the
Bus contract: ``publish`` is a plain method (messages go to one FIFO written
by a single task, so publish order holds and no task is made per message), a
subscription either calls a synchronous callback or fills a bounded queue, and
overflow is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription as NatsSubscription

from gateway.bus.api import (
    DEFAULT_PENDING_LIMIT,
    Bus,
    BusClosed,
    BusTimeout,
    Headers,
    Msg,
    MsgHandler,
    NoResponders,
    Subscription,
)
from gateway.bus.subjects import validate_subject

__all__ = ["NatsBus", "NatsBusSubscription", "from_nats"]

log = logging.getLogger(__name__)

_Out = tuple[str, bytes, str, "Headers | None"]


def from_nats(msg: NatsMsg) -> Msg:
    """A Bus ``Msg`` for a nats-py message (headers None when there are none)."""
    headers: dict[str, str] | None = msg.headers or None
    return Msg(msg.subject, msg.data, msg.reply or "", headers)


class NatsBusSubscription(Subscription):
    """One NATS subscription: a synchronous callback, or a bounded queue read by next_msg."""

    def __init__(
        self,
        bus: NatsBus,
        subject: str,
        queue: str | None,
        callback: MsgHandler | None,
        max_msgs: int,
        pending_limit: int,
    ) -> None:
        self._bus = bus
        self.subject = subject
        self.queue = queue
        self._callback = callback
        self._max_msgs = max_msgs
        self._limit = pending_limit
        self._queue: deque[Msg] = deque()
        self._waiters: deque[asyncio.Future[Msg]] = deque()
        self._delivered = 0
        self._dropped = 0
        self._closed = False
        self._sub: NatsSubscription | None = None

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
        sub = self._close()
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    def auto_unsubscribe(self, max_msgs: int) -> None:
        self._max_msgs = max_msgs
        if max_msgs and self._delivered >= max_msgs:
            self._close_later()

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

    async def _on_msg(self, raw: NatsMsg) -> None:
        if self._closed:
            return
        msg = from_nats(raw)
        self._delivered += 1
        if self._max_msgs and self._delivered >= self._max_msgs:
            self._close_later()
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

    def _close(self) -> NatsSubscription | None:
        if self._closed:
            return None
        self._closed = True
        self._bus._subs.discard(self)
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_exception(BusClosed(self.subject))
        sub, self._sub = self._sub, None
        return sub

    def _close_later(self) -> None:
        sub = self._close()
        if sub is not None:
            self._bus._unsubscribe_later(sub)


class NatsBus(Bus):
    """A Bus on one nats-py connection (see the module docstring)."""

    def __init__(self, nc: NATS, *, own_connection: bool = False) -> None:
        self._nc = nc
        self._own = own_connection
        self._out: deque[_Out] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._subs: set[NatsBusSubscription] = set()
        self._closed = False
        self._writer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def nc(self) -> NATS:
        """The underlying nats-py connection."""
        return self._nc

    # -- publishing ----------------------------------------------------------

    def publish(
        self,
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: Headers | None = None,
        origin: object | None = None,
    ) -> None:
        if self._closed:
            raise BusClosed("bus closed")
        validate_subject(subject)
        self._out.append((subject, payload, reply, headers))
        if self._idle.is_set():
            self._idle.clear()
            self._wake.set()
            if self._writer is None:
                self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        nc = self._nc
        out = self._out
        while True:
            await self._wake.wait()
            self._wake.clear()
            while out:
                subject, payload, reply, headers = out.popleft()
                try:
                    await nc.publish(
                        subject, payload, reply=reply, headers=dict(headers) if headers else None
                    )
                except nats.errors.Error as exc:
                    log.warning("publish to %s failed: %s", subject, exc)
            self._idle.set()

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float = 2.0,
        headers: Headers | None = None,
    ) -> Msg:
        if self._closed:
            raise BusClosed("bus closed")
        validate_subject(subject)
        await self._drain_out(timeout)
        try:
            reply = await self._nc.request(
                subject, payload, timeout=timeout, headers=dict(headers) if headers else None
            )
        except nats.errors.NoRespondersError:
            raise NoResponders(subject) from None
        except nats.errors.TimeoutError:
            raise BusTimeout(f"no reply on {subject!r} within {timeout}s") from None
        return from_nats(reply)

    # -- subscribing -----------------------------------------------------------

    async def subscribe(
        self,
        subject: str,
        callback: MsgHandler | None = None,
        queue: str | None = None,
        max_msgs: int = 0,
        pending_limit: int = DEFAULT_PENDING_LIMIT,
    ) -> NatsBusSubscription:
        if self._closed:
            raise BusClosed("bus closed")
        validate_subject(subject, wildcards=True)
        if queue is not None:
            validate_subject(queue)
        sub = NatsBusSubscription(self, subject, queue, callback, max_msgs, pending_limit)
        # Our own queue enforces the limit; nats-py's is left unbounded.
        sub._sub = await self._nc.subscribe(
            subject,
            queue=queue or "",
            cb=sub._on_msg,
            pending_msgs_limit=0,
            pending_bytes_limit=0,
        )
        if max_msgs:
            await sub._sub.unsubscribe(limit=max_msgs)
        self._subs.add(sub)
        return sub

    def _unsubscribe_later(self, sub: NatsSubscription) -> None:
        async def unsub() -> None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

        task = asyncio.get_running_loop().create_task(unsub())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def connected(self) -> bool:
        return bool(self._nc.is_connected)

    def has_interest(self, subject: str) -> bool:
        # The server knows, we do not; request() relies on no-responders instead.
        return True

    # -- lifecycle -----------------------------------------------------------------

    async def _drain_out(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            raise BusTimeout("flush timed out") from None

    async def flush(self, timeout: float | None = None) -> None:
        await self._drain_out(timeout)
        if self._nc.is_closed:
            raise BusClosed("connection closed")
        try:
            await self._nc.flush(timeout if timeout is not None else 10)  # type: ignore[arg-type]
        except nats.errors.TimeoutError:
            raise BusTimeout("flush timed out") from None
        except nats.errors.ConnectionClosedError:
            raise BusClosed("connection closed") from None

    async def close(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(BusTimeout, BusClosed):
            await self.flush(5.0)
        self._closed = True
        for sub in list(self._subs):
            await sub.unsubscribe()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        for task in list(self._background):
            await task
        if self._own:
            with contextlib.suppress(nats.errors.Error):
                await self._nc.close()
