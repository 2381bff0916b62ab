"""The messages of one stream: in memory, and in segment files for file storage.

Owns sequence assignment, the per-subject index (count, first and last
sequence per subject, as the NATS server's ``fss``), byte accounting, and the
records that make removals durable. Limits and retention policy live in
``stream.py``; this module only stores and removes.
"""

from __future__ import annotations

from collections.abc import Iterator

from gateway.bus.subjects import is_literal, subject_matches
from streams.embedded.records import BASE, DEL, MSG, PURGE, encode, frame_msg
from streams.embedded.segments import SegmentLog

__all__ = ["Entry", "MsgStore", "msg_size"]

# (subject, headers, data, time_ns, size)
Entry = tuple[str, dict[str, str] | None, bytes, int, int]


def msg_size(subject: str, headers: dict[str, str] | None, data: bytes) -> int:
    """Stored size as the NATS file store counts it (record overhead + header block)."""
    size = 22 + len(subject) + len(data)
    if headers:
        # NATS/1.0\r\n + "k: v\r\n"... + \r\n, plus the 4-byte header length.
        size += 16
        for key, value in headers.items():
            size += 4 + len(key) + len(value)
    return size


class MsgStore:
    """Messages by sequence with a subject index; ``segments`` is None for memory storage."""

    def __init__(self, segments: SegmentLog | None) -> None:
        self.segments = segments
        self.msgs: dict[int, Entry] = {}
        # subject -> [count, first_seq, last_seq]; first_seq is exact or a lower bound.
        self.subjects: dict[str, list[int]] = {}
        self.first_seq = 1
        self.last_seq = 0
        self.bytes = 0

    # -- loading -----------------------------------------------------------------

    def replay(self) -> Iterator[Entry | int]:
        """Rebuild from the segment files; yields each stored entry's sequence for the caller.

        The caller applies limits after each message (it knows the config);
        removals recorded in the files are applied here.
        """
        if self.segments is None:
            return
        for record in self.segments.replay():
            kind = record[0]
            if kind == MSG:
                _, seq, ts, subject, headers, data = record
                if seq <= self.last_seq:
                    continue
                self._insert(seq, subject, headers, data, ts)
                yield seq
            elif kind == DEL:
                self.remove(record[1], durable=False)
            elif kind == PURGE:
                self.purge(record[2], record[1], durable=False)
            elif kind == BASE and record[1] > self.last_seq:
                self.last_seq = record[1]
                if not self.msgs:
                    self.first_seq = self.last_seq + 1
        self.segments.open_for_append(self.last_seq + 1)

    # -- storing -------------------------------------------------------------------

    def store(self, subject: str, headers: dict[str, str] | None, data: bytes, ts: int) -> int:
        seq = self.last_seq + 1
        self._insert(seq, subject, headers, data, ts)
        if self.segments is not None:
            self.segments.append(frame_msg(seq, ts, subject, headers, data), seq)
        return seq

    def _insert(
        self, seq: int, subject: str, headers: dict[str, str] | None, data: bytes, ts: int
    ) -> None:
        size = msg_size(subject, headers, data)
        if not self.msgs:
            self.first_seq = seq
        self.msgs[seq] = (subject, headers, data, ts, size)
        self.last_seq = seq
        self.bytes += size
        st = self.subjects.get(subject)
        if st is None:
            self.subjects[subject] = [1, seq, seq]
        else:
            st[0] += 1
            st[2] = seq

    # -- removing --------------------------------------------------------------------

    def remove(self, seq: int, durable: bool = True) -> Entry | None:
        """Remove one message; None if it is not there."""
        entry = self.msgs.pop(seq, None)
        if entry is None:
            return None
        subject = entry[0]
        self.bytes -= entry[4]
        st = self.subjects[subject]
        st[0] -= 1
        if st[0] == 0:
            del self.subjects[subject]
        elif st[1] == seq:
            st[1] = seq + 1  # a lower bound; made exact lazily by first_of()
        if seq == self.first_seq:
            self._advance_first()
        if durable and self.segments is not None:
            self.segments.append(encode([DEL, seq]), seq)
        return entry

    def _advance_first(self) -> None:
        if not self.msgs:
            self.first_seq = self.last_seq + 1
            return
        seq = self.first_seq
        msgs = self.msgs
        while seq not in msgs:
            seq += 1
        self.first_seq = seq

    def purge(self, subject: str | None, upto: int, durable: bool = True) -> list[int]:
        """Remove messages with seq <= ``upto`` (on ``subject`` if given); return their seqs."""
        if subject is None and upto >= self.last_seq:
            removed = list(self.msgs)
            self.msgs.clear()
            self.subjects.clear()
            self.bytes = 0
            self.first_seq = self.last_seq + 1
            if durable and self.segments is not None:
                self.segments.reset(self.last_seq + 1)
            return removed
        removed = [
            seq
            for seq, e in self.msgs.items()
            if seq <= upto and (subject is None or subject_matches(subject, e[0]))
        ]
        for seq in removed:
            self.remove(seq, durable=False)
        if durable and self.segments is not None and removed:
            self.segments.append(encode([PURGE, upto, subject]), upto)
        return removed

    # -- reading ------------------------------------------------------------------------

    def get(self, seq: int) -> Entry | None:
        return self.msgs.get(seq)

    def first_of(self, subject: str) -> int:
        """The oldest sequence on a literal subject (0 if none)."""
        st = self.subjects.get(subject)
        if st is None:
            return 0
        seq = st[1]
        msgs = self.msgs
        while seq <= st[2]:
            e = msgs.get(seq)
            if e is not None and e[0] == subject:
                st[1] = seq
                return seq
            seq += 1
        return 0

    def last_of(self, filter_: str) -> int:
        """The newest sequence on a subject or filter (0 if none)."""
        if is_literal(filter_):
            st = self.subjects.get(filter_)
            return 0 if st is None else st[2]
        best = 0
        for subject, st in self.subjects.items():
            if st[2] > best and subject_matches(filter_, subject):
                best = st[2]
        return best

    def count(self) -> int:
        return len(self.msgs)

    def close(self) -> None:
        if self.segments is not None:
            self.segments.close()
