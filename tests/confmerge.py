"""Test gateway configurations: a base of ephemeral listeners, merged with a test's extra text.

In the NATS configuration language a second ``mqtt { }`` block replaces the
first, so a test's ``mqtt { ack_wait: "1s" }`` appended to the base would drop
the base's ``listen: 127.0.0.1:-1`` and bind the default port 1883 on every
interface. ``load_merged`` merges such blocks key by key instead.
"""

from __future__ import annotations

from conf import loads
from conf.values import ConfMap


def load_merged(base: str, extra: str) -> ConfMap:
    """``base`` then ``extra``; a block in both (``mqtt``, ``websocket`` ...) keeps base's keys."""
    merged = loads(base)
    if not extra.strip():
        return merged
    more = loads(extra)
    for key, value in more.items():
        old = merged.get(key)
        if isinstance(old, ConfMap) and isinstance(value, ConfMap):
            for name, item in value.items():
                old.set(name, item, value.pos(name))
        else:
            merged.set(key, value, more.pos(key))
    return merged
