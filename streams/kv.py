"""Key-value buckets built on any ``Log``, laid out exactly as JetStream KV.

A bucket ``B`` is stream ``KV_B`` on subjects ``$KV.B.>``; key ``k`` is the
last message on ``$KV.B.k``; a deletion is a message with header
``KV-Operation: DEL`` (or ``PURGE`` with a subject rollup). Because only the
``Log`` interface is used, every backend gets identical KV behaviour, and a
bucket made by the JetStream backend is readable by ``nats kv``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping

from gateway.bus.api import BusTimeout, Msg, Subscription, new_inbox
from streams.api import HDR_EXPECTED_LAST_SUBJECT_SEQ, KeyValue, KeyWatcher, Log
from streams.errors import (
    BadRequest,
    BucketNotFound,
    KeyExists,
    KeyNotFound,
    LogError,
    LogTimeout,
    MessageNotFound,
    StreamNotFound,
    WrongLastSequence,
)
from streams.types import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    KeyValueEntry,
    KeyValueOp,
    StoredMsg,
    StreamConfig,
    parse_ack,
)

__all__ = ["StreamKeyValue", "StreamKeyWatcher"]

HDR_OPERATION = "KV-Operation"
HDR_ROLLUP = "Nats-Rollup"

_BUCKET_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
_KEY_RE = re.compile(r"^[-/_=.a-zA-Z0-9]+$")


def _check_key(key: str, wildcards: bool = False) -> None:
    if wildcards and key == ">":
        return
    body = key.replace("*", "a").replace(">", "a") if wildcards else key
    if not _KEY_RE.match(body) or key.startswith(".") or key.endswith(".") or ".." in key:
        raise BadRequest(f"invalid key {key!r}")


def _op(headers: Mapping[str, str] | None) -> KeyValueOp:
    if headers:
        op = headers.get(HDR_OPERATION)
        if op is not None:
            return KeyValueOp(op)
    return KeyValueOp.PUT


class StreamKeyValue(KeyValue):
    """A bucket as a stream on a Log (see the module docstring)."""

    def __init__(self, log: Log, bucket: str) -> None:
        self._log = log
        self.bucket = bucket
        self._stream = f"KV_{bucket}"
        self._prefix = f"$KV.{bucket}."

    # -- bucket lifecycle -----------------------------------------------------

    @staticmethod
    def stream_config(config: KeyValueConfig) -> StreamConfig:
        if not _BUCKET_RE.match(config.bucket):
            raise BadRequest(f"invalid bucket name {config.bucket!r}")
        return StreamConfig(
            name=f"KV_{config.bucket}",
            subjects=(f"$KV.{config.bucket}.>",),
            storage=config.storage,
            max_msgs_per_subject=max(1, config.history),
            max_bytes=config.max_bytes,
            max_age=config.ttl,
            max_msg_size=config.max_value_size,
            discard=DiscardPolicy.NEW,
            allow_rollup_hdrs=True,
            deny_delete=True,
            allow_direct=True,
            description=config.description,
        )

    @classmethod
    async def create_bucket(cls, log: Log, config: KeyValueConfig) -> StreamKeyValue:
        await log.add_stream(cls.stream_config(config))
        return cls(log, config.bucket)

    @classmethod
    async def open_bucket(cls, log: Log, bucket: str) -> StreamKeyValue:
        try:
            await log.stream_info(f"KV_{bucket}")
        except StreamNotFound:
            raise BucketNotFound(bucket) from None
        return cls(log, bucket)

    @staticmethod
    async def delete_bucket(log: Log, bucket: str) -> None:
        try:
            await log.delete_stream(f"KV_{bucket}")
        except StreamNotFound:
            raise BucketNotFound(bucket) from None

    # -- entries ----------------------------------------------------------------

    def _entry(
        self,
        subject: str,
        data: bytes,
        headers: Mapping[str, str] | None,
        seq: int,
        time: int,
        delta: int = 0,
    ) -> KeyValueEntry:
        return KeyValueEntry(
            bucket=self.bucket,
            key=subject[len(self._prefix) :],
            value=data,
            revision=seq,
            operation=_op(headers),
            created=time,
            delta=delta,
        )

    async def _last(self, key: str) -> StoredMsg | None:
        try:
            return await self._log.get_last_msg(self._stream, self._prefix + key)
        except MessageNotFound:
            return None

    async def get(self, key: str) -> KeyValueEntry:
        _check_key(key)
        msg = await self._last(key)
        if msg is None:
            raise KeyNotFound(key)
        entry = self._entry(msg.subject, msg.data, msg.headers, msg.seq, msg.time)
        if entry.operation is not KeyValueOp.PUT:
            raise KeyNotFound(key)
        return entry

    async def put(self, key: str, value: bytes) -> int:
        _check_key(key)
        ack = await self._log.publish(self._prefix + key, value)
        return ack.seq

    async def update(self, key: str, value: bytes, last: int) -> int:
        _check_key(key)
        ack = await self._log.publish(
            self._prefix + key, value, {HDR_EXPECTED_LAST_SUBJECT_SEQ: str(last)}
        )
        return ack.seq

    async def create(self, key: str, value: bytes) -> int:
        try:
            return await self.update(key, value, 0)
        except WrongLastSequence:
            pass
        # A deleted or purged key may be created again, on top of its marker.
        msg = await self._last(key)
        if msg is not None and _op(msg.headers) is not KeyValueOp.PUT:
            try:
                return await self.update(key, value, msg.seq)
            except WrongLastSequence:
                pass
        raise KeyExists(key)

    async def delete(self, key: str, last: int | None = None) -> None:
        _check_key(key)
        headers = {HDR_OPERATION: KeyValueOp.DEL.value}
        if last is not None:
            headers[HDR_EXPECTED_LAST_SUBJECT_SEQ] = str(last)
        await self._log.publish(self._prefix + key, b"", headers)

    async def purge(self, key: str) -> None:
        _check_key(key)
        headers = {HDR_OPERATION: KeyValueOp.PURGE.value, HDR_ROLLUP: "sub"}
        await self._log.publish(self._prefix + key, b"", headers)

    async def keys(self) -> list[str]:
        watcher = await self.watch(ignore_deletes=True, headers_only=True)
        found: list[str] = []
        try:
            while (entry := await watcher.updates(timeout=5.0)) is not None:
                found.append(entry.key)
        finally:
            await watcher.stop()
        return sorted(set(found))

    async def watch(
        self,
        keys: str = ">",
        *,
        include_history: bool = False,
        ignore_deletes: bool = False,
        updates_only: bool = False,
        headers_only: bool = False,
    ) -> StreamKeyWatcher:
        _check_key(keys, wildcards=True)
        if updates_only:
            policy = DeliverPolicy.NEW
        elif include_history:
            policy = DeliverPolicy.ALL
        else:
            policy = DeliverPolicy.LAST_PER_SUBJECT
        inbox = new_inbox()
        sub = await self._log.bus.subscribe(inbox)
        config = ConsumerConfig(
            deliver_subject=inbox,
            filter_subject=self._prefix + keys,
            deliver_policy=policy,
            ack_policy=AckPolicy.NONE,
            headers_only=headers_only,
            inactive_threshold=300.0,
        )
        try:
            info = await self._log.add_consumer(self._stream, config)
        except StreamNotFound:
            await sub.unsubscribe()
            raise BucketNotFound(self.bucket) from None
        except BaseException:
            await sub.unsubscribe()
            raise
        initial_done = updates_only or info.num_pending == 0
        return StreamKeyWatcher(self, sub, info.name, initial_done, ignore_deletes)


class StreamKeyWatcher(KeyWatcher):
    """Entries pushed by an ephemeral consumer, ``None`` after the initial values."""

    def __init__(
        self,
        kv: StreamKeyValue,
        sub: Subscription,
        consumer: str,
        initial_done: bool,
        ignore_deletes: bool,
    ) -> None:
        self._kv = kv
        self._sub = sub
        self._consumer = consumer
        self._marker_due = initial_done
        self._initial_done = initial_done
        self._ignore_deletes = ignore_deletes
        self._stopped = False

    async def updates(self, timeout: float | None = None) -> KeyValueEntry | None:
        while True:
            if self._marker_due:
                self._marker_due = False
                return None
            try:
                msg = await self._sub.next_msg(timeout)
            except BusTimeout:
                raise LogTimeout("no key-value update in time") from None
            entry = self._decode(msg)
            if entry is None:
                continue
            return entry

    def _decode(self, msg: Msg) -> KeyValueEntry | None:
        meta = parse_ack(msg.reply)
        if not self._initial_done and meta.num_pending == 0:
            self._initial_done = True
            self._marker_due = True
        entry = self._kv._entry(
            msg.subject,
            msg.payload,
            msg.headers,
            meta.stream_seq,
            meta.timestamp,
            meta.num_pending,
        )
        if self._ignore_deletes and entry.operation is not KeyValueOp.PUT:
            return None
        return entry

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self._sub.unsubscribe()
        # Best effort: an ephemeral consumer also expires on its own.
        with contextlib.suppress(LogError):
            await self._kv._log.delete_consumer(self._kv._stream, self._consumer)
