"""The JetStream-style log: streams, durable consumers, acks and key-value buckets.

Two backends sit behind one interface (``streams.api.Log``):
``streams.embedded`` (jetgate's own on-disk store) and ``streams.jetstream``
(real JetStream through nats-py). This package knows nothing of MQTT or auth.
"""

from streams.api import KeyValue, KeyWatcher, Log
from streams.errors import *  # noqa: F403
from streams.errors import __all__ as _errors
from streams.types import *  # noqa: F403
from streams.types import __all__ as _types

__all__ = ["KeyValue", "KeyWatcher", "Log", *_errors, *_types]
