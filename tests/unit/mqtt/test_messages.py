"""How a PUBLISH travels as a NATS message (``gateway.mqtt.messages``): headers there and back.

Statements: [MQTT-3.3.2-5] (an expired message is not delivered),
[MQTT-3.3.2-6] (the Message Expiry Interval sent on is what remains),
[MQTT-3.3.2-17..20] and 3.3.2.3.x (user properties, content type, response
topic, correlation data, payload format are forwarded unchanged), and the
Topic Alias and Subscription Identifiers that belong to one hop only.
"""

from __future__ import annotations

import base64
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt.messages import (
    EXPIRES,
    ORIGIN,
    PROPS,
    PUB,
    delivered_properties,
    publish_headers,
    published_qos,
)
from gateway.mqtt.properties import Properties

NOW = 1_700_000_000.0


def forwarded() -> Properties:
    """Every property a PUBLISH carries on to its subscribers."""
    return Properties(
        payload_format_indicator=1,
        content_type="text/plain",
        response_topic="reply/here",
        correlation_data=b"\x00\x01corr",
        user_properties=[("k", "v1"), ("k", "v2"), ("a", "")],
    )


def test_qos0_without_properties_has_no_headers() -> None:
    assert publish_headers(0, None, None, NOW) is None
    assert publish_headers(0, Properties(), None, NOW) is None


@pytest.mark.parametrize(
    "props",
    [Properties(topic_alias=3), Properties(subscription_identifiers=[4])],
    ids=["topic_alias", "subscription_identifiers"],
)
def test_hop_only_properties_are_not_carried(props: Properties) -> None:
    assert publish_headers(0, props, None, NOW) is None
    assert publish_headers(1, props, None, NOW) == {PUB: "1"}


@pytest.mark.parametrize("qos", [1, 2])
def test_qos_is_carried(qos: int) -> None:
    headers = publish_headers(qos, None, None, NOW)
    assert headers == {PUB: str(qos)}
    assert published_qos(headers) == qos


def test_origin_is_carried() -> None:
    assert publish_headers(0, None, "abcd1234", NOW) == {ORIGIN: "abcd1234"}


def test_plain_nats_messages_are_qos0_without_properties() -> None:
    assert published_qos(None) == 0
    assert published_qos({}) == 0
    assert published_qos({"Other": "x"}) == 0
    assert delivered_properties(None, NOW) == (None, False)
    assert delivered_properties({}, NOW) == (None, False)
    assert delivered_properties({"Other": "x"}, NOW) == (None, False)
    assert delivered_properties({PUB: "1"}, NOW) == (None, False)


def test_mqtt_3_3_2_forwarded_properties_round_trip() -> None:
    props = forwarded()
    props.topic_alias = 9
    props.subscription_identifiers = (5,)
    headers = publish_headers(1, props, None, NOW)
    assert headers is not None
    assert set(headers) == {PUB, PROPS}
    base64.b64decode(headers[PROPS], validate=True)
    delivered, expired = delivered_properties(headers, NOW)
    assert not expired
    assert delivered == forwarded()
    assert delivered is not None
    assert delivered.user_properties == (("k", "v1"), ("k", "v2"), ("a", ""))  # order and repeats
    assert delivered.topic_alias is None
    assert delivered.subscription_identifiers == ()


def test_mqtt_3_3_2_6_expiry_is_an_absolute_time_not_a_carried_property() -> None:
    headers = publish_headers(0, Properties(message_expiry_interval=60), None, NOW)
    assert headers == {EXPIRES: f"{NOW + 60:.3f}"}


@pytest.mark.parametrize(
    ("elapsed", "interval"), [(0.0, 60), (10.0, 50), (30.4, 30), (59.5, 1), (59.999, 1)]
)
def test_mqtt_3_3_2_6_delivered_with_the_remaining_interval(elapsed: float, interval: int) -> None:
    headers = publish_headers(1, Properties(message_expiry_interval=60), None, NOW)
    delivered, expired = delivered_properties(headers, NOW + elapsed)
    assert not expired
    assert delivered == Properties(message_expiry_interval=interval)


@pytest.mark.parametrize("elapsed", [60.0, 60.001, 3600.0])
def test_mqtt_3_3_2_5_an_expired_message_is_flagged(elapsed: float) -> None:
    headers = publish_headers(1, Properties(message_expiry_interval=60), None, NOW)
    assert delivered_properties(headers, NOW + elapsed)[1] is True


def test_mqtt_3_3_2_6_expiry_and_other_properties_together() -> None:
    props = forwarded()
    props.message_expiry_interval = 100
    headers = publish_headers(2, props, "hash0001", NOW)
    assert headers is not None
    assert set(headers) == {PUB, PROPS, EXPIRES, ORIGIN}
    delivered, expired = delivered_properties(headers, NOW + 40)
    expected = forwarded()
    expected.message_expiry_interval = 60
    assert (delivered, expired) == (expected, False)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 0xFFFFFFFF),
    st.floats(0, 1, exclude_max=True),
    st.floats(0, 1e6, allow_nan=False),
)
def test_mqtt_3_3_2_6_remaining_interval_is_within_a_second_of_the_truth(
    expiry: int, fraction: float, start: float
) -> None:
    now = 1e9 + start
    headers = publish_headers(1, Properties(message_expiry_interval=expiry), None, now)
    later = now + expiry * fraction
    delivered, expired = delivered_properties(headers, later)
    remaining = now + expiry - later
    if expired:
        assert remaining < 0.01  # only the header's millisecond rounding
        return
    assert delivered is not None and delivered.message_expiry_interval is not None
    assert 1 <= delivered.message_expiry_interval <= expiry
    assert abs(delivered.message_expiry_interval - remaining) < 1.01
    assert delivered.message_expiry_interval <= math.ceil(remaining) + 1


def test_undecodable_properties_are_dropped_not_fatal() -> None:
    assert delivered_properties({PROPS: "not base64!"}, NOW) == (None, False)
    garbage = base64.b64encode(b"\x05\xff\xff").decode()
    assert delivered_properties({PROPS: garbage}, NOW) == (None, False)


def test_unreadable_expiry_is_not_an_expiry() -> None:
    delivered, expired = delivered_properties({EXPIRES: "soon"}, NOW)
    assert not expired
    assert delivered == Properties(message_expiry_interval=1)


@pytest.mark.parametrize(("value", "qos"), [("1", 1), ("2", 2), ("0", 0), ("", 0), ("x", 0)])
def test_published_qos_reads_the_header(value: str, qos: int) -> None:
    assert published_qos({PUB: value}) == qos
