"""A stream's append-only segment files on disk.

Owns the files ``<dir>/<first_seq:020d>.seg``: replaying them at open
(truncating a torn tail), buffering frames and writing them in one system
call per group commit, rolling to a new segment past ``segment_bytes``,
fsync on request, and removing whole segments from the front once every
message in them is gone. It does not interpret records beyond their
sequence numbers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.embedded.records import BASE, DEL, MSG, PURGE, encode, scan
from streams.errors import StorageError

__all__ = ["DEFAULT_SEGMENT_BYTES", "SegmentLog"]

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 32 * 1024 * 1024
_SUFFIX = ".seg"


@dataclass
class _Segment:
    first: int
    path: Path
    max_seq: int
    size: int


class SegmentLog:
    """The segment files of one stream (see the module docstring)."""

    def __init__(self, directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._fd = -1
        self._buf: list[bytes] = []
        self._buf_max_seq = 0
        self.dirty = False
        """Bytes written since the last sync."""

    # -- opening ---------------------------------------------------------------

    def replay(self) -> Iterator[list[Any]]:
        """Yield every valid record in order, then open the last segment for appending.

        A torn or corrupt tail of the last segment is truncated. A corrupt
        record inside an older segment ends that segment (logged): nothing
        after a bad checksum is trusted.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            names = sorted(p for p in self.directory.iterdir() if p.name.endswith(_SUFFIX))
        except OSError as exc:
            raise StorageError(f"cannot read {self.directory}: {exc}") from exc
        last_index = len(names) - 1
        for i, path in enumerate(names):
            try:
                first = int(path.name[: -len(_SUFFIX)])
                data = path.read_bytes()
            except (OSError, ValueError) as exc:
                raise StorageError(f"cannot read segment {path}: {exc}") from exc
            seg = _Segment(first, path, first - 1, len(data))
            end = 0
            for end, record in scan(data):  # noqa: B007 - end is used after the loop
                kind = record[0]
                if kind in (MSG, DEL, BASE):
                    seq = record[1]
                    if isinstance(seq, int) and seq > seg.max_seq:
                        seg.max_seq = seq
                elif kind == PURGE and isinstance(record[1], int):
                    seg.max_seq = max(seg.max_seq, record[1])
                yield record
            if end < len(data):
                if i == last_index:
                    log.warning("truncating torn tail of %s at %d (size %d)", path, end, len(data))
                    try:
                        os.truncate(path, end)
                    except OSError as exc:
                        raise StorageError(f"cannot truncate {path}: {exc}") from exc
                else:
                    log.error("corrupt record in %s at %d: rest of segment ignored", path, end)
                seg.size = end
            self._segments.append(seg)

    def open_for_append(self, next_seq: int) -> None:
        """Open the last segment for appending (or create the first one)."""
        if not self._segments:
            self._new_segment(next_seq)
            return
        seg = self._segments[-1]
        try:
            self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open {seg.path}: {exc}") from exc

    def _new_segment(self, first: int) -> None:
        path = self.directory / f"{first:020d}{_SUFFIX}"
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
            base = encode([BASE, first - 1])
            os.write(self._fd, base)
        except OSError as exc:
            raise StorageError(f"cannot create {path}: {exc}") from exc
        self._segments.append(_Segment(first, path, first - 1, len(base)))
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot fsync directory %s: %s", self.directory, exc)

    # -- writing ----------------------------------------------------------------

    def append(self, frame: bytes, seq: int) -> None:
        """Buffer a frame whose highest sequence is ``seq``; written by ``write``."""
        self._buf.append(frame)
        if seq > self._buf_max_seq:
            self._buf_max_seq = seq

    @property
    def buffered(self) -> bool:
        return bool(self._buf)

    def write(self) -> None:
        """Write buffered frames to the active segment; roll it when full."""
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        seg = self._segments[-1]
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise StorageError(f"cannot write {seg.path}: {exc}") from exc
        seg.size += len(data)
        if self._buf_max_seq > seg.max_seq:
            seg.max_seq = self._buf_max_seq
        self.dirty = True
        if seg.size >= self.segment_bytes:
            self._roll(seg.max_seq + 1)

    def _roll(self, next_seq: int) -> None:
        # The full segment is synced once here, so a periodic sync only ever
        # has the active segment to flush.
        try:
            os.fdatasync(self._fd)
            os.close(self._fd)
        except OSError as exc:
            raise StorageError(f"cannot close segment: {exc}") from exc
        self._fd = -1
        self._new_segment(next_seq)

    def sync(self) -> None:
        """fdatasync the active segment (safe to call from a worker thread)."""
        if self._fd >= 0 and self.dirty:
            self.dirty = False
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                raise StorageError(f"cannot sync segment: {exc}") from exc

    # -- removal ----------------------------------------------------------------

    def remove_below(self, first_live_seq: int) -> int:
        """Delete front segments holding only sequences below ``first_live_seq``."""
        removed = 0
        while len(self._segments) > 1 and self._segments[0].max_seq < first_live_seq:
            seg = self._segments.pop(0)
            try:
                seg.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageError(f"cannot remove {seg.path}: {exc}") from exc
            removed += 1
        return removed

    def reset(self, next_seq: int) -> None:
        """Drop every segment and start afresh at ``next_seq`` (full purge).

        The new segment (whose BASE record remembers the last sequence) is
        created before the old ones go, so a crash in between loses nothing.
        """
        self._buf.clear()
        self.close()
        old = self._segments
        self._segments = []
        self._new_segment(next_seq)
        for seg in old:
            if seg.path == self._segments[0].path:
                continue
            try:
                seg.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageError(f"cannot remove {seg.path}: {exc}") from exc

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                os.fdatasync(self._fd)
                os.close(self._fd)
            except OSError as exc:
                log.warning("closing segment: %s", exc)
            self._fd = -1
