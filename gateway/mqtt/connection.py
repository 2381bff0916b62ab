"""The asyncio driver of one MQTT client: ByteStream <-> MqttSession <-> Bus and store.

Owns what the sans-I/O session cannot: the CONNECT deadline and keep-alive
(exactly 1.5 times the Keep Alive, [MQTT-3.1.2-22]), authentication, session
takeover, loading and saving the session record, the Bus subscriptions and
durable consumers behind each MQTT subscription (``subscriptions.py``),
acknowledging QoS 1 PUBLISHes only once the message is stored, Wills, and
write batching (one socket write per event-loop turn, not per message).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import NoReturn

from gateway.accounts_errors import AccountUnavailable
from gateway.auth.jwt import is_jwt
from gateway.auth.users import ANONYMOUS, AuthenticationFailed, Credentials, Identity
from gateway.bus.api import BusError
from gateway.listeners.stream import ByteStream
from gateway.mqtt.broker import NEVER_EXPIRES, MqttBroker
from gateway.mqtt.codec import BarePublishes
from gateway.mqtt.errors import MQTTError
from gateway.mqtt.fastpath import cached_topic_to_subject
from gateway.mqtt.messages import ORIGIN, PUB, RETAIN, publish_headers
from gateway.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    Unsubscribe,
    Will,
)
from gateway.mqtt.properties import Properties
from gateway.mqtt.reason_codes import ReasonCode
from gateway.mqtt.session import MqttSession, Qos2Resent, State
from gateway.mqtt.store import (
    SessionRecord,
    StagedMessage,
    StoreError,
    SubscriptionRecord,
    hash8,
)
from gateway.mqtt.store.errors import SessionCollision
from gateway.mqtt.subscriptions import Subscriptions
from gateway.mqtt.topics import is_internal_subject, topic_to_subject

log = logging.getLogger("jetgate.mqtt")


_MAX_ROUTES = 4096
#: How long a connection closing on a violation waits for the PUBACKs of what came before it.
STORE_WAIT = 2.0
#: PUBLISHes with properties or QoS 1/2 handled from one read before the other connections
#: get a turn: a read of 64 KiB holds ~2,900 small QoS 1 PUBLISHes (13 ms of work), and
#: meanwhile no subscriber's PUBACK was read, so deliveries stalled on max_ack_pending.
PUBLISH_SLICE = 256
#: How long an ending connection waits for the PUBRELs it received to be released.
RELEASE_WAIT = 10.0
#: How long a connection closed for a violation waits for the client to read the reason.
LINGER = 1.0

_REFUSALS: dict[int, str] = {
    ReasonCode.TOPIC_NAME_INVALID: "the $MQTT namespace is internal",
    ReasonCode.NOT_AUTHORIZED: "publish not permitted on this topic",
    ReasonCode.PAYLOAD_FORMAT_INVALID: "payload is not UTF-8 as its format indicator says",
}
# What a client refused at authentication is told (the details go to the log).
_AUTH_REFUSALS: dict[int, str] = {
    ReasonCode.NOT_AUTHORIZED: "not authorized",
    ReasonCode.BAD_USER_NAME_OR_PASSWORD: "bad user name or password",
}


class ConnectionClosed(Exception):
    """The connection is over; unwinds the read loop."""


class _Release:
    """A PUBREL being released: its staged message, and how taking it out of the store went."""

    def __init__(self, pid: int, staged: StagedMessage) -> None:
        self.pid = pid
        self.staged = staged
        self.done = False
        self.found = False
        self.failed = False


def _released(staged: StagedMessage) -> dict[str, str]:
    """The headers a released QoS 2 message goes on with."""
    headers = dict(staged.headers)
    headers[PUB] = "2"
    return headers


class MqttConnection:
    """Serves one MQTT client until it leaves, is taken over or is closed."""

    def __init__(
        self,
        stream: ByteStream,
        broker: MqttBroker,
        broker_for: Callable[[str], Awaitable[MqttBroker]] | None = None,
    ) -> None:
        self.stream = stream
        self.broker = broker
        self._broker_for = broker_for
        self.options = broker.options
        self.cid = stream.info.id
        # max_payload bounds the payload, as in the NATS server; the packet may be as
        # much larger as a NATS control line (topic and properties).
        self.session = MqttSession(max_packet_size=self.max_packet_size)
        self.client_id = ""
        self.client_hash = ""
        self.identity: Identity = ANONYMOUS
        self.expiry_interval = 0
        self.will: Will | None = None
        self.subs = Subscriptions(self)
        self.record: SessionRecord | None = None
        #: Whether the store may hold QoS 2 messages of this session awaiting PUBREL: it
        #: was resumed, or this connection staged one. Otherwise its end purges none.
        self._may_hold_qos2 = False
        self._graceful = False
        self._closed = asyncio.Event()
        self._last_read = time.monotonic()
        self._flush_scheduled = False
        #: QoS 1 publishes handed to the log and not yet answered, and who waits until
        #: no more than ``_stored_down_to`` are (``_wait_stored``).
        self._storing = 0
        self._reason_sent = False
        self._stored: asyncio.Future[None] | None = None
        self._stored_down_to = 0
        #: QoS 2 messages this connection staged: packet id -> (message, stream sequence),
        #: so that their PUBREL needs no read of the store.
        self._staged_here: dict[int, tuple[StagedMessage, int]] = {}
        #: Packet ids whose staging the log has not answered yet (their PUBREC is to come).
        self._staging: set[int] = set()
        #: PUBRELs being released, in arrival order (deliveries keep that order).
        self._releases: collections.deque[_Release] = collections.deque()
        self._releases_drained: asyncio.Future[None] | None = None
        self._keep_alive = 0.0
        self._restored = True
        """False while (or when) restoring a resumed session's subscriptions fails midway."""
        self.payload_limit: int | None = None
        """Operator mode: the largest payload the user's JWT limits allow (None: no limit)."""
        self._routes: dict[str, str] = {}
        """Topic -> subject ("" if refused) for bare QoS 0 publishes: the identity is fixed."""
        self._unwatch: Callable[[], None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None

    # -- the read loop -------------------------------------------------------

    async def run(self) -> None:
        """Serve the client from its first byte to the end."""
        deadline = asyncio.get_running_loop().call_later(
            self._connect_timeout(), self._connect_timed_out
        )
        # No await in except/finally blocks here: compiled (mypyc) coroutines would
        # leave their exception visible to other tasks while suspended there.
        error: BaseException | None = None
        try:
            await self._serve(deadline)
        except ConnectionClosed:
            pass
        except StoreError as exc:
            # The NATS server closes the client when the log fails it; so do we.
            log.warning("mqtt cid:%d %r: store failure, closing: %s", self.cid, self.client_id, exc)
        except BaseException as exc:  # cancelled, or a bug: re-raised once the connection ends
            error = exc
        deadline.cancel()
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        await self._end()
        self.subs.detach()  # frees the connection's objects now (see detach)
        if error is not None:
            raise error

    async def _serve(self, deadline: asyncio.TimerHandle) -> None:
        while True:
            data = await self.stream.read()
            if not data:
                return
            self._last_read = time.monotonic()
            failure: MQTTError | None = None
            try:
                await self._handle(self.session.receive_grouped(data))
            except MQTTError as exc:
                failure = exc
            if failure is not None:
                await self._protocol_failure(await self._handle_preceding(failure))
                return
            self.broker.bus.run_pending()  # deliveries in this turn, not the next
            if self._keepalive_task is None and self.session.state is State.CONNECTED:
                deadline.cancel()
                if self._keep_alive:
                    self._keepalive_task = asyncio.create_task(self._watch_keepalive())
            self._flush_now()
            if self.stream.buffered() > self.options.max_pending:
                await self.stream.drain()
            if self._storing >= self.session.receive_maximum:
                # Flow control. A 5.0 client knows the maximum (CONNACK) and is
                # disconnected for exceeding it; a 3.1.1 client is told none, so it may
                # keep any number in flight: its next read waits for the log instead.
                await self._wait_stored(self.session.receive_maximum // 2)

    async def _handle_preceding(self, failure: MQTTError) -> MQTTError:
        """Act on the packets that came before ``failure`` in its read; the error to close with.

        A valid PUBLISH before a malformed packet is still published and
        acknowledged, as it would be had the two come in separate reads.
        """
        preceding, failure.preceding = failure.preceding, []
        if not preceding:
            return failure
        try:
            await self._handle(preceding)
        except MQTTError as earlier:
            return earlier
        self.broker.bus.run_pending()
        with contextlib.suppress(TimeoutError):
            # Their PUBACKs go out before the DISCONNECT.
            await asyncio.wait_for(self._wait_stored(0), STORE_WAIT)
        self._flush_now()
        return failure

    async def _take_turns(self) -> None:
        """Let the other connections run: what was published goes out, then one loop turn."""
        self.broker.bus.run_pending()
        self._flush_now()
        await asyncio.sleep(0)

    async def _wait_stored(self, down_to: int) -> None:
        """Wait until no more than ``down_to`` QoS 1 publishes await the log's answer."""
        if self._storing <= down_to:
            return
        self._stored_down_to = down_to
        self._stored = asyncio.get_running_loop().create_future()
        await self._stored

    async def _handle(self, packets: Sequence[Packet | Qos2Resent | BarePublishes]) -> None:
        published = 0
        for packet in packets:
            if packet.__class__ is BarePublishes:
                self._publish_bare(packet)
            elif isinstance(packet, Publish):
                await self._on_publish(packet)
                published += 1
                if published % PUBLISH_SLICE == 0:
                    await self._take_turns()
            elif isinstance(packet, Puback):
                self.subs.on_puback(packet.packet_id)
            elif isinstance(packet, Qos2Resent):
                if packet.packet_id not in self._staging:  # else its PUBREC is to come
                    self.session.send(Pubrec(packet.packet_id))
            elif isinstance(packet, Pubrel):
                await self._on_pubrel(packet)
            elif isinstance(packet, Pubrec):
                await self.subs.on_pubrec(packet)
            elif isinstance(packet, Pubcomp):
                await self.subs.on_pubcomp(packet.packet_id)
            elif isinstance(packet, Subscribe):
                await self.subs.subscribe(packet)
            elif isinstance(packet, Unsubscribe):
                await self.subs.unsubscribe(packet)
            elif isinstance(packet, Connect):
                unavailable = False
                try:
                    await self._on_connect(packet)
                except StoreError as exc:
                    log.warning("mqtt cid:%d: session store unavailable: %s", self.cid, exc)
                    if self.session.state is State.CONNECTED:
                        # CONNACK already went out: end the connection instead.
                        if self.session.v5:
                            self.session.send(Disconnect(ReasonCode.SERVER_UNAVAILABLE))
                        raise ConnectionClosed from None
                    unavailable = True
                if unavailable:
                    await self._refuse(ReasonCode.SERVER_UNAVAILABLE, "session store unavailable")
                await self._handle(self.session.resume())
            elif isinstance(packet, Pingreq):
                self.session.pong()
            elif isinstance(packet, Disconnect):
                self._on_disconnect(packet)
                raise ConnectionClosed
            else:  # AUTH after CONNECT: no enhanced authentication is offered
                raise MQTTError(ReasonCode.PROTOCOL_ERROR, f"unexpected {type(packet).__name__}")

    # -- CONNECT -------------------------------------------------------------

    def _connect_timeout(self) -> float:
        override = self.options.mqtt.authorization
        if override is not None and override.timeout:
            return override.timeout
        return self.options.authorization.timeout

    def _connect_timed_out(self) -> None:
        if self.session.state is not State.CONNECTED:
            log.info("mqtt cid:%d: no CONNECT within the timeout", self.cid)
            self.broker.count("connect_timeouts")
            self.broker.spawn(self.stream.close())

    async def _on_connect(self, packet: Connect) -> None:
        session = self.session
        v5 = session.v5
        props = packet.properties
        if v5 and props.authentication_method is not None:
            await self._refuse(ReasonCode.BAD_AUTHENTICATION_METHOD, "enhanced authentication")
        client_id = packet.client_id
        assigned = False
        if not client_id:
            if not packet.clean_start and not v5:
                await self._refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "empty client id")
            client_id = "jetgate-" + secrets.token_urlsafe(12)
            assigned = True
        self.identity = await self._authenticate(packet)
        if self._broker_for is not None:
            missing: AccountUnavailable | None = None
            try:
                self.broker = await self._broker_for(self.identity.account)  # account isolation
            except AccountUnavailable as exc:
                log.warning("mqtt cid:%d: %s", self.cid, exc)
                missing = exc
            if missing is not None:
                await self._refuse(ReasonCode.SERVER_UNAVAILABLE, str(missing))
        self._unwatch = self.broker.users.watch(self.identity, self._authentication_ended)
        self.stream.on_revoked = self._authentication_ended
        user_limit = self.identity.limits.payload
        self.payload_limit = (
            self.options.max_payload
            if user_limit is None
            else min(user_limit, self.options.max_payload)
        )
        will = packet.will
        if will is not None:
            if self.payload_limit is not None and len(will.payload) > self.payload_limit:
                await self._refuse(ReasonCode.PACKET_TOO_LARGE, "will payload over the limit")
            if will.qos == 2 and self.options.mqtt.reject_qos2_publish:
                await self._refuse(ReasonCode.QOS_NOT_SUPPORTED, "will at QoS 2")
            if is_internal_subject(topic_to_subject(will.topic)):
                await self._refuse(ReasonCode.TOPIC_NAME_INVALID, "will in $MQTT")
        self.client_id = client_id
        self.client_hash = hash8(client_id)
        if v5:
            self.expiry_interval = props.session_expiry_interval or 0
        else:
            self.expiry_interval = 0 if packet.clean_start else NEVER_EXPIRES
        broker = self.broker
        if not broker.bus.connected:
            await self._refuse(ReasonCode.SERVER_UNAVAILABLE, "the upstream NATS is unreachable")
        await broker.claim_local(client_id)  # [MQTT-3.1.4-3]
        broker.cancel_will(client_id)
        broker.cancel_expiry(client_id)
        collision = False
        try:
            record = await broker.store.load_session(client_id)
            if record is not None and await broker.claim_remote(record):
                record = await broker.store.load_session(client_id)
        except SessionCollision:
            collision = True
        if collision:
            await self._refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "client id hash collision")
        present = False
        if record is not None:
            if packet.clean_start or _expired(record):
                await broker.store.delete_session(client_id)
                record = None
            else:
                present = True
        self._may_hold_qos2 = present
        if not present and self.expiry_interval == 0 and not broker.shared_store:
            # Ends with the connection, on the only gateway using this store: no record.
            self.record = None
        else:
            self.record = await self._save_new_record(record)
        self.will = will
        self._keep_alive = packet.keep_alive * 1.5
        session.send(Connack(ReasonCode.SUCCESS, present, self._connack_properties(assigned)))
        session.accept()
        broker.hold(client_id, self)
        log.debug("mqtt cid:%d: %r connected (v%d)", self.cid, client_id, session.version)
        if present:
            assert self.record is not None
            self._restored = False
            await self.subs.restore(self.record)
            self._restored = True

    async def _save_new_record(self, record: SessionRecord | None) -> SessionRecord:
        """The session record of this connection, held by this gateway, saved."""
        broker = self.broker
        return await broker.store.save_session(
            SessionRecord(
                client_id=self.client_id,
                expiry_interval=self.expiry_interval,
                subscriptions=record.subscriptions if record else {},
                pending_pubrel=record.pending_pubrel if record else (),
                disconnected_at=None,
                revision=record.revision if record else 0,
                holder=broker.gateway_id,
            )
        )

    def reason(self, text: str) -> Properties | None:
        """A Reason String property for 5.0 clients that did not turn problem information off."""
        session = self.session
        if session.v5 and session.problem_information:
            return Properties(reason_string=text)
        return None

    def _connack_properties(self, assigned: bool) -> Properties | None:
        if not self.session.v5:
            return None
        session = self.session
        props = Properties(
            topic_alias_maximum=session.topic_alias_maximum,
            maximum_packet_size=self.max_packet_size,
            retain_available=1,
            wildcard_subscription_available=1,
            subscription_identifier_available=1,
            shared_subscription_available=1,
        )
        props.receive_maximum = session.receive_maximum
        if self.options.mqtt.reject_qos2_publish:
            props.maximum_qos = 1
        if assigned:
            props.assigned_client_identifier = self.client_id
        return props

    async def _authenticate(self, packet: Connect) -> Identity:
        password: str | None = None
        if packet.password is not None:
            try:
                password = packet.password.decode("utf-8")
            except UnicodeDecodeError:
                password = None
            if password is None:
                await self._refuse(ReasonCode.BAD_USER_NAME_OR_PASSWORD, "password not UTF-8")
        credentials = Credentials(
            username=packet.username,
            password=password,
            token=password,
            jwt=password if is_jwt(password) else None,  # operator mode: a bearer user JWT
        )
        try:
            info = self.stream.info
            return await self.broker.users.authenticate(
                info.kind,
                credentials,
                address=info.peer_host,
                certificate=info.peer_certificate,
            )
        except AuthenticationFailed as exc:
            failed = exc
        log.warning("mqtt cid:%d: authentication error - %s", self.cid, failed.reason)
        code = ReasonCode.NOT_AUTHORIZED
        if self.session.v5 and not failed.not_authorized:
            code = ReasonCode.BAD_USER_NAME_OR_PASSWORD
        # failed.reason is for the log only: the client learns no more than the code
        # (which user names exist, say), as NATS clients get 'Authorization Violation'.
        await self._refuse(code, failed.reason, _AUTH_REFUSALS[code])
        raise failed  # unreachable: _refuse raises

    @property
    def max_packet_size(self) -> int:
        """The largest packet accepted (and announced to 5.0 clients)."""
        return self.options.max_payload + self.options.max_control_line

    def _authentication_ended(self, reason: str) -> None:
        """The user expired or was revoked (operator mode), or its TLS certificate was:
        5.0 DISCONNECT 0x87, then close (the Will is sent)."""
        log.info("mqtt cid:%d %r: closing: %s", self.cid, self.client_id, reason)
        if self.session.v5 and self.session.state is State.CONNECTED:
            self.session.send(Disconnect(ReasonCode.NOT_AUTHORIZED, self.reason(reason)))
            self._flush_now()
        self.broker.spawn(self.stream.close())

    async def _refuse(self, code: int, reason: str, told: str | None = None) -> None:
        """CONNACK with a failure code, then close ([MQTT-3.2.2-5]).

        ``reason`` is logged, and sent as the 5.0 Reason String unless ``told`` is given.
        """
        self.broker.count("connect_refused")
        # The codec turns the code into a 3.1.1 return code for older clients.
        self.session.send(Connack(code, False, self.reason(reason if told is None else told)))
        self._graceful = True  # no Will: the connection never got going
        log.info("mqtt cid:%d: CONNECT refused (0x%02X): %s", self.cid, code, reason)
        raise ConnectionClosed

    # -- PUBLISH from the client -----------------------------------------------

    async def _on_publish(self, packet: Publish) -> None:
        qos = packet.qos
        if self.payload_limit is not None and len(packet.payload) > self.payload_limit:
            self._payload_over_limit(len(packet.payload))
        subject = cached_topic_to_subject(packet.topic)
        refused = self._publish_refusal(packet, subject)
        if refused is not None:
            self.broker.count("publish_refused")
            why = self.reason(_REFUSALS.get(refused, "refused"))
            if qos == 1:
                self.session.send(Puback(packet.packet_id, refused, why))
            elif qos == 2:
                self.session.send(Pubrec(packet.packet_id, refused, why))
            return
        origin = self.client_hash if self.subs.has_no_local else None
        headers = publish_headers(qos, packet.properties if self.session.v5 else None, origin)
        if packet.retain:
            headers = dict(headers or {})
            headers[RETAIN] = "1"
        if qos == 2:
            staged = StagedMessage(
                packet.topic, subject, packet.payload, packet.retain, headers or {}
            )
            self._may_hold_qos2 = True
            self._stage_pipelined(packet.packet_id, staged)
            return
        reply = self._reply_subject(packet)
        if qos == 1 and not packet.retain:
            self._publish_pipelined(
                packet.topic, subject, packet.payload, packet.packet_id, headers, reply
            )
            return
        await self._deliver_published(
            packet.topic, subject, packet.payload, qos, packet.retain, headers, reply
        )
        if qos == 1:
            self.session.send(Puback(packet.packet_id))

    def _reply_subject(self, packet: Publish) -> str:
        """The NATS reply subject for a 5.0 Response Topic, so NATS services can answer."""
        topic = packet.properties.response_topic if self.session.v5 else None
        if not topic:
            return ""
        subject = cached_topic_to_subject(topic)
        return "" if is_internal_subject(subject) else subject

    def _publish_pipelined(
        self,
        topic: str,
        subject: str,
        payload: bytes,
        pid: int,
        headers: Mapping[str, str] | None,
        reply: str = "",
    ) -> None:
        """QoS 1 without waiting: PUBACK once the log has stored it, in publish order."""
        broker = self.broker
        self._core_publish(subject, payload, reply, headers)

        self._storing += 1

        def acknowledge(stored: bool) -> None:
            self._answered()
            if not stored:
                self._store_failed()  # no PUBACK: the client will resend
                return
            self.session.send(Puback(pid))
            self.schedule_flush()

        broker.store.store_message_then(subject, payload, headers or {}, acknowledge)

    def _answered(self) -> None:
        """One piece of work handed to the log (``_storing``) has its answer."""
        self._storing -= 1
        waiter = self._stored
        if waiter is not None and self._storing <= self._stored_down_to and not waiter.done():
            waiter.set_result(None)

    def _store_failed(self) -> None:
        """The log refused or lost a publish, staging or release: the client is closed."""
        self.broker.count("store_failures")
        self.broker.spawn(self.stream.close())

    def _stage_pipelined(self, pid: int, staged: StagedMessage) -> None:
        """QoS 2 PUBLISH without waiting: PUBREC once the log holds it, in publish order."""
        self._storing += 1
        self._staging.add(pid)

        def held(outcome: int | StoreError | None) -> None:
            self._answered()
            self._staging.discard(pid)
            if isinstance(outcome, StoreError):
                log.warning("mqtt cid:%d: %s", self.cid, outcome)
                self._store_failed()
                return
            if outcome is not None:  # None: already staged, the first payload stays
                self._staged_here[pid] = (staged, outcome)
            self.session.send(Pubrec(pid))
            self.schedule_flush()

        self.broker.store.stage_qos2_then(self.client_hash, pid, staged, held)

    def _payload_over_limit(self, size: int) -> NoReturn:
        """As the NATS server's Maximum Payload Violation: the connection ends (5.0: 0x95)."""
        raise MQTTError(
            ReasonCode.PACKET_TOO_LARGE,
            f"payload of {size} bytes over the limit of {self.payload_limit}",
        )

    def _publish_bare(self, run: BarePublishes) -> None:
        """The hot path: QoS 0 PUBLISHes without RETAIN or properties; nothing to await."""
        if self.payload_limit is not None:
            largest = max(map(len, run.payloads))
            if largest > self.payload_limit:
                self._payload_over_limit(largest)
        topic = run.topic
        subject = self._routes.get(topic)
        if subject is None:
            subject = self._route(topic)
        if not subject:
            self.broker.count("publish_refused", len(run.payloads))
            return
        if self.subs.has_no_local:
            origin = {ORIGIN: self.client_hash}
            for payload in run.payloads:
                self._core_publish(subject, payload, "", origin)
            return
        try:
            self.broker.bus.publish_many(subject, run.payloads)
        except BusError as exc:
            log.warning("mqtt cid:%d: publish to %s failed: %s", self.cid, subject, exc)

    def _route(self, topic: str) -> str:
        """The subject a bare QoS 0 publish on ``topic`` goes to, or "" when refused (cached)."""
        subject = cached_topic_to_subject(topic)
        if is_internal_subject(subject) or not self.identity.permissions.may_publish(subject):
            subject = ""
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[topic] = subject
        return subject

    def _core_publish(
        self, subject: str, payload: bytes, reply: str, headers: Mapping[str, str] | None
    ) -> bool:
        """Publish on the bus (NATS subscribers, QoS 0 MQTT subscribers); False if it failed."""
        try:
            self.broker.bus.publish(subject, payload, reply, headers)
        except BusError as exc:
            log.warning("mqtt cid:%d: publish to %s failed: %s", self.cid, subject, exc)
            return False
        return True

    def _publish_refusal(self, packet: Publish, subject: str) -> int | None:
        """The reason code refusing a PUBLISH, or None when it may go."""
        if packet.qos == 2 and self.options.mqtt.reject_qos2_publish:
            raise MQTTError(ReasonCode.QOS_NOT_SUPPORTED, "QoS 2 publish refused by configuration")
        if is_internal_subject(subject):
            return ReasonCode.TOPIC_NAME_INVALID  # the gateway's own namespace
        if not self.identity.permissions.may_publish(subject):
            log.info("mqtt cid:%d: Publish Violation - Subject %r", self.cid, subject)
            return ReasonCode.NOT_AUTHORIZED
        if packet.properties.payload_format_indicator == 1:
            try:
                packet.payload.decode("utf-8")
            except UnicodeDecodeError:
                return ReasonCode.PAYLOAD_FORMAT_INVALID  # [MQTT-3.3.2-4] may refuse
        return None

    async def _deliver_published(
        self,
        topic: str,
        subject: str,
        payload: bytes,
        qos: int,
        retain: bool,
        headers: Mapping[str, str] | None,
        reply: str = "",
    ) -> None:
        """Hand an accepted publish on: core subject, the log for QoS >= 1, retained store."""
        broker = self.broker
        if not self._core_publish(subject, payload, reply, headers):
            return
        if retain:
            await broker.store.set_retained(topic, subject, payload, qos, headers or {})
        if qos:
            await broker.store.store_message(subject, payload, headers or {})

    async def _on_pubrel(self, packet: Pubrel) -> None:
        pid = packet.packet_id
        here = self._staged_here.pop(pid, None)
        if here is not None and not here[0].retain:
            self._release_pipelined(pid, here[0], here[1])
            return
        # Staged by an earlier connection of the session, or retained: read from the
        # store and delivered in turn, after the releases already under way.
        await self._releases_done()
        staged = await self.broker.store.release_qos2(self.client_hash, pid)
        if staged is not None:
            await self._deliver_published(
                staged.topic, staged.subject, staged.payload, 2, staged.retain, _released(staged)
            )
        self.session.send(Pubcomp(pid))  # always, as [MQTT-4.3.3-12] allows

    def _release_pipelined(self, pid: int, staged: StagedMessage, seq: int) -> None:
        """PUBREL without waiting: the staged copy leaves the store, then goes on, then
        PUBCOMP; deliveries keep the order of the PUBRELs."""
        release = _Release(pid, staged)
        self._releases.append(release)
        self._storing += 1

        def dropped(outcome: bool | StoreError) -> None:
            if isinstance(outcome, StoreError):
                log.warning("mqtt cid:%d: %s", self.cid, outcome)
                release.failed = True
            else:
                release.found = outcome
            release.done = True
            self._releases_ready()

        self.broker.store.drop_staged_then(seq, dropped)

    def _releases_ready(self) -> None:
        """Deliver the released messages at the head of the queue whose store copy is gone."""
        releases = self._releases
        while releases and releases[0].done:
            release = releases.popleft()
            self._answered()
            if release.failed:
                self._store_failed()  # no PUBCOMP: the client will send PUBREL again
            elif release.found:
                self._deliver_released(release.pid, release.staged)
            else:
                self.session.send(Pubcomp(release.pid))  # released elsewhere meanwhile
        drained = self._releases_drained
        if not releases and drained is not None and not drained.done():
            drained.set_result(None)
        self.schedule_flush()

    def _deliver_released(self, pid: int, staged: StagedMessage) -> None:
        headers = _released(staged)
        if not self._core_publish(staged.subject, staged.payload, "", headers):
            self.session.send(Pubcomp(pid))
            return
        self._storing += 1

        def stored(ok: bool) -> None:
            self._answered()
            if not ok:
                self._store_failed()
                return
            self.session.send(Pubcomp(pid))
            self.schedule_flush()

        self.broker.store.store_message_then(staged.subject, staged.payload, headers, stored)

    async def _releases_done(self) -> None:
        """Wait until every PUBREL under way has been delivered on."""
        if self._releases:
            self._releases_drained = asyncio.get_running_loop().create_future()
            await self._releases_drained

    # -- DISCONNECT, takeover and the end ----------------------------------------

    def _on_disconnect(self, packet: Disconnect) -> None:
        if packet.reason_code == ReasonCode.DISCONNECT_WITH_WILL_MESSAGE:
            return  # the Will is published as for an ungraceful close
        self._graceful = True  # [MQTT-3.14.4-3] the Will is discarded
        self.will = None
        expiry = packet.properties.session_expiry_interval if self.session.v5 else None
        if expiry is not None:
            if self.expiry_interval == 0 and expiry != 0:
                return  # [MQTT-3.14.2-2] a protocol error; the session ends anyway
            self.expiry_interval = expiry

    async def take_over(self) -> None:
        """Another connection took this client id: DISCONNECT 0x8E and close.

        5.0 publishes the old connection's Will as for any other close, subject to
        its Will Delay, which the new connection cancels by resuming the session
        (3.1.4, 3.1.2.5); for 3.1.1 the Will is dropped, as the NATS server does.
        """
        if not self.session.v5:
            self.will = None
        if self.session.v5 and self.session.state is State.CONNECTED:
            self.session.send(Disconnect(ReasonCode.SESSION_TAKEN_OVER))
            self._flush_now()
        await self.stream.close()
        await self._closed.wait()

    async def _protocol_failure(self, exc: MQTTError) -> None:
        self.broker.count(
            "malformed" if exc.reason_code == ReasonCode.MALFORMED_PACKET else "protocol_errors"
        )
        log.info(
            "mqtt cid:%d %r: 0x%02X %s", self.cid, self.client_id, exc.reason_code, exc.message
        )
        session = self.session
        if session.state is State.CONNECTED and session.v5:
            session.send(Disconnect(exc.reason_code, self.reason(exc.message)))  # [MQTT-4.13.1-1]
            self._reason_sent = True
        elif session.state is not State.CONNECTED:
            code = exc.reason_code
            if code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION or (
                session.v5 and session.state is State.CONNECTING
            ):
                session.send(Connack(code))
                self._reason_sent = True
        self._flush_now()

    async def _end(self) -> None:
        """Release subscriptions, publish or schedule the Will, keep or end the session."""
        if self._unwatch is not None:
            self._unwatch()
        self.stream.on_revoked = None
        self.session.close()
        self._flush_now()
        if self._reason_sent:
            # The client may still be sending; closing now could reset the
            # connection before it reads the DISCONNECT (or CONNACK) and its reason.
            await self.stream.close_after_reply(LINGER)
        else:
            await self.stream.close()
        broker = self.broker
        holds = bool(self.client_id) and broker.live.get(self.client_id) is self
        log.debug(
            "mqtt cid:%d: %r ended (graceful %s, holds the client id %s)",
            self.cid,
            self.client_id,
            self._graceful,
            holds,
        )
        try:
            if holds:
                await self.subs.release()
                if not self._graceful and self.will is not None:
                    self._schedule_will(self.will)
                with contextlib.suppress(TimeoutError):
                    # A PUBREL received goes on before the session's staged messages
                    # may be purged (a clean session ending).
                    await asyncio.wait_for(self._releases_done(), RELEASE_WAIT)
                await self._keep_or_end_session()
        except StoreError as exc:
            log.warning("mqtt cid:%d: cleaning up the session failed: %s", self.cid, exc)
        finally:
            # Released only once the session is saved: a reconnection that arrives
            # meanwhile waits in claim_local (take_over) and then reads the saved record.
            if holds:
                broker.release(self.client_id, self)
            self._closed.set()

    async def _keep_or_end_session(self) -> None:
        broker = self.broker
        if self.expiry_interval == 0:
            broker.fire_will_now(self.client_id)
            if self.record is not None:
                await broker.store.delete_session(self.client_id, staged_qos2=self._may_hold_qos2)
            else:
                await self.subs.delete_consumers()
                if self._may_hold_qos2:
                    await broker.store.drop_qos2(self.client_hash)
            return
        if self.record is not None:
            self.record = await broker.store.save_session(
                SessionRecord(
                    client_id=self.client_id,
                    expiry_interval=self.expiry_interval,
                    subscriptions=self._subscriptions_to_keep(),
                    pending_pubrel=tuple(self.session.outbound.pending_pubrel()),
                    disconnected_at=time.time(),
                    revision=self.record.revision,
                )
            )
            log.debug(
                "mqtt cid:%d: session of %r kept (revision %d)",
                self.cid,
                self.client_id,
                self.record.revision,
            )
        broker.schedule_expiry(self.client_id, self.expiry_interval)

    def _subscriptions_to_keep(self) -> dict[str, SubscriptionRecord]:
        """The subscriptions to store: a failed restore keeps the stored ones it did not reach."""
        kept = self.subs.records()
        if not self._restored and self.record is not None:
            return {**self.record.subscriptions, **kept}
        return kept

    def _schedule_will(self, will: Will) -> None:
        delay = float(will.properties.will_delay_interval or 0) if self.session.v5 else 0.0
        identity = self.identity

        def publish() -> None:
            subject = topic_to_subject(will.topic)
            if not identity.permissions.may_publish(subject):
                log.info("mqtt %r: Will refused by publish permissions", self.client_id)
                return
            props = will.properties if self.session.v5 else None
            headers = publish_headers(will.qos, props, None)
            if will.retain:
                headers = dict(headers or {})
                headers[RETAIN] = "1"
            self.broker.spawn(
                self._deliver_published(
                    will.topic, subject, will.payload, will.qos, will.retain, headers
                )
            )

        self.broker.schedule_will(self.client_id, delay, publish)

    # -- keep-alive and output -----------------------------------------------------

    async def _watch_keepalive(self) -> None:
        limit = self._keep_alive
        while True:
            idle = time.monotonic() - self._last_read
            if idle >= limit:
                log.info("mqtt cid:%d %r: keep-alive timeout", self.cid, self.client_id)
                self.broker.count("keepalive_timeouts")
                if self.session.v5:
                    self.session.send(Disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT))
                    self._flush_now()
                await self.stream.close()
                return
            await asyncio.sleep(limit - idle)

    def schedule_flush(self) -> None:
        """Write queued packets once this event-loop turn is over (one write, many packets)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if not self.broker.bus.call_after_deliveries(self._flush_now):
                asyncio.get_running_loop().call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_scheduled = False
        data = self.session.data_to_send()
        if data:
            self.stream.write(data)


def _expired(record: SessionRecord) -> bool:
    if record.disconnected_at is None or record.expiry_interval >= NEVER_EXPIRES:
        return False
    return time.time() > record.disconnected_at + record.expiry_interval
