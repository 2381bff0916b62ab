"""One client's MQTT subscriptions: what each is made of on the Bus and the log, and delivery.

Every subscription has a core Bus subscription per NATS subject it maps to
(two for ``a/#``: ``a.>`` and ``a``), delivering QoS 0 publications and plain
NATS messages. A QoS 1/2 subscription also has a durable consumer per subject
on the MQTT messages stream, pushing to one ``$MQTT.sub.<nuid>`` deliver
subject; messages that were published at QoS >= 1 reach it only that way
(the core copy is skipped, as the NATS server does). A shared subscription
(``$share/group/filter``) subscribes in queue group ``group`` and uses one
consumer per group, so MQTT members and NATS queue subscribers share the load.

With ``mqtt { consumer_mode: session }`` the non-shared QoS 1/2 subscriptions
of a session share one durable consumer, ``<hash8>_session``, with a filter
subject per NATS subject and one deliver subject; SUBSCRIBE and UNSUBSCRIBE
change its filters. A delivery goes out once, at the highest granted QoS among
the subscriptions it matches, with each of their subscription identifiers.
The session's ``max_ack_pending`` budget then counts that consumer once.

Outbound QoS 1/2 deliveries respect the client's Receive Maximum: what does
not fit waits here, in order, and goes out as acknowledgements free the
window (the NATS server instead drops and waits for ``ack_wait``). A
redelivery from the log reuses the packet identifier of the copy still in
flight and sets DUP. When the connection ends, everything unacknowledged is
NAKed so that a reconnecting client gets it again at once, in order.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from gateway.bus.api import BusError, Msg, MsgBatch, Subscription
from gateway.bus.subjects import is_literal, subject_matches, subjects_overlap
from gateway.bus.sublist import Sublist
from gateway.mqtt.errors import protocol_error
from gateway.mqtt.fastpath import (
    cached_subject_to_topic,
    encode_publish,
    encode_qos0,
    encode_qos0_many,
    qos0_overhead,
)
from gateway.mqtt.filters import SHARE_PREFIX, parse_filter
from gateway.mqtt.messages import ORIGIN, RETAIN, delivered_properties, published_qos
from gateway.mqtt.packets import Publish, Pubrec, Pubrel, Suback, Subscribe, Unsuback, Unsubscribe
from gateway.mqtt.properties import Properties
from gateway.mqtt.reason_codes import ReasonCode
from gateway.mqtt.store import (
    DELIVER_PREFIX,
    MSGS_PREFIX,
    SessionRecord,
    StoreError,
    SubscriptionRecord,
)
from gateway.mqtt.store.names import is_shared_consumer, nuid, shared_deliver_subject
from gateway.mqtt.topics import (
    excludes_dollar_topics,
    filter_to_subjects,
    is_internal_subject,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gateway.mqtt.connection import MqttConnection

log = logging.getLogger("jetgate.mqtt")

MAX_SESSION_ACK_PENDING = 65535
NAK = b"-NAK"

_Key = tuple[str, int]  # (consumer, stream sequence) of a durable delivery


def _delivery_of(reply: str) -> tuple[_Key, bool] | None:
    """The key of a delivery and whether it is a redelivery, from its ``$JS.ACK`` reply.

    ``streams.types.parse_ack`` reads every field; a delivery needs three (v1: 9 tokens,
    v2: 11 or 12). None when ``reply`` is not an ack subject.
    """
    tokens = reply.split(".")
    n = len(tokens)
    if n == 9:
        at = 3
    elif n == 11 or n == 12:
        at = 5
    else:
        return None
    if tokens[0] != "$JS" or tokens[1] != "ACK":
        return None
    try:
        return (tokens[at], int(tokens[at + 2])), tokens[at + 1] != "1"
    except ValueError:
        return None


def _covers(wide: str, narrow: str) -> bool:
    """True when every subject matched by filter ``narrow`` is matched by filter ``wide``."""
    wt = wide.split(".")
    nt = narrow.split(".")
    for i, w in enumerate(wt):
        if w == ">":
            return len(nt) > i
        if i >= len(nt) or nt[i] == ">":
            return False
        if w != "*" and (nt[i] == "*" or w != nt[i]):
            return False
    return len(wt) == len(nt)


def _cover(a: str, b: str) -> str:
    """A filter matching everything ``a`` and ``b`` match (two filters that overlap)."""
    common: list[str] = []
    for x, y in zip(a.split("."), b.split("."), strict=False):
        if x != y or x == ">":
            break
        common.append(x)
    return ".".join([*common, ">"])


def disjoint_filters(subjects: Iterable[str]) -> tuple[str, ...]:
    """Filters for one consumer that cover ``subjects`` and overlap nowhere, sorted.

    JetStream refuses a consumer whose filter subjects overlap. A filter covered
    by another is dropped (``a.b`` under ``a.>``); two that only partly overlap
    (``a.*.c``, ``a.b.*``) give way to one wider filter (``a.>``); deliveries
    that no subscription matches are acknowledged on arrival.
    """
    literals: set[str] = set()
    wilds: list[str] = []

    def add(subject: str) -> None:
        if subject in literals or any(_covers(w, subject) for w in wilds):
            return
        if is_literal(subject):
            literals.add(subject)
            return
        for lit in [lit for lit in literals if subject_matches(subject, lit)]:
            literals.discard(lit)
        partial: list[str] = []
        for w in list(wilds):
            if _covers(subject, w):
                wilds.remove(w)
            elif subjects_overlap(subject, w):
                wilds.remove(w)
                partial.append(w)
        if not partial:
            wilds.append(subject)
            return
        wider = subject
        for w in partial:
            wider = _cover(wider, w)
        add(wider)

    for subject in sorted(set(subjects), key=lambda s: (is_literal(s), s)):
        add(subject)
    return tuple(sorted([*literals, *wilds]))


@dataclass(eq=False)
class _Live:
    """A subscription as it runs now."""

    record: SubscriptionRecord
    share: str | None
    subjects: tuple[str, ...]
    skips_dollar: bool
    core: list[Subscription] = field(default_factory=list)
    durable: list[Subscription] = field(default_factory=list)
    subscription_ids: tuple[int, ...] | None = None
    """Session mode: the identifiers of every subscription a delivery matched."""
    merged: bool = False
    """Session mode: stands for the subscriptions a session-consumer delivery matched."""


class Subscriptions:
    """The subscriptions, outbound windows and deliveries of one MQTT connection."""

    def __init__(self, connection: MqttConnection) -> None:
        self._conn: MqttConnection | None = connection
        self._live: dict[str, _Live] = {}
        self._waiting: deque[tuple[_Live, Msg, bool]] = deque()
        self._pids: dict[_Key, int] = {}
        self._replies: dict[_Key, str] = {}
        self.has_no_local = False
        """Whether any subscription asked not to receive this client's own messages."""
        self._refusals: list[str] = []
        self._session_sub: Subscription | None = None
        self._session_deliver: str | None = None
        self._session_index: Sublist[_Live] | None = None
        """Session mode: the session consumer's subscriptions by subject (built when needed)."""
        self._session_subjects: tuple[str, ...] | None = None
        """Session mode: the filters the session consumer has now (None: not known)."""

    @property
    def conn(self) -> MqttConnection:
        """The connection these subscriptions serve (until ``detach``)."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("subscriptions used after their connection ended")
        return conn

    def detach(self) -> None:
        """Forget the connection, once it has ended and ``release`` has run.

        The connection and its subscriptions refer to each other; without this the
        whole connection (socket, streams, TLS state, session) waited for the cycle
        collector: about 40 objects and 30 us of CPU per connection (bench/tls.py).
        Kept while a Bus subscription could still call back (``release`` did not run).
        """
        if self._session_sub is None and not any(
            live.core or live.durable for live in self._live.values()
        ):
            self._conn = None

    @property
    def session_mode(self) -> bool:
        """Whether the session's QoS 1/2 subscriptions share one consumer."""
        return self.conn.options.mqtt.consumer_mode == "session"

    def _in_session_consumer(self, live: _Live) -> bool:
        return self.session_mode and live.share is None and bool(live.record.qos)

    def _changed(self) -> None:
        self._session_index = None
        self.has_no_local = any(live.record.no_local for live in self._live.values())

    def records(self) -> dict[str, SubscriptionRecord]:
        """The subscriptions as stored in the session record."""
        return {key: live.record for key, live in self._live.items()}

    def _budget(self, excluding: str | None = None) -> int:
        per = self.conn.options.mqtt.max_ack_pending
        session = False
        total = 0
        for key, live in self._live.items():
            if not live.record.qos or key == excluding:
                continue
            if self._in_session_consumer(live):
                session = True
            else:
                total += per * len(live.subjects)
        return total + (per if session else 0)

    # -- SUBSCRIBE / UNSUBSCRIBE ----------------------------------------------

    async def subscribe(self, packet: Subscribe) -> None:
        conn = self.conn
        session = conn.session
        codes: list[int] = []
        started: list[tuple[_Live, bool]] = []
        sub_id = None
        if session.v5 and packet.properties.subscription_identifiers:
            sub_id = packet.properties.subscription_identifiers[0]
        for option in packet.subscriptions:
            code, live, is_new = await self._subscribe_one(
                option.topic_filter,
                option.qos,
                option.no_local,
                option.retain_as_published,
                option.retain_handling,
                sub_id,
            )
            codes.append(code)
            if live is not None:
                started.append((live, is_new))
        await self._sync_session_consumer()
        await self._save()
        reasons = "; ".join(self._refusals)
        self._refusals.clear()
        session.send(Suback(packet.packet_id, codes, conn.reason(reasons) if reasons else None))
        for live, is_new in started:
            handling = live.record.retain_handling
            if live.share is None and (handling == 0 or (handling == 1 and is_new)):
                await self._send_retained(live)
        conn.schedule_flush()

    def _subscription_limit(self) -> int | None:
        """How many subscriptions (filters) the client may hold: ``max_subscriptions`` and,
        in operator mode, the user's JWT ``subs`` (a publish-only user's 0 refuses every
        SUBSCRIBE with 0x97 and keeps the connection, so devices that only publish work)."""
        limits = [
            n
            for n in (
                self.conn.options.max_subscriptions or None,
                self.conn.identity.limits.subscriptions,
            )
            if n is not None
        ]
        return min(limits) if limits else None

    async def _subscribe_one(
        self,
        topic_filter: str,
        qos: int,
        no_local: bool,
        retain_as_published: bool,
        retain_handling: int,
        sub_id: int | None,
    ) -> tuple[int, _Live | None, bool]:
        conn = self.conn
        mqtt = conn.options.mqtt
        version = 5 if topic_filter.startswith(SHARE_PREFIX) else conn.session.version
        share, inner = parse_filter(topic_filter, version)
        if share is not None and no_local:
            raise protocol_error("no-local on a shared subscription")  # [MQTT-3.8.3-4]
        subjects = filter_to_subjects(inner)
        refused = ReasonCode.NOT_AUTHORIZED if conn.session.v5 else ReasonCode.UNSPECIFIED_ERROR
        if any(is_internal_subject(s) for s in subjects):
            self._refusals.append(f"{topic_filter}: the $MQTT namespace is internal")
            return refused, None, False
        permissions = conn.identity.permissions
        denied = [s for s in subjects if not permissions.may_subscribe(s, share)]
        if denied:
            # Name the subject: that `x/#` also needs `x` beside `x.>` surprises operators.
            log.info(
                "mqtt cid:%d: Subscription Violation - %r (subject %s not permitted)",
                conn.cid,
                topic_filter,
                ", ".join(repr(s) for s in denied),
            )
            self._refusals.append(f"{topic_filter}: not permitted")
            return refused, None, False
        limit = self._subscription_limit()
        if limit is not None and topic_filter not in self._live and len(self._live) >= limit:
            self._refusals.append(f"{topic_filter}: too many subscriptions")
            return ReasonCode.QUOTA_EXCEEDED, None, False
        granted = min(qos, 1 if mqtt.downgrade_qos2_subscribe or mqtt.reject_qos2_publish else 2)
        if granted and permissions.subscribe.is_denied(DELIVER_PREFIX + "x"):
            # QoS 1/2 deliveries arrive on $MQTT.sub.*: allowed implicitly, but a deny stands.
            log.info(
                "mqtt cid:%d: QoS %d subscription %r refused: subscribe to $MQTT.sub.> is denied",
                conn.cid,
                granted,
                topic_filter,
            )
            self._refusals.append(f"{topic_filter}: $MQTT.sub.> is denied for QoS 1/2")
            return refused, None, False
        if granted:
            cost = mqtt.max_ack_pending * len(subjects)
            if self.session_mode and share is None:
                # One consumer for the session: it costs once, whatever subscribes to it.
                cost = 0 if self._has_session_subscription(topic_filter) else mqtt.max_ack_pending
            if cost and self._budget(excluding=topic_filter) + cost > MAX_SESSION_ACK_PENDING:
                self._refusals.append(f"{topic_filter}: max_ack_pending budget of the session")
                return ReasonCode.QUOTA_EXCEEDED, None, False
        record = SubscriptionRecord(
            topic_filter, granted, no_local, retain_as_published, retain_handling, sub_id
        )
        old = self._live.get(topic_filter)
        is_new = old is None
        if old is not None and bool(old.record.qos) == bool(granted) and old.record.consumers:
            # Same kind again: keep the consumers, take the new options ([MQTT-3.8.4-3]).
            old.record = replace(
                record, consumers=old.record.consumers, deliver_subject=old.record.deliver_subject
            )
            return granted, old, False
        if old is not None:
            await self._stop(old, delete_consumers=True)
        live = _Live(record, share, subjects, excludes_dollar_topics(inner))
        failure: StoreError | None = None
        try:
            await self._start(live, create=True)
        except StoreError as exc:
            failure = exc
        if failure is not None:
            # As the NATS server: this filter fails (0x80); the connection and the
            # other filters of the SUBSCRIBE stay, so the client need not reconnect.
            log.warning(
                "mqtt cid:%d: subscription %r not stored: %s", conn.cid, topic_filter, failure
            )
            conn.broker.count("subscribe_failures")
            await self._stop(live, delete_consumers=False)
            if self._live.pop(topic_filter, None) is not None:
                self._session_index = None
            self._refusals.append(f"{topic_filter}: the subscription could not be stored")
            return ReasonCode.UNSPECIFIED_ERROR, None, False
        self._live[topic_filter] = live
        self._session_index = None
        return granted, live, is_new

    async def unsubscribe(self, packet: Unsubscribe) -> None:
        codes: list[int] = []
        for topic_filter in packet.topic_filters:
            live = self._live.pop(topic_filter, None)
            self._session_index = None
            if live is None:
                codes.append(ReasonCode.NO_SUBSCRIPTION_EXISTED)
                continue
            await self._stop(live, delete_consumers=True)
            codes.append(ReasonCode.SUCCESS)
        await self._sync_session_consumer()
        await self._save()
        self.conn.session.send(Unsuback(packet.packet_id, codes))
        self.conn.schedule_flush()

    async def restore(self, record: SessionRecord) -> None:
        """Re-create a resumed session's subscriptions and resend its PUBRELs."""
        for pid in record.pending_pubrel:
            self.conn.session.outbound.restore_pubrel(pid)
            self.conn.session.send(Pubrel(pid))  # [MQTT-4.4.0-1]
        for key, sub in record.subscriptions.items():
            share, inner = parse_filter(key, 5 if key.startswith(SHARE_PREFIX) else 4)
            subjects = filter_to_subjects(inner)
            live = _Live(sub, share, subjects, excludes_dollar_topics(inner))
            if self._in_session_consumer(live):
                await self._drop_own_consumers(live)
            await self._start(live, create=False)
            self._live[key] = live
            self._session_index = None
        await self._sync_session_consumer()
        self._changed()
        self.conn.schedule_flush()

    async def release(self) -> None:
        """The connection ended: drop Bus interest, and NAK what is unacknowledged."""
        bus = self.conn.broker.bus
        for live in self._live.values():
            for sub in [*live.core, *live.durable]:
                try:
                    await sub.unsubscribe()
                except BusError:
                    continue
            live.core.clear()
            live.durable.clear()
        session_sub, self._session_sub = self._session_sub, None
        self._session_subjects = None
        if session_sub is not None:
            with contextlib.suppress(BusError):
                await session_sub.unsubscribe()
        for _, key in self.conn.session.outbound.unacknowledged():
            reply = self._replies.get(key)
            if reply:
                bus.publish(reply, NAK)
        for _, msg, _ in self._waiting:
            if msg.reply:
                bus.publish(msg.reply, NAK)
        self._waiting.clear()
        self._replies.clear()
        self._pids.clear()

    async def delete_consumers(self) -> None:
        """The session ends and has no stored record: delete its own durable consumers
        (those of shared groups belong to the group and stay)."""
        names = {
            name
            for live in self._live.values()
            for name in live.record.consumers
            if not is_shared_consumer(name)
        }
        for name in sorted(names):
            await self.conn.broker.store.delete_consumer(name)

    async def _save(self) -> None:
        self._changed()
        conn = self.conn
        if conn.record is None:
            return
        conn.record = await conn.broker.store.save_session(
            replace(conn.record, subscriptions=self.records())
        )

    async def _start(self, live: _Live, create: bool) -> None:
        conn = self.conn
        broker = conn.broker
        record = live.record
        share = live.share
        if self._in_session_consumer(live):
            pass  # served by the session consumer (_sync_session_consumer)
        elif record.qos:
            store = broker.store
            consumers = list(record.consumers)
            deliver = record.deliver_subject
            if share is not None:
                deliver = shared_deliver_subject(share, live.subjects[0])
            elif deliver is None:
                deliver = DELIVER_PREFIX + nuid()
            existing = [name for name in consumers if await store.consumer_exists(name)]
            if create or len(existing) != len(live.subjects):
                for name in existing:
                    if share is None:
                        await store.delete_consumer(name)
                consumers = await self._create_consumers(live, deliver)
            live.record = replace(record, consumers=tuple(consumers), deliver_subject=deliver)

            def on_durable(msg: Msg) -> None:
                self._on_durable(live, msg)

            live.durable.append(await broker.bus.subscribe(deliver, on_durable, queue=share))

        def on_core(msg: Msg) -> None:
            self._on_core(live, msg)

        def on_core_batch(batch: MsgBatch) -> None:
            self._on_core_batch(live, batch)

        for subject in live.subjects:
            sub = await broker.bus.subscribe(subject, on_core, queue=share)
            sub.set_batch_handler(on_core_batch)
            live.core.append(sub)

    async def _create_consumers(self, live: _Live, deliver: str) -> list[str]:
        """One consumer per subject of ``live``; on a StoreError none is left behind."""
        store = self.conn.broker.store
        share = live.share
        created: list[str] = []
        failure: StoreError | None = None
        try:
            for subject in live.subjects:
                created.append(
                    await store.create_consumer(
                        self.conn.client_hash,
                        subject,
                        deliver,
                        queue_group=share,
                        head=live.subjects[0] if share is not None else None,
                    )
                )
        except StoreError as exc:
            failure = exc
        if failure is None:
            return created
        if share is None:  # a group's consumer may serve other members: it stays
            for name in created:
                with contextlib.suppress(StoreError):
                    await store.delete_consumer(name)
        raise failure

    async def _stop(self, live: _Live, delete_consumers: bool) -> None:
        for sub in [*live.core, *live.durable]:
            await sub.unsubscribe()
        live.core.clear()
        live.durable.clear()
        if delete_consumers and live.share is None:
            session_name = self._session_consumer_name()
            for name in live.record.consumers:
                if name != session_name:
                    await self.conn.broker.store.delete_consumer(name)
        self._waiting = deque(entry for entry in self._waiting if entry[0] is not live)

    # -- session mode: one consumer for the session ---------------------------------

    def _session_consumer_name(self) -> str:
        return self.conn.broker.store.session_consumer_name(self.conn.client_hash)

    def _has_session_subscription(self, excluding: str) -> bool:
        return any(
            self._in_session_consumer(live) for key, live in self._live.items() if key != excluding
        )

    async def _drop_own_consumers(self, live: _Live) -> None:
        """A subscription stored in subscription mode resumes in session mode: its
        per-subscription consumers give way to the session consumer."""
        name = self._session_consumer_name()
        for consumer in live.record.consumers:
            if consumer != name:
                await self.conn.broker.store.delete_consumer(consumer)
            elif self._session_deliver is None and live.record.deliver_subject:
                self._session_deliver = live.record.deliver_subject
        live.record = replace(live.record, consumers=(), deliver_subject=None)

    async def _sync_session_consumer(self) -> None:
        """Bring the session consumer's filters to the subscriptions it serves now."""
        if not self.session_mode:
            return
        lives = [live for live in self._live.values() if self._in_session_consumer(live)]
        subjects = disjoint_filters(s for live in lives for s in live.subjects)
        broker = self.conn.broker
        store = broker.store
        name = self._session_consumer_name()
        if not subjects:
            if self._session_subjects is not None or self._session_sub is not None:
                await store.delete_consumer(name)
            self._session_subjects = None
            sub, self._session_sub = self._session_sub, None
            if sub is not None:
                await sub.unsubscribe()
            return
        deliver = self._session_deliver
        if deliver is None:
            deliver = self._session_deliver = DELIVER_PREFIX + nuid()
        if self._session_sub is None:
            self._session_sub = await broker.bus.subscribe(deliver, self._on_session_durable)
        if self._session_subjects is None:
            await store.ensure_session_consumer(self.conn.client_hash, subjects, deliver)
        elif self._session_subjects != subjects:
            await store.update_session_consumer(self.conn.client_hash, subjects, deliver)
        self._session_subjects = subjects
        for live in lives:
            if live.record.consumers != (name,) or live.record.deliver_subject != deliver:
                live.record = replace(live.record, consumers=(name,), deliver_subject=deliver)

    def _session_target(self, msg: Msg) -> tuple[_Live, str] | None:
        """The subscriptions a session-consumer delivery is for, merged, and its topic."""
        index = self._session_index
        if index is None:
            # Matched through a subject trie: a session may hold thousands of filters.
            index = self._session_index = Sublist()
            for live in self._live.values():
                if self._in_session_consumer(live):
                    for subject_filter in live.subjects:
                        index.insert(subject_filter, live)
        matches: list[_Live] = []
        topic: str | None = None
        for live in dict.fromkeys(index.match(msg.subject)):
            found = self._topic_for(live, msg)
            if found is not None:
                topic = found
                matches.append(live)
        if not matches or topic is None:
            return None
        best = max(matches, key=lambda live: live.record.qos)
        ids = tuple(
            sorted(
                {
                    live.record.subscription_id
                    for live in matches
                    if live.record.subscription_id is not None
                }
            )
        )
        record = replace(
            best.record,
            retain_as_published=any(live.record.retain_as_published for live in matches),
        )
        merged = _Live(
            record, None, best.subjects, best.skips_dollar, subscription_ids=ids, merged=True
        )
        return merged, topic

    def _on_session_durable(self, msg: Msg) -> None:
        if msg.subject.startswith(MSGS_PREFIX):
            msg = Msg(msg.subject[len(MSGS_PREFIX) :], msg.payload, msg.reply, msg.headers)
        target = self._session_target(msg)
        if target is None or not msg.reply:
            if msg.reply:
                self.conn.broker.log.ack_nowait(msg.reply)
            return
        live, topic = target
        outbound = self.conn.session.outbound
        if self._waiting or outbound.full:
            self._waiting.append((live, msg, False))
            return
        self._send_durable(live, msg, topic)

    # -- delivery -----------------------------------------------------------------

    def _topic_for(self, live: _Live, msg: Msg, subject: str | None = None) -> str | None:
        """The topic to deliver ``msg`` on for ``live`` (``subject``: its subject, if not
        ``msg.subject``), or None when it must not go."""
        if subject is None:
            subject = msg.subject
        topic = cached_subject_to_topic(subject)
        if topic is None:
            self.conn.broker.count("unmappable_subjects")
            return None
        if live.skips_dollar and topic[:1] == "$":
            return None  # [MQTT-4.7.2-1]
        record = live.record
        headers = msg.headers
        if record.no_local and headers and headers.get(ORIGIN) == self.conn.client_hash:
            return None  # [MQTT-3.8.3-3]
        if not self.conn.identity.permissions.may_deliver(subject):
            return None
        return topic

    def _on_core(self, live: _Live, msg: Msg) -> None:
        if live.record.qos and published_qos(msg.headers):
            return  # comes through the durable consumer
        topic = self._topic_for(live, msg)
        if topic is None:
            return
        conn = self.conn
        session = conn.session
        if conn.stream.buffered() + session.out_size > conn.options.max_pending:
            conn.broker.count("dropped_qos0_slow_consumer")
            return
        if (
            msg.headers is None
            and not msg.reply
            and live.record.subscription_id is None
            and not session.client_topic_alias_maximum
        ):
            # The bulk of traffic: a bare QoS 0 message, encoded without packet objects.
            if session.send_raw(encode_qos0(topic, msg.payload, session.v5)):
                conn.schedule_flush()
            return
        self._send(live, topic, msg, 0, 0, False, retained=False, reply=msg.reply)

    def _on_core_batch(self, live: _Live, batch: MsgBatch) -> None:
        """Bare QoS 0 messages published together: checked once, encoded in one go."""
        conn = self.conn
        session = conn.session
        subject = batch.subject
        if live.record.subscription_id is not None or session.client_topic_alias_maximum:
            for msg in batch.messages():
                self._on_core(live, msg)
            return
        topic = self._topic_for(live, Msg(subject))
        if topic is None:
            return
        payloads = batch.payloads
        if conn.stream.buffered() + session.out_size > conn.options.max_pending:
            conn.broker.count("dropped_qos0_slow_consumer", len(payloads))
            return
        v5 = session.v5
        limit = session.client_max_packet_size
        if limit and max(map(len, payloads)) + qos0_overhead(topic, v5) > limit:
            for payload in payloads:  # [MQTT-3.1.2-25] too large ones are dropped one by one
                session.send_raw(encode_qos0(topic, payload, v5))
        else:
            session.send_encoded(encode_qos0_many(topic, payloads, v5))
        conn.schedule_flush()

    def _on_durable(self, live: _Live, msg: Msg) -> None:
        subject = msg.subject
        if subject.startswith(MSGS_PREFIX):
            subject = subject[len(MSGS_PREFIX) :]
        topic = self._topic_for(live, msg, subject)
        if topic is None or not msg.reply:
            if msg.reply:
                self.conn.broker.log.ack_nowait(msg.reply)
            return
        outbound = self.conn.session.outbound
        if self._waiting or outbound.full:
            if subject is not msg.subject:  # queued: kept with the subject its topic comes from
                msg = Msg(subject, msg.payload, msg.reply, msg.headers)
            self._waiting.append((live, msg, False))
            return
        self._send_durable(live, msg, topic)

    def _send_durable(self, live: _Live, msg: Msg, topic: str) -> None:
        delivery = _delivery_of(msg.reply)
        if delivery is None:
            log.warning("mqtt: a durable delivery without an ack subject: %r", msg.reply)
            return
        key, redelivered = delivery
        qos = min(live.record.qos, published_qos(msg.headers) or 1)
        pid = self._pids.get(key)
        if pid is None:
            pid = self.conn.session.outbound.send(qos, key)
            self._pids[key] = pid
        self._replies[key] = msg.reply
        if not self._send(live, topic, msg, qos, pid, redelivered, retained=False):
            self._finish(key)
            self.conn.broker.log.ack_nowait(msg.reply)

    def _send(
        self,
        live: _Live,
        topic: str,
        msg: Msg,
        qos: int,
        pid: int,
        dup: bool,
        retained: bool,
        reply: str = "",
    ) -> bool:
        conn = self.conn
        session = conn.session
        record = live.record
        properties: Properties | None = None
        if session.v5:
            properties, expired = delivered_properties(msg.headers)
            if expired:
                conn.broker.count("expired")
                return False
            if live.subscription_ids is not None:
                if live.subscription_ids:
                    properties = properties or Properties()
                    properties.subscription_identifiers = live.subscription_ids
            elif record.subscription_id is not None:
                properties = properties or Properties()
                properties.subscription_identifiers = (record.subscription_id,)
            if reply and (properties is None or properties.response_topic is None):
                # A NATS request: its reply subject becomes the Response Topic.
                response = cached_subject_to_topic(reply)
                if response is not None:
                    properties = properties or Properties()
                    properties.response_topic = response
            send_topic, alias = session.outbound_topic(topic)
            if alias is not None:
                properties = properties or Properties()
                properties.topic_alias = alias
        else:
            send_topic = topic
            if msg.headers and delivered_properties(msg.headers)[1]:
                conn.broker.count("expired")
                return False
        retain = retained or (
            record.retain_as_published and bool(msg.headers) and RETAIN in msg.headers  # type: ignore[operator]
        )
        if properties is None:
            sent = session.send_raw(
                encode_publish(send_topic, msg.payload, qos, pid, dup, retain, session.v5)
            )
        else:
            sent = session.send(Publish(send_topic, msg.payload, qos, retain, dup, pid, properties))
        conn.schedule_flush()
        return sent

    async def _send_retained(self, live: _Live) -> None:
        conn = self.conn
        messages = await conn.broker.store.retained_matching(live.subjects)
        for retained in messages:
            msg = Msg(retained.subject, retained.payload, "", retained.headers or None)
            topic = self._topic_for(live, msg)
            if topic is None:
                continue
            qos = min(retained.qos, live.record.qos)
            if qos and (self._waiting or conn.session.outbound.full):
                self._waiting.append((live, msg, True))
                continue
            self._send_retained_one(live, msg, topic, qos)

    def _send_retained_one(self, live: _Live, msg: Msg, topic: str, qos: int) -> None:
        pid = self.conn.session.outbound.send(qos, None) if qos else 0
        if not self._send(live, topic, msg, qos, pid, False, retained=True) and qos:
            self.conn.session.outbound.abandon(pid)

    def _pump(self) -> None:
        """Send what waited for the window, in order, while it has room."""
        outbound = self.conn.session.outbound
        while self._waiting and not outbound.full:
            live, msg, retained = self._waiting.popleft()
            if live.merged:
                # The subscriptions may have changed while it waited: match again.
                target = self._session_target(msg)
                if target is None:
                    if msg.reply:
                        self.conn.broker.log.ack_nowait(msg.reply)
                    continue
                self._send_durable(target[0], msg, target[1])
                continue
            topic = self._topic_for(live, msg)
            if topic is None:
                continue
            if retained:
                stored_qos = published_qos(msg.headers) or 1
                self._send_retained_one(live, msg, topic, min(stored_qos, live.record.qos))
            else:
                self._send_durable(live, msg, topic)

    # -- acknowledgements from the client ------------------------------------------

    def on_puback(self, pid: int) -> None:
        key = self.conn.session.outbound.puback(pid)
        if key is not None:
            reply = self._finish(key)
            if reply:
                self.conn.broker.log.ack_nowait(reply)
        self._pump()

    async def on_pubrec(self, packet: Pubrec) -> None:
        session = self.conn.session
        key = session.outbound.pubrec(packet.packet_id)
        if key is not None:
            reply = self._finish(key)
            if reply:
                self.conn.broker.log.ack_nowait(reply)
        if packet.reason_code >= 0x80:
            session.outbound.pubcomp(packet.packet_id)  # [MQTT-4.3.3-?] the exchange ends here
            self._pump()
            return
        session.send(Pubrel(packet.packet_id))
        self.conn.schedule_flush()

    async def on_pubcomp(self, pid: int) -> None:
        self.conn.session.outbound.pubcomp(pid)
        self._pump()

    def _finish(self, key: _Key) -> str | None:
        self._pids.pop(key, None)
        return self._replies.pop(key, None)
