"""Helpers for contract tests: collecting pushed messages and waiting on conditions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from gateway.bus.api import Msg, Subscription, new_inbox
from streams.api import Log
from streams.types import DeliveryInfo, parse_ack


class Inbox:
    """A subscription on a fresh deliver subject; ``next()`` returns (msg, delivery info)."""

    def __init__(self, log: Log, sub: Subscription, subject: str) -> None:
        self.log = log
        self.sub = sub
        self.subject = subject

    @classmethod
    async def create(cls, log: Log, queue: str | None = None) -> Inbox:
        subject = new_inbox("deliver")
        sub = await log.bus.subscribe(subject, queue=queue)
        await log.bus.flush()
        return cls(log, sub, subject)

    async def next(self, timeout: float = 5.0) -> tuple[Msg, DeliveryInfo]:
        msg = await self.sub.next_msg(timeout)
        return msg, parse_ack(msg.reply)

    async def take(self, n: int, timeout: float = 5.0) -> list[tuple[Msg, DeliveryInfo]]:
        return [await self.next(timeout) for _ in range(n)]

    async def nothing_within(self, seconds: float) -> bool:
        """True if no message arrives within ``seconds`` (for 'must not deliver' checks)."""
        try:
            await self.sub.next_msg(seconds)
        except TimeoutError:
            return True
        return False


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 5.0, interval: float = 0.05
) -> None:
    """Poll an async condition until true; for time-driven behaviour (expiry, timers)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
