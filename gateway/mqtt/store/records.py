"""The records the MQTT store keeps, and how each is laid out in a log message.

Session record (one message on ``$MQTT.sess.<hash8>``), JSON::

    {"id": "<client id>", "expiry": 3600, "disconnected_at": 1712345678.5,
     "pubrel": [7, 9],
     "subs": {"a/#": {"qos": 1, "consumers": ["QuPcFsb2_<nuid>", "QuPcFsb2_<nuid>"],
                      "deliver_subject": "$MQTT.sub.<nuid>", "no_local": false,
                      "retain_as_published": false, "retain_handling": 0,
                      "subscription_id": null}}}

Unknown keys are ignored when reading, so a newer gateway may add fields
without breaking an older one that shares the same log.

Retained record (one message on ``$MQTT.rmsgs.<subject>``): the raw payload
as body, ``Nmqtt-RTopic`` (the MQTT topic), ``Nmqtt-RFlags`` (publish flags in
hex, QoS << 1 | RETAIN; ``-`` prefixed on a delete marker), ``Nmqtt-ROrigin``
when the gateway has an origin name, and the caller's headers.

Staged QoS 2 message (one message on ``$MQTT.qos2.in.<hash8>.<pi>``): the
payload as body, ``Nmqtt-Pub: 2<flags hex>``, ``Nmqtt-Subject``,
``Nmqtt-Topic`` and the caller's headers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.mqtt.store.errors import StoreError
from gateway.mqtt.store.names import (
    HDR_PUB,
    HDR_RFLAGS,
    HDR_RORIGIN,
    HDR_RTOPIC,
    HDR_SUBJECT,
    HDR_TOPIC,
)
from gateway.mqtt.topics import subject_to_topic

__all__ = [
    "RetainedMessage",
    "SessionRecord",
    "StagedMessage",
    "SubscriptionRecord",
    "decode_retained",
    "decode_session",
    "decode_staged",
    "encode_retained",
    "encode_session",
    "encode_staged",
    "session_client_id",
]

_FLAG_RETAIN = 0x01
_FLAG_QOS2 = 0x04


@dataclass(frozen=True)
class SubscriptionRecord:
    """One subscription of a session, as subscribed, with the consumers that serve it."""

    topic_filter: str
    """The MQTT filter as subscribed (including ``$share/<group>/`` if shared)."""
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    subscription_id: int | None = None
    consumers: tuple[str, ...] = ()
    """Durable consumer names (QoS >= 1; two for ``a/#``: on ``a.>`` and on ``a``)."""
    deliver_subject: str | None = None


@dataclass(frozen=True)
class SessionRecord:
    """A client's durable session state. ``revision`` is set by load/save only."""

    client_id: str
    expiry_interval: int
    """Seconds; 0 ends the session with the connection; 0xFFFFFFFF never."""
    subscriptions: Mapping[str, SubscriptionRecord] = field(default_factory=dict)
    """Keyed by topic filter."""
    pending_pubrel: tuple[int, ...] = ()
    """Outbound QoS 2 packet identifiers waiting for PUBCOMP."""
    disconnected_at: float | None = None
    """Unix time of the last disconnect; None while connected."""
    revision: int = 0
    holder: str | None = None
    """The id of the gateway whose connection holds the session (while connected)."""


@dataclass(frozen=True)
class RetainedMessage:
    """A retained message as the index holds it."""

    topic: str
    subject: str
    payload: bytes
    qos: int
    headers: Mapping[str, str]
    """The headers the publisher's gateway passed (MQTT 5 properties, Nmqtt-RSource, ...)."""
    stored_at: float
    """Unix time at which the log stored it."""


@dataclass(frozen=True)
class StagedMessage:
    """An inbound QoS 2 message between PUBLISH and PUBREL."""

    topic: str
    subject: str
    payload: bytes
    retain: bool
    headers: Mapping[str, str]


# -- sessions ---------------------------------------------------------------------


def _sub_to_json(sub: SubscriptionRecord) -> dict[str, Any]:
    return {
        "qos": sub.qos,
        "no_local": sub.no_local,
        "retain_as_published": sub.retain_as_published,
        "retain_handling": sub.retain_handling,
        "subscription_id": sub.subscription_id,
        "consumers": list(sub.consumers),
        "deliver_subject": sub.deliver_subject,
    }


def encode_session(record: SessionRecord) -> bytes:
    """The JSON body of a session record (``revision`` is not stored: it is the sequence)."""
    body = {
        "id": record.client_id,
        "expiry": record.expiry_interval,
        "disconnected_at": record.disconnected_at,
        "origin": record.holder,
        "pubrel": list(record.pending_pubrel),
        "subs": {f: _sub_to_json(s) for f, s in record.subscriptions.items()},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sub_from_json(topic_filter: str, raw: object) -> SubscriptionRecord:
    if isinstance(raw, int) and not isinstance(raw, bool):
        # The NATS server's own layout: {"subs": {subject: qos}}.
        return SubscriptionRecord(topic_filter=topic_filter, qos=raw)
    if not isinstance(raw, dict):
        raise StoreError(f"unreadable subscription {topic_filter!r} in session record")
    consumers = raw.get("consumers") or []
    deliver = raw.get("deliver_subject")
    return SubscriptionRecord(
        topic_filter=topic_filter,
        qos=int(raw.get("qos", 0)),
        no_local=bool(raw.get("no_local", False)),
        retain_as_published=bool(raw.get("retain_as_published", False)),
        retain_handling=int(raw.get("retain_handling", 0)),
        subscription_id=_opt_int(raw.get("subscription_id")),
        consumers=tuple(str(c) for c in consumers),
        deliver_subject=deliver if isinstance(deliver, str) else None,
    )


def session_client_id(data: bytes) -> str | None:
    """The client ID in a stored record, or None if the body is not a readable record."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    cid = body.get("id") if isinstance(body, dict) else None
    return cid if isinstance(cid, str) else None


def decode_session(data: bytes, revision: int) -> SessionRecord:
    """The record stored at ``revision``. StoreError if it cannot be read."""
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise StoreError("session record without a client id")
        subs = body.get("subs") or {}
        if not isinstance(subs, dict):
            raise StoreError("session record with unreadable subscriptions")
        disconnected = body.get("disconnected_at")
        holder = body.get("origin")
        return SessionRecord(
            client_id=body["id"],
            expiry_interval=int(body.get("expiry", 0)),
            subscriptions={str(f): _sub_from_json(str(f), s) for f, s in subs.items()},
            pending_pubrel=tuple(int(p) for p in body.get("pubrel") or ()),
            disconnected_at=float(disconnected) if disconnected is not None else None,
            revision=revision,
            holder=holder if isinstance(holder, str) else None,
        )
    except (ValueError, TypeError) as exc:
        raise StoreError(f"unreadable session record: {exc}") from exc


# -- retained -----------------------------------------------------------------------

_RETAINED_OWN = frozenset({HDR_RTOPIC, HDR_RFLAGS, HDR_RORIGIN})


def encode_retained(
    topic: str, qos: int, headers: Mapping[str, str], origin: str | None, *, delete: bool
) -> dict[str, str]:
    """The headers of a retained record (or of a delete marker when ``delete``)."""
    flags = f"{(qos << 1) | _FLAG_RETAIN:X}"
    out = {k: v for k, v in headers.items() if k not in _RETAINED_OWN}
    out[HDR_RTOPIC] = topic
    out[HDR_RFLAGS] = "-" + flags if delete else flags
    if origin:
        out[HDR_RORIGIN] = origin
    return out


def decode_retained(
    subject: str, payload: bytes, headers: Mapping[str, str] | None, stored_at: float
) -> RetainedMessage | None:
    """The retained message in a record, or None for a delete marker or an empty body."""
    hdrs = headers or {}
    flags = hdrs.get(HDR_RFLAGS, "")
    if flags.startswith("-") or not payload:
        return None
    try:
        qos = (int(flags, 16) >> 1) & 0x03 if flags else 0
    except ValueError:
        qos = 0
    topic = hdrs.get(HDR_RTOPIC)
    if topic is None:
        topic = subject_to_topic(subject)
        if topic is None:
            return None
    return RetainedMessage(
        topic=topic,
        subject=subject,
        payload=payload,
        qos=min(qos, 2),
        headers={k: v for k, v in hdrs.items() if k not in _RETAINED_OWN},
        stored_at=stored_at,
    )


# -- staged QoS 2 -------------------------------------------------------------------

_STAGED_OWN = frozenset({HDR_PUB, HDR_SUBJECT, HDR_TOPIC})
_EXPECTED_PREFIX = "Nats-Expected-"  # the log keeps the publish's conditions as headers


def encode_staged(message: StagedMessage) -> dict[str, str]:
    """The headers of a staged QoS 2 message."""
    flags = _FLAG_QOS2 | (_FLAG_RETAIN if message.retain else 0)
    out = {k: v for k, v in message.headers.items() if k not in _STAGED_OWN}
    out[HDR_PUB] = f"2{flags:x}"
    out[HDR_SUBJECT] = message.subject
    out[HDR_TOPIC] = message.topic
    return out


def decode_staged(payload: bytes, headers: Mapping[str, str] | None) -> StagedMessage:
    """The staged message in a record. StoreError if it lacks its subject."""
    hdrs = headers or {}
    subject = hdrs.get(HDR_SUBJECT)
    if not subject:
        raise StoreError("staged QoS 2 message without Nmqtt-Subject")
    pub = hdrs.get(HDR_PUB, "")
    try:
        retain = len(pub) > 1 and bool(int(pub[1:], 16) & _FLAG_RETAIN)
    except ValueError:
        retain = False
    topic = hdrs.get(HDR_TOPIC)
    if topic is None:
        topic = subject_to_topic(subject) or ""
    return StagedMessage(
        topic=topic,
        subject=subject,
        payload=payload,
        retain=retain,
        headers={
            k: v
            for k, v in hdrs.items()
            if k not in _STAGED_OWN and not k.startswith(_EXPECTED_PREFIX)
        },
    )
