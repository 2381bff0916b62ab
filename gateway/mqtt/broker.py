"""What the MQTT connections of one gateway share: the store, live clients, wills, expiry.

``MqttBroker`` holds the ``MqttStore`` (durable state on the Log), the
connections that are up by client id (for session takeover), the Wills that
wait out their delay, the timers that end expired sessions, and counters of
what went wrong (malformed packets, protocol errors, dropped QoS 0
deliveries ...). The session code reaches the Bus and the Log only through
here, so it cannot tell embedded mode from upstream mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from gateway.auth.users import UserTable
from gateway.bus.api import Bus, BusError, Msg, NoResponders, Subscription
from gateway.mqtt.store import MqttStore, SessionRecord, StoreError
from gateway.mqtt.store.names import hash8, is_shared_consumer, nuid
from gateway.options.model import Options
from streams.api import Log

if TYPE_CHECKING:
    from gateway.mqtt.connection import MqttConnection

log = logging.getLogger("jetgate.mqtt")

NEVER_EXPIRES = 0xFFFFFFFF
SWEEP_INTERVAL = 60.0
TAKEOVER_PREFIX = "$MQTT.takeover."
TAKEOVER_TIMEOUT = 5.0


class MqttBroker:
    """Shared MQTT state of one gateway (see the module docstring)."""

    def __init__(
        self,
        options: Options,
        users: UserTable,
        bus: Bus,
        log_: Log,
        *,
        shared_store: bool = True,
    ) -> None:
        mqtt = options.mqtt
        self.options = options
        self.shared_store = shared_store
        """Whether other gateways use the same store (upstream mode). When only this
        one does, a session that ends with its connection needs no stored record:
        takeover is local and nothing of it outlives the connection."""
        self.users = users
        self.bus = bus
        self.log = log_
        self.store = MqttStore(
            log_,
            ack_wait=mqtt.ack_wait,
            max_ack_pending=mqtt.max_ack_pending,
            replicas=max(1, mqtt.stream_replicas),
            consumer_memory_storage=mqtt.consumer_memory_storage,
            consumer_inactive_threshold=mqtt.consumer_inactive_threshold,
        )
        self.live: dict[str, MqttConnection] = {}
        self.gateway_id = nuid()
        """This gateway's id in session records and on ``$MQTT.takeover.<id>``."""
        self._takeovers: Subscription | None = None
        self.counters: Counter[str] = Counter()
        self._wills: dict[str, tuple[asyncio.TimerHandle, Callable[[], None]]] = {}
        self._expiries: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create or open the MQTT streams; end the sessions that expired while down."""
        await self.store.start()
        await self._answer_takeovers()
        await self._adopt_orphans()
        await self.sweep()
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def stop(self) -> None:
        """Stop timers and close the store (connections are closed by the gateway)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._takeovers is not None:
            with contextlib.suppress(BusError):
                await self._takeovers.unsubscribe()
        for handle, _ in self._wills.values():
            handle.cancel()
        for handle in self._expiries.values():
            handle.cancel()
        self._wills.clear()
        self._expiries.clear()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, StoreError):
                await task
        await self.store.close()

    def count(self, what: str, times: int = 1) -> None:
        """Count an event (malformed packet, dropped delivery ...)."""
        self.counters[what] += times

    def spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` in the background, kept until it ends."""

        async def run() -> None:
            try:
                await work
            except StoreError as exc:
                log.warning("background MQTT work failed: %s", exc)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- who holds a client id --------------------------------------------------

    async def claim_local(self, client_id: str) -> None:
        """Close this gateway's connection holding ``client_id``, if any ([MQTT-3.1.4-3])."""
        previous = self.live.get(client_id)
        if previous is not None:
            await previous.take_over()

    async def claim_remote(self, record: SessionRecord) -> bool:
        """Ask the gateway holding ``record``'s session to close its connection.

        True when another gateway gave it up (the record should be read again,
        as that gateway saved it on the way out). The request goes to the
        holder's own ``$MQTT.takeover.<gateway id>`` subject.
        """
        holder = record.holder
        if record.disconnected_at is not None or holder is None or holder == self.gateway_id:
            return False
        try:
            await self.bus.request(
                TAKEOVER_PREFIX + holder, record.client_id.encode(), timeout=TAKEOVER_TIMEOUT
            )
        except NoResponders:
            return False  # that gateway is gone
        except BusError as exc:
            log.warning("takeover of %r from gateway %s: %s", record.client_id, holder, exc)
            return False
        return True

    async def _answer_takeovers(self) -> None:
        def on_request(msg: Msg) -> None:
            client_id = msg.payload.decode("utf-8", "replace")
            connection = self.live.get(client_id) if client_id else None

            async def answer() -> None:
                if connection is not None:
                    await connection.take_over()
                if msg.reply:
                    self.bus.publish(msg.reply, b"released" if connection else b"alive")

            self.spawn(answer())

        self._takeovers = await self.bus.subscribe(TAKEOVER_PREFIX + self.gateway_id, on_request)

    def hold(self, client_id: str, connection: MqttConnection) -> None:
        """``connection`` now holds ``client_id``."""
        self.live[client_id] = connection

    def release(self, client_id: str, connection: MqttConnection) -> bool:
        """``connection`` no longer holds ``client_id``; False if it did not hold it."""
        if self.live.get(client_id) is not connection:
            return False
        del self.live[client_id]
        return True

    # -- wills -------------------------------------------------------------

    def schedule_will(self, client_id: str, delay: float, publish: Callable[[], None]) -> None:
        """Publish a Will after ``delay`` seconds unless the client comes back first."""
        self.cancel_will(client_id)
        if delay <= 0:
            publish()
            return

        def fire() -> None:
            self._wills.pop(client_id, None)
            publish()

        self._wills[client_id] = (asyncio.get_running_loop().call_later(delay, fire), publish)

    def cancel_will(self, client_id: str) -> None:
        """The client reconnected within the Will Delay Interval ([MQTT-3.1.3-9])."""
        entry = self._wills.pop(client_id, None)
        if entry is not None:
            entry[0].cancel()

    def fire_will_now(self, client_id: str) -> None:
        """The session ended before the Will delay passed: the Will goes now."""
        entry = self._wills.pop(client_id, None)
        if entry is not None:
            entry[0].cancel()
            entry[1]()

    # -- session expiry ------------------------------------------------------

    def schedule_expiry(self, client_id: str, interval: int) -> None:
        """End an offline session after ``interval`` seconds unless the client returns."""
        self.cancel_expiry(client_id)
        if interval >= NEVER_EXPIRES:
            return

        def expire() -> None:
            self._expiries.pop(client_id, None)
            if client_id in self.live:
                return
            self.fire_will_now(client_id)
            self.spawn(self.store.delete_session(client_id))

        self._expiries[client_id] = asyncio.get_running_loop().call_later(interval, expire)

    def cancel_expiry(self, client_id: str) -> None:
        """The client reconnected: its session no longer counts down."""
        handle = self._expiries.pop(client_id, None)
        if handle is not None:
            handle.cancel()

    async def _adopt_orphans(self) -> None:
        """Sessions left "connected" by a crash count as disconnected from now on."""
        now = time.time()
        records = await self.store.sessions()
        if not self.shared_store:
            await self._drop_unowned_consumers(records)
            await self._drop_unowned_qos2(records)
        for record in records:
            if record.disconnected_at is None and record.client_id not in self.live:
                if await self._holder_alive(record):
                    continue
                try:
                    await self.store.save_session(replace(record, disconnected_at=now))
                except StoreError as exc:
                    log.warning("cannot adopt MQTT session %r: %s", record.client_id, exc)
                    continue
                self.schedule_expiry(record.client_id, record.expiry_interval)

    async def _drop_unowned_consumers(self, records: list[SessionRecord]) -> None:
        """Consumers of sessions that had no stored record (they end with their connection)
        and were left by a crash: nothing owns them, so they go."""
        owners = {hash8(record.client_id) for record in records}
        for name in await self.store.consumer_names():
            owner, sep, _ = name.partition("_")
            if sep and len(owner) == 8 and owner not in owners and not is_shared_consumer(name):
                log.info("deleting consumer %s: its session ended with a crash", name)
                await self.store.delete_consumer(name)

    async def _drop_unowned_qos2(self, records: list[SessionRecord]) -> None:
        """QoS 2 messages staged by sessions that had no stored record, left by a crash.

        A clean session purges its own at its end only if it staged any, so these would
        meet the next session of that client id: its first PUBLISH with a packet id left
        here would count as a duplicate, and its PUBREL would release the old message.
        """
        owners = {hash8(record.client_id) for record in records}
        for client_hash in await self.store.qos2_holders() - owners:
            log.info("dropping the QoS 2 messages client %s staged before a crash", client_hash)
            await self.store.drop_qos2(client_hash)

    async def _holder_alive(self, record: SessionRecord) -> bool:
        """Whether the gateway that holds ``record`` still answers (upstream mode)."""
        if record.holder is None or record.holder == self.gateway_id:
            return False
        try:
            await self.bus.request(TAKEOVER_PREFIX + record.holder, b"", timeout=1.0)
        except BusError:
            return False
        return True

    async def sweep(self) -> None:
        """End offline sessions whose expiry passed (also those of a previous run)."""
        try:
            expired = await self.store.expired_sessions(time.time())
        except StoreError as exc:
            log.warning("cannot list expired MQTT sessions: %s", exc)
            return
        for record in expired:
            if record.client_id not in self.live:
                try:
                    # The revision keeps a session just resumed elsewhere alive.
                    await self.store.delete_session(record.client_id, revision=record.revision)
                except StoreError:
                    continue
                self.count("sessions_expired")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            await self.sweep()
