"""Value types of the log interface: configs, infos, stored messages, acks.

Names and defaults follow JetStream's API (``nats.js.api``), with durations in
seconds as floats and "unlimited" as -1. Configs are frozen dataclasses;
sequences of subjects are normalised to tuples, so two equal configs compare
equal whatever sequence type the caller passed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from streams.errors import BadRequest

__all__ = [
    "ACK",
    "ACK_PREFIX",
    "NAK",
    "TERM",
    "WPI",
    "AckKind",
    "AckPolicy",
    "ConsumerConfig",
    "ConsumerInfo",
    "DeliverPolicy",
    "DeliveryInfo",
    "DiscardPolicy",
    "KeyValueConfig",
    "KeyValueEntry",
    "KeyValueOp",
    "PubAck",
    "RetentionPolicy",
    "SequenceInfo",
    "StorageType",
    "StoredMsg",
    "StreamConfig",
    "StreamInfo",
    "StreamState",
    "ack_subject",
    "parse_ack",
]


class StorageType(StrEnum):
    FILE = "file"
    MEMORY = "memory"


class RetentionPolicy(StrEnum):
    LIMITS = "limits"
    INTEREST = "interest"
    WORK_QUEUE = "workqueue"


class DiscardPolicy(StrEnum):
    OLD = "old"
    NEW = "new"


class DeliverPolicy(StrEnum):
    ALL = "all"
    LAST = "last"
    NEW = "new"
    BY_START_SEQUENCE = "by_start_sequence"
    LAST_PER_SUBJECT = "last_per_subject"


class AckPolicy(StrEnum):
    NONE = "none"
    ALL = "all"
    EXPLICIT = "explicit"


def _subjects(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(str(v) for v in value)
    raise BadRequest(f"subjects must be a sequence of strings, not {value!r}")


@dataclass(frozen=True)
class StreamConfig:
    """A stream: which subjects it captures, how it stores them and what it keeps."""

    name: str
    subjects: Sequence[str] = ()
    storage: StorageType = StorageType.FILE
    retention: RetentionPolicy = RetentionPolicy.LIMITS
    max_msgs: int = -1
    max_bytes: int = -1
    max_age: float = 0.0
    """Seconds; 0 means unlimited."""
    max_msgs_per_subject: int = -1
    max_msg_size: int = -1
    discard: DiscardPolicy = DiscardPolicy.OLD
    discard_new_per_subject: bool = False
    duplicate_window: float = 0.0
    """Seconds a ``Nats-Msg-Id`` is remembered; 0 means the server default
    (2 minutes, or max_age if shorter). Must not exceed max_age."""
    max_consumers: int = -1
    allow_rollup_hdrs: bool = False
    """Honour ``Nats-Rollup: sub|all`` headers (KV purge uses it)."""
    deny_delete: bool = False
    deny_purge: bool = False
    allow_direct: bool = False
    description: str | None = None
    num_replicas: int = 1
    """Copies kept in a JetStream cluster (the embedded log is one copy, whatever this says)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "subjects", _subjects(self.subjects))
        object.__setattr__(self, "storage", StorageType(self.storage))
        object.__setattr__(self, "retention", RetentionPolicy(self.retention))
        object.__setattr__(self, "discard", DiscardPolicy(self.discard))


@dataclass(frozen=True)
class ConsumerConfig:
    """A push consumer on one stream (JetStream field names and meanings).

    A consumer without ``durable_name`` (and without ``name``) is ephemeral:
    the backend names it and removes it after ``inactive_threshold`` (default
    5 s) without interest on its deliver subject.
    """

    durable_name: str | None = None
    name: str | None = None
    deliver_subject: str | None = None
    deliver_group: str | None = None
    filter_subject: str | None = None
    filter_subjects: Sequence[str] = ()
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    opt_start_seq: int | None = None
    ack_policy: AckPolicy = AckPolicy.EXPLICIT
    ack_wait: float = 30.0
    max_deliver: int = -1
    max_ack_pending: int = 1000
    inactive_threshold: float | None = None
    headers_only: bool = False
    mem_storage: bool = False
    description: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "filter_subjects", _subjects(self.filter_subjects))
        object.__setattr__(self, "deliver_policy", DeliverPolicy(self.deliver_policy))
        object.__setattr__(self, "ack_policy", AckPolicy(self.ack_policy))

    @property
    def filters(self) -> tuple[str, ...]:
        """All filter subjects (``filter_subject`` and ``filter_subjects``); () means all."""
        if self.filter_subject:
            return (self.filter_subject, *self.filter_subjects)
        return tuple(self.filter_subjects)


class PubAck(NamedTuple):
    """Acknowledgement of a publish: the message is stored at ``seq`` in ``stream``.

    A named tuple, as ``DeliveryInfo``: one is made per stored message, and a
    frozen dataclass costs five times as much to build.
    """

    stream: str
    seq: int
    duplicate: bool = False
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class StoredMsg:
    """A message as held in a stream. ``time`` is nanoseconds since the epoch."""

    stream: str
    subject: str
    seq: int
    data: bytes
    headers: Mapping[str, str] | None
    time: int


@dataclass(frozen=True)
class StreamState:
    messages: int = 0
    bytes: int = 0
    first_seq: int = 0
    last_seq: int = 0
    consumer_count: int = 0
    num_subjects: int = 0
    num_deleted: int = 0
    #: Messages per subject, for the subjects matching the filter ``stream_info`` was
    #: asked with (JetStream's ``subjects_filter``); None when it was not.
    subjects: Mapping[str, int] | None = None


@dataclass(frozen=True)
class StreamInfo:
    config: StreamConfig
    state: StreamState
    created: int = 0
    """Nanoseconds since the epoch."""


@dataclass(frozen=True, slots=True)
class SequenceInfo:
    consumer_seq: int = 0
    stream_seq: int = 0


@dataclass(frozen=True)
class ConsumerInfo:
    """A consumer's position: delivered and ack floor, and what is pending.

    ``num_pending`` counts matching messages not yet delivered;
    ``num_ack_pending`` delivered but not acknowledged; ``num_redelivered``
    unacknowledged messages delivered more than once.
    """

    stream_name: str
    name: str
    config: ConsumerConfig
    delivered: SequenceInfo = field(default_factory=SequenceInfo)
    ack_floor: SequenceInfo = field(default_factory=SequenceInfo)
    num_ack_pending: int = 0
    num_redelivered: int = 0
    num_pending: int = 0
    push_bound: bool = False
    created: int = 0


# -- push delivery and acks ---------------------------------------------------

ACK_PREFIX = "$JS.ACK."

ACK = b"+ACK"
NAK = b"-NAK"
WPI = b"+WPI"
TERM = b"+TERM"


class AckKind(StrEnum):
    ACK = "+ACK"
    NAK = "-NAK"
    IN_PROGRESS = "+WPI"
    TERM = "+TERM"


class DeliveryInfo(NamedTuple):
    """Metadata of one push delivery, carried in its ack reply subject (read per delivery)."""

    stream: str
    consumer: str
    num_delivered: int
    stream_seq: int
    consumer_seq: int
    timestamp: int
    """Nanoseconds since the epoch when the message was stored."""
    num_pending: int
    domain: str | None = None


def ack_subject(
    stream: str,
    consumer: str,
    num_delivered: int,
    stream_seq: int,
    consumer_seq: int,
    timestamp: int,
    num_pending: int,
) -> str:
    """The reply subject of a delivery, in JetStream's v1 ack format."""
    return (
        f"$JS.ACK.{stream}.{consumer}.{num_delivered}.{stream_seq}."
        f"{consumer_seq}.{timestamp}.{num_pending}"
    )


def parse_ack(reply: str) -> DeliveryInfo:
    """Parse a JetStream ack reply subject (v1: 9 tokens; v2: 11 or 12 tokens)."""
    tokens = reply.split(".")
    n = len(tokens)
    try:
        if tokens[0] != "$JS" or tokens[1] != "ACK":
            pass
        elif n == 9:  # once per delivery: built positionally, the cheapest way
            return DeliveryInfo(
                tokens[2],
                tokens[3],
                int(tokens[4]),
                int(tokens[5]),
                int(tokens[6]),
                int(tokens[7]),
                int(tokens[8]),
            )
        elif n in (11, 12):
            return DeliveryInfo(
                tokens[4],
                tokens[5],
                int(tokens[6]),
                int(tokens[7]),
                int(tokens[8]),
                int(tokens[9]),
                int(tokens[10]),
                None if tokens[2] == "_" else tokens[2],
            )
    except (ValueError, IndexError) as exc:
        raise BadRequest(f"not a JetStream ack subject: {reply!r}") from exc
    raise BadRequest(f"not a JetStream ack subject: {reply!r}")


def parse_nak_delay(payload: bytes) -> float | None:
    """The delay in seconds of a ``-NAK {"delay": ns}`` payload, or None."""
    body = payload[len(NAK) :].strip()
    if not body:
        return None
    try:
        delay = json.loads(body).get("delay")
    except (ValueError, AttributeError):
        return None
    if isinstance(delay, int | float) and delay > 0:
        return float(delay) / 1e9
    return None


# -- key-value ----------------------------------------------------------------


class KeyValueOp(StrEnum):
    PUT = "PUT"
    DEL = "DEL"
    PURGE = "PURGE"


@dataclass(frozen=True)
class KeyValueConfig:
    """A key-value bucket: stream ``KV_<bucket>`` on subjects ``$KV.<bucket>.>``."""

    bucket: str
    history: int = 1
    ttl: float = 0.0
    max_value_size: int = -1
    max_bytes: int = -1
    storage: StorageType = StorageType.FILE
    description: str | None = None


@dataclass(frozen=True, slots=True)
class KeyValueEntry:
    """One revision of a key. ``operation`` is DEL or PURGE for a deletion marker."""

    bucket: str
    key: str
    value: bytes
    revision: int
    operation: KeyValueOp = KeyValueOp.PUT
    created: int = 0
    delta: int = 0
