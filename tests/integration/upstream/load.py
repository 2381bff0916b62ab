"""QoS 1 load that survives an upstream failure: publishers, a persistent subscriber, a tally.

Publishers send QoS 1 messages one at a time and record each message the
gateway PUBACKs; when their connection breaks or a PUBACK does not come, they
reconnect (CONNACK "server unavailable" is the only refusal allowed) and go on
with the next message. A persistent subscriber acknowledges everything it
receives and resumes its session when its connection breaks. The tally holds
what was acknowledged to publishers and what reached the subscriber, so a test
checks that nothing acknowledged was lost: ``await tally.delivered(...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.mqtt.packets import Connack, Packet, Puback, Publish, Pubrel
from tests.integration.mqtt.helpers import ConnectionClosedError, TcpSession

SERVER_UNAVAILABLE = 0x88
"""5.0 reason code; a 3.1.1 CONNACK return code 3 decodes to it."""
CONNECT_TIMEOUT = 15.0
PUBACK_TIMEOUT = 15.0
RETRY_PACE = 0.1
"""Seconds between two refused connection attempts (pacing retries, not synchronisation)."""


@dataclass
class Tally:
    """What the load did, with a condition notified on every change."""

    acked: set[bytes] = field(default_factory=set)
    received: set[bytes] = field(default_factory=set)
    refused: Counter[str] = field(default_factory=Counter)
    """CONNACKs with "server unavailable", by client id."""
    resumed: list[bool] = field(default_factory=list)
    """Session Present of each reconnection of the subscriber."""
    late_connacks: list[int] = field(default_factory=list)
    """Codes of CONNACKs that came after a successful one on the same connection."""
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``predicate()`` holds, failing after ``timeout`` seconds."""
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(predicate), timeout)
            except TimeoutError:
                raise AssertionError(
                    f"{what} not reached in {timeout}s: {self.summary()}"
                ) from None

    async def acked_at_least(self, count: int, timeout: float) -> None:
        await self.until(lambda: len(self.acked) >= count, timeout, f"{count} PUBACKs")

    async def delivered(self, timeout: float) -> None:
        """Every message PUBACKed to a publisher has reached the subscriber."""

        def done() -> bool:
            return self.acked <= self.received

        try:
            await self.until(done, timeout, "delivery of every acknowledged message")
        except AssertionError:
            lost = sorted(self.acked - self.received)
            raise AssertionError(
                f"{len(lost)} acknowledged messages never delivered, e.g. {lost[:5]}; {self.summary()}"
            ) from None

    def summary(self) -> str:
        return (
            f"acked={len(self.acked)} received={len(self.received)} "
            f"refused={dict(self.refused)} resumed={self.resumed} "
            f"late_connacks={self.late_connacks}"
        )


async def connect_retrying(
    port: int, client_id: str, clean: bool, tally: Tally, deadline: float
) -> tuple[TcpSession, bool]:
    """A connected session (and its Session Present), retrying while the upstream is down."""
    while True:
        if time.monotonic() > deadline:
            raise AssertionError(f"{client_id}: no successful CONNECT in time; {tally.summary()}")
        session = await TcpSession.open(port)
        try:
            connack = await session.connect(client_id, clean=clean, timeout=CONNECT_TIMEOUT)
        except (ConnectionClosedError, TimeoutError):
            await session.aclose()
            await asyncio.sleep(RETRY_PACE)
            continue
        if connack.reason_code == 0:
            return session, connack.session_present
        await session.aclose()
        assert connack.reason_code == SERVER_UNAVAILABLE, (
            f"{client_id}: CONNACK {connack.reason_code:#x}, expected success or server unavailable"
        )
        tally.refused[client_id] += 1
        await tally._notify()
        await asyncio.sleep(RETRY_PACE)


async def publisher(
    port: int, name: str, topic: str, tally: Tally, stop: asyncio.Event, deadline: float
) -> int:
    """Publish ``<name>-<n>`` at QoS 1 until ``stop``; return how many were sent."""
    session: TcpSession | None = None
    n = 0
    try:
        while not stop.is_set():
            if session is None:
                session, _ = await connect_retrying(port, name, True, tally, deadline)
            body = f"{name}-{n}".encode()
            n += 1
            pid = session.packet_id()
            session.send(Publish(topic, body, 1, packet_id=pid))
            try:
                ack = await session.expect(Puback, timeout=PUBACK_TIMEOUT)
            except (ConnectionClosedError, TimeoutError):
                await session.aclose()  # not acknowledged: it may or may not arrive
                session = None
                continue
            assert ack.packet_id == pid
            tally.acked.add(body)
            await tally._notify()
    finally:
        if session is not None:
            await session.disconnect()
    return n


async def resume_and_drain(
    port: int, client_id: str, wanted: set[bytes], tally: Tally, timeout: float
) -> set[bytes]:
    """Resume ``client_id``'s session and PUBACK until every payload of ``wanted`` came.

    A connection that ends meanwhile is resumed again (the upstream may still be
    electing leaders); every resumption must find the session.
    """
    got: set[bytes] = set()
    deadline = time.monotonic() + timeout
    while not wanted <= got:
        session, present = await connect_retrying(port, client_id, False, tally, deadline)
        assert present, f"{client_id}: the session was lost"
        try:
            while not wanted <= got:
                left = deadline - time.monotonic()
                try:
                    packet = await session.recv(timeout=max(left, 0.01))
                except TimeoutError:
                    lost = sorted(wanted - got)
                    raise AssertionError(
                        f"{len(lost)} acknowledged messages never delivered, e.g. {lost[:5]}"
                    ) from None
                if _late_connack(packet, tally):
                    continue
                assert isinstance(packet, Publish), f"unexpected {packet!r}"
                session.ack(packet)
                got.add(bytes(packet.payload))
        except ConnectionClosedError:
            continue
        finally:
            await session.aclose()
    return got


def _late_connack(packet: Packet, tally: Tally) -> bool:
    """A second CONNACK on a connection already accepted (counted; see test_connack_once)."""
    if isinstance(packet, Connack):
        tally.late_connacks.append(int(packet.reason_code))
        return True
    return False


async def subscriber(
    port: int, client_id: str, first: TcpSession, tally: Tally, deadline: float
) -> None:
    """Receive and PUBACK forever on ``first``, resuming the session on a new connection."""
    session = first
    try:
        while True:
            try:
                packet = await session.recv(timeout=max(deadline - time.monotonic(), 0.1))
            except ConnectionClosedError:
                await session.aclose()
                session, present = await connect_retrying(port, client_id, False, tally, deadline)
                tally.resumed.append(present)
                await tally._notify()
                continue
            if isinstance(packet, Pubrel) or _late_connack(packet, tally):
                continue
            assert isinstance(packet, Publish), f"unexpected {packet!r}"
            session.ack(packet)
            tally.received.add(bytes(packet.payload))
            await tally._notify()
    finally:
        with contextlib.suppress(Exception):
            await session.aclose()
