"""Stream names, subjects, headers and identifiers of the MQTT layout on the log.

The layout is the NATS server's (nats-mqtt.md 2.2, 2.3, 2.9), so an operator
who knows ``nats stream ls`` on an MQTT-enabled server recognises every
stream. Where jetgate differs it says so here:

- staged QoS 2 messages live on ``$MQTT.qos2.in.<hash8(client id)>.<pi>``,
  not on the raw client ID, which may hold ``.``, ``*`` or ``>``;
- outbound PUBREL state is a field of the session record, so there is no
  ``$MQTT_out`` stream;
- shared subscriptions (MQTT 5) get one consumer per group and subject, named
  and addressed from a hash of both (and of the filter's first subject for the
  second subject of ``a/#``) so every member on every gateway finds it.
"""

from __future__ import annotations

import hashlib
import secrets
import string

__all__ = [
    "DELIVER_PREFIX",
    "HDR_PUB",
    "HDR_RFLAGS",
    "HDR_RORIGIN",
    "HDR_RSOURCE",
    "HDR_RTOPIC",
    "HDR_SUBJECT",
    "HDR_TOPIC",
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
    "SHARED_CONSUMER_PREFIX",
    "hash8",
    "is_shared_consumer",
    "nuid",
    "qos2_subject",
    "session_subject",
    "shared_consumer_name",
    "shared_deliver_subject",
]

MSGS_STREAM = "$MQTT_msgs"
MSGS_PREFIX = "$MQTT.msgs."
RETAINED_STREAM = "$MQTT_rmsgs"
RETAINED_PREFIX = "$MQTT.rmsgs."
SESSIONS_STREAM = "$MQTT_sess"
SESSIONS_BUCKET = SESSIONS_STREAM
"""Sessions are a plain stream (as in the NATS server), not a KV bucket; same name."""
SESSIONS_PREFIX = "$MQTT.sess."
QOS2_STREAM = "$MQTT_qos2in"
QOS2_PREFIX = "$MQTT.qos2.in."
DELIVER_PREFIX = "$MQTT.sub."
SHARED_CONSUMER_PREFIX = "share_"

NEVER_EXPIRES = 0xFFFFFFFF
"""Session expiry interval meaning "never" [MQTT-3.1.2-11 (v5)]."""

# Headers (nats-mqtt.md 2.9).
HDR_PUB = "Nmqtt-Pub"
HDR_SUBJECT = "Nmqtt-Subject"
HDR_RTOPIC = "Nmqtt-RTopic"
HDR_RFLAGS = "Nmqtt-RFlags"
HDR_RORIGIN = "Nmqtt-ROrigin"
HDR_RSOURCE = "Nmqtt-RSource"
HDR_TOPIC = "Nmqtt-Topic"
"""jetgate: the MQTT topic of a staged QoS 2 message (the NATS server re-derives it)."""

_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase


def hash8(value: str) -> str:
    """SHA-256 of ``value``, first 8 bytes each mapped to ``0-9A-Za-z`` by byte mod 62.

    The NATS server's client-ID hash (nats-mqtt.md 2.3): ``sessC`` -> ``QuPcFsb2``.
    """
    digest = hashlib.sha256(value.encode()).digest()
    return "".join(_ALPHABET[b % 62] for b in digest[:8])


def nuid() -> str:
    """A fresh 22-character base-62 identifier (the shape of a NATS nuid)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(22))


def session_subject(client_hash: str, domain: str | None = None) -> str:
    """``$MQTT.sess.[<domain>.]<hash8>``: the subject holding one client's session record."""
    if domain:
        return f"{SESSIONS_PREFIX}{domain}.{client_hash}"
    return SESSIONS_PREFIX + client_hash


def qos2_subject(client_hash: str, packet_id: int) -> str:
    """``$MQTT.qos2.in.<hash8>.<pi>``: where an inbound QoS 2 message waits for PUBREL."""
    return f"{QOS2_PREFIX}{client_hash}.{packet_id}"


def _group_key(group: str, subject: str) -> str:
    # Both parts hashed separately: "a b" + "c" and "a" + "b c" must differ.
    return hash8(group) + hash8(subject)


def shared_consumer_name(group: str, subject: str, head: str | None = None) -> str:
    """The durable consumer of shared group ``group`` on NATS ``subject`` (every member's).

    ``head`` is the first subject of the filter when the filter has several
    (``a/#`` is ``a.>`` then ``a``): the consumer of ``a`` for ``$share/g/a/#``
    is then named after both, so it is not the one of ``$share/g/a``, which is
    another shared subscription delivering elsewhere.
    """
    if head is None or head == subject:
        return SHARED_CONSUMER_PREFIX + _group_key(group, subject)
    return f"{SHARED_CONSUMER_PREFIX}{_group_key(group, head)}_{hash8(subject)}"


def shared_deliver_subject(group: str, subject: str) -> str:
    """The deliver subject of a shared filter whose (first) subject is ``subject``; every
    consumer of the filter pushes there, and members subscribe to it with queue ``group``."""
    return f"{DELIVER_PREFIX}share.{_group_key(group, subject)}"


def is_shared_consumer(name: str) -> bool:
    """True for a consumer created for a shared group (owned by the group, not a session)."""
    return name.startswith(SHARED_CONSUMER_PREFIX)
