"""A subject trie: which registered filters match a literal subject.

Owns only the tree of filter tokens; callers keep their own match caches and
use ``generation`` (bumped on every change) to know when to drop them.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Sublist"]

T = TypeVar("T")


class _Node(Generic[T]):
    __slots__ = ("children", "items")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.items: list[T] = []


class Sublist(Generic[T]):
    """Filters (with ``*`` and ``>``) mapped to items; ``match`` finds the items for a subject.

    Filters must already be valid (see ``gateway.bus.subjects``). An item
    registered twice under one filter is returned twice.
    """

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._count = 0
        self.generation = 0

    def __len__(self) -> int:
        return self._count

    def insert(self, filter_: str, item: T) -> None:
        node = self._root
        for token in filter_.split("."):
            child = node.children.get(token)
            if child is None:
                child = node.children[token] = _Node()
            node = child
        node.items.append(item)
        self._count += 1
        self.generation += 1

    def remove(self, filter_: str, item: T) -> bool:
        """Remove one registration of ``item`` under ``filter_``; False if absent."""
        path: list[tuple[_Node[T], str]] = []
        node = self._root
        for token in filter_.split("."):
            child = node.children.get(token)
            if child is None:
                return False
            path.append((node, token))
            node = child
        try:
            node.items.remove(item)
        except ValueError:
            return False
        # Prune empty branches so long-lived routers do not grow without bound.
        for parent, token in reversed(path):
            child = parent.children[token]
            if child.items or child.children:
                break
            del parent.children[token]
        self._count -= 1
        self.generation += 1
        return True

    def items(self) -> list[T]:
        """Every registered item (one entry per registration)."""
        out: list[T] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            out.extend(node.items)
            stack.extend(node.children.values())
        return out

    def match(self, subject: str) -> list[T]:
        """Items whose filter matches the literal ``subject``."""
        out: list[T] = []
        if self._count:
            self._collect(self._root, subject.split("."), 0, out)
        return out

    def _collect(self, node: _Node[T], tokens: list[str], i: int, out: list[T]) -> None:
        children = node.children
        fwc = children.get(">")
        if fwc is not None:
            out.extend(fwc.items)
        pwc = children.get("*")
        exact = children.get(tokens[i])
        if i == len(tokens) - 1:
            if pwc is not None:
                out.extend(pwc.items)
            if exact is not None:
                out.extend(exact.items)
            return
        if pwc is not None:
            self._collect(pwc, tokens, i + 1, out)
        if exact is not None:
            self._collect(exact, tokens, i + 1, out)
