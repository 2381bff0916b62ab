"""Rate limiting of authentication failures per remote address.

A client address that fails authentication ``max_failures`` times within
``window`` seconds is refused outright, without its credentials being checked,
until ``block`` seconds have passed since its last failure. This blunts password
guessing (and spares the CPU that bcrypt checks cost) while a legitimate client
with a typo recovers on its own. Loopback addresses are limited like any other.
"""

from __future__ import annotations

import time
from collections import deque

DEFAULT_MAX_FAILURES = 10
DEFAULT_WINDOW = 60.0
DEFAULT_BLOCK = 30.0
_MAX_TRACKED = 65536


class FailureLimiter:
    """Counts authentication failures per address and says which addresses are blocked."""

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window: float = DEFAULT_WINDOW,
        block: float = DEFAULT_BLOCK,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.block = block
        self._failures: dict[str, deque[float]] = {}
        self.total_failures = 0
        self.total_blocked = 0

    def blocked(self, address: str, now: float | None = None) -> bool:
        """Whether ``address`` must be refused without a check (and count it if so)."""
        times = self._failures.get(address)
        if times is None or len(times) < self.max_failures:
            return False
        now = time.monotonic() if now is None else now
        if now - times[-1] >= self.block:
            del self._failures[address]
            return False
        self.total_blocked += 1
        return True

    def failed(self, address: str, now: float | None = None) -> None:
        """``address`` failed to authenticate."""
        now = time.monotonic() if now is None else now
        self.total_failures += 1
        times = self._failures.get(address)
        if times is None:
            if len(self._failures) >= _MAX_TRACKED:
                self._failures.pop(next(iter(self._failures)))
            times = self._failures[address] = deque(maxlen=self.max_failures)
        while times and now - times[0] > self.window:
            times.popleft()
        times.append(now)

    def succeeded(self, address: str) -> None:
        """``address`` authenticated: its count starts again."""
        self._failures.pop(address, None)
