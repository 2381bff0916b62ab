"""EmbeddedLog: the ``Log`` interface on jetgate's own store in ``store_dir``.

Owns the directory layout, stream and consumer metadata files, routing a
published subject to its stream, group commit and the sync policy, the ack
subscription on the Bus, and housekeeping timers (max_age, inactive consumers,
persisting consumer state).

Group commit: ``publish_async`` stores the message in memory, buffers its
record and queues its future; one callback per event-loop turn writes every
buffered record with one ``write`` per stream, then (sync ``always``) fsyncs in
a worker thread, and only then resolves the futures, in publish order, and lets
consumers deliver the new messages. Under the periodic policy a timer fsyncs
every ``sync`` seconds. Layout::

    <store_dir>/streams/<stream>/meta.json
    <store_dir>/streams/<stream>/msgs/<first_seq>.seg
    <store_dir>/streams/<stream>/consumers/<consumer>.json
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

from gateway.bus.api import Msg
from gateway.bus.local import LocalBus, LocalSubscription
from gateway.bus.subjects import (
    InvalidSubject,
    is_literal,
    subject_matches,
    subjects_overlap,
    validate_subject,
)
from streams.api import Log
from streams.embedded.consumer import Consumer
from streams.embedded.segments import DEFAULT_SEGMENT_BYTES, SegmentLog
from streams.embedded.store import MsgStore
from streams.embedded.stream import Stream
from streams.errors import (
    BadRequest,
    ConsumerNameInUse,
    ConsumerNotFound,
    LogClosed,
    LogError,
    MessageNotFound,
    NoStreamForSubject,
    StorageError,
    StreamNameInUse,
    StreamNotFound,
    SubjectsOverlap,
)
from streams.types import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StoredMsg,
    StreamConfig,
    StreamInfo,
    parse_nak_delay,
)

__all__ = ["EmbeddedLog"]

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[^.*>\s/\\\x00]+$")
_TICK = 0.1  # housekeeping period, seconds
_STATE_EVERY = 10  # ticks between consumer state writes
_EPHEMERAL_THRESHOLD = 5.0
_BARRIER = PubAck("", 0)  # a batch entry that only marks "everything before me is done"

#: Who hears how a publish ended: the future of ``publish_async``, or ``publish_then``'s callback.
_Waiter: TypeAlias = asyncio.Future[PubAck] | Callable[[PubAck | LogError], None]


def _check_name(kind: str, name: str) -> None:
    if not name or len(name) > 255 or not _NAME_RE.match(name):
        raise BadRequest(f"invalid {kind} name {name!r}")


def _write_json(path: Path, value: Any) -> None:
    """Write atomically: temp file, fsync, rename."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(value, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc}") from exc


def _config_dict(config: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in dataclasses.asdict(config).items():
        out[k] = list(v) if isinstance(v, tuple) else (v.value if hasattr(v, "value") else v)
    return out


class EmbeddedLog(Log):
    """The embedded backend (see the module docstring). Build it with ``await EmbeddedLog.open(...)``."""

    def __init__(
        self,
        store_dir: Path,
        bus: LocalBus,
        sync: float | str = 120.0,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        if sync != "always" and not (isinstance(sync, int | float) and sync > 0):
            raise BadRequest(f"sync must be 'always' or seconds > 0, not {sync!r}")
        self._dir = Path(store_dir)
        self._bus = bus
        self._always = sync == "always"
        self._sync_interval = 0.0 if self._always else float(sync)
        self._segment_bytes = segment_bytes
        self._streams: dict[str, Stream] = {}
        self._routes: dict[str, Stream | None] = {}
        self._batch: list[tuple[_Waiter, PubAck | LogError]] = []
        self._commit_scheduled = False
        self._syncing = False
        self._dirty_consumers: set[Consumer] = set()
        self._by_deliver: dict[str, list[Consumer]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ack_sub: LocalSubscription | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._ticks = 0
        self._last_sync = time.monotonic()
        self._closed = False

    @classmethod
    async def open(
        cls,
        store_dir: Path | str,
        bus: LocalBus,
        sync: float | str = 120.0,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> EmbeddedLog:
        """Open (or create) the store, replay every stream and resume every consumer."""
        self = cls(Path(store_dir), bus, sync, segment_bytes)
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._load_streams)
        for stream in self._streams.values():
            self._load_consumers(stream)
        self._ack_sub = bus.subscribe_nowait("$JS.ACK.>", self._on_ack_msg)
        bus.add_interest_listener(self._on_interest)
        self._tick_handle = self._loop.call_later(_TICK, self._tick)
        return self

    @property
    def bus(self) -> LocalBus:
        return self._bus

    # -- loading ---------------------------------------------------------------------------

    def _stream_dir(self, name: str) -> Path:
        return self._dir / "streams" / name

    def _load_streams(self) -> None:
        root = self._dir / "streams"
        try:
            root.mkdir(parents=True, exist_ok=True)
            dirs = sorted(p for p in root.iterdir() if p.is_dir())
        except OSError as exc:
            raise StorageError(f"cannot open store {self._dir}: {exc}") from exc
        for d in dirs:
            meta = d / "meta.json"
            if not meta.exists():
                continue
            try:
                raw = json.loads(meta.read_text(encoding="utf-8"))
                config = StreamConfig(**raw["config"])
            except (OSError, ValueError, TypeError, KeyError) as exc:
                raise StorageError(f"bad stream metadata {meta}: {exc}") from exc
            stream = self._make_stream(config, int(raw.get("created", 0)))
            store = stream.store
            for seq in store.replay():
                assert isinstance(seq, int)
                entry = store.msgs.get(seq)
                if entry is not None:
                    stream.replayed(seq, entry[0], entry[1], entry[3])
            stream.expire(time.time_ns())
            stream.committed_seq = store.last_seq
            self._streams[config.name] = stream

    def _make_stream(self, config: StreamConfig, created: int) -> Stream:
        if config.storage is StorageType.FILE:
            segs = SegmentLog(self._stream_dir(config.name) / "msgs", self._segment_bytes)
            store = MsgStore(segs)
        else:
            store = MsgStore(None)
        return Stream(config, store, created)

    def _load_consumers(self, stream: Stream) -> None:
        cdir = self._stream_dir(stream.config.name) / "consumers"
        if not cdir.is_dir():
            return
        for path in sorted(cdir.glob("*.json")):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                config = ConsumerConfig(**raw["config"])
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.error("skipping bad consumer file %s: %s", path, exc)
                continue
            c = Consumer(stream, raw["name"], config, self._bus, raw["created"], self._mark_dirty)
            stream.attach(c)
            self._index_deliver(c)
            c.restore(raw["state"])

    # -- streams -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosed("log closed")

    def _get_stream(self, name: str) -> Stream:
        stream = self._streams.get(name)
        if stream is None:
            raise StreamNotFound(f"stream not found: {name}")
        return stream

    def _normalise(self, config: StreamConfig) -> StreamConfig:
        _check_name("stream", config.name)
        subjects = config.subjects or (config.name,)
        try:
            for s in subjects:
                validate_subject(s, wildcards=True)
        except InvalidSubject as exc:
            raise BadRequest(str(exc)) from None
        window = config.duplicate_window
        if window <= 0:
            window = min(120.0, config.max_age) if config.max_age > 0 else 120.0
        elif config.max_age > 0 and window > config.max_age:
            raise BadRequest("duplicates window can not be larger then max age")
        return dataclasses.replace(config, subjects=tuple(subjects), duplicate_window=window)

    def _check_overlap(self, config: StreamConfig) -> None:
        for other in self._streams.values():
            if other.config.name == config.name:
                continue
            for a in config.subjects:
                for b in other.config.subjects:
                    if subjects_overlap(a, b):
                        raise SubjectsOverlap(f"subjects overlap with stream {other.config.name}")

    def _write_stream_meta(self, stream: Stream) -> None:
        d = self._stream_dir(stream.config.name)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {d}: {exc}") from exc
        _write_json(
            d / "meta.json", {"config": _config_dict(stream.config), "created": stream.created}
        )

    async def add_stream(self, config: StreamConfig) -> StreamInfo:
        self._check_open()
        config = self._normalise(config)
        existing = self._streams.get(config.name)
        if existing is not None:
            if existing.config != config:
                raise StreamNameInUse(
                    f"stream name already in use with a different configuration: {config.name}"
                )
            return self._stream_info(existing)
        self._check_overlap(config)
        stream = self._make_stream(config, time.time_ns())
        self._write_stream_meta(stream)
        for _ in stream.store.replay():
            pass  # a fresh directory: this just opens the first segment
        self._streams[config.name] = stream
        self._routes.clear()
        return self._stream_info(stream)

    async def update_stream(self, config: StreamConfig) -> StreamInfo:
        self._check_open()
        config = self._normalise(config)
        stream = self._get_stream(config.name)
        old = stream.config
        if old.storage != config.storage:
            raise BadRequest("stream configuration update can not change storage type")
        if old.retention != config.retention:
            raise BadRequest("stream configuration update can not change retention policy")
        self._check_overlap(config)
        stream.config = config
        self._write_stream_meta(stream)
        self._routes.clear()
        stream.enforce_all_limits()
        for c in stream.consumers.values():
            c.resync()
        await self._commit_now()
        return self._stream_info(stream)

    def _stream_info(self, stream: Stream, subjects_filter: str | None = None) -> StreamInfo:
        state = stream.state()
        if subjects_filter is not None:
            state = dataclasses.replace(state, subjects=stream.subject_counts(subjects_filter))
        return StreamInfo(config=stream.config, state=state, created=stream.created)

    async def stream_info(self, name: str, subjects_filter: str | None = None) -> StreamInfo:
        self._check_open()
        return self._stream_info(self._get_stream(name), subjects_filter)

    async def stream_names(self) -> list[str]:
        self._check_open()
        return sorted(self._streams)

    async def delete_stream(self, name: str) -> None:
        self._check_open()
        stream = self._get_stream(name)
        await self._commit_now()
        for c in list(stream.consumers.values()):
            c.stop()
            self._unindex_deliver(c)
            self._dirty_consumers.discard(c)
        stream.store.close()
        del self._streams[name]
        self._routes.clear()
        path = self._stream_dir(name)
        try:
            await asyncio.to_thread(shutil.rmtree, path, True)
        except OSError as exc:
            raise StorageError(f"cannot remove {path}: {exc}") from exc

    async def purge_stream(self, name: str, subject: str | None = None) -> int:
        self._check_open()
        stream = self._get_stream(name)
        if stream.config.deny_purge:
            raise BadRequest("stream purge is not permitted")
        if subject is not None:
            try:
                validate_subject(subject, wildcards=True)
            except InvalidSubject as exc:
                raise BadRequest(str(exc)) from None
        n = stream.purge(subject)
        if n or subject is None:  # a filtered purge that matched nothing wrote nothing
            await self._commit_now()
        return n

    # -- publishing -------------------------------------------------------------------------------

    def _route(self, subject: str) -> Stream | None:
        try:
            return self._routes[subject]
        except KeyError:
            pass
        try:
            validate_subject(subject)
        except InvalidSubject as exc:
            raise BadRequest(str(exc)) from None
        found = None
        for stream in self._streams.values():
            for f in stream.config.subjects:
                if subject_matches(f, subject):
                    found = stream
                    break
            if found is not None:
                break
        if len(self._routes) > 16384:
            self._routes.clear()
        self._routes[subject] = found
        return found

    def publish_async(
        self,
        subject: str,
        payload: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> asyncio.Future[PubAck]:
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[PubAck] = loop.create_future()
        self._queue(fut, self._store(subject, payload, headers))
        return fut

    def publish_then(
        self,
        subject: str,
        payload: bytes,
        headers: Mapping[str, str] | None,
        then: Callable[[PubAck | LogError], None],
    ) -> None:
        self._queue(then, self._store(subject, payload, headers))

    def _store(
        self, subject: str, payload: bytes, headers: Mapping[str, str] | None
    ) -> PubAck | LogError:
        try:
            if self._closed:
                raise LogClosed("log closed")
            stream = self._route(subject)
            if stream is None:
                raise NoStreamForSubject(f"no stream captures subject {subject!r}")
            return stream.publish(subject, payload, headers, time.time_ns())
        except LogError as exc:
            return exc

    def _queue(self, waiter: _Waiter, result: PubAck | LogError) -> None:
        self._batch.append((waiter, result))
        if not self._commit_scheduled:
            self._schedule_commit()

    # -- group commit --------------------------------------------------------------------------------

    def _schedule_commit(self) -> None:
        if self._commit_scheduled or self._syncing:
            return
        assert self._loop is not None
        self._commit_scheduled = True
        self._loop.call_soon(self._commit)

    def _commit(self) -> None:
        self._commit_scheduled = False
        batch, self._batch = self._batch, []
        marks: list[tuple[Stream, int]] = []
        error: StorageError | None = None
        written: list[SegmentLog] = []
        for stream in self._streams.values():
            segs = stream.store.segments
            if segs is not None and segs.buffered:
                try:
                    segs.write()
                    written.append(segs)
                except StorageError as exc:
                    log.error("write failed for stream %s: %s", stream.config.name, exc)
                    error = exc
                with contextlib.suppress(StorageError):
                    segs.remove_below(stream.store.first_seq)
            marks.append((stream, stream.store.last_seq))
        if self._always and written and error is None:
            self._syncing = True
            assert self._loop is not None
            fut = self._loop.run_in_executor(None, _sync_all, written)
            fut.add_done_callback(lambda f: self._after_sync(f, batch, marks))
            return
        self._finish(batch, marks, error)

    def _after_sync(
        self,
        f: asyncio.Future[None],
        batch: list[tuple[_Waiter, PubAck | LogError]],
        marks: list[tuple[Stream, int]],
    ) -> None:
        self._syncing = False
        exc = f.exception()
        error = exc if isinstance(exc, StorageError) else None
        if exc is not None and error is None:
            error = StorageError(f"sync failed: {exc}")
        self._finish(batch, marks, error)
        if self._batch or any(
            s.store.segments is not None and s.store.segments.buffered
            for s in self._streams.values()
        ):
            self._schedule_commit()

    def _finish(
        self,
        batch: list[tuple[_Waiter, PubAck | LogError]],
        marks: list[tuple[Stream, int]],
        error: StorageError | None,
    ) -> None:
        for waiter, result in batch:
            outcome: PubAck | LogError = result if error is None else error
            if not isinstance(waiter, asyncio.Future):
                try:
                    waiter(outcome)
                except Exception:  # as asyncio does for a callback: log it, finish the batch
                    log.exception("publish callback failed")
            elif waiter.done():
                continue
            elif isinstance(outcome, LogError):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)
        for stream, last in marks:
            if last > stream.committed_seq:
                stream.committed_seq = last
            if stream.notified:
                for c in stream.notified:
                    c.kick()
                stream.notified.clear()

    async def _commit_now(self) -> None:
        """Write (and sync, under ``always``) everything buffered so far."""
        assert self._loop is not None
        barrier: asyncio.Future[PubAck] = self._loop.create_future()
        self._batch.append((barrier, _BARRIER))
        self._schedule_commit()
        await barrier

    def _sync_now(self) -> None:
        for stream in self._streams.values():
            segs = stream.store.segments
            if segs is not None:
                try:
                    segs.sync()
                except StorageError as exc:
                    log.error("periodic sync of %s failed: %s", stream.config.name, exc)

    # -- direct access -------------------------------------------------------------------------------

    def _stored(self, stream: Stream, seq: int) -> StoredMsg:
        entry = stream.store.get(seq)
        if entry is None:
            raise MessageNotFound(f"no message found: {stream.config.name} {seq}")
        subject, headers, data, ts, _ = entry
        return StoredMsg(stream.config.name, subject, seq, data, headers, ts)

    async def get_msg(self, stream: str, seq: int) -> StoredMsg:
        self._check_open()
        return self._stored(self._get_stream(stream), seq)

    async def get_last_msg(self, stream: str, subject: str) -> StoredMsg:
        self._check_open()
        s = self._get_stream(stream)
        seq = s.store.last_of(subject)
        if not seq:
            raise MessageNotFound(f"no message found: {stream} {subject}")
        return self._stored(s, seq)

    async def delete_msg(self, stream: str, seq: int) -> None:
        self._check_open()
        s = self._get_stream(stream)
        if s.config.deny_delete:
            raise BadRequest("message delete is not permitted")
        if not s.delete_msg(seq):
            raise MessageNotFound(f"no message found: {stream} {seq}")
        await self._commit_now()

    # -- consumers -------------------------------------------------------------------------------------

    async def add_consumer(self, stream: str, config: ConsumerConfig) -> ConsumerInfo:
        self._check_open()
        s = self._get_stream(stream)
        name = config.durable_name or config.name
        if config.durable_name and config.name and config.durable_name != config.name:
            raise BadRequest("consumer name in subject does not match durable name")
        if not config.deliver_subject:
            raise BadRequest("only push consumers (with deliver_subject) are supported")
        try:
            validate_subject(config.deliver_subject)
        except InvalidSubject as exc:
            raise BadRequest(str(exc)) from None
        _check_filters(config)
        policy = config.deliver_policy
        if policy is DeliverPolicy.LAST_PER_SUBJECT and not config.filters:
            raise BadRequest(
                "consumer delivery policy is deliver last per subject, "
                "but optional filter subject is not set"
            )
        if (policy is DeliverPolicy.BY_START_SEQUENCE) != (config.opt_start_seq is not None):
            raise BadRequest("consumer deliver policy and optional start sequence do not match")
        if config.max_ack_pending == 0 or config.ack_wait <= 0:
            raise BadRequest("ack_wait and max_ack_pending must be positive")
        ephemeral = not config.durable_name
        if name is None:
            name = secrets.token_urlsafe(6).replace("-", "A").replace("_", "B")
        _check_name("consumer", name)
        if ephemeral and config.inactive_threshold is None:
            config = dataclasses.replace(config, inactive_threshold=_EPHEMERAL_THRESHOLD)
        if config.name != name and not config.durable_name:
            config = dataclasses.replace(config, name=name)
        if config.durable_name and config.name is None:
            config = dataclasses.replace(config, name=name)
        existing = s.consumers.get(name)
        if existing is not None:
            if existing.config != config:
                raise ConsumerNameInUse(f"consumer already exists: {name}")
            return existing.info()
        if s.config.retention is RetentionPolicy.WORK_QUEUE:
            self._check_workqueue(s, config)
        c = Consumer(s, name, config, self._bus, time.time_ns(), self._mark_dirty)
        c.start()
        s.attach(c)
        self._index_deliver(c)
        self._save_consumer(c)
        c.kick()
        return c.info()

    async def update_consumer(self, stream: str, config: ConsumerConfig) -> ConsumerInfo:
        self._check_open()
        s = self._get_stream(stream)
        name = config.durable_name or config.name
        if not name:
            raise BadRequest("updating a consumer needs its name")
        c = self._consumer(stream, name)
        _check_filters(config)
        if config.durable_name and config.name is None:
            config = dataclasses.replace(config, name=name)
        if config.inactive_threshold is None:
            config = dataclasses.replace(config, inactive_threshold=c.config.inactive_threshold)
        unfiltered = dataclasses.replace(config, filter_subject=None, filter_subjects=())
        current = dataclasses.replace(c.config, filter_subject=None, filter_subjects=())
        if unfiltered != current:
            raise BadRequest("consumer update may only change the filter subjects")
        if config == c.config:
            return c.info()
        if s.config.retention is RetentionPolicy.WORK_QUEUE:
            s.detach(c)
            try:
                self._check_workqueue(s, config)
            finally:
                s.attach(c)
        s.detach(c)
        c.refilter(config)
        s.attach(c)
        self._save_consumer(c)
        s.drop_unneeded()
        c.kick()
        await self._commit_now()
        return c.info()

    def _check_workqueue(self, s: Stream, config: ConsumerConfig) -> None:
        if config.ack_policy is not AckPolicy.EXPLICIT:
            raise BadRequest("workqueue stream requires explicit ack")
        mine = config.filters or (">",)
        for other in s.consumers.values():
            theirs = other.config.filters or (">",)
            if any(subjects_overlap(a, b) for a in mine for b in theirs):
                raise BadRequest("filtered consumer not unique on workqueue stream")

    def _consumer(self, stream: str, name: str) -> Consumer:
        c = self._get_stream(stream).consumers.get(name)
        if c is None:
            raise ConsumerNotFound(f"consumer not found: {name}")
        return c

    async def consumer_info(self, stream: str, name: str) -> ConsumerInfo:
        self._check_open()
        return self._consumer(stream, name).info()

    async def consumer_names(self, stream: str) -> list[str]:
        self._check_open()
        return sorted(self._get_stream(stream).consumers)

    async def delete_consumer(self, stream: str, name: str) -> None:
        self._check_open()
        c = self._consumer(stream, name)
        self._remove_consumer(c)
        await self._commit_now()

    def _remove_consumer(self, c: Consumer) -> None:
        c.stop()
        self._unindex_deliver(c)
        c.stream.detach(c)
        self._dirty_consumers.discard(c)
        path = self._consumer_path(c)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        c.stream.drop_unneeded()
        self._schedule_commit()

    def _consumer_path(self, c: Consumer) -> Path:
        return self._stream_dir(c.stream.config.name) / "consumers" / f"{c.name}.json"

    def _save_consumer(self, c: Consumer) -> None:
        path = self._consumer_path(c)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {path.parent}: {exc}") from exc
        _write_json(
            path,
            {
                "name": c.name,
                "config": _config_dict(c.config),
                "created": c.created,
                "state": c.snapshot(),
            },
        )

    def _mark_dirty(self, c: Consumer) -> None:
        self._dirty_consumers.add(c)

    def _on_interest(self, subject: str) -> None:
        # A new subscription may be what an unbound push consumer waits for.
        if is_literal(subject):
            for c in self._by_deliver.get(subject, ()):
                if not c.push_bound:
                    c.kick()
            return
        for ds, consumers in self._by_deliver.items():
            if subject_matches(subject, ds):
                for c in consumers:
                    if not c.push_bound:
                        c.kick()

    def _index_deliver(self, c: Consumer) -> None:
        ds = c.config.deliver_subject
        if ds:
            self._by_deliver.setdefault(ds, []).append(c)

    def _unindex_deliver(self, c: Consumer) -> None:
        ds = c.config.deliver_subject
        if ds and ds in self._by_deliver:
            with contextlib.suppress(ValueError):
                self._by_deliver[ds].remove(c)
            if not self._by_deliver[ds]:
                del self._by_deliver[ds]

    # -- acks ---------------------------------------------------------------------------------------------

    def _on_ack_msg(self, msg: Msg) -> None:
        self._handle_ack(msg.subject, msg.payload)

    def _handle_ack(self, reply: str, payload: bytes) -> None:
        tokens = reply.split(".")
        if len(tokens) != 9:
            return
        stream = self._streams.get(tokens[2])
        if stream is None:
            return
        c = stream.consumers.get(tokens[3])
        if c is None:
            return
        try:
            seq = int(tokens[5])
        except ValueError:
            return
        if not payload or payload.startswith(b"+ACK"):
            c.ack(seq)
        elif payload.startswith(b"-NAK"):
            c.nak(seq, parse_nak_delay(payload))
        elif payload.startswith(b"+WPI"):
            c.in_progress(seq)
        elif payload.startswith(b"+TERM"):
            c.term(seq)
        else:
            return
        if stream.store.segments is not None and stream.store.segments.buffered:
            self._schedule_commit()

    async def ack(self, reply: str) -> None:
        self._handle_ack(reply, b"+ACK")

    def ack_nowait(self, reply: str) -> None:
        # Applied at once: no trip through the bus's subject matching per ack.
        self._handle_ack(reply, b"+ACK")

    async def nak(self, reply: str, delay: float | None = None) -> None:
        payload = b"-NAK"
        if delay:
            payload += b' {"delay": %d}' % int(delay * 1e9)
        self._handle_ack(reply, payload)

    async def in_progress(self, reply: str) -> None:
        self._handle_ack(reply, b"+WPI")

    async def term(self, reply: str) -> None:
        self._handle_ack(reply, b"+TERM")

    # -- housekeeping ------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._closed:
            return
        assert self._loop is not None
        self._ticks += 1
        now_ns = time.time_ns()
        mono = time.monotonic()
        for stream in self._streams.values():
            if stream.config.max_age > 0 and stream.store.msgs:
                stream.expire(now_ns)
            for c in list(stream.consumers.values()):
                limit = c.config.inactive_threshold
                if not limit:
                    continue
                if c.config.deliver_subject and self._bus.has_interest(c.config.deliver_subject):
                    c.no_interest_since = None
                elif c.no_interest_since is None:
                    c.no_interest_since = mono
                elif mono - c.no_interest_since > limit:
                    log.info("removing inactive consumer %s > %s", stream.config.name, c.name)
                    self._remove_consumer(c)
        if self._ticks % _STATE_EVERY == 0:
            self._save_dirty()
        if not self._always and mono - self._last_sync >= self._sync_interval and not self._syncing:
            self._last_sync = mono
            self._sync_now()
        self._schedule_commit_if_buffered()
        self._tick_handle = self._loop.call_later(_TICK, self._tick)

    def _schedule_commit_if_buffered(self) -> None:
        for s in self._streams.values():
            if s.store.segments is not None and s.store.segments.buffered:
                self._schedule_commit()
                return

    def _save_dirty(self) -> None:
        dirty, self._dirty_consumers = self._dirty_consumers, set()
        for c in dirty:
            if c.deleted:
                continue
            try:
                self._save_consumer(c)
            except StorageError as exc:
                log.error("cannot save consumer %s: %s", c.name, exc)

    # -- lifecycle ----------------------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        await self._commit_now()
        self._closed = True
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if self._ack_sub is not None:
            await self._ack_sub.unsubscribe()
        self._bus.remove_interest_listener(self._on_interest)
        for stream in self._streams.values():
            for c in stream.consumers.values():
                c.stop()
                if not (c.config.inactive_threshold and not c.config.durable_name):
                    self._dirty_consumers.add(c)
        self._save_dirty_all()
        for stream in self._streams.values():
            stream.store.close()

    def _save_dirty_all(self) -> None:
        for c in self._dirty_consumers:
            try:
                self._save_consumer(c)
            except StorageError as exc:
                log.error("cannot save consumer %s: %s", c.name, exc)
        self._dirty_consumers.clear()


def _sync_all(segs: list[SegmentLog]) -> None:
    for s in segs:
        s.sync()


def _check_filters(config: ConsumerConfig) -> None:
    """Valid filter subjects, none overlapping another (as JetStream refuses them)."""
    filters = list(config.filters)
    try:
        for f in filters:
            validate_subject(f, wildcards=True)
    except InvalidSubject as exc:
        raise BadRequest(str(exc)) from None
    for i, a in enumerate(filters):
        if any(subjects_overlap(a, b) for b in filters[i + 1 :]):
            raise BadRequest("consumer subject filters cannot overlap")
