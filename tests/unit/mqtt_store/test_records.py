"""Names, hash8 and record encodings (nats-mqtt.md 2.3, 2.6, 2.8, 2.9). No log, no loop."""

from __future__ import annotations

import json
import re

import pytest

from gateway.mqtt.store import (
    SessionRecord,
    StagedMessage,
    StoreError,
    SubscriptionRecord,
    hash8,
    is_shared_consumer,
    nuid,
    shared_consumer_name,
    shared_deliver_subject,
)
from gateway.mqtt.store.records import (
    decode_retained,
    decode_session,
    decode_staged,
    encode_retained,
    encode_session,
    encode_staged,
)


def test_hash8_matches_the_nats_server_vector() -> None:
    # nats-mqtt.md 2.3: checked against a running nats-server.
    assert hash8("sessC") == "QuPcFsb2"


@pytest.mark.parametrize("client_id", ["", "a", "with/slash.and*star>", "é" * 100])
def test_hash8_is_eight_base62_characters(client_id: str) -> None:
    assert re.fullmatch(r"[0-9A-Za-z]{8}", hash8(client_id))


def test_nuid_is_22_base62_characters_and_fresh() -> None:
    ids = {nuid() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9A-Za-z]{22}", i) for i in ids)


def test_shared_names_are_stable_distinct_and_not_session_consumers() -> None:
    assert shared_consumer_name("g", "a.b") == shared_consumer_name("g", "a.b")
    assert shared_consumer_name("g", "a.b") != shared_consumer_name("h", "a.b")
    assert shared_consumer_name("a b", "c") != shared_consumer_name("a", "b c")
    assert shared_deliver_subject("g", "a.b").startswith("$MQTT.sub.share.")
    assert is_shared_consumer(shared_consumer_name("g", "a.>"))
    assert not is_shared_consumer(f"{hash8('c')}_{nuid()}")


def _record() -> SessionRecord:
    return SessionRecord(
        client_id="dev-1",
        expiry_interval=3600,
        subscriptions={
            "a/#": SubscriptionRecord(
                "a/#", 1, consumers=("x_1", "x_2"), deliver_subject="$MQTT.sub.N"
            ),
            "$share/g/b/+": SubscriptionRecord(
                "$share/g/b/+",
                2,
                no_local=True,
                retain_as_published=True,
                retain_handling=2,
                subscription_id=7,
            ),
            "c": SubscriptionRecord("c", 0),
        },
        pending_pubrel=(3, 9),
        disconnected_at=1712345678.5,
    )


def test_session_record_round_trips_with_revision_from_the_sequence() -> None:
    record = _record()
    decoded = decode_session(encode_session(record), 42)
    assert decoded.revision == 42
    assert decoded == SessionRecord(**{**record.__dict__, "revision": 42})


def test_session_record_is_json_with_the_nats_server_id_key() -> None:
    body = json.loads(encode_session(_record()))
    assert body["id"] == "dev-1"
    assert body["subs"]["a/#"]["consumers"] == ["x_1", "x_2"]


def test_session_record_reads_the_nats_server_layout_and_ignores_unknown_keys() -> None:
    raw = b'{"origin":"k2My6qdB","id":"sessC","subs":{"bar":2,"foo.>":1},"cons":{},"new":1}'
    record = decode_session(raw, 5)
    assert record.client_id == "sessC"
    assert record.subscriptions["bar"].qos == 2
    assert record.subscriptions["foo.>"].consumers == ()


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"subs":{}}', b'{"id":"x","subs":[1]}'])
def test_unreadable_session_record_is_a_store_error(raw: bytes) -> None:
    with pytest.raises(StoreError):
        decode_session(raw, 1)


def test_retained_headers_carry_topic_and_flags() -> None:
    # nats-mqtt.md 2.9: RFlags 3 = QoS 1 + retain, 5 = QoS 2 + retain, "-" on a delete.
    h = encode_retained("a/b", 1, {"Nmqtt-RSource": "bob", "X": "y"}, "orig", delete=False)
    assert h == {
        "Nmqtt-RSource": "bob",
        "X": "y",
        "Nmqtt-RTopic": "a/b",
        "Nmqtt-RFlags": "3",
        "Nmqtt-ROrigin": "orig",
    }
    assert encode_retained("a/b", 2, {}, None, delete=True)["Nmqtt-RFlags"] == "-5"


def test_retained_record_decodes_and_strips_its_own_headers() -> None:
    h = encode_retained("a/b", 2, {"X": "y"}, "orig", delete=False)
    m = decode_retained("a.b", b"v", h, 12.5)
    assert m is not None
    assert (m.topic, m.subject, m.payload, m.qos, dict(m.headers), m.stored_at) == (
        "a/b",
        "a.b",
        b"v",
        2,
        {"X": "y"},
        12.5,
    )
    assert decode_retained("a.b", b"", h, 1.0) is None
    assert decode_retained("a.b", b"v", {**h, "Nmqtt-RFlags": "-5"}, 1.0) is None


def test_retained_record_without_topic_header_maps_the_subject_back() -> None:
    m = decode_retained("foo//bar.baz", b"v", None, 1.0)
    assert m is not None and m.topic == "foo.bar/baz" and m.qos == 0


def test_staged_message_headers_follow_the_nats_server() -> None:
    msg = StagedMessage("a/b", "a.b", b"p", True, {"X": "y"})
    h = encode_staged(msg)
    # nats-mqtt.md 2.6: Nmqtt-Pub "2" + flags hex; 5 = QoS 2 + retain.
    assert h["Nmqtt-Pub"] == "25"
    assert h["Nmqtt-Subject"] == "a.b"
    assert encode_staged(StagedMessage("a", "a", b"", False, {}))["Nmqtt-Pub"] == "24"
    assert decode_staged(b"p", h) == msg


def test_staged_message_without_subject_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        decode_staged(b"p", {"Nmqtt-Pub": "24"})
