"""MqttStore: every durable piece of MQTT state, on the ``Log`` interface only.

One object per gateway. It knows no backend: the same code runs on the
embedded log and on real JetStream, where several gateways may share the
streams (upstream mode), so nothing here trusts gateway memory over the log
except the retained index, which a consumer keeps current.

==================  ==========================  ========================================
stream              subjects                    holds
==================  ==========================  ========================================
``$MQTT_sess``      ``$MQTT.sess.<hash8>``      one JSON session record per client
``$MQTT_msgs``      ``$MQTT.msgs.<subject>``    QoS >= 1 messages (interest retention)
``$MQTT_qos2in``    ``$MQTT.qos2.in.<h>.<pi>``  inbound QoS 2 between PUBLISH and PUBREL
``$MQTT_rmsgs``     ``$MQTT.rmsgs.<subject>``   retained messages, one per subject
==================  ==========================  ========================================

Concurrency. A session record's revision is its stream sequence; a save
carries ``Nats-Expected-Last-Subject-Sequence: <revision>``, so two gateways
resuming the same client cannot both win (nats-mqtt.md 2.8 step 9). Deleting
a session first deletes its record by sequence, which fails if anyone saved
since, and only then its consumers. A staged QoS 2 message is published with
expected last subject sequence 0, so the first payload wins even on a stream
made without ``discard_new_per_subject``. A session's staged messages go with it
(``drop_qos2``); a session that ends with its connection purges them only if it
may hold some, and those a crash left are found with ``qos2_holders``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence

from gateway.bus.api import BusError, Msg, Subscription
from gateway.mqtt.store.errors import (
    SessionCollision,
    SessionConflict,
    StoreError,
    StoreTimeout,
)
from gateway.mqtt.store.names import (
    DELIVER_PREFIX,
    MSGS_PREFIX,
    MSGS_STREAM,
    NEVER_EXPIRES,
    QOS2_PREFIX,
    QOS2_STREAM,
    RETAINED_PREFIX,
    RETAINED_STREAM,
    SESSIONS_PREFIX,
    SESSIONS_STREAM,
    hash8,
    is_shared_consumer,
    nuid,
    qos2_subject,
    session_subject,
    shared_consumer_name,
    shared_deliver_subject,
)
from gateway.mqtt.store.records import (
    RetainedMessage,
    SessionRecord,
    StagedMessage,
    decode_retained,
    decode_session,
    decode_staged,
    encode_retained,
    encode_session,
    encode_staged,
    session_client_id,
)
from gateway.mqtt.store.retained import DEFAULT_MAX_CACHED_PAYLOAD, IndexEntry, RetainedIndex
from streams.api import HDR_EXPECTED_LAST_SUBJECT_SEQ, Log
from streams.errors import (
    ConsumerNameInUse,
    ConsumerNotFound,
    LogError,
    LogTimeout,
    MessageNotFound,
    StreamLimitReached,
    StreamNameInUse,
    StreamNotFound,
    WrongLastSequence,
)
from streams.types import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    PubAck,
    RetentionPolicy,
    StoredMsg,
    StreamConfig,
    parse_ack,
)

__all__ = ["MqttStore"]

logger = logging.getLogger(__name__)

_LOADER_INACTIVE = 300.0  # the NATS server's retained loader: 5 minutes


@contextlib.contextmanager
def _log_errors(what: str) -> Iterator[None]:
    """Turn a log or bus failure into a StoreError naming what was being done."""
    try:
        yield
    except (LogError, BusError) as exc:
        raise _log_error(what, exc) from exc


def _log_error(what: str, exc: LogError | BusError) -> StoreError:
    """The StoreError (StoreTimeout for a timeout) for a log failure while doing ``what``."""
    kind = StoreTimeout if isinstance(exc, LogTimeout) else StoreError
    error = kind(f"{what}: {exc}")
    error.__cause__ = exc
    return error


def _store_error(exc: BaseException) -> BaseException:
    if isinstance(exc, LogTimeout):
        err: StoreError = StoreTimeout(f"storing a message: {exc}")
    elif isinstance(exc, LogError):
        err = StoreError(f"storing a message: {exc}")
    else:
        return exc
    err.__cause__ = exc
    return err


def _is_expired(record: SessionRecord, now: float) -> bool:
    if record.disconnected_at is None or record.expiry_interval >= NEVER_EXPIRES:
        return False
    return record.disconnected_at + record.expiry_interval <= now


class MqttStore:
    """Sessions, retained messages, QoS >= 1 messages and staged QoS 2 on a ``Log``.

    ``origin`` (optional) names this gateway in the ``Nmqtt-ROrigin`` header of
    retained records; ``domain`` (optional) puts session records under
    ``$MQTT.sess.<domain>.`` as the NATS server does with a JetStream domain.
    ``replicas`` is recorded for when the ``Log`` interface carries a replica
    count; today streams get the backend's default.

    The retained loader is an ephemeral consumer; JetStream drops it after 5
    minutes without interest (a long disconnect) or with a server restart.
    Every ``loader_check_interval`` seconds (0: never) the store checks it is
    still there and creates a new one if not; markers of cleared subjects stay
    in the stream, so the new loader also removes what was cleared meanwhile.
    """

    def __init__(
        self,
        log: Log,
        *,
        ack_wait: float,
        max_ack_pending: int,
        replicas: int = 1,
        consumer_memory_storage: bool = False,
        consumer_inactive_threshold: float = 0.0,
        origin: str | None = None,
        domain: str | None = None,
        load_timeout: float = 30.0,
        max_cached_payload: int = DEFAULT_MAX_CACHED_PAYLOAD,
        loader_check_interval: float = 30.0,
    ) -> None:
        self._log = log
        self._ack_wait = ack_wait
        self._max_ack_pending = max_ack_pending
        self.replicas = replicas
        self._mem = consumer_memory_storage
        self._inactive = consumer_inactive_threshold if consumer_inactive_threshold > 0 else None
        self._origin = origin
        self._domain = domain
        self._load_timeout = load_timeout
        self._index = RetainedIndex(max_cached_payload)
        self._loader_sub: Subscription | None = None
        self._loader_name: str | None = None
        self._loaded = asyncio.Event()
        self._check_interval = loader_check_interval
        self._checker: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------

    def stream_configs(self) -> list[StreamConfig]:
        """The streams this store creates when missing, in creation order."""
        sess_subject = (
            f"{SESSIONS_PREFIX}{self._domain}.>" if self._domain else SESSIONS_PREFIX + ">"
        )
        return [
            StreamConfig(
                name=SESSIONS_STREAM,
                subjects=(sess_subject,),
                max_msgs_per_subject=1,
                allow_direct=True,
                num_replicas=self.replicas,
            ),
            StreamConfig(
                name=MSGS_STREAM,
                subjects=(MSGS_PREFIX + ">",),
                retention=RetentionPolicy.INTEREST,
                num_replicas=self.replicas,
            ),
            StreamConfig(
                name=QOS2_STREAM,
                subjects=(QOS2_PREFIX + ">",),
                max_msgs_per_subject=1,
                discard=DiscardPolicy.NEW,
                discard_new_per_subject=True,
                allow_direct=True,
                num_replicas=self.replicas,
            ),
            StreamConfig(
                name=RETAINED_STREAM,
                subjects=(RETAINED_PREFIX + ">",),
                max_msgs_per_subject=1,
                allow_direct=True,
                num_replicas=self.replicas,
            ),
        ]

    async def start(self) -> None:
        """Create missing streams (existing ones are left as they are) and load the retained index.

        Idempotent. StoreError if the log refuses, StoreTimeout if the index
        does not load within ``load_timeout``.
        """
        if self._closed:
            raise StoreError("store closed")
        if self._started:
            return
        for config in self.stream_configs():
            await self._ensure_stream(config)
        await self._start_loader()
        try:
            await asyncio.wait_for(self._loaded.wait(), self._load_timeout)
        except TimeoutError:
            loaded = False
        else:
            loaded = True
        if not loaded:
            await self._stop_loader()
            raise StoreTimeout(f"retained messages not loaded within {self._load_timeout}s")
        if self._check_interval > 0:
            self._checker = asyncio.create_task(self._check_loader())
        self._started = True

    async def _ensure_stream(self, config: StreamConfig) -> None:
        with _log_errors(f"creating stream {config.name}"):
            try:
                await self._log.stream_info(config.name)
                return
            except StreamNotFound:
                pass
            # StreamNameInUse: another gateway created it meanwhile; keep its config.
            with contextlib.suppress(StreamNameInUse):
                await self._log.add_stream(config)

    async def _start_loader(self) -> None:
        subject = DELIVER_PREFIX + nuid()
        name = f"{RETAINED_STREAM}_{nuid()}"
        bus = self._log.bus
        error: BaseException | None = None
        try:
            with _log_errors("starting the retained loader"):
                self._loader_sub = await bus.subscribe(subject, callback=self._on_retained)
                await bus.flush()
                info = await self._log.add_consumer(
                    RETAINED_STREAM,
                    ConsumerConfig(
                        name=name,
                        deliver_subject=subject,
                        filter_subject=RETAINED_PREFIX + ">",
                        deliver_policy=DeliverPolicy.ALL,
                        ack_policy=AckPolicy.NONE,
                        inactive_threshold=_LOADER_INACTIVE,
                    ),
                )
        except BaseException as exc:  # re-raised once the loader is stopped
            error = exc
        if error is not None:
            await self._stop_loader()
            raise error
        self._loader_name = info.name
        # Nothing pending and nothing delivered: the stream is empty. Otherwise the
        # delivery that reports num_pending == 0 sets the event.
        if info.num_pending == 0:  # nothing to deliver (the stream may have only deletes)
            self._loaded.set()

    async def _check_loader(self) -> None:
        while True:
            await asyncio.sleep(self._check_interval)
            name = self._loader_name
            try:
                if name is not None:
                    await self._log.consumer_info(RETAINED_STREAM, name)
                    continue
            except ConsumerNotFound:
                logger.warning("retained loader %s is gone; creating a new one", name)
            except LogError as exc:
                logger.debug("retained loader check failed: %s", exc)
                continue
            await self._stop_loader()
            try:
                await self._start_loader()
            except StoreError as exc:
                logger.warning("cannot create the retained loader: %s", exc)

    def _on_retained(self, msg: Msg) -> None:
        try:
            meta = parse_ack(msg.reply)
        except LogError:
            logger.warning("retained loader: delivery without ack metadata on %s", msg.subject)
            return
        if msg.subject.startswith(RETAINED_PREFIX):
            subject = msg.subject[len(RETAINED_PREFIX) :]
            message = decode_retained(subject, msg.payload, msg.headers, meta.timestamp / 1e9)
            self._index.apply(meta.stream_seq, subject, message)
        if meta.num_pending == 0:
            self._loaded.set()

    async def _stop_loader(self) -> None:
        sub, self._loader_sub = self._loader_sub, None
        name, self._loader_name = self._loader_name, None
        if sub is not None:
            with contextlib.suppress(BusError):
                await sub.unsubscribe()
        if name is not None:
            # Best effort: the loader is ephemeral and expires on its own.
            with contextlib.suppress(LogError):
                await self._log.delete_consumer(RETAINED_STREAM, name)

    async def close(self) -> None:
        """Stop following retained changes. The log stays open (its owner closes it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        checker, self._checker = self._checker, None
        if checker is not None:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker
        await self._stop_loader()

    # -- QoS >= 1 messages ----------------------------------------------------------

    def store_message(
        self, subject: str, payload: bytes, headers: Mapping[str, str]
    ) -> Awaitable[PubAck]:
        """Start storing a QoS >= 1 message on ``$MQTT.msgs.<subject>``; await = stored.

        Pipelined: call it for several messages, then await each; acks resolve
        in publish order. A failure arrives as StoreError from the await.
        """
        inner = self._log.publish_async(MSGS_PREFIX + subject, payload, headers)
        outer: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()

        def done(fut: asyncio.Future[PubAck]) -> None:
            if outer.done():
                return
            if fut.cancelled():
                outer.cancel()
            elif (exc := fut.exception()) is not None:
                outer.set_exception(_store_error(exc))
            else:
                outer.set_result(fut.result())

        inner.add_done_callback(done)
        return outer

    def store_message_then(
        self,
        subject: str,
        payload: bytes,
        headers: Mapping[str, str],
        then: Callable[[bool], None],
    ) -> None:
        """``store_message`` for the hot path: ``then(stored)`` runs once the log answers.

        No future: the log calls back from its batch (``Log.publish_then``).
        """

        def done(result: PubAck | LogError) -> None:
            then(not isinstance(result, LogError))

        self._log.publish_then(MSGS_PREFIX + subject, payload, headers, done)

    async def create_consumer(
        self,
        client_hash: str,
        subject: str,
        deliver_subject: str,
        *,
        queue_group: str | None = None,
        head: str | None = None,
        ack_wait: float | None = None,
        max_ack_pending: int | None = None,
    ) -> str:
        """Create the durable consumer of one QoS >= 1 subscription; return its name.

        Filter ``$MQTT.msgs.<subject>``, deliver new, ack explicit, push to
        ``deliver_subject``. Named ``<client_hash>_<nuid>``; for a shared group
        the name is ``shared_consumer_name(group, subject, head)``, the deliver
        subject must be ``shared_deliver_subject(group, head or subject)`` (``head``:
        the first subject of a filter with several, as ``a.>`` for ``a/#``), and
        an existing consumer is reused as it is, by every member.
        """
        if queue_group is not None:
            name = shared_consumer_name(queue_group, subject, head)
            expected = shared_deliver_subject(queue_group, head or subject)
            if deliver_subject != expected:
                raise StoreError(
                    f"a shared subscription must deliver to {expected!r}, not {deliver_subject!r}"
                )
        else:
            name = f"{client_hash}_{nuid()}"
        config = ConsumerConfig(
            durable_name=name,
            deliver_subject=deliver_subject,
            deliver_group=queue_group,
            filter_subject=MSGS_PREFIX + subject,
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait if ack_wait is None else ack_wait,
            max_ack_pending=self._max_ack_pending if max_ack_pending is None else max_ack_pending,
            max_deliver=-1,
            mem_storage=self._mem,
            inactive_threshold=self._inactive,
        )
        with _log_errors(f"creating consumer for {subject}"):
            try:
                await self._log.add_consumer(MSGS_STREAM, config)
            except ConsumerNameInUse:
                if queue_group is None:
                    raise
                # The group's consumer exists with other settings: share it as it is.
        return name

    @staticmethod
    def session_consumer_name(client_hash: str) -> str:
        """The one durable consumer of a session in ``consumer_mode: session``."""
        return f"{client_hash}_session"

    def _session_config(
        self, client_hash: str, subjects: Sequence[str], deliver_subject: str
    ) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.session_consumer_name(client_hash),
            deliver_subject=deliver_subject,
            filter_subjects=tuple(MSGS_PREFIX + subject for subject in subjects),
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            max_ack_pending=self._max_ack_pending,
            max_deliver=-1,
            mem_storage=self._mem,
            inactive_threshold=self._inactive,
        )

    async def ensure_session_consumer(
        self, client_hash: str, subjects: Sequence[str], deliver_subject: str
    ) -> str:
        """Create the session's consumer filtering ``$MQTT.msgs.<subject>`` for each subject,
        or bring an existing one to these filters (its position and pending acks kept);
        return its name.

        An existing consumer with other settings than filters (options changed, or
        another deliver subject) is deleted and created again.
        """
        if not subjects:
            raise StoreError("a session consumer needs at least one subject")
        config = self._session_config(client_hash, subjects, deliver_subject)
        name = self.session_consumer_name(client_hash)
        with _log_errors(f"creating the session consumer {name}"):
            try:
                await self._log.add_consumer(MSGS_STREAM, config)
                return name
            except ConsumerNameInUse:
                pass
            refused: LogError | None = None
            try:
                await self._log.update_consumer(MSGS_STREAM, config)
            except LogError as exc:
                if isinstance(exc, LogTimeout):
                    raise
                refused = exc
            if isinstance(refused, ConsumerNotFound):
                await self._log.add_consumer(MSGS_STREAM, config)
            elif refused is not None:
                logger.info("session consumer %s: re-created (%s)", name, refused)
                with contextlib.suppress(ConsumerNotFound):
                    await self._log.delete_consumer(MSGS_STREAM, name)
                await self._log.add_consumer(MSGS_STREAM, config)
        return name

    async def update_session_consumer(
        self, client_hash: str, subjects: Sequence[str], deliver_subject: str
    ) -> str:
        """Change the session consumer's filters to ``subjects`` (created if missing)."""
        if not subjects:
            raise StoreError("a session consumer needs at least one subject")
        config = self._session_config(client_hash, subjects, deliver_subject)
        name = self.session_consumer_name(client_hash)
        with _log_errors(f"updating the session consumer {name}"):
            try:
                await self._log.update_consumer(MSGS_STREAM, config)
                return name
            except ConsumerNotFound:
                pass
        return await self.ensure_session_consumer(client_hash, subjects, deliver_subject)

    async def consumer_exists(self, name: str) -> bool:
        """True if the durable consumer ``name`` exists on the messages stream."""
        with _log_errors(f"looking up consumer {name}"):
            try:
                await self._log.consumer_info(MSGS_STREAM, name)
            except ConsumerNotFound:
                return False
        return True

    async def consumer_names(self) -> list[str]:
        """The consumers of the messages stream."""
        with _log_errors("listing consumers"):
            return await self._log.consumer_names(MSGS_STREAM)

    async def delete_consumer(self, name: str) -> None:
        """Delete a consumer of the messages stream; a missing one is fine."""
        with _log_errors(f"deleting consumer {name}"), contextlib.suppress(ConsumerNotFound):
            await self._log.delete_consumer(MSGS_STREAM, name)

    async def ack(self, reply: str) -> None:
        """Acknowledge a delivery (the client's PUBACK or PUBCOMP)."""
        with _log_errors("acknowledging"):
            await self._log.ack(reply)

    async def nak(self, reply: str, delay: float | None = None) -> None:
        """Ask for a redelivery, after ``delay`` seconds if given."""
        with _log_errors("refusing a delivery"):
            await self._log.nak(reply, delay)

    # -- sessions -----------------------------------------------------------------------

    def _session_subject(self, client_id: str) -> str:
        return session_subject(hash8(client_id), self._domain)

    async def load_session(self, client_id: str) -> SessionRecord | None:
        """The stored session of ``client_id``, or None.

        SessionCollision if the record under its hash belongs to another client.
        """
        with _log_errors(f"loading session of {client_id!r}"):
            try:
                msg = await self._log.get_last_msg(
                    SESSIONS_STREAM, self._session_subject(client_id)
                )
            except MessageNotFound:
                return None
        record = decode_session(msg.data, msg.seq)
        if record.client_id != client_id:
            raise SessionCollision(
                f"client id {client_id!r} collides with {record.client_id!r} (hash {hash8(client_id)})"
            )
        return record

    async def save_session(self, record: SessionRecord) -> SessionRecord:
        """Store ``record`` if the stored one is still at ``record.revision`` (0: none).

        Returns the record with its new revision. SessionConflict if the stored
        record changed meanwhile; SessionCollision if it belongs to another client.
        """
        subject = self._session_subject(record.client_id)
        headers = {HDR_EXPECTED_LAST_SUBJECT_SEQ: str(record.revision)}
        with _log_errors(f"saving session of {record.client_id!r}"):
            try:
                ack: PubAck | None = await self._log.publish(
                    subject, encode_session(record), headers
                )
            except WrongLastSequence:
                ack = None
        if ack is None:
            await self.load_session(record.client_id)  # SessionCollision if not ours
            raise SessionConflict(
                f"session of {record.client_id!r} changed since revision {record.revision}"
            )
        return dataclasses.replace(record, revision=ack.seq)

    async def delete_session(
        self, client_id: str, *, revision: int | None = None, staged_qos2: bool = True
    ) -> None:
        """Delete a session: its record, its consumers and its staged QoS 2 messages.

        With ``revision``, only if the record is still at that revision
        (SessionConflict otherwise), so an expiry sweep cannot delete a session
        that a client has just resumed elsewhere. A missing record is fine.
        Consumers of shared groups belong to the group and are kept.
        ``staged_qos2=False``: the caller knows the session staged no QoS 2
        message, so there is nothing to purge (one request less in upstream mode).
        """
        subject = self._session_subject(client_id)
        msg: StoredMsg | None = None
        deleted = False
        while not deleted:
            with _log_errors(f"deleting session of {client_id!r}"):
                msg, deleted = await self._delete_newest_record(client_id, subject, revision)
        if msg is not None:
            try:
                record: SessionRecord | None = decode_session(msg.data, msg.seq)
            except StoreError:
                logger.warning("deleting an unreadable session record of %r", client_id)
                record = None
            if record is not None:
                for sub in record.subscriptions.values():
                    for name in sub.consumers:
                        if not is_shared_consumer(name):
                            await self.delete_consumer(name)
        if staged_qos2:
            await self.drop_qos2(hash8(client_id))

    async def _delete_newest_record(
        self, client_id: str, subject: str, revision: int | None
    ) -> tuple[StoredMsg | None, bool]:
        """Delete the newest session record: (it, True), (None, True) when there is none.

        (None, False) when a newer record was saved meanwhile, to be deleted in turn.
        """
        try:
            msg = await self._log.get_last_msg(SESSIONS_STREAM, subject)
        except MessageNotFound:
            if revision:
                raise SessionConflict(f"session of {client_id!r} is gone") from None
            return None, True
        owner = session_client_id(msg.data)
        if owner is not None and owner != client_id:
            raise SessionCollision(f"client id {client_id!r} collides with {owner!r}")
        if revision is not None and msg.seq != revision:
            raise SessionConflict(
                f"session of {client_id!r} is at revision {msg.seq}, not {revision}"
            )
        try:
            await self._log.delete_msg(SESSIONS_STREAM, msg.seq)
        except MessageNotFound:
            if revision is not None:
                raise SessionConflict(f"session of {client_id!r} changed") from None
            return None, False
        return msg, True

    async def sessions(self) -> list[SessionRecord]:
        """Every stored session record (a scan of the sessions stream); unreadable ones skipped."""
        prefix = f"{SESSIONS_PREFIX}{self._domain}." if self._domain else SESSIONS_PREFIX
        found: list[SessionRecord] = []
        done = asyncio.Event()

        def on_msg(msg: Msg) -> None:
            try:
                meta = parse_ack(msg.reply)
            except LogError:
                logger.warning("session scan: delivery without ack metadata on %s", msg.subject)
                return
            try:
                found.append(decode_session(msg.payload, meta.stream_seq))
            except StoreError as exc:
                logger.warning("skipping session record on %s: %s", msg.subject, exc)
            if meta.num_pending == 0:
                done.set()

        subject = DELIVER_PREFIX + nuid()
        bus = self._log.bus
        name: str | None = None
        timed_out = False
        error: BaseException | None = None
        with _log_errors("listing sessions"):
            sub = await bus.subscribe(subject, callback=on_msg)
            try:
                await bus.flush()
                info = await self._log.add_consumer(
                    SESSIONS_STREAM,
                    ConsumerConfig(
                        name=f"{SESSIONS_STREAM}_{nuid()}",
                        deliver_subject=subject,
                        filter_subject=prefix + "*",
                        deliver_policy=DeliverPolicy.ALL,
                        ack_policy=AckPolicy.NONE,
                        inactive_threshold=_LOADER_INACTIVE,
                    ),
                )
                name = info.name
                if info.num_pending == 0:  # nothing to deliver (the stream may have only deletes)
                    done.set()
                try:
                    await asyncio.wait_for(done.wait(), self._load_timeout)
                except TimeoutError:
                    timed_out = True
            except BaseException as exc:  # re-raised once the subscription and consumer are gone
                error = exc
            await sub.unsubscribe()
            if name is not None:
                with contextlib.suppress(LogError):
                    await self._log.delete_consumer(SESSIONS_STREAM, name)
            if error is not None:
                raise error
        if timed_out:
            raise StoreTimeout(f"sessions not listed within {self._load_timeout}s")
        return found

    async def expired_sessions(self, now: float) -> list[SessionRecord]:
        """Offline sessions whose expiry interval has passed at ``now`` (unix time)."""
        return [r for r in await self.sessions() if _is_expired(r, now)]

    # -- retained -------------------------------------------------------------------------

    async def set_retained(
        self, topic: str, subject: str, payload: bytes, qos: int, headers: Mapping[str, str]
    ) -> None:
        """Retain ``payload`` for ``topic`` (NATS ``subject``); an empty payload clears it."""
        delete = not payload
        hdrs = encode_retained(topic, qos, headers, self._origin, delete=delete)
        with _log_errors(f"storing the retained message of {topic!r}"):
            ack = await self._log.publish(RETAINED_PREFIX + subject, payload, hdrs)
        # The same decoding as the loader's, so both sides index the same message.
        self._index.apply(ack.seq, subject, decode_retained(subject, payload, hdrs, time.time()))

    async def retained_matching(self, subject_filters: Sequence[str]) -> list[RetainedMessage]:
        """Retained messages whose subject matches any filter, each once, in subject order.

        Answered from the index. A filter starting with a wildcard never matches a
        ``$`` subject [MQTT-4.7.2-1].
        """
        entries = self._index.match(subject_filters)
        missing = [e for e in entries if not e.cached]
        if not missing:
            return [e.message for e in entries]
        fetched = dict(
            zip(
                (e.message.subject for e in missing),
                await asyncio.gather(*(self._fetch_retained(e) for e in missing)),
                strict=True,
            )
        )
        out: list[RetainedMessage] = []
        for e in entries:
            message = fetched.get(e.message.subject, e.message) if not e.cached else e.message
            if message is not None:
                out.append(message)
        return out

    async def _fetch_retained(self, entry: IndexEntry) -> RetainedMessage | None:
        subject = entry.message.subject
        with _log_errors(f"reading the retained message of {subject}"):
            try:
                msg = await self._log.get_last_msg(RETAINED_STREAM, RETAINED_PREFIX + subject)
            except MessageNotFound:
                return None
        return decode_retained(subject, msg.data, msg.headers, msg.time / 1e9)

    @property
    def retained_count(self) -> int:
        """How many retained messages the index holds."""
        return len(self._index)

    # -- inbound QoS 2 ----------------------------------------------------------------------

    async def stage_qos2(self, client_hash: str, packet_id: int, message: StagedMessage) -> bool:
        """Keep an inbound QoS 2 message until PUBREL; False if ``packet_id`` is already staged.

        The awaitable form of ``stage_qos2_then``.
        """
        outcome: asyncio.Future[int | StoreError | None] = (
            asyncio.get_running_loop().create_future()
        )
        self.stage_qos2_then(client_hash, packet_id, message, outcome.set_result)
        staged = await outcome
        if isinstance(staged, StoreError):
            raise staged
        return staged is not None

    def stage_qos2_then(
        self,
        client_hash: str,
        packet_id: int,
        message: StagedMessage,
        then: Callable[[int | StoreError | None], None],
    ) -> None:
        """``stage_qos2`` for the hot path: ``then`` gets the staged message's sequence,
        None when ``packet_id`` was already staged, or the StoreError (in publish order)."""
        headers = encode_staged(message)
        headers[HDR_EXPECTED_LAST_SUBJECT_SEQ] = "0"

        def done(result: PubAck | LogError) -> None:
            if isinstance(result, WrongLastSequence | StreamLimitReached):
                then(None)
            elif isinstance(result, LogError):
                then(_log_error(f"staging QoS 2 message {packet_id}", result))
            else:
                then(result.seq)

        subject = qos2_subject(client_hash, packet_id)
        self._log.publish_then(subject, message.payload, headers, done)

    def drop_staged_then(self, seq: int, then: Callable[[bool | StoreError], None]) -> None:
        """Take the staged QoS 2 message at ``seq`` out of the store: ``then`` gets True, False
        if it was gone (released by a concurrent PUBREL), or the StoreError."""

        def done(error: LogError | None) -> None:
            if error is None:
                then(True)
            elif isinstance(error, MessageNotFound):
                then(False)
            else:
                then(_log_error("releasing a QoS 2 message", error))

        self._log.delete_msg_then(QOS2_STREAM, seq, done)

    async def release_qos2(self, client_hash: str, packet_id: int) -> StagedMessage | None:
        """Take the staged message of ``packet_id`` out of the store (None if there is none)."""
        subject = qos2_subject(client_hash, packet_id)
        with _log_errors(f"releasing QoS 2 message {packet_id}"):
            try:
                msg = await self._log.get_last_msg(QOS2_STREAM, subject)
                await self._log.delete_msg(QOS2_STREAM, msg.seq)
            except MessageNotFound:
                return None  # never staged, or released by a concurrent PUBREL
        return decode_staged(msg.data, msg.headers)

    async def qos2_holders(self) -> set[str]:
        """The client hashes with QoS 2 messages staged in the store."""
        with _log_errors("listing staged QoS 2 messages"):
            info = await self._log.stream_info(QOS2_STREAM, subjects_filter=f"{QOS2_PREFIX}>")
        return {
            subject[len(QOS2_PREFIX) :].partition(".")[0] for subject in info.state.subjects or ()
        }

    async def drop_qos2(self, client_hash: str) -> None:
        """Forget every staged QoS 2 message of a client (its session ended)."""
        with _log_errors("dropping staged QoS 2 messages"):
            await self._log.purge_stream(QOS2_STREAM, f"{QOS2_PREFIX}{client_hash}.>")
