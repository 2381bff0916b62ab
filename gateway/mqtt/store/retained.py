"""The in-memory index of retained messages: a subject tree, kept by sequence.

The index maps each retained subject to the sequence of its record in
``$MQTT_rmsgs`` and the message itself. It is fed from two sides: the
gateway's own ``set_retained`` (so a SUBSCRIBE right after a retained PUBLISH
sees it) and the retained loader consumer (so changes made by other gateways
sharing the log arrive too). Either may come first; an update older than what
the index holds for that subject (by sequence) is ignored, and cleared
subjects remember the sequence of their delete marker for the same reason.

Matching walks the tree token by token, so the cost follows the size of the
answer, not the number of retained subjects. A filter whose first token is a
wildcard does not match subjects starting with ``$`` [MQTT-4.7.2-1]; the NATS
server forgets this for retained replays (nats-mqtt.md 8).

Payloads up to ``max_cached_payload`` bytes are kept in memory; larger ones
are marked for a fetch from the stream when matched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from gateway.mqtt.store.records import RetainedMessage

__all__ = ["DEFAULT_MAX_CACHED_PAYLOAD", "IndexEntry", "RetainedIndex"]

DEFAULT_MAX_CACHED_PAYLOAD = 64 * 1024


@dataclass(slots=True)
class IndexEntry:
    """One retained subject: its record's sequence and message (payload b"" if not cached)."""

    seq: int
    message: RetainedMessage
    cached: bool


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    entry: IndexEntry | None = None


class RetainedIndex:
    """Subject tree of retained messages (see the module docstring). No I/O."""

    def __init__(self, max_cached_payload: int = DEFAULT_MAX_CACHED_PAYLOAD) -> None:
        self._root = _Node()
        self._seqs: dict[str, int] = {}  # subject -> newest sequence seen (live or cleared)
        self._count = 0
        self._max_cached = max_cached_payload

    def __len__(self) -> int:
        return self._count

    def seq_of(self, subject: str) -> int:
        """The newest sequence applied for ``subject`` (0 if none)."""
        return self._seqs.get(subject, 0)

    def apply(self, seq: int, subject: str, message: RetainedMessage | None) -> bool:
        """Set (``message``) or clear (None) ``subject`` as of ``seq``; False if stale."""
        if seq <= self._seqs.get(subject, 0):
            return False
        self._seqs[subject] = seq
        tokens = subject.split(".")
        if message is None:
            self._remove(tokens)
            return True
        node = self._root
        for token in tokens:
            child = node.children.get(token)
            if child is None:
                child = node.children[token] = _Node()
            node = child
        if node.entry is None:
            self._count += 1
        cached = len(message.payload) <= self._max_cached
        if not cached:
            message = RetainedMessage(
                message.topic,
                message.subject,
                b"",
                message.qos,
                message.headers,
                message.stored_at,
            )
        node.entry = IndexEntry(seq, message, cached)
        return True

    def _remove(self, tokens: list[str]) -> None:
        path: list[tuple[_Node, str]] = []
        node = self._root
        for token in tokens:
            child = node.children.get(token)
            if child is None:
                return
            path.append((node, token))
            node = child
        if node.entry is None:
            return
        node.entry = None
        self._count -= 1
        # Prune the branch back to the first node still in use.
        for parent, token in reversed(path):
            child = parent.children[token]
            if child.entry is not None or child.children:
                break
            del parent.children[token]

    def match(self, filters: Iterable[str]) -> list[IndexEntry]:
        """Entries whose subject matches any filter, each once, in subject order."""
        found: dict[str, IndexEntry] = {}
        for filter_ in filters:
            tokens = filter_.split(".")
            skip_dollar = tokens[0] in ("*", ">")
            for entry in self._walk(self._root, tokens, 0, skip_dollar):
                found[entry.message.subject] = entry
        return [found[s] for s in sorted(found)]

    def _walk(
        self, node: _Node, tokens: list[str], i: int, skip_dollar: bool
    ) -> Iterator[IndexEntry]:
        token = tokens[i]
        last = i == len(tokens) - 1
        if token == ">":
            for name, child in node.children.items():
                if skip_dollar and name.startswith("$"):
                    continue
                yield from self._all(child)
            return
        if token == "*":
            children: Iterable[tuple[str, _Node]] = node.children.items()
        else:
            only = node.children.get(token)
            children = () if only is None else ((token, only),)
        for name, child in children:
            if skip_dollar and name.startswith("$"):
                continue
            if last:
                if child.entry is not None:
                    yield child.entry
            else:
                yield from self._walk(child, tokens, i + 1, False)

    def _all(self, node: _Node) -> Iterator[IndexEntry]:
        stack = [node]
        while stack:
            n = stack.pop()
            if n.entry is not None:
                yield n.entry
            stack.extend(n.children.values())
