"""The JetStream backend of the log: real streams and consumers on a NATS server via nats-py.

``JetStreamLog`` implements ``streams.api.Log``; ``NatsBus`` is the small
``Bus`` adapter it delivers through until the gateway's UpstreamBus exists.
"""

from streams.jetstream.log import JetStreamLog
from streams.jetstream.natsbus import NatsBus
from streams.jetstream.wire import JetStreamAPIError

__all__ = ["JetStreamAPIError", "JetStreamLog", "NatsBus"]
