"""Durable MQTT state on the ``streams.Log`` interface: sessions, retained, QoS 1/2.

The layout follows the NATS server's MQTT support (nats-mqtt.md sections 2
and 3.1); ``names`` lists every stream, subject and header, ``records`` how
each record is encoded, ``retained`` the in-memory retained index, and
``store.MqttStore`` the one object the MQTT session layer calls.
"""

from gateway.mqtt.store.errors import (
    SessionCollision,
    SessionConflict,
    StoreError,
    StoreTimeout,
)
from gateway.mqtt.store.names import (
    DELIVER_PREFIX,
    MSGS_PREFIX,
    MSGS_STREAM,
    NEVER_EXPIRES,
    QOS2_PREFIX,
    QOS2_STREAM,
    RETAINED_PREFIX,
    RETAINED_STREAM,
    SESSIONS_BUCKET,
    SESSIONS_PREFIX,
    SESSIONS_STREAM,
    hash8,
    is_shared_consumer,
    nuid,
    shared_consumer_name,
    shared_deliver_subject,
)
from gateway.mqtt.store.records import (
    RetainedMessage,
    SessionRecord,
    StagedMessage,
    SubscriptionRecord,
)
from gateway.mqtt.store.store import MqttStore

__all__ = [
    "DELIVER_PREFIX",
    "MSGS_PREFIX",
    "MSGS_STREAM",
    "NEVER_EXPIRES",
    "QOS2_PREFIX",
    "QOS2_STREAM",
    "RETAINED_PREFIX",
    "RETAINED_STREAM",
    "SESSIONS_BUCKET",
    "SESSIONS_PREFIX",
    "SESSIONS_STREAM",
    "MqttStore",
    "RetainedMessage",
    "SessionCollision",
    "SessionConflict",
    "SessionRecord",
    "StagedMessage",
    "StoreError",
    "StoreTimeout",
    "SubscriptionRecord",
    "hash8",
    "is_shared_consumer",
    "nuid",
    "shared_consumer_name",
    "shared_deliver_subject",
]
