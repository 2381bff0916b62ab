"""One embedded stream: publish checks, limits, retention and its consumers.

Owns the JetStream publish rules (max message size, ``Nats-Msg-Id``
de-duplication within the window, expected-sequence headers, rollups, discard
old/new on max_msgs, max_bytes, max_msgs_per_subject, max_age) and the
retention policies (limits; interest and workqueue remove a message once no
consumer still needs it). Storage is ``MsgStore``; delivery is ``Consumer``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.bus.subjects import subject_matches
from gateway.bus.sublist import Sublist
from streams.api import (
    HDR_EXPECTED_LAST_MSG_ID,
    HDR_EXPECTED_LAST_SEQ,
    HDR_EXPECTED_LAST_SUBJECT_SEQ,
    HDR_EXPECTED_STREAM,
    HDR_MSG_ID,
)
from streams.embedded.store import MsgStore, msg_size
from streams.errors import (
    BadRequest,
    MessageTooLarge,
    StreamLimitReached,
    WrongLastMsgId,
    WrongLastSequence,
    WrongStream,
)
from streams.types import DiscardPolicy, PubAck, RetentionPolicy, StreamConfig, StreamState

if TYPE_CHECKING:
    from streams.embedded.consumer import Consumer

__all__ = ["HDR_ROLLUP", "Stream"]

HDR_ROLLUP = "Nats-Rollup"


class Stream:
    """A stream's config, store, de-duplication window and consumers."""

    def __init__(self, config: StreamConfig, store: MsgStore, created: int) -> None:
        self._config = config
        self._take_limits(config)
        self.store = store
        self.created = created
        self.consumers: dict[str, Consumer] = {}
        self._by_filter: Sublist[Consumer] = Sublist()
        self._match_cache: dict[str, list[Consumer]] = {}
        self._match_gen = -1
        # msg id -> (seq, time_ns), in time order
        self._dedupe: dict[str, tuple[int, int]] = {}
        self._last_msg_id: str | None = None
        self.notified: set[Consumer] = set()
        self.committed_seq = 0
        """Highest sequence whose record is written (and synced if required)."""

    @property
    def config(self) -> StreamConfig:
        return self._config

    @config.setter
    def config(self, config: StreamConfig) -> None:
        self._config = config
        self._take_limits(config)

    def _take_limits(self, config: StreamConfig) -> None:
        # Read per message: plain attributes of this (compiled) class, not of the config.
        self._name = config.name
        self._max_msg_size = config.max_msg_size
        self._discard_new = config.discard is DiscardPolicy.NEW
        self._rollup = config.allow_rollup_hdrs
        self._keeps_all = config.retention is RetentionPolicy.LIMITS
        self._interest = config.retention is RetentionPolicy.INTEREST
        self._max_msgs = config.max_msgs
        self._max_bytes = config.max_bytes
        self._max_msgs_per_subject = config.max_msgs_per_subject

    # -- consumers index ------------------------------------------------------------

    def attach(self, consumer: Consumer) -> None:
        self.consumers[consumer.name] = consumer
        for f in consumer.config.filters or (">",):
            self._by_filter.insert(f, consumer)

    def detach(self, consumer: Consumer) -> None:
        self.consumers.pop(consumer.name, None)
        for f in consumer.config.filters or (">",):
            self._by_filter.remove(f, consumer)
        self.notified.discard(consumer)

    def interested(self, subject: str) -> list[Consumer]:
        """Consumers whose filter matches ``subject`` (each once)."""
        if self._match_gen != self._by_filter.generation:
            self._match_cache.clear()
            self._match_gen = self._by_filter.generation
        hit = self._match_cache.get(subject)
        if hit is None:
            hit = list(dict.fromkeys(self._by_filter.match(subject)))
            if len(self._match_cache) > 4096:
                self._match_cache.clear()
            self._match_cache[subject] = hit
        return hit

    # -- publishing ------------------------------------------------------------------

    def publish(
        self, subject: str, data: bytes, headers: Mapping[str, str] | None, now: int
    ) -> PubAck:
        store = self.store
        hdrs: dict[str, str] | None = dict(headers) if headers else None
        if self._max_msg_size >= 0 and len(data) > self._max_msg_size:
            raise MessageTooLarge(f"message size {len(data)} exceeds {self._max_msg_size}")
        msg_id = None
        if hdrs is not None:
            msg_id = hdrs.get(HDR_MSG_ID)
            self._check_expectations(subject, hdrs)
            if msg_id is not None:
                dup = self._dedupe.get(msg_id)
                if dup is not None and now - dup[1] <= self._config.duplicate_window * 1e9:
                    return PubAck(self._name, dup[0], duplicate=True)
        if self._discard_new:
            self._check_discard_new(subject, data, hdrs)
        seq = store.store(subject, hdrs, data, now)
        if msg_id is not None:
            self._dedupe[msg_id] = (seq, now)
            self._last_msg_id = msg_id
            self._prune_dedupe(now)
        self.after_store(seq, subject, hdrs)
        return PubAck(self._name, seq)

    def _check_expectations(self, subject: str, hdrs: dict[str, str]) -> None:
        store = self.store
        want = hdrs.get(HDR_EXPECTED_STREAM)
        if want is not None and want != self._name:
            raise WrongStream(f"expected stream {want!r} does not match")
        want = hdrs.get(HDR_EXPECTED_LAST_SEQ)
        if want is not None and _int(want) != store.last_seq:
            raise WrongLastSequence(f"wrong last sequence: {store.last_seq}")
        want = hdrs.get(HDR_EXPECTED_LAST_SUBJECT_SEQ)
        if want is not None:
            last = store.last_of(subject)
            if _int(want) != last:
                raise WrongLastSequence(f"wrong last sequence: {last}")
        want = hdrs.get(HDR_EXPECTED_LAST_MSG_ID)
        if want is not None and want != (self._last_msg_id or ""):
            raise WrongLastMsgId(f"wrong last msg ID: {self._last_msg_id}")
        rollup = hdrs.get(HDR_ROLLUP)
        if rollup is not None:
            if not self._rollup:
                raise BadRequest("rollup not permitted")
            if rollup not in ("sub", "all"):
                raise BadRequest(f"rollup value invalid: {rollup!r}")

    def _check_discard_new(self, subject: str, data: bytes, hdrs: dict[str, str] | None) -> None:
        cfg = self.config
        store = self.store
        if cfg.max_msgs > 0 and store.count() >= cfg.max_msgs:
            raise StreamLimitReached("maximum messages exceeded")
        if cfg.max_bytes > 0 and store.bytes + msg_size(subject, hdrs, data) > cfg.max_bytes:
            raise StreamLimitReached("maximum bytes exceeded")
        if cfg.discard_new_per_subject and cfg.max_msgs_per_subject > 0:
            st = store.subjects.get(subject)
            if st is not None and st[0] >= cfg.max_msgs_per_subject:
                raise StreamLimitReached("maximum messages per subject exceeded")

    def _prune_dedupe(self, now: int) -> None:
        horizon = now - int(self._config.duplicate_window * 1e9)
        d = self._dedupe
        while d:
            key = next(iter(d))
            if d[key][1] >= horizon:
                break
            del d[key]

    def after_store(self, seq: int, subject: str, hdrs: dict[str, str] | None) -> None:
        """Apply rollup, limits and retention to a just-stored message; notify consumers."""
        if hdrs is not None and self._rollup:
            rollup = hdrs.get(HDR_ROLLUP)
            if rollup == "sub":
                self.purge(subject, seq - 1)
            elif rollup == "all":
                self.purge(None, seq - 1)
        self._enforce_limits(subject)
        if seq not in self.store.msgs:
            return
        consumers = self.interested(subject)
        if not consumers:
            if self._interest:
                self.store.remove(seq)
            return
        for c in consumers:
            c.on_msg(seq)
            self.notified.add(c)

    def replayed(self, seq: int, subject: str, hdrs: dict[str, str] | None, ts: int) -> None:
        """Rebuild derived state for a message read back from disk."""
        if hdrs is not None:
            msg_id = hdrs.get(HDR_MSG_ID)
            if msg_id is not None:
                self._dedupe[msg_id] = (seq, ts)
                self._last_msg_id = msg_id
        self._enforce_limits(subject, durable=False)

    def _enforce_limits(self, subject: str, durable: bool = True) -> None:
        store = self.store
        if self._max_msgs_per_subject > 0:
            st = store.subjects.get(subject)
            while st is not None and st[0] > self._max_msgs_per_subject:
                oldest = store.first_of(subject)
                if not oldest:
                    break
                self._remove(oldest, durable)
                st = store.subjects.get(subject)
        if self._max_msgs > 0:
            while store.count() > self._max_msgs:
                self._remove(store.first_seq, durable)
        if self._max_bytes > 0:
            while store.bytes > self._max_bytes and store.msgs:
                self._remove(store.first_seq, durable)

    def enforce_all_limits(self) -> None:
        """Apply limits to every subject (after a config update)."""
        for subject in list(self.store.subjects):
            self._enforce_limits(subject)
        self.expire(time.time_ns())

    def expire(self, now: int) -> int:
        """Remove messages older than max_age; return the next expiry time (0 if none)."""
        max_age = self._config.max_age
        if max_age <= 0:
            return 0
        horizon = now - int(max_age * 1e9)
        store = self.store
        while store.msgs:
            entry = store.msgs[store.first_seq]
            if entry[3] > horizon:
                return entry[3] + int(max_age * 1e9)
            self._remove(store.first_seq)
        return 0

    # -- removal -------------------------------------------------------------------------

    def _remove(self, seq: int, durable: bool = True) -> None:
        entry = self.store.remove(seq, durable)
        if entry is not None:
            for c in self.interested(entry[0]):
                c.on_removed(seq)

    def delete_msg(self, seq: int) -> bool:
        entry = self.store.get(seq)
        if entry is None:
            return False
        self._remove(seq)
        return True

    def purge(self, subject: str | None, upto: int | None = None) -> int:
        removed = self.store.purge(subject, self.store.last_seq if upto is None else upto)
        if removed:
            for c in self.consumers.values():
                c.resync()
        return len(removed)

    def on_acked(self, seq: int) -> None:
        """A consumer is done with ``seq``: under interest/workqueue retention, maybe drop it."""
        if self._keeps_all:
            return
        entry = self.store.get(seq)
        if entry is None:
            return
        for c in self.interested(entry[0]):
            if c.needs(seq):
                return
        self._remove(seq)

    def drop_unneeded(self) -> None:
        """Under interest retention, remove every message no consumer needs (consumer deleted)."""
        if self._keeps_all:
            return
        for seq in list(self.store.msgs):
            self.on_acked(seq)

    # -- info --------------------------------------------------------------------------------

    def state(self) -> StreamState:
        store = self.store
        count = store.count()
        first = store.first_seq if count else store.last_seq + 1
        span = store.last_seq - first + 1 if count else 0
        return StreamState(
            messages=count,
            bytes=store.bytes,
            first_seq=first,
            last_seq=store.last_seq,
            consumer_count=len(self.consumers),
            num_subjects=len(store.subjects),
            num_deleted=max(0, span - count),
        )

    def subject_counts(self, filter_: str) -> dict[str, int]:
        """Messages per stored subject that ``filter_`` matches."""
        return {
            subject: st[0]
            for subject, st in self.store.subjects.items()
            if subject_matches(filter_, subject)
        }


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"expected a sequence number, got {value!r}") from None
