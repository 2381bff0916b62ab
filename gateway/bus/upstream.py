"""UpstreamBus: the Bus on a real NATS server (or cluster), over nats-py connections.

One main connection per gateway (one UpstreamBus per account, where accounts
log in separately) carries every client's traffic and the JetStream log's,
and a second one the queue subscriptions (see local delivery below):

- **Publishing** is a plain method. It builds the ``PUB``/``HPUB`` bytes
  (``gateway.bus.upstream_wire``) and appends them to nats-py's own pending
  buffer, then wakes nats-py's flusher task once per event-loop turn
  (``gateway.bus.nats_outbox``). That is
  what ``await nc.publish()`` does, minus the coroutine per message, so the
  order of bus publishes, nats-py publishes (the JetStream log on the same
  connection) and subscribes is the order of the calls. While the connection
  is down the bytes stay in that buffer, bounded by ``pending_size``, and go
  out after the reconnect; a publish that would overflow it is dropped and
  counted (``dropped_publishes``), as a fire-and-forget publish is.
- **Subscribing** is reference counted: one upstream subscription per distinct
  (subject, queue group), fanned out to every local subscriber, and
  unsubscribed upstream when the last local one goes. So a thousand MQTT
  clients on ``sensors/#`` make one upstream ``SUB sensors.>``. A queue group
  is one upstream queue subscription per gateway (the server balances between
  gateways); each message then goes to one local member, round robin.
- **Delivery** happens synchronously in nats-py's read loop: the connection's
  parser is a ``gateway.bus.nats_reader.FastReader``, which hands each
  message of an upstream subscription to its ``_Fanout`` as it is parsed,
  without nats-py's ``Msg``, header parsing, queue and task per subscription
  (see ``bench/upstream_bus.py``), and keeps per-subscription order. The
  ``_Fanout`` also replaces the subscription's nats-py queue, for anything
  nats-py hands over before the route is set. Callbacks are synchronous and must not block, as for
  LocalBus; callback-less subscriptions fill bounded queues with drop counting
  (``gateway.bus.local.BufferedSubscription``, shared with LocalBus).
- A subscribe returns once the server has the ``SUB`` (a PING/PONG round
  trip), so a message published by anyone after that reaches it.

- **Local delivery** (``UpstreamBus.connect`` sets it up): as a leaf node
  does, the gateway delivers its own publications to its own plain
  subscribers itself, through an in-process ``LocalBus``, and the main
  connection is opened with ``no_echo`` so the server does not send them
  back. Messages published through this gateway and subscribed on it never
  make the round trip, which carries every other publication; ``Msg.origin``
  then reaches local subscribers (NATS ``echo: false`` works) and a run of
  QoS 0 messages stays one ``MsgBatch``. Queue subscriptions use a second
  connection with echo on: the server must choose one member among every
  gateway's, including this one's, for this gateway's publications too.

``Msg.origin`` is None on delivery from upstream: the publisher's identity does
not cross the network. ``has_interest`` answers True (only the server knows);
``request`` relies on the server's no-responders status instead, unless a
local subscriber can answer.

This module uses a few nats-py internals (those of ``nats_outbox``, ``_subs``,
a subscription's ``_pending_queue``); ``UpstreamBus`` checks
for them when it is built and the integration tests pin their behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription as NatsSubscription

from gateway.bus.api import (
    DEFAULT_PENDING_LIMIT,
    Bus,
    BusClosed,
    BusError,
    BusTimeout,
    Headers,
    Msg,
    MsgBatch,
    MsgHandler,
    NoResponders,
    Subscription,
)
from gateway.bus.local import BufferedSubscription, LocalBus
from gateway.bus.nats_outbox import INTERNALS as OUTBOX_INTERNALS
from gateway.bus.nats_outbox import NatsOutbox
from gateway.bus.nats_reader import FastReader, RawMsg
from gateway.bus.nats_reader import install as install_reader
from gateway.bus.subjects import validate_subject, validate_subscription
from gateway.bus.upstream_connect import UpstreamConnectError, connect_kwargs
from gateway.bus.upstream_wire import (
    DESCRIPTION,
    InvalidHeader,
    PayloadTooLarge,
    pub_command,
    pub_commands,
)
from gateway.options.model import UpstreamOptions

__all__ = [
    "DEFAULT_PENDING_SIZE",
    "InvalidHeader",
    "PayloadTooLarge",
    "UpstreamBus",
    "UpstreamConnectError",
    "UpstreamSubscription",
    "from_nats",
]

log = logging.getLogger(__name__)

DEFAULT_PENDING_SIZE = 8 * 1024 * 1024
"""Bytes of publishes buffered while the upstream connection is down."""

_DEFAULT_TIMEOUT = 10.0
_Callback = Callable[[], Awaitable[None]]
_ANSWERED_LOCALLY_MAX = 8192
_NO_RESPONDERS = "503"
_NATS_INTERNALS = (*OUTBOX_INTERNALS, "_subs")


def from_nats(raw: NatsMsg) -> Msg:
    """A Bus ``Msg`` for a nats-py message (``headers`` None when there are none)."""
    headers = raw.headers
    return Msg(raw.subject, raw.data, raw.reply, _plain_headers(headers) if headers else None)


def _plain_headers(headers: dict[Any, str]) -> dict[str, str]:
    """nats-py's headers with plain ``str`` keys and its status-line misreading undone.

    nats-py keys ``Description`` by an enum member (whose ``str()`` is not the
    name), and reads ``NATS/1.0 503\r\nKey: v`` (a status without description,
    then headers) as a ``Description`` of ``"\nKey: v"`` besides ``Key``.
    """
    out = {(k.value if isinstance(k, Enum) else k): v for k, v in headers.items()}
    if out.get(DESCRIPTION, "")[:1] == "\n":
        del out[DESCRIPTION]
    return out


class _Fanout:
    """One upstream subscription and its local subscribers.

    Installed as the nats-py subscription's ``_pending_queue``: nats-py's read
    loop calls ``put_nowait`` for every message, which delivers at once. The
    other methods are what nats-py may call on that queue (``pending_msgs``,
    ``drain``); nothing is ever queued here.
    """

    __slots__ = ("answered", "local", "members", "nc", "nsub", "queue", "ready", "rr", "subject")

    def __init__(
        self,
        subject: str,
        queue: str | None,
        ready: asyncio.Future[None],
        nc: NATS,
        answered: OrderedDict[str, None],
    ) -> None:
        self.subject = subject
        self.answered = answered
        """Reply subjects of requests delivered locally (their no-responders status is false)."""
        self.queue = queue
        self.ready = ready
        self.nc = nc
        """The connection holding the upstream subscription."""
        self.nsub: NatsSubscription | None = None
        self.local: Subscription | None = None
        """Local delivery: this gateway's own publications, from the local bus."""
        # Copy-on-write, so a callback that unsubscribes cannot upset an iteration.
        self.members: tuple[UpstreamSubscription, ...] = ()
        self.rr = 0

    def put_nowait(self, raw: NatsMsg) -> None:
        """A message from nats-py (one that arrived before the reader routed this sid)."""
        headers = raw.headers
        self.on_raw(
            RawMsg(raw.subject, raw.reply, raw.data, _plain_headers(headers) if headers else None)
        )
        nsub = self.nsub
        if nsub is not None:
            nsub._pending_size = 0

    def on_raw(self, raw: RawMsg) -> None:
        """A message of the upstream subscription, from the connection's ``FastReader``."""
        members = self.members
        if not members:
            return
        headers = raw.headers
        if headers and headers.get("Status") == _NO_RESPONDERS and raw.subject in self.answered:
            # The server saw no subscriber of a request this gateway delivered
            # itself (no_echo): the requester must not hear "no responders".
            del self.answered[raw.subject]
            return
        msg = Msg(raw.subject, raw.payload, raw.reply, headers)
        if self.queue is None:
            for sub in members:
                if not sub._closed:
                    sub._deliver(msg)
        else:
            i = self.rr % len(members)
            self.rr = i + 1
            members[i]._deliver(msg)

    def deliver_local(self, msg: Msg) -> None:
        """A publication of this gateway, to every (plain) local subscriber."""
        for sub in self.members:
            if not sub._closed:
                sub._deliver(msg)

    def deliver_local_batch(self, batch: MsgBatch) -> None:
        for sub in self.members:
            if not sub._closed:
                sub._deliver_batch(batch)

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def task_done(self) -> None:
        """Nothing is queued, so nothing is done."""

    async def join(self) -> None:
        """Nothing is queued, so nothing to wait for."""


class UpstreamSubscription(BufferedSubscription):
    """A local subscription sharing its upstream subscription with the others on the same key."""

    __slots__ = ("_bus", "_fanout")

    def __init__(
        self,
        bus: UpstreamBus,
        subject: str,
        queue: str | None,
        callback: MsgHandler | None,
        max_msgs: int,
        pending_limit: int,
    ) -> None:
        super().__init__(subject, queue, callback, max_msgs, pending_limit)
        self._bus = bus
        self._fanout: _Fanout | None = None

    def _detach(self) -> None:
        self._bus._remove(self)


class UpstreamBus(Bus):
    """The Bus on a nats-py connection (see the module docstring).

    ``await UpstreamBus.connect(options)`` opens (and then owns) a connection
    built from the gateway's ``upstream`` block; ``UpstreamBus(nc)`` wraps an
    open connection that the caller keeps owning. ``nc`` is the nats-py client,
    for the JetStream log: ``JetStreamLog.attach(bus.nc, bus=bus)``.
    """

    def __init__(
        self,
        nc: NATS,
        *,
        queue_nc: NATS | None = None,
        own_connection: bool = False,
        js_domain: str | None = None,
        subscribe_timeout: float = _DEFAULT_TIMEOUT,
    ) -> None:
        for conn in (nc, queue_nc or nc):
            missing = [name for name in _NATS_INTERNALS if not hasattr(conn, name)]
            if missing:
                raise BusError(f"unsupported nats-py version: Client lacks {', '.join(missing)}")
        no_echo = bool(nc.options.get("no_echo"))
        if no_echo and queue_nc is None:
            raise ValueError("a no_echo connection needs queue_nc for queue subscriptions")
        self._nc = nc
        self._qnc = queue_nc or nc
        self._local: LocalBus | None = LocalBus() if no_echo else None
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._own = own_connection
        self._js_domain = js_domain
        self._sub_timeout = subscribe_timeout
        self._interests: dict[tuple[str, str | None], _Fanout] = {}
        self._outbox = NatsOutbox(nc)
        self._queue_outbox = NatsOutbox(self._qnc)
        self._reader = install_reader(nc)
        self._queue_reader = install_reader(self._qnc)
        self._dropped_publishes = 0
        self._closed = False
        self._up = asyncio.Event()
        if nc.is_connected:
            self._up.set()
        self._chain_callbacks()

    @classmethod
    async def connect(
        cls,
        options: UpstreamOptions,
        *,
        name: str = "jetgate",
        connect_timeout: float = 5.0,
        reconnect_wait: float = 2.0,
        max_reconnect_attempts: int = -1,
        connect_attempts: int = 2,
        pending_size: int = DEFAULT_PENDING_SIZE,
        ping_interval: float = 30.0,
        **nats_options: Any,
    ) -> UpstreamBus:
        """Connect to ``options.urls`` with its login and TLS, and return a bus owning the connection.

        The first connection tries each URL ``connect_attempts`` times,
        ``reconnect_wait`` seconds apart; once connected, a lost connection is
        retried ``max_reconnect_attempts`` times per server (-1: forever), and
        publishes made meanwhile are buffered up to ``pending_size`` bytes.
        Further ``nats.connect`` keyword arguments pass through ``nats_options``.
        Raises UpstreamConnectError when no server accepts the connection.
        """
        if connect_attempts < 1:
            raise ValueError("connect_attempts must be at least 1")
        kwargs = connect_kwargs(options)
        kwargs.update(
            name=name,
            connect_timeout=connect_timeout,
            reconnect_time_wait=reconnect_wait,
            # nats-py uses one limit for the first connection and reconnects (and
            # 0 or -1 would retry the first connection forever): set it below.
            max_reconnect_attempts=connect_attempts - 1 or 1,
            pending_size=pending_size,
            ping_interval=ping_interval,
            error_cb=_log_error,
        )
        kwargs.update(nats_options)
        nc = await _connect(options, dict(kwargs, no_echo=True))
        refused: UpstreamConnectError | None = None
        try:
            qnc = await _connect(options, dict(kwargs, name=f"{name}-queues"))
        except UpstreamConnectError as exc:
            refused = exc
        if refused is not None:
            await nc.close()
            raise refused
        for conn in (nc, qnc):
            conn.options["max_reconnect_attempts"] = max_reconnect_attempts
        return cls(nc, queue_nc=qnc, own_connection=True, js_domain=options.js_domain)

    # -- properties ----------------------------------------------------------------

    @property
    def nc(self) -> NATS:
        """The nats-py connection (shared with the JetStream log)."""
        return self._nc

    @property
    def js_domain(self) -> str | None:
        """The JetStream domain of the ``upstream`` block, for ``JetStreamLog.attach``."""
        return self._js_domain

    @property
    def connected(self) -> bool:
        """Whether the upstream connection is up (False while reconnecting)."""
        return bool(self._nc.is_connected) and not self._closed

    @property
    def dropped_publishes(self) -> int:
        """Publishes dropped because the reconnect buffer was full."""
        return self._dropped_publishes

    @property
    def upstream_subscriptions(self) -> int:
        """Upstream subscriptions held (one per distinct subject and queue group)."""
        return len(self._interests)

    # -- publishing ------------------------------------------------------------------

    def publish(
        self,
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: Headers | None = None,
        origin: object | None = None,
    ) -> None:
        """Enqueue a ``PUB`` on the upstream connection (see ``Bus.publish``).

        Also raises InvalidHeader for a header that cannot be written and
        PayloadTooLarge above the server's ``max_payload``.
        """
        nc = self._open_for(subject)
        if reply:
            validate_subject(reply)
        cmd = pub_command(subject, reply, payload, headers, nc._max_payload)
        local = self._local
        if local is not None:
            local.publish(subject, payload, reply, headers, origin)
            if reply and local.has_interest(subject):
                answered = self._answered
                answered[reply] = None
                if len(answered) > _ANSWERED_LOCALLY_MAX:
                    answered.popitem(last=False)
        self._send_counted(cmd, 1, len(payload))

    def _open_for(self, subject: str) -> NATS:
        """The connection to publish ``subject`` on; BusClosed once closed or draining."""
        if self._closed:
            raise BusClosed("bus closed")
        nc = self._nc
        status = nc._status  # ``is_closed or is_draining_pubs`` without two property calls
        if status == NATS.CLOSED or status == NATS.DRAINING_PUBS:
            raise BusClosed("upstream connection closed")
        validate_subject(subject)
        return nc

    def _send_counted(self, cmd: bytes, messages: int, size: int) -> None:
        self._send(cmd, None, messages, size)

    def run_pending(self) -> None:
        if self._local is not None:
            self._local.run_pending()

    def call_after_deliveries(self, callback: Callable[[], None]) -> bool:
        return self._local is not None and self._local.call_after_deliveries(callback)

    def publish_many(
        self, subject: str, payloads: list[bytes], origin: object | None = None
    ) -> None:
        """``publish`` for each payload: one upstream write, one local batch."""
        if not payloads:
            return
        nc = self._open_for(subject)
        cmds = pub_commands(subject, payloads, nc._max_payload)
        if self._local is not None:
            self._local.publish_many(subject, payloads, origin)
        self._send_counted(cmds, len(payloads), sum(map(len, payloads)))

    def _send(self, cmd: bytes, nc: NATS | None = None, messages: int = 0, size: int = 0) -> None:
        """Queue a protocol command on ``nc`` (the main connection by default)."""
        outbox = self._outbox if nc is None or nc is self._nc else self._queue_outbox
        if outbox.send(cmd, messages, size):
            return
        self._dropped_publishes += 1
        if self._dropped_publishes == 1 or self._dropped_publishes % 10000 == 0:
            log.warning(
                "upstream disconnected and its buffer is full: %d publishes dropped",
                self._dropped_publishes,
            )

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float = 2.0,
        headers: Headers | None = None,
    ) -> Msg:
        """Request/reply through nats-py's shared reply subscription.

        Raises NoResponders on the server's 503 status, BusTimeout after
        ``timeout`` seconds, BusClosed once closed.
        """
        if self._closed:
            raise BusClosed("bus closed")
        validate_subject(subject)
        if self._local is not None and self._local.has_interest(subject):
            # A local responder: the server would not echo the request to it.
            return await super().request(subject, payload, timeout, headers)
        try:
            raw = await self._nc.request(
                subject, payload, timeout=timeout, headers=dict(headers) if headers else None
            )
        except nats.errors.NoRespondersError:
            raise NoResponders(subject) from None
        except (nats.errors.TimeoutError, TimeoutError):
            raise BusTimeout(f"no reply on {subject!r} within {timeout}s") from None
        except nats.errors.ConnectionClosedError:
            raise BusClosed("upstream connection closed") from None
        except nats.errors.Error as exc:
            raise BusError(f"request on {subject!r} failed: {exc}") from exc
        return from_nats(raw)

    # -- subscribing -------------------------------------------------------------------

    async def subscribe(
        self,
        subject: str,
        callback: MsgHandler | None = None,
        queue: str | None = None,
        max_msgs: int = 0,
        pending_limit: int = DEFAULT_PENDING_LIMIT,
    ) -> UpstreamSubscription:
        """Subscribe locally, sharing (or making) the upstream subscription for (subject, queue)."""
        if self._closed:
            raise BusClosed("bus closed")
        validate_subscription(subject, queue)
        sub = UpstreamSubscription(self, subject, queue, callback, max_msgs, pending_limit)
        key = (subject, queue)
        while True:
            fanout = self._interests.get(key)
            if fanout is None:
                await self._open(key, sub)
                return sub
            if not fanout.ready.done():
                # Someone else is making it; then look again (it may be gone).
                await asyncio.shield(fanout.ready)
                if self._closed:
                    raise BusClosed("bus closed")
                continue
            self._attach(fanout, sub)
            return sub

    async def _open(self, key: tuple[str, str | None], sub: UpstreamSubscription) -> None:
        subject, queue = key
        nc = self._qnc if queue else self._nc
        ready = asyncio.get_running_loop().create_future()
        fanout = _Fanout(subject, queue, ready, nc, self._answered)
        self._interests[key] = fanout
        try:
            try:
                nsub = await nc.subscribe(
                    subject, queue=queue or "", pending_msgs_limit=0, pending_bytes_limit=0
                )
            except nats.errors.Error as exc:
                raise BusClosed(f"cannot subscribe upstream: {exc}") from exc
            # Messages that arrived before the swap (none, unless nats-py yielded).
            early: asyncio.Queue[NatsMsg] = nsub._pending_queue
            nsub._pending_queue = fanout  # type: ignore[assignment]
            fanout.nsub = nsub
            self._reader_of(nc).route(nsub._id, fanout.on_raw)
            if self._local is not None and queue is None:
                local = self._local.subscribe_nowait(subject, fanout.deliver_local)
                local.set_batch_handler(fanout.deliver_local_batch)
                fanout.local = local
            self._attach(fanout, sub)
            while not early.empty():
                fanout.put_nowait(early.get_nowait())
            await self._round_trip(nc)
        except BaseException:
            if fanout.nsub is None and self._interests.get(key) is fanout:
                del self._interests[key]
            raise
        finally:
            if not fanout.ready.done():
                fanout.ready.set_result(None)

    def _reader_of(self, nc: NATS) -> FastReader:
        return self._reader if nc is self._nc else self._queue_reader

    def _attach(self, fanout: _Fanout, sub: UpstreamSubscription) -> None:
        sub._fanout = fanout
        fanout.members = (*fanout.members, sub)

    async def _round_trip(self, nc: NATS) -> None:
        """Wait for the server to have processed what was sent so far (best effort)."""
        if not nc.is_connected:
            return  # nats-py replays every subscription after the reconnect
        try:
            await self._ping(self._sub_timeout, nc)
        except (nats.errors.Error, TimeoutError) as exc:
            log.debug("no PONG after SUB: %s", exc)

    async def _ping(self, timeout: float, nc: NATS | None = None) -> None:
        """Write out nats-py's pending buffer, then PING and wait for the PONG.

        nats-py's ``flush()`` writes its PING straight to the socket, ahead of
        commands still in the pending buffer, so on its own it does not prove
        that earlier publishes or subscribes reached the server.
        """
        if nc is None:
            nc = self._nc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        queue = nc._flush_queue
        if nc._pending_data_size > 0 and queue is not None:
            written: asyncio.Future[None] = loop.create_future()
            # The flusher writes everything pending, then resolves ``written``.
            await asyncio.wait_for(queue.put(written), timeout)
            await asyncio.wait_for(asyncio.shield(written), max(deadline - loop.time(), 0.001))
        await nc.flush(max(deadline - loop.time(), 0.001))  # type: ignore[arg-type]

    def _remove(self, sub: UpstreamSubscription) -> None:
        fanout = sub._fanout
        if fanout is None:
            return
        sub._fanout = None
        fanout.members = tuple(m for m in fanout.members if m is not sub)
        if fanout.members:
            return
        key = (fanout.subject, fanout.queue)
        if self._interests.get(key) is fanout:
            del self._interests[key]
        local = fanout.local
        if local is not None:
            fanout.local = None
            self._local_unsubscribe(local)
        nsub = fanout.nsub
        if nsub is None:
            return
        fanout.nsub = None
        # nats-py's Subscription.unsubscribe() without the coroutine: forget the
        # sid (so a reconnect does not replay it) and queue the UNSUB in order.
        nsub._closed = True
        nc = fanout.nc
        self._reader_of(nc).unroute(nsub._id)
        nc._remove_sub(nsub._id)
        if nc.is_connected:
            self._send(f"UNSUB {nsub._id}\r\n".encode(), nc)

    @staticmethod
    def _local_unsubscribe(sub: Subscription) -> None:
        if isinstance(sub, BufferedSubscription):
            sub._close()  # synchronous: LocalBus unsubscribes at once

    def has_interest(self, subject: str) -> bool:
        """True: only the upstream server knows (request() relies on no-responders)."""
        return True

    # -- lifecycle ------------------------------------------------------------------------

    def _chain_callbacks(self) -> None:
        """Follow the connection's state, keeping any callbacks it already has."""
        nc = self._nc
        prev_down: _Callback | None = nc._disconnected_cb
        prev_up: _Callback | None = nc._reconnected_cb

        async def disconnected() -> None:
            self._up.clear()
            if prev_down is not None:
                await prev_down()

        async def reconnected() -> None:
            self._up.set()
            if prev_up is not None:
                await prev_up()

        nc._disconnected_cb = disconnected
        nc._reconnected_cb = reconnected

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the server has everything published so far (PING/PONG).

        What the server sends back for those publishes, queue groups' included,
        has been delivered by then. While reconnecting, first waits for the
        connection to come back.
        ``timeout`` None means 10 seconds per step.
        """
        if self._closed:
            raise BusClosed("bus closed")
        nc = self._nc
        limit = timeout if timeout is not None else _DEFAULT_TIMEOUT
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        if nc.is_closed:
            raise BusClosed("upstream connection closed")
        if not nc.is_connected:
            try:
                await asyncio.wait_for(self._up.wait(), limit)
            except TimeoutError:
                raise BusTimeout("upstream still disconnected") from None
        try:
            if self._local is not None:
                await self._local.flush(max(deadline - loop.time(), 0.001))
            await self._ping(max(deadline - loop.time(), 0.001))
            qnc = self._qnc
            if qnc is not nc and qnc._subs and qnc.is_connected:
                # Queue groups' messages come back on their own connection: its PONG,
                # asked for once the server has the publishes, comes after them.
                await self._ping(max(deadline - loop.time(), 0.001), qnc)
        except (nats.errors.TimeoutError, TimeoutError):
            raise BusTimeout("flush timed out") from None
        except nats.errors.ConnectionClosedError:
            raise BusClosed("upstream connection closed") from None

    async def close(self) -> None:
        """Flush, end every local subscription, unsubscribe upstream; close an owned connection."""
        if self._closed:
            return
        if self._nc.is_connected:  # while reconnecting there is nothing to wait for
            with contextlib.suppress(BusError):
                await self.flush(5.0)
        self._closed = True
        for fanout in list(self._interests.values()):
            for sub in fanout.members:
                sub._close()
            if not fanout.ready.done():
                fanout.ready.set_result(None)
        if self._local is not None:
            await self._local.close()
        nc = self._nc
        if self._own:
            for conn in {id(nc): nc, id(self._qnc): self._qnc}.values():
                # Python 3.11's wait_for can lose the cancellation nats-py's close()
                # sends its reconnect loop (while a connect attempt fails at the
                # same moment), which then retries forever: bound it first.
                conn.options["max_reconnect_attempts"] = 1
                with contextlib.suppress(nats.errors.Error, OSError):
                    await conn.close()
        elif nc.is_connected:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self._ping(5.0)  # the UNSUBs are out before we return


async def _connect(options: UpstreamOptions, kwargs: dict[str, Any]) -> NATS:
    try:
        return await nats.connect(**kwargs)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        urls = ", ".join(_redact(u) for u in options.urls)
        raise UpstreamConnectError(f"cannot connect to upstream NATS at {urls}: {exc}") from exc


async def _log_error(exc: Exception) -> None:
    log.warning("upstream NATS: %s", exc or type(exc).__name__)


def _redact(url: str) -> str:
    """``url`` without a ``user:password@`` part."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return f"{scheme}://{rest.rpartition('@')[2]}"
