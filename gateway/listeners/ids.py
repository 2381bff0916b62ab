"""Connection ids: one counter for every listener, as the NATS server's ``cid``."""

from __future__ import annotations

import itertools

_ids = itertools.count(1)


def next_connection_id() -> int:
    """A process-wide unique, increasing connection id."""
    return next(_ids)
