"""Protocol commands written straight into a nats-py connection's outbound buffer.

``await nc.publish()`` costs a coroutine per message; ``NatsOutbox.send`` does
what it does as a plain call: append the bytes to nats-py's pending buffer and
wake its flusher task once per batch, so a command goes out in the order of
the calls, mixed in order with nats-py's own writes on that connection. While
the connection is down the bytes wait in the same buffer for the reconnect,
bounded by the connection's ``pending_size``; a command that would overflow it
is refused (``send`` returns False), where nats-py would raise.

A long burst (more than ``EARLY_WRITE`` bytes pending, e.g. the JetStream
publishes for a read full of MQTT QoS 1 PUBLISHes) is written at once rather
than at the end of the loop turn, so the server works on its start while the
rest is built: in upstream mode's QoS 1 bench the gateway and nats-server took
turns idling (each ~73% busy) and this alone gave 5-8% more messages/s.

Uses nats-py internals (``_pending``, ``_pending_data_size``,
``_max_pending_size``, ``_flush_queue``, ``_status``, ``_transport``);
``INTERNALS`` names them for callers that check the installed nats-py has them.
"""

from __future__ import annotations

import asyncio
from typing import Final

from nats.aio.client import Client as NATS

__all__ = ["INTERNALS", "NatsOutbox"]

INTERNALS = (
    "_pending",
    "_pending_data_size",
    "_flush_queue",
    "_max_pending_size",
    "_status",
    "_transport",
)

#: Pending bytes past which ``send`` writes to the socket without waiting for the flusher.
EARLY_WRITE: Final = 16 * 1024

_CONNECTED: Final = NATS.CONNECTED
_DRAINING_SUBS: Final = NATS.DRAINING_SUBS
_DRAINING_PUBS: Final = NATS.DRAINING_PUBS


class NatsOutbox:
    """Plain-call writes of ready protocol commands on one nats-py connection."""

    __slots__ = ("_kick", "nc")

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._kick: asyncio.Future[None] | None = None

    def send(self, cmd: bytes, messages: int = 0, size: int = 0) -> bool:
        """Queue ``cmd`` (``messages`` publishes of ``size`` payload bytes, for the stats).

        False, and nothing queued, when the connection is down and its
        reconnect buffer has no room for ``cmd``.
        """
        nc = self.nc
        total = nc._pending_data_size + len(cmd)
        # nats-py's ``is_connected``, without a Python property call per command.
        status = nc._status
        connected = status in (_CONNECTED, _DRAINING_SUBS, _DRAINING_PUBS)
        if not connected and (nc._max_pending_size <= 0 or total > nc._max_pending_size):
            return False
        if messages:
            stats = nc.stats
            stats["out_msgs"] += messages
            stats["out_bytes"] += size
        nc._pending.append(cmd)
        nc._pending_data_size = total
        if not connected:
            return True  # nats-py writes the buffer once reconnected
        transport = nc._transport
        if total >= EARLY_WRITE and transport is not None:
            transport.writelines(nc._pending)
            nc._pending = []
            nc._pending_data_size = 0
            return True
        queue = nc._flush_queue
        if queue is not None and queue.empty():
            # The flusher writes everything pending when it takes this; until
            # then the queue is not empty and later sends need no wake-up.
            kick = self._kick
            if kick is None:
                kick = self._kick = asyncio.get_running_loop().create_future()
                kick.set_result(None)
            queue.put_nowait(kick)
        return True
