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

YOUNG_THRESHOLD = 50_000
"""Net allocations between young collections (default 700)."""
MIDDLE_THRESHOLD = 10
"""Young collections between middle ones (the default)."""
OLD_THRESHOLD = 10
"""Middle collections between full ones (the default). Kept: closed connections
leave reference cycles that only a full collection frees once they are old;
spacing full collections further (1,000 was measured ~8% faster under QoS 1
load) would let them pile up for as long as the process runs."""


def tune_gc() -> None:
    """Freeze what exists now and space collections out (call once, after start-up)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
