"""Garbage-collector settings for the long-running gateway process.

CPython's defaults (a young collection every 700 net allocations, an older
one every 10 of those) suit short programs. A gateway under load keeps
thousands of messages in flight (futures, ``Msg`` objects, headers, packets
awaiting acknowledgement), so most young objects survive a collection, the
older generations fill fast, and collections keep rescanning a large live
set: under QoS 1 load that was about 16% of the CPU (py-spy, bench/broker.py).
Almost all garbage here is freed by reference counting; the cycle collector
only has to run now and then. Everything alive once the listeners are up
(modules, configuration, user tables) is frozen out of collections for good.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 100_000
"""Net allocations between young collections (default 700)."""
MIDDLE_THRESHOLD = 50
"""Young collections between middle ones (default 10)."""
OLD_THRESHOLD = 1_000
"""Middle collections between full ones (default 10; CPython also waits for the
long-lived set to grow by a quarter)."""


def tune_gc() -> None:
    """Freeze what exists now and space collections out (call once, after start-up)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
