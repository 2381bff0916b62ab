"""Core publish/subscribe on NATS subjects: in-process or on a real NATS server."""

from gateway.bus.api import (
    Bus,
    BusClosed,
    BusError,
    BusTimeout,
    Msg,
    MsgHandler,
    NoResponders,
    Subscription,
    new_inbox,
)
from gateway.bus.local import LocalBus
from gateway.bus.subjects import InvalidSubject

__all__ = [
    "Bus",
    "BusClosed",
    "BusError",
    "BusTimeout",
    "InvalidSubject",
    "LocalBus",
    "Msg",
    "MsgHandler",
    "NoResponders",
    "Subscription",
    "new_inbox",
]
