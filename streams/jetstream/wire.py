"""JetStream API wire format: configs and infos to and from JSON, and API errors.

JetStream speaks JSON with durations in nanoseconds and times in RFC 3339;
the ``streams`` interface uses seconds and nanoseconds since the epoch. This
module converts in both directions and maps the server's ``err_code`` onto the
interface's typed errors (``streams.errors``), so nothing above it sees JSON.
"""

from __future__ import annotations

import base64
import calendar
import json
import re
from collections.abc import Mapping
from typing import Any

from streams.errors import (
    BadRequest,
    ConsumerNameInUse,
    ConsumerNotFound,
    LogError,
    MessageNotFound,
    MessageTooLarge,
    NoStreamForSubject,
    StorageError,
    StreamLimitReached,
    StreamNameInUse,
    StreamNotFound,
    SubjectsOverlap,
    WrongLastMsgId,
    WrongLastSequence,
    WrongStream,
)
from streams.types import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    PubAck,
    SequenceInfo,
    StoredMsg,
    StreamConfig,
    StreamInfo,
    StreamState,
)

__all__ = [
    "JetStreamAPIError",
    "api_error",
    "consumer_config_from_json",
    "consumer_config_to_json",
    "consumer_info_from_json",
    "decode",
    "parse_headers",
    "parse_time",
    "pub_ack_from_json",
    "stored_msg_from_json",
    "stream_config_from_json",
    "stream_config_to_json",
    "stream_info_from_json",
]

JSON = dict[str, Any]

_NS = 1_000_000_000


class JetStreamAPIError(LogError):
    """A JetStream API error with no more specific class in ``streams.errors``."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{description} (code {code}, err_code {err_code})")
        self.code = code
        self.err_code = err_code
        self.description = description


# err_code -> interface error. Codes not listed fall back on the HTTP-like code.
_ERRORS: dict[int, type[LogError]] = {
    10059: StreamNotFound,
    10058: StreamNameInUse,
    10065: SubjectsOverlap,
    10014: ConsumerNotFound,
    10149: ConsumerNotFound,  # "consumer does not exist" (an update of a missing consumer)
    10148: ConsumerNameInUse,
    10013: ConsumerNameInUse,  # "consumer name already in use"
    10037: MessageNotFound,
    10071: WrongLastSequence,
    10070: WrongLastMsgId,
    10060: WrongStream,
    10054: MessageTooLarge,
    10077: StreamLimitReached,
    10049: StorageError,
    10052: BadRequest,  # "stream configuration invalid"
    10025: BadRequest,  # "stream name in subject does not match request"
}


def api_error(err: Mapping[str, Any]) -> LogError:
    """The interface error for a JetStream API ``error`` object."""
    code = int(err.get("code", 0))
    err_code = int(err.get("err_code", 0))
    description = str(err.get("description", "JetStream API error"))
    cls = _ERRORS.get(err_code)
    if cls is not None:
        return cls(description)
    if code == 503:
        return NoStreamForSubject(description)
    if code == 400:
        # Every other 400 is a config or argument the server refused.
        exc = BadRequest(description)
        if err_code:
            exc.err_code = err_code
        return exc
    return JetStreamAPIError(code, err_code, description)


def decode(data: bytes) -> JSON:
    """Parse an API response; raise its error as an interface error."""
    try:
        resp = json.loads(data)
    except ValueError as exc:
        raise JetStreamAPIError(0, 0, f"malformed JetStream response: {data[:80]!r}") from exc
    if not isinstance(resp, dict):
        raise JetStreamAPIError(0, 0, f"malformed JetStream response: {data[:80]!r}")
    err = resp.get("error")
    if isinstance(err, dict):
        raise api_error(err)
    return resp


_TIME_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_time(text: str | None) -> int:
    """An RFC 3339 time with up to nanosecond precision -> nanoseconds since the epoch."""
    if not text:
        return 0
    m = _TIME_RE.match(text)
    if m is None:
        return 0
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    secs = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    frac = m.group(7) or ""
    nanos = int((frac + "000000000")[:9])
    zone = m.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        secs -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    if secs < 0:  # Go's zero time for "never"
        return 0
    return secs * _NS + nanos


def _ns(seconds: float) -> int:
    return round(seconds * _NS)


def _secs(nanos: Any) -> float:
    return int(nanos or 0) / _NS


# -- streams ------------------------------------------------------------------


def stream_config_to_json(config: StreamConfig) -> JSON:
    """The JetStream ``StreamConfig`` object for ``config``."""
    out: JSON = {
        "name": config.name,
        "subjects": list(config.subjects),
        "storage": config.storage.value,
        "retention": config.retention.value,
        "max_msgs": config.max_msgs,
        "max_bytes": config.max_bytes,
        "max_age": _ns(config.max_age),
        "max_msgs_per_subject": config.max_msgs_per_subject,
        "max_msg_size": config.max_msg_size,
        "discard": config.discard.value,
        "duplicate_window": _ns(config.duplicate_window),
        "max_consumers": config.max_consumers,
        "allow_rollup_hdrs": config.allow_rollup_hdrs,
        "deny_delete": config.deny_delete,
        "deny_purge": config.deny_purge,
        "allow_direct": config.allow_direct,
        "num_replicas": config.num_replicas,
    }
    if config.discard_new_per_subject:
        out["discard_new_per_subject"] = True
    if config.description is not None:
        out["description"] = config.description
    return out


def stream_config_from_json(cfg: Mapping[str, Any]) -> StreamConfig:
    return StreamConfig(
        name=str(cfg["name"]),
        subjects=tuple(cfg.get("subjects") or ()),
        storage=cfg.get("storage", "file"),
        retention=cfg.get("retention", "limits"),
        max_msgs=int(cfg.get("max_msgs", -1)),
        max_bytes=int(cfg.get("max_bytes", -1)),
        max_age=_secs(cfg.get("max_age")),
        max_msgs_per_subject=int(cfg.get("max_msgs_per_subject", -1)),
        max_msg_size=int(cfg.get("max_msg_size", -1)),
        discard=cfg.get("discard", "old"),
        discard_new_per_subject=bool(cfg.get("discard_new_per_subject", False)),
        duplicate_window=_secs(cfg.get("duplicate_window")),
        max_consumers=int(cfg.get("max_consumers", -1)),
        allow_rollup_hdrs=bool(cfg.get("allow_rollup_hdrs", False)),
        deny_delete=bool(cfg.get("deny_delete", False)),
        deny_purge=bool(cfg.get("deny_purge", False)),
        allow_direct=bool(cfg.get("allow_direct", False)),
        description=cfg.get("description"),
        num_replicas=int(cfg.get("num_replicas", 1)),
    )


def stream_info_from_json(resp: Mapping[str, Any]) -> StreamInfo:
    state = resp.get("state") or {}
    return StreamInfo(
        config=stream_config_from_json(resp["config"]),
        state=StreamState(
            messages=int(state.get("messages", 0)),
            bytes=int(state.get("bytes", 0)),
            first_seq=int(state.get("first_seq", 0)),
            last_seq=int(state.get("last_seq", 0)),
            consumer_count=int(state.get("consumer_count", 0)),
            num_subjects=int(state.get("num_subjects", 0)),
            num_deleted=int(state.get("num_deleted", 0)),
        ),
        created=parse_time(resp.get("created")),
    )


# -- consumers ----------------------------------------------------------------


_DEFAULT_CONSUMER = ConsumerConfig()


def consumer_config_to_json(config: ConsumerConfig) -> JSON:
    """The JetStream ``ConsumerConfig`` object for ``config`` (push consumers)."""
    out: JSON = {
        "deliver_policy": config.deliver_policy.value,
        "ack_policy": config.ack_policy.value,
        "max_deliver": config.max_deliver,
        "replay_policy": "instant",
    }
    if config.ack_policy is not AckPolicy.NONE:
        out["ack_wait"] = _ns(config.ack_wait)
        out["max_ack_pending"] = config.max_ack_pending
    if config.durable_name:
        out["durable_name"] = config.durable_name
    name = config.name or config.durable_name
    if name:
        out["name"] = name
    if config.deliver_subject:
        out["deliver_subject"] = config.deliver_subject
    if config.deliver_group:
        out["deliver_group"] = config.deliver_group
    filters = config.filters
    if len(filters) == 1:
        out["filter_subject"] = filters[0]
    elif filters:
        out["filter_subjects"] = list(filters)
    if config.opt_start_seq is not None:
        out["opt_start_seq"] = config.opt_start_seq
    if config.inactive_threshold is not None:
        out["inactive_threshold"] = _ns(config.inactive_threshold)
    if config.headers_only:
        out["headers_only"] = True
    if config.mem_storage:
        out["mem_storage"] = True
    if config.description is not None:
        out["description"] = config.description
    return out


def consumer_config_from_json(cfg: Mapping[str, Any]) -> ConsumerConfig:
    threshold = cfg.get("inactive_threshold")
    return ConsumerConfig(
        durable_name=cfg.get("durable_name"),
        name=cfg.get("name"),
        deliver_subject=cfg.get("deliver_subject"),
        deliver_group=cfg.get("deliver_group"),
        filter_subject=cfg.get("filter_subject") or None,
        filter_subjects=tuple(cfg.get("filter_subjects") or ()),
        deliver_policy=cfg.get("deliver_policy", "all"),
        opt_start_seq=cfg.get("opt_start_seq"),
        ack_policy=cfg.get("ack_policy", "explicit"),
        ack_wait=_secs(cfg["ack_wait"]) if "ack_wait" in cfg else _DEFAULT_CONSUMER.ack_wait,
        max_deliver=int(cfg.get("max_deliver", -1)),
        max_ack_pending=int(cfg.get("max_ack_pending", _DEFAULT_CONSUMER.max_ack_pending)),
        inactive_threshold=_secs(threshold) if threshold else None,
        headers_only=bool(cfg.get("headers_only", False)),
        mem_storage=bool(cfg.get("mem_storage", False)),
        description=cfg.get("description"),
    )


def _seq_info(obj: Mapping[str, Any] | None) -> SequenceInfo:
    obj = obj or {}
    return SequenceInfo(
        consumer_seq=int(obj.get("consumer_seq", 0)), stream_seq=int(obj.get("stream_seq", 0))
    )


def consumer_info_from_json(resp: Mapping[str, Any]) -> ConsumerInfo:
    return ConsumerInfo(
        stream_name=str(resp["stream_name"]),
        name=str(resp["name"]),
        config=consumer_config_from_json(resp["config"]),
        delivered=_seq_info(resp.get("delivered")),
        ack_floor=_seq_info(resp.get("ack_floor")),
        num_ack_pending=int(resp.get("num_ack_pending", 0)),
        num_redelivered=int(resp.get("num_redelivered", 0)),
        num_pending=int(resp.get("num_pending", 0)),
        push_bound=bool(resp.get("push_bound", False)),
        created=parse_time(resp.get("created")),
    )


# -- messages -------------------------------------------------------------------


# The PubAck as nats-server writes it, on every stored message: read without json.
_PLAIN_PUB_ACK = re.compile(rb'\{"stream":"([^"\\]+)",(?:"domain":"([^"\\]*)",)?"seq":(\d+)\}')


# A named tuple's own constructor is a Python function; tuple's is not (one per message).
_new_tuple = tuple.__new__


def pub_ack_from_json(data: bytes) -> PubAck:
    """A publish acknowledgement, or its error raised."""
    plain = _PLAIN_PUB_ACK.fullmatch(data)
    if plain is not None:
        stream, domain, seq = plain.groups()
        fields = (stream.decode(), int(seq), False, domain.decode() if domain else None)
        return _new_tuple(PubAck, fields)
    resp = decode(data)
    domain = resp.get("domain")
    return PubAck(
        stream=str(resp["stream"]),
        seq=int(resp["seq"]),
        duplicate=bool(resp.get("duplicate", False)),
        domain=str(domain) if domain else None,
    )


def parse_headers(raw: bytes) -> dict[str, str] | None:
    """Headers in NATS wire form (``NATS/1.0`` line, then ``Key: Value`` lines)."""
    lines = raw.decode("utf-8", "replace").split("\r\n")
    out: dict[str, str] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep and key:
            out[key.strip()] = value.strip()
    return out or None


def stored_msg_from_json(stream: str, resp: Mapping[str, Any]) -> StoredMsg:
    """A message from a ``STREAM.MSG.GET`` response."""

    msg = resp["message"]
    hdrs = msg.get("hdrs")
    return StoredMsg(
        stream=stream,
        subject=str(msg["subject"]),
        seq=int(msg["seq"]),
        data=base64.b64decode(msg.get("data") or ""),
        headers=parse_headers(base64.b64decode(hdrs)) if hdrs else None,
        time=parse_time(msg.get("time")),
    )
