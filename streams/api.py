"""The log interface: ``Log`` (streams, publish, direct get, consumers, acks) and ``KeyValue``.

Every backend implements ``Log``; callers hold only this interface and the
types in ``streams.types``. Semantics follow JetStream; where a backend could
differ in a way a user would notice, JetStream is right.

Push delivery. A consumer with a ``deliver_subject`` sends each message on
that subject on the backend's Bus (``Log.bus``). The message carries the
original stream subject, the stored headers and payload, and a reply subject
``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``
(parse it with ``streams.types.parse_ack``). The receiver acknowledges by
publishing to that reply subject on the Bus: ``+ACK``; ``-NAK`` optionally
followed by ``{"delay": <ns>}``; ``+WPI`` (in progress: restart ack_wait);
``+TERM`` (never redeliver). ``Log.ack``/``nak``/``in_progress``/``term`` do
the same from Python and may take a faster path in-process.

Publishing. ``publish_async`` is a plain method returning a future, so many
publishes can be in flight; their acks resolve in publish order. The ack means
the message is stored (for the embedded backend: written to its segment, and
fsynced under the ``always`` sync policy). Conditional publishes use
JetStream's headers (the ``HDR_*`` constants below). ``publish_then`` is the
same without a future: the backend calls back with the PubAck or the error,
in publish order, without a trip through the event loop per message.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping

from gateway.bus.api import Bus
from streams.errors import LogError, LogTimeout
from streams.types import (
    ConsumerConfig,
    ConsumerInfo,
    KeyValueConfig,
    KeyValueEntry,
    PubAck,
    StoredMsg,
    StreamConfig,
    StreamInfo,
)

__all__ = [
    "HDR_EXPECTED_LAST_MSG_ID",
    "HDR_EXPECTED_LAST_SEQ",
    "HDR_EXPECTED_LAST_SUBJECT_SEQ",
    "HDR_EXPECTED_STREAM",
    "HDR_MSG_ID",
    "KeyValue",
    "KeyWatcher",
    "Log",
]

HDR_MSG_ID = "Nats-Msg-Id"
HDR_EXPECTED_STREAM = "Nats-Expected-Stream"
HDR_EXPECTED_LAST_SEQ = "Nats-Expected-Last-Sequence"
HDR_EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
HDR_EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"


#: ``delete_msg_then``'s tasks, kept until they end (the loop keeps only weak references).
_IN_FLIGHT: set[asyncio.Task[None]] = set()


class Log(ABC):
    """A JetStream-style log: streams of messages, durable push consumers, key-value buckets.

    All errors raised derive from ``streams.errors.LogError``.
    """

    @property
    @abstractmethod
    def bus(self) -> Bus:
        """The Bus that push consumers deliver to and acks arrive on."""

    # -- streams --------------------------------------------------------------

    @abstractmethod
    async def add_stream(self, config: StreamConfig) -> StreamInfo:
        """Create a stream. Idempotent for an equal config; StreamNameInUse otherwise."""

    @abstractmethod
    async def update_stream(self, config: StreamConfig) -> StreamInfo:
        """Change a stream's config (limits are applied at once). StreamNotFound if absent."""

    @abstractmethod
    async def stream_info(self, name: str, subjects_filter: str | None = None) -> StreamInfo:
        """Config and state of a stream. StreamNotFound if absent.

        With ``subjects_filter``, ``state.subjects`` counts the messages of each
        subject that the filter matches.
        """

    @abstractmethod
    async def stream_names(self) -> list[str]:
        """Names of all streams, sorted."""

    @abstractmethod
    async def delete_stream(self, name: str) -> None:
        """Delete a stream, its messages and its consumers. StreamNotFound if absent."""

    @abstractmethod
    async def purge_stream(self, name: str, subject: str | None = None) -> int:
        """Remove all messages, or those matching ``subject``; return how many."""

    # -- publishing -------------------------------------------------------------

    @abstractmethod
    def publish_async(
        self,
        subject: str,
        payload: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> asyncio.Future[PubAck]:
        """Start storing a message; the future resolves to its PubAck (in publish order).

        The future fails with NoStreamForSubject, MessageTooLarge,
        StreamLimitReached, WrongLastSequence, ... as JetStream would answer.
        """

    @abstractmethod
    def publish_then(
        self,
        subject: str,
        payload: bytes,
        headers: Mapping[str, str] | None,
        then: Callable[[PubAck | LogError], None],
    ) -> None:
        """``publish_async`` for the hot path: ``then`` gets the PubAck or the LogError.

        Calls come in publish order, straight from the backend's batch or
        reply (no future, no event-loop callback per message).
        """

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        msg_id: str | None = None,
        timeout: float | None = None,
    ) -> PubAck:
        """Store a message and wait for its PubAck."""
        if msg_id is not None:
            headers = {**(headers or {}), HDR_MSG_ID: msg_id}
        fut = self.publish_async(subject, payload, headers)
        if timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise LogTimeout(f"no publish acknowledgement within {timeout}s") from None

    # -- direct access ------------------------------------------------------------

    @abstractmethod
    async def get_msg(self, stream: str, seq: int) -> StoredMsg:
        """The message stored at ``seq``. MessageNotFound if none."""

    @abstractmethod
    async def get_last_msg(self, stream: str, subject: str) -> StoredMsg:
        """The newest message on ``subject`` (wildcards allowed). MessageNotFound if none."""

    @abstractmethod
    async def delete_msg(self, stream: str, seq: int) -> None:
        """Remove one message. MessageNotFound if none."""

    def delete_msg_then(
        self, stream: str, seq: int, then: Callable[[LogError | None], None]
    ) -> None:
        """``delete_msg`` without a coroutine to wait on: ``then`` gets None once the
        message is gone, or the LogError (MessageNotFound if there was none)."""

        def done(task: asyncio.Task[None]) -> None:
            _IN_FLIGHT.discard(task)
            error = LogError("log closed") if task.cancelled() else task.exception()
            if error is not None and not isinstance(error, LogError):
                raise error
            then(error)

        task = asyncio.get_running_loop().create_task(self.delete_msg(stream, seq))
        _IN_FLIGHT.add(task)
        task.add_done_callback(done)

    # -- consumers ------------------------------------------------------------------

    @abstractmethod
    async def add_consumer(self, stream: str, config: ConsumerConfig) -> ConsumerInfo:
        """Create a push consumer (or return the existing one for an equal config).

        Delivery starts at once if the deliver subject has interest.
        """

    @abstractmethod
    async def update_consumer(self, stream: str, config: ConsumerConfig) -> ConsumerInfo:
        """Change the filter subjects of an existing durable consumer, keeping its position.

        Callers change only ``filter_subject``/``filter_subjects`` (the embedded
        backend refuses any other change with BadRequest; JetStream applies what
        it allows to update). ConsumerNotFound if absent. What is
        pending acknowledgement stays pending; messages stored before the
        update on a newly added filter are not delivered.
        """

    @abstractmethod
    async def consumer_info(self, stream: str, name: str) -> ConsumerInfo:
        """Position and counters of a consumer. ConsumerNotFound if absent."""

    @abstractmethod
    async def consumer_names(self, stream: str) -> list[str]:
        """Names of a stream's consumers, sorted."""

    @abstractmethod
    async def delete_consumer(self, stream: str, name: str) -> None:
        """Delete a consumer. ConsumerNotFound if absent."""

    # -- acknowledgements (``reply`` is the delivery's $JS.ACK subject) -------------

    @abstractmethod
    async def ack(self, reply: str) -> None:
        """Acknowledge a delivery (``+ACK``)."""

    def ack_nowait(self, reply: str) -> None:
        """Acknowledge a delivery without waiting or confirmation (the hot path).

        The default publishes ``+ACK`` on the reply subject, as JetStream
        clients do; a backend that can apply it directly does so.
        """
        self.bus.publish(reply, b"+ACK")

    @abstractmethod
    async def nak(self, reply: str, delay: float | None = None) -> None:
        """Ask for redelivery, after ``delay`` seconds if given (``-NAK``)."""

    @abstractmethod
    async def in_progress(self, reply: str) -> None:
        """Restart the ack_wait timer of a delivery (``+WPI``)."""

    @abstractmethod
    async def term(self, reply: str) -> None:
        """Stop redelivering this message (``+TERM``)."""

    # -- key-value --------------------------------------------------------------------

    async def create_key_value(self, config: KeyValueConfig) -> KeyValue:
        """Create (or open, if equal) a bucket: stream ``KV_<bucket>``."""
        from streams.kv import StreamKeyValue

        return await StreamKeyValue.create_bucket(self, config)

    async def key_value(self, bucket: str) -> KeyValue:
        """Open an existing bucket. BucketNotFound if absent."""
        from streams.kv import StreamKeyValue

        return await StreamKeyValue.open_bucket(self, bucket)

    async def delete_key_value(self, bucket: str) -> None:
        """Delete a bucket and everything in it. BucketNotFound if absent."""
        from streams.kv import StreamKeyValue

        await StreamKeyValue.delete_bucket(self, bucket)

    # -- lifecycle ---------------------------------------------------------------------

    @abstractmethod
    async def close(self) -> None:
        """Flush and release everything. Idempotent."""


class KeyWatcher(ABC):
    """Updates of a bucket's keys: first the current values, then None, then changes."""

    @abstractmethod
    async def updates(self, timeout: float | None = None) -> KeyValueEntry | None:
        """Next entry; None once the initial values have all been given."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop watching. Idempotent."""

    def __aiter__(self) -> AsyncIterator[KeyValueEntry | None]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[KeyValueEntry | None]:
        while True:
            yield await self.updates()


class KeyValue(ABC):
    """A key-value bucket stored in a stream (JetStream KV semantics)."""

    bucket: str

    @abstractmethod
    async def get(self, key: str) -> KeyValueEntry:
        """The current value. KeyNotFound if never set, deleted or purged."""

    @abstractmethod
    async def put(self, key: str, value: bytes) -> int:
        """Set the value; return its revision."""

    @abstractmethod
    async def create(self, key: str, value: bytes) -> int:
        """Set the value only if the key has none; KeyExists otherwise."""

    @abstractmethod
    async def update(self, key: str, value: bytes, last: int) -> int:
        """Set the value only if the current revision is ``last``; WrongLastSequence otherwise."""

    @abstractmethod
    async def delete(self, key: str, last: int | None = None) -> None:
        """Delete the key (leaves a DEL marker in history)."""

    @abstractmethod
    async def purge(self, key: str) -> None:
        """Delete the key and its history (leaves one PURGE marker)."""

    @abstractmethod
    async def keys(self) -> list[str]:
        """Keys with a live value, sorted."""

    @abstractmethod
    async def watch(
        self,
        keys: str = ">",
        *,
        include_history: bool = False,
        ignore_deletes: bool = False,
        updates_only: bool = False,
    ) -> KeyWatcher:
        """Watch keys matching ``keys`` (NATS wildcards on the key's tokens)."""
