"""The JetStream wire layer without a server: JSON round trips, times and error mapping."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.errors import (
    BadRequest,
    ConsumerNameInUse,
    ConsumerNotFound,
    LogError,
    MessageNotFound,
    MessageTooLarge,
    NoStreamForSubject,
    StreamLimitReached,
    StreamNameInUse,
    StreamNotFound,
    WrongLastMsgId,
    WrongLastSequence,
    WrongStream,
)
from streams.jetstream.wire import (
    JetStreamAPIError,
    api_error,
    consumer_config_from_json,
    consumer_config_to_json,
    decode,
    parse_time,
    pub_ack_from_json,
    stored_msg_from_json,
    stream_config_from_json,
    stream_config_to_json,
)
from streams.types import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

# Error objects as nats-server v2.15 sends them.
ERRORS = [
    (404, 10059, "stream not found", StreamNotFound),
    (400, 10058, "stream name already in use with a different configuration", StreamNameInUse),
    (404, 10014, "consumer not found", ConsumerNotFound),
    (400, 10148, "consumer already exists", ConsumerNameInUse),
    (404, 10037, "no message found", MessageNotFound),
    (400, 10071, "wrong last sequence: 1", WrongLastSequence),
    (400, 10070, "wrong last msg ID: x", WrongLastMsgId),
    (400, 10060, "expected stream does not match", WrongStream),
    (400, 10054, "message size exceeds maximum allowed", MessageTooLarge),
    (503, 10077, "maximum messages exceeded", StreamLimitReached),
    (503, 0, "no responders", NoStreamForSubject),
    (400, 0, "bad request", BadRequest),
]


@pytest.mark.parametrize(("code", "err_code", "description", "cls"), ERRORS)
def test_api_error_codes_map_to_interface_errors(
    code: int, err_code: int, description: str, cls: type[LogError]
) -> None:
    exc = api_error({"code": code, "err_code": err_code, "description": description})
    assert type(exc) is cls
    assert description in str(exc)


def test_other_bad_requests_keep_their_err_code() -> None:
    exc = api_error(
        {
            "code": 400,
            "err_code": 10082,
            "description": "consumer requires ack policy for max ack pending",
        }
    )
    assert isinstance(exc, BadRequest)
    assert exc.err_code == 10082


def test_unknown_error_code_keeps_the_codes() -> None:
    exc = api_error({"code": 500, "err_code": 10999, "description": "something new"})
    assert isinstance(exc, JetStreamAPIError)
    assert isinstance(exc, LogError)
    assert (exc.code, exc.err_code, exc.description) == (500, 10999, "something new")


def test_decode_raises_the_error_and_rejects_garbage() -> None:
    with pytest.raises(StreamNotFound):
        decode(b'{"error":{"code":404,"err_code":10059,"description":"stream not found"}}')
    with pytest.raises(JetStreamAPIError):
        decode(b"not json")
    with pytest.raises(JetStreamAPIError):
        decode(b"[1, 2]")
    assert decode(b'{"purged": 3}') == {"purged": 3}


def test_pub_ack() -> None:
    assert pub_ack_from_json(b'{"stream":"S","seq":7}') == PubAck("S", 7)
    assert pub_ack_from_json(b'{"stream":"S","seq":7,"duplicate": true,"domain":"hub"}') == PubAck(
        "S", 7, True, "hub"
    )
    with pytest.raises(WrongLastSequence):
        pub_ack_from_json(
            b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"},'
            b'"stream":"S","seq":0}'
        )


@pytest.mark.parametrize(
    "body",
    [
        b'{"stream":"$MQTT_msgs","seq":123456789}',
        b'{"stream":"S","domain":"hub","seq":1}',
        b'{"stream":"S","seq":2,"duplicate":true}',
        b'{"stream":"S\\u0041","seq":3}',  # an escape: the general path reads it
        b'{"stream": "S", "seq": 4}',
        b'{"stream":"S","seq":-5}',
        b'{"stream":"a\\"b","seq":6}',  # an escaped quote inside the name
        b'{"stream":"S","seq":7,"duplicate":true,"x":"\\"seq\\":8"}',
    ],
)
def test_pub_ack_read_without_json_equals_json(body: bytes) -> None:
    resp = json.loads(body)
    ack = pub_ack_from_json(body)
    assert type(ack) is PubAck and ack.seq == resp["seq"]
    assert ack == PubAck(
        resp["stream"], resp["seq"], resp.get("duplicate", False), resp.get("domain")
    )


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-11-25T14:22:35.18195092Z", 1795616555181950920),
        ("2026-11-25T14:22:35Z", 1795616555000000000),
        ("2026-11-25T15:22:35.5+01:00", 1795616555500000000),
        ("0001-01-01T00:00:00Z", 0),
        ("", 0),
        ("garbage", 0),
    ],
)
def test_parse_time(text: str, nanos: int) -> None:
    assert parse_time(text) == nanos


def test_stored_msg_from_msg_get() -> None:
    hdrs = base64.b64encode(b"NATS/1.0\r\nFoo: bar\r\nNats-Msg-Id: x\r\n\r\n").decode()
    resp = {
        "message": {
            "subject": "s.a",
            "seq": 3,
            "hdrs": hdrs,
            "data": base64.b64encode(b"hi").decode(),
            "time": "2026-11-25T14:22:35.18195092Z",
        }
    }
    msg = stored_msg_from_json("S", resp)
    assert (msg.stream, msg.subject, msg.seq, msg.data) == ("S", "s.a", 3, b"hi")
    assert msg.headers == {"Foo": "bar", "Nats-Msg-Id": "x"}
    assert msg.time == 1795616555181950920


durations = st.integers(min_value=0, max_value=10**6).map(lambda ms: ms / 1000)
limits = st.integers(min_value=-1, max_value=2**40)


@given(
    st.builds(
        StreamConfig,
        name=st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
        subjects=st.lists(st.from_regex(r"[a-z]{1,5}(\.[a-z]{1,5}){0,3}", fullmatch=True)),
        storage=st.sampled_from(StorageType),
        retention=st.sampled_from(RetentionPolicy),
        max_msgs=limits,
        max_bytes=limits,
        max_age=durations,
        max_msgs_per_subject=limits,
        max_msg_size=st.integers(min_value=-1, max_value=2**31),
        discard=st.sampled_from(DiscardPolicy),
        discard_new_per_subject=st.booleans(),
        duplicate_window=durations,
        allow_rollup_hdrs=st.booleans(),
        deny_delete=st.booleans(),
        deny_purge=st.booleans(),
        allow_direct=st.booleans(),
        description=st.none() | st.text(max_size=20),
    )
)
def test_stream_config_round_trips(config: StreamConfig) -> None:
    wire = json.loads(json.dumps(stream_config_to_json(config)))
    assert stream_config_from_json(wire) == config


@given(
    st.builds(
        ConsumerConfig,
        durable_name=st.none() | st.from_regex(r"[a-z0-9_]{1,10}", fullmatch=True),
        deliver_subject=st.none() | st.just("dlv.x"),
        filter_subject=st.none() | st.just("a.>"),
        deliver_policy=st.sampled_from(DeliverPolicy),
        ack_policy=st.sampled_from([AckPolicy.EXPLICIT, AckPolicy.ALL]),
        ack_wait=durations,
        max_deliver=st.integers(min_value=-1, max_value=100),
        max_ack_pending=st.integers(min_value=-1, max_value=65535),
        inactive_threshold=st.none() | durations.filter(lambda d: d > 0),
        headers_only=st.booleans(),
    )
)
def test_consumer_config_round_trips(config: ConsumerConfig) -> None:
    wire = json.loads(json.dumps(consumer_config_to_json(config)))
    back = consumer_config_from_json(wire)
    # The server names a durable after itself; everything else comes back as sent.
    expected = config if config.durable_name is None else _with_name(config)
    assert back == expected


def _with_name(config: ConsumerConfig) -> ConsumerConfig:
    from dataclasses import replace

    return replace(config, name=config.durable_name)


def test_ack_none_consumers_send_no_ack_limits() -> None:
    # JetStream refuses max_ack_pending with ack policy none (err_code 10082).
    wire = consumer_config_to_json(ConsumerConfig(ack_policy=AckPolicy.NONE))
    assert "max_ack_pending" not in wire
    assert "ack_wait" not in wire
