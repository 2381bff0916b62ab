"""Reading a durable delivery's ``$JS.ACK`` reply: the key and the redelivery flag."""

from __future__ import annotations

import pytest

from gateway.mqtt.subscriptions import _delivery_of
from streams.types import ack_subject, parse_ack


def test_v1_reply_gives_consumer_stream_sequence_and_first_delivery() -> None:
    reply = ack_subject("S", "c1", 1, 42, 7, 1_700_000_000_000_000_000, 3)
    assert _delivery_of(reply) == (("c1", 42), False)


def test_v1_redelivery_is_flagged() -> None:
    reply = ack_subject("S", "c1", 3, 42, 9, 1, 0)
    assert _delivery_of(reply) == (("c1", 42), True)


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.hub.ACCHASH.S.c2.1.5.5.1700000000.0",
        "$JS.ACK.hub.ACCHASH.S.c2.1.5.5.1700000000.0.token",
    ],
)
def test_v2_reply_agrees_with_parse_ack(reply: str) -> None:
    info = parse_ack(reply)
    assert _delivery_of(reply) == ((info.consumer, info.stream_seq), info.num_delivered > 1)


@pytest.mark.parametrize(
    "reply",
    ["", "_INBOX.abc", "$JS.ACK.S.c", "$JS.NAK.S.c.1.2.3.4.5", "$JS.ACK.S.c.1.x.3.4.5"],
)
def test_anything_else_is_not_a_delivery(reply: str) -> None:
    assert _delivery_of(reply) is None
