"""NatsBus: the name the JetStream backend used for its Bus on nats-py, now ``UpstreamBus``.

The JetStream backend delivers pushed messages on real NATS subjects, so its
``Log.bus`` must be a Bus whose subscribers are NATS subscribers: the
gateway's ``gateway.bus.upstream.UpstreamBus``. ``JetStreamLog`` builds one on
its connection when it is given none; these aliases keep the old names.
"""

from __future__ import annotations

from gateway.bus.upstream import UpstreamBus as NatsBus
from gateway.bus.upstream import UpstreamSubscription as NatsBusSubscription
from gateway.bus.upstream import from_nats

__all__ = ["NatsBus", "NatsBusSubscription", "from_nats"]
