"""Packet identifiers and the in-flight windows of one MQTT session (sans-I/O).

``PacketIds`` hands out identifiers 1..65535 as a rolling counter that skips
identifiers still in use, so a freed identifier is not reused at once
([MQTT-2.2.1-3]: an identifier becomes free again only when its exchange ends).

``Outbound`` tracks QoS 1 and 2 messages the server sent: each identifier
maps to a token (whatever the caller needs to acknowledge the message in the
log). A QoS 2 message moves from "waiting for PUBREC" to "waiting for
PUBCOMP". The window is the client's Receive Maximum ([MQTT-3.3.4-9]: the
server must not send more unacknowledged QoS 1/2 PUBLISHes than that).

``Inbound`` tracks QoS 2 messages the client sent and that wait for PUBREL
([MQTT-4.3.3-9]: a PUBLISH with a known identifier is not delivered twice),
and the client's unacknowledged QoS 1/2 count against our Receive Maximum
([MQTT-3.3.4-7]: exceeding it is a protocol error, 0x93).
"""

from __future__ import annotations

import enum
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_PACKET_ID = 0xFFFF


class NoFreePacketId(Exception):
    """All 65535 identifiers are in use."""


class PacketIds:
    """A rolling allocator of packet identifiers."""

    __slots__ = ("_in_use", "_last")

    def __init__(self) -> None:
        self._last = 0
        self._in_use: set[int] = set()

    def allocate(self) -> int:
        """The next free identifier after the last one handed out."""
        if len(self._in_use) >= MAX_PACKET_ID:
            raise NoFreePacketId("every packet identifier is in use")
        pid = self._last
        while True:
            pid = pid + 1 if pid < MAX_PACKET_ID else 1
            if pid not in self._in_use:
                break
        self._last = pid
        self._in_use.add(pid)
        return pid

    def reserve(self, pid: int) -> None:
        """Mark ``pid`` in use (restored from a stored session)."""
        self._in_use.add(pid)

    def release(self, pid: int) -> None:
        """``pid``'s exchange ended."""
        self._in_use.discard(pid)

    def __contains__(self, pid: object) -> bool:
        return pid in self._in_use


class Phase(enum.Enum):
    """Where an outbound QoS 1/2 message is."""

    AWAITING_PUBACK = 1
    AWAITING_PUBREC = 2
    AWAITING_PUBCOMP = 3


class Outbound(Generic[T]):
    """QoS 1/2 messages sent to the client and not yet acknowledged."""

    __slots__ = ("_entries", "ids", "receive_maximum")

    def __init__(self, receive_maximum: int = 65535) -> None:
        self.receive_maximum = receive_maximum
        self.ids = PacketIds()
        self._entries: dict[int, tuple[Phase, T | None]] = {}

    @property
    def full(self) -> bool:
        """Whether the client's Receive Maximum is reached."""
        return len(self._entries) >= self.receive_maximum

    def __len__(self) -> int:
        return len(self._entries)

    def send(self, qos: int, token: T) -> int:
        """Record a QoS 1/2 message about to be sent; returns its packet identifier."""
        pid = self.ids.allocate()
        phase = Phase.AWAITING_PUBACK if qos == 1 else Phase.AWAITING_PUBREC
        self._entries[pid] = (phase, token)
        return pid

    def restore_pubrel(self, pid: int) -> None:
        """A stored session had ``pid`` waiting for PUBCOMP (its PUBREL is sent again)."""
        self.ids.reserve(pid)
        self._entries[pid] = (Phase.AWAITING_PUBCOMP, None)

    def puback(self, pid: int) -> T | None:
        """The client acknowledged a QoS 1 message; its token, or None if unknown."""
        entry = self._entries.get(pid)
        if entry is None or entry[0] is not Phase.AWAITING_PUBACK:
            return None
        self._end(pid)
        return entry[1]

    def pubrec(self, pid: int) -> T | None:
        """The client received a QoS 2 message; its token (PUBREL follows), or None."""
        entry = self._entries.get(pid)
        if entry is None or entry[0] is not Phase.AWAITING_PUBREC:
            return None
        self._entries[pid] = (Phase.AWAITING_PUBCOMP, entry[1])
        return entry[1]

    def pubcomp(self, pid: int) -> bool:
        """The QoS 2 exchange for ``pid`` completed; False if unknown."""
        entry = self._entries.get(pid)
        if entry is None or entry[0] is not Phase.AWAITING_PUBCOMP:
            return False
        self._end(pid)
        return True

    def abandon(self, pid: int) -> None:
        """Forget ``pid`` whatever its phase (its PUBLISH was never sent)."""
        if pid in self._entries:
            self._end(pid)

    def _end(self, pid: int) -> None:
        del self._entries[pid]
        self.ids.release(pid)

    def pending_pubrel(self) -> list[int]:
        """Identifiers waiting for PUBCOMP, in the order they were sent."""
        return [pid for pid, (phase, _) in self._entries.items() if phase is Phase.AWAITING_PUBCOMP]

    def unacknowledged(self) -> list[tuple[int, T]]:
        """(identifier, token) of PUBLISHes not yet acknowledged, in the order sent."""
        return [
            (pid, token)
            for pid, (phase, token) in self._entries.items()
            if phase is not Phase.AWAITING_PUBCOMP and token is not None
        ]

    def clear(self) -> None:
        """Forget everything (the connection ended)."""
        self._entries.clear()
        self.ids = PacketIds()


class Inbound:
    """QoS 2 identifiers received and waiting for PUBREL, and the inbound window."""

    __slots__ = ("_awaiting_pubrel", "receive_maximum")

    def __init__(self, receive_maximum: int) -> None:
        self.receive_maximum = receive_maximum
        self._awaiting_pubrel: set[int] = set()

    def qos2_received(self, pid: int) -> bool:
        """A QoS 2 PUBLISH arrived: True if new, False if a duplicate of one awaiting PUBREL."""
        if pid in self._awaiting_pubrel:
            return False
        self._awaiting_pubrel.add(pid)
        return True

    def pubrel(self, pid: int) -> bool:
        """PUBREL arrived: True if ``pid`` was awaiting it."""
        if pid in self._awaiting_pubrel:
            self._awaiting_pubrel.discard(pid)
            return True
        return False

    @property
    def awaiting_pubrel(self) -> int:
        """How many QoS 2 messages wait for their PUBREL."""
        return len(self._awaiting_pubrel)
