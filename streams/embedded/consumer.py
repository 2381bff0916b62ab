"""One embedded push consumer: what to deliver next, what awaits an ack, and when to redeliver.

Delivery is driven by ``pump``, run from the event loop (never a task per
message). The consumer is in one of two modes: *scanning* the stream from
``next_scan`` (catching up, after a restart, deliver-all), or *live*, when
the stream hands it each matching sequence as it is stored (``ready``), so
consumers with narrow filters never scan past other subjects' messages.

Ack bookkeeping follows JetStream: ``pending`` maps a stream sequence to
[original consumer sequence, delivery count, ack deadline]; a heap of
deadlines drives redelivery after ``ack_wait``; no more than
``max_ack_pending`` messages are unacknowledged at once; a message delivered
``max_deliver`` times is not sent again.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway.bus.api import Msg
from gateway.bus.local import LocalBus
from gateway.bus.subjects import subject_matches
from streams.embedded.stream import Stream
from streams.types import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    SequenceInfo,
)

__all__ = ["Consumer"]

log = logging.getLogger(__name__)

_READY_MAX = 65536  # beyond this many queued sequences, fall back to scanning
_PUMP_BUDGET = 4096  # deliveries per loop turn, so one consumer cannot starve others

_CSEQ, _COUNT, _DEADLINE = 0, 1, 2


class Consumer:
    """A push consumer of one stream (see the module docstring)."""

    def __init__(
        self,
        stream: Stream,
        name: str,
        config: ConsumerConfig,
        bus: LocalBus,
        created: int,
        on_dirty: Callable[[Consumer], None],
    ) -> None:
        self.stream = stream
        self.name = name
        self.config = config
        self.bus = bus
        self.created = created
        self._on_dirty = on_dirty
        self._filters = config.filters
        self._explicit = config.ack_policy is not AckPolicy.NONE
        self._ack_all = config.ack_policy is AckPolicy.ALL
        self._headers_only = config.headers_only
        # Only the filters of a consumer can be updated (``refilter``); these stay.
        self._deliver_subject = config.deliver_subject or ""
        self._ack_wait_ns = int(config.ack_wait * 1e9)
        self._ack_prefix = f"$JS.ACK.{stream.config.name}.{name}."
        self.dseq = 0  # consumer sequences handed out (every delivery)
        self.sseq = 0  # highest stream sequence delivered for the first time
        self.next_scan = 1
        self.live = False
        self.ready: deque[int] = deque()
        self.pending: dict[int, list[int]] = {}
        self.redeliver: deque[int] = deque()
        self.num_pending = 0
        # Ack deadlines as (deadline, seq). Every delivery and +WPI waits ack_wait from now,
        # so ``_timers`` is in deadline order and acks drop its acknowledged head: it holds
        # about what is pending, not every delivery of the last ack_wait. A -NAK with a
        # delay can fall anywhere: those go in the heap ``_delayed``.
        self._timers: deque[tuple[int, int]] = deque()
        self._delayed: list[tuple[int, int]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0
        self._scheduled = False
        self.deleted = False
        self.no_interest_since: float | None = None
        self.push_bound = False

    # -- positioning ------------------------------------------------------------------

    def matches(self, subject: str) -> bool:
        if not self._filters:
            return True
        return any(subject_matches(f, subject) for f in self._filters)

    def start(self) -> None:
        """Position a new consumer according to its deliver policy."""
        cfg = self.config
        store = self.stream.store
        policy = cfg.deliver_policy
        if policy is DeliverPolicy.LAST_PER_SUBJECT:
            seqs = sorted(st[2] for subject, st in store.subjects.items() if self.matches(subject))
            self.ready.extend(seqs)
            self.live = True
            self.num_pending = len(seqs)
            return
        if policy is DeliverPolicy.ALL:
            self.next_scan = store.first_seq
        elif policy is DeliverPolicy.NEW:
            self.next_scan = store.last_seq + 1
        elif policy is DeliverPolicy.BY_START_SEQUENCE:
            self.next_scan = max(1, cfg.opt_start_seq or 1)
        elif policy is DeliverPolicy.LAST:
            last = 0
            for f in self._filters or (">",):
                last = max(last, store.last_of(f))
            self.next_scan = last or store.last_seq + 1
        self.sseq = self.next_scan - 1
        self.resync()

    def refilter(self, config: ConsumerConfig) -> None:
        """Take new filter subjects, keeping the position and what awaits an ack.

        Undelivered messages that matched before and still match are delivered;
        messages stored before the update on a newly added filter are not.
        """
        old = self._filters

        def before(subject: str) -> bool:
            return not old or any(subject_matches(f, subject) for f in old)

        self.config = config
        self._filters = config.filters
        msgs = self.stream.store.msgs
        if self.live:
            candidates: list[int] = list(self.ready)
        else:
            candidates = [s for s in msgs if s >= self.next_scan]
        keep: list[int] = []
        for seq in candidates:
            entry = msgs.get(seq)
            if entry is not None and before(entry[0]) and self.matches(entry[0]):
                keep.append(seq)
        if len(keep) > _READY_MAX:
            self.next_scan = keep[0]
            self.live = False
        else:
            self.ready = deque(keep)
            self.live = True
        self.resync()

    def resync(self) -> None:
        """Recount pending messages and drop acks for vanished ones (after a bulk removal)."""
        store = self.stream.store
        for seq in [s for s in self.pending if s not in store.msgs]:
            del self.pending[seq]
        if self.live:
            self.ready = deque(s for s in self.ready if s in store.msgs)
            self.num_pending = len(self.ready)
            return
        start = max(self.next_scan, store.first_seq)
        msgs = store.msgs
        if not self._filters:
            self.num_pending = sum(1 for s in msgs if s >= start)
        else:
            self.num_pending = sum(1 for s, e in msgs.items() if s >= start and self.matches(e[0]))
        self.kick()

    # -- stream events (sequence stored / removed) -----------------------------------

    def on_msg(self, seq: int) -> None:
        self.num_pending += 1
        if self.live:
            ready = self.ready
            ready.append(seq)
            if len(ready) > _READY_MAX:
                self.next_scan = ready[0]
                ready.clear()
                self.live = False

    def on_removed(self, seq: int) -> None:
        entry = self.pending.pop(seq, None)
        if entry is not None:
            return
        undelivered = seq > self.sseq if self.live else seq >= self.next_scan
        if undelivered and self.num_pending > 0:
            self.num_pending -= 1

    def needs(self, seq: int) -> bool:
        """True while this consumer has not finished with ``seq`` (retention checks)."""
        if seq in self.pending:
            return True
        if self.live:
            return seq > self.sseq or (bool(self.ready) and seq >= self.ready[0])
        return seq >= self.next_scan

    # -- delivery ------------------------------------------------------------------------

    def kick(self) -> None:
        """Schedule a pump on the event loop (idempotent)."""
        if not self._scheduled and not self.deleted:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.pump)

    def pump(self) -> None:
        self._scheduled = False
        if self.deleted:
            return
        subject = self.config.deliver_subject
        if not subject or not self.bus.has_interest(subject):
            if self.no_interest_since is None:
                self.no_interest_since = time.monotonic()
            self.push_bound = False
            return
        self.no_interest_since = None
        self.push_bound = True
        store = self.stream.store
        msgs = store.msgs
        committed = self.stream.committed_seq
        limit = self.config.max_ack_pending if self._explicit else 0
        pending = self.pending
        budget = _PUMP_BUDGET
        delivered_any = False
        while budget > 0:
            if limit > 0 and len(pending) >= limit and not self.redeliver:
                break
            if self.redeliver:
                seq = self.redeliver.popleft()
                p = pending.get(seq)
                if p is None:
                    continue
                entry = msgs.get(seq)
                if entry is None:
                    del pending[seq]
                    continue
                p[_COUNT] += 1
                self._send(seq, entry, p[_COUNT], p)
            elif self.live:
                ready = self.ready
                if not ready or ready[0] > committed:
                    break
                seq = ready.popleft()
                entry = msgs.get(seq)
                if entry is None:
                    continue
                self.num_pending -= 1
                self._send_new(seq, entry)
            else:
                seq = self.next_scan
                if seq > committed:
                    if seq > store.last_seq:
                        self.live = True
                        continue
                    break
                self.next_scan = seq + 1
                entry = msgs.get(seq)
                if entry is None or (self._filters and not self.matches(entry[0])):
                    if seq < store.first_seq:
                        self.next_scan = store.first_seq
                    continue
                self.num_pending -= 1
                self._send_new(seq, entry)
            budget -= 1
            delivered_any = True
        if delivered_any:
            self._on_dirty(self)
        if budget == 0:
            self.kick()

    def _send_new(self, seq: int, entry: Any) -> None:
        if seq > self.sseq:
            self.sseq = seq
        if self._explicit:
            p = [self.dseq + 1, 1, 0]
            self.pending[seq] = p
            self._send(seq, entry, 1, p)
        else:
            self._send(seq, entry, 1, None)
            self.stream.on_acked(seq)

    def _send(self, seq: int, entry: Any, count: int, p: list[int] | None) -> None:
        self.dseq += 1
        subject, headers, data, ts, _size = entry
        if self._headers_only:
            headers = {**(headers or {}), "Nats-Msg-Size": str(len(data))}
            data = b""
        reply = f"{self._ack_prefix}{count}.{seq}.{self.dseq}.{ts}.{self.num_pending}"
        if p is not None:
            deadline = time.monotonic_ns() + self._ack_wait_ns
            p[_DEADLINE] = deadline
            self._timers.append((deadline, seq))
            if self._timer is None or deadline < self._timer_at:
                self._arm(deadline)
        self.bus.deliver(self._deliver_subject, Msg(subject, data, reply, headers))

    # -- acks ------------------------------------------------------------------------------

    def ack(self, seq: int) -> None:
        if not self._ack_all:
            if self.pending.pop(seq, None) is None:
                return
            self.stream.on_acked(seq)
        else:
            done = [s for s in self.pending if s <= seq]
            if not done:
                return
            for s in done:
                del self.pending[s]
                self.stream.on_acked(s)
        self._drop_settled()
        self._on_dirty(self)
        self.kick()

    def nak(self, seq: int, delay: float | None) -> None:
        p = self.pending.get(seq)
        if p is None:
            return
        if delay:
            self._reschedule(seq, p, time.monotonic_ns() + int(delay * 1e9), delayed=True)
        else:
            p[_DEADLINE] = 0
            self.redeliver.append(seq)
            self.kick()

    def in_progress(self, seq: int) -> None:
        p = self.pending.get(seq)
        if p is not None:
            self._reschedule(seq, p, time.monotonic_ns() + self._ack_wait_ns, delayed=False)

    def term(self, seq: int) -> None:
        if self.pending.pop(seq, None) is not None:
            self.stream.on_acked(seq)
            self._drop_settled()
            self._on_dirty(self)
            self.kick()

    # -- redelivery timers -------------------------------------------------------------------

    def _reschedule(self, seq: int, p: list[int], deadline: int, delayed: bool) -> None:
        p[_DEADLINE] = deadline
        if delayed:
            heapq.heappush(self._delayed, (deadline, seq))
        else:
            self._timers.append((deadline, seq))
        if self._timer is None or deadline < self._timer_at:
            self._arm(deadline)

    def _drop_settled(self) -> None:
        """Forget the head deadlines whose delivery was acknowledged (or re-timed)."""
        timers = self._timers
        pending = self.pending
        while timers:
            deadline, seq = timers[0]
            p = pending.get(seq)
            if p is not None and p[_DEADLINE] == deadline:
                return
            timers.popleft()

    def _arm(self, deadline: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, (deadline - time.monotonic_ns()) / 1e9)
        self._timer_at = deadline
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.deleted:
            return
        now = time.monotonic_ns()
        timers = self._timers
        delayed = self._delayed
        due = False
        while timers and timers[0][0] <= now:
            deadline, seq = timers.popleft()
            due = self._expired(seq, deadline) or due
        while delayed and delayed[0][0] <= now:
            deadline, seq = heapq.heappop(delayed)
            due = self._expired(seq, deadline) or due
        self._drop_settled()
        pending = self.pending
        while delayed and (
            delayed[0][1] not in pending or pending[delayed[0][1]][_DEADLINE] != delayed[0][0]
        ):
            heapq.heappop(delayed)
        if timers or delayed:
            heads = [t[0][0] for t in (timers, delayed) if t]
            self._arm(min(heads))
        if due:
            self.kick()

    def _expired(self, seq: int, deadline: int) -> bool:
        """Ack wait of ``seq`` over (if ``deadline`` is still its own): queue its redelivery."""
        pending = self.pending
        p = pending.get(seq)
        if p is None or p[_DEADLINE] != deadline:
            return False
        max_deliver = self.config.max_deliver
        if max_deliver > 0 and p[_COUNT] >= max_deliver:
            # Delivered max_deliver times: JetStream gives up on it.
            del pending[seq]
            self.stream.on_acked(seq)
            return False
        p[_DEADLINE] = 0
        self.redeliver.append(seq)
        return True

    def stop(self) -> None:
        self.deleted = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- state ---------------------------------------------------------------------------------

    def info(self) -> ConsumerInfo:
        pending = self.pending
        if pending:
            floor_s = min(pending)
            floor = SequenceInfo(pending[floor_s][_CSEQ] - 1, floor_s - 1)
        else:
            floor = SequenceInfo(self.dseq, self.sseq)
        return ConsumerInfo(
            stream_name=self.stream.config.name,
            name=self.name,
            config=self.config,
            delivered=SequenceInfo(self.dseq, self.sseq),
            ack_floor=floor,
            num_ack_pending=len(pending),
            num_redelivered=sum(1 for p in pending.values() if p[_COUNT] > 1),
            num_pending=max(0, self.num_pending),
            push_bound=self.push_bound,
            created=self.created,
        )

    def snapshot(self) -> dict[str, Any]:
        """Persistable state: positions and pending acks (deadlines are not kept)."""
        return {
            "dseq": self.dseq,
            "sseq": self.sseq,
            "next": (self.sseq + 1) if self.live else self.next_scan,
            "sparse": list(self.ready)
            if self.live
            and self.config.deliver_policy is DeliverPolicy.LAST_PER_SUBJECT
            and self.ready
            and self.ready[0] <= self.sseq
            else None,
            "pending": [[s, p[_CSEQ], p[_COUNT]] for s, p in self.pending.items()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from a snapshot: undelivered messages from ``next``; pending redelivered."""
        self.dseq = int(state["dseq"])
        self.sseq = int(state["sseq"])
        sparse = state.get("sparse")
        if sparse:
            self.ready = deque(int(s) for s in sparse)
            self.live = True
        else:
            self.next_scan = int(state["next"])
            self.live = False
        now = time.monotonic_ns()
        for s, cseq, count in state["pending"]:
            if s in self.stream.store.msgs:
                self.pending[int(s)] = [int(cseq), int(count), 0]
                self._reschedule(
                    int(s), self.pending[int(s)], now + self._ack_wait_ns, delayed=False
                )
        self.resync()
