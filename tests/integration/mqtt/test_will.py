"""Will messages: published on an ungraceful close, not after DISCONNECT 0x00; 5.0 will delay
interval, DISCONNECT 0x04 and will properties."""

from __future__ import annotations

import time

import pytest

from gateway.mqtt.packets import Will
from gateway.mqtt.properties import Properties
from gateway.server import Gateway
from tests.integration.mqtt.conftest import RawFactory
from tests.integration.mqtt.helpers import RawSession

VERSIONS = pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])


async def watcher(raw: RawFactory, gateway: Gateway, version: int, topic: str) -> RawSession:
    session = await raw(gateway, version)
    assert (await session.connect(f"watch-{topic.replace('/', '-')}")).reason_code == 0
    assert await session.subscribe(topic, qos=1) == [1]
    return session


@VERSIONS
async def test_mqtt_3_1_2_8_will_published_on_ungraceful_close(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """The Will is published when the connection closes without a DISCONNECT."""
    watch = await watcher(raw, gateway, version, "will/drop")
    dying = await raw(gateway, version)
    will = Will("will/drop", b"gone", qos=1)
    assert (await dying.connect("dying", will=will)).reason_code == 0
    dying.abort()  # type: ignore[attr-defined]
    msg = (await watch.receive_acked(1))[0]
    assert (msg.topic, bytes(msg.payload), msg.qos) == ("will/drop", b"gone", 1)


@VERSIONS
async def test_mqtt_3_1_2_10_will_discarded_after_normal_disconnect(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A DISCONNECT (5.0: reason 0x00) removes the Will: it is never published."""
    watch = await watcher(raw, gateway, version, "will/clean")
    leaving = await raw(gateway, version)
    assert (await leaving.connect("leaving", will=Will("will/clean", b"x"))).reason_code == 0
    await leaving.disconnect(0)
    await watch.quiet(0.5)  # bounded wait: the Will must not be published


@VERSIONS
async def test_mqtt_3_1_2_8_will_published_on_keep_alive_timeout(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """A keep-alive timeout closes the connection as a network failure: the Will goes out."""
    watch = await watcher(raw, gateway, version, "will/ka")
    idle = await raw(gateway, version)
    assert (
        await idle.connect("idle", keep_alive=1, will=Will("will/ka", b"idle"))
    ).reason_code == 0
    msg = (await watch.receive_acked(1, timeout=4))[0]
    assert bytes(msg.payload) == b"idle"


@VERSIONS
async def test_mqtt_3_1_2_17_will_retain_publishes_a_retained_message(
    gateway: Gateway, raw: RawFactory, version: int
) -> None:
    """With Will Retain 1 the Will is published as a retained message."""
    dying = await raw(gateway, version)
    will = Will("will/retained", b"last words", qos=1, retain=True)
    assert (await dying.connect("dying-ret", will=will)).reason_code == 0
    dying.abort()  # type: ignore[attr-defined]
    # A subscriber arriving later gets it as a retained replay (poll until it is stored).
    deadline = time.monotonic() + 5
    while True:
        late = await raw(gateway, version)
        await late.connect("late-ret")
        assert await late.subscribe("will/retained", qos=1) == [1]
        try:
            msg = (await late.receive_acked(1, timeout=0.5))[0]
            break
        except TimeoutError:
            await late.disconnect()
            assert time.monotonic() < deadline, "the retained Will never appeared"
    assert (bytes(msg.payload), msg.retain) == (b"last words", True)


async def test_mqtt5_3_14_disconnect_with_will_message_0x04_publishes_will(
    gateway: Gateway, raw: RawFactory
) -> None:
    """5.0: DISCONNECT with reason 0x04 asks the server to publish the Will anyway."""
    watch = await watcher(raw, gateway, 5, "will/x04")
    leaving = await raw(gateway, 5)
    assert (await leaving.connect("x04", will=Will("will/x04", b"asked"))).reason_code == 0
    await leaving.disconnect(0x04)
    assert [bytes(m.payload) for m in await watch.receive_acked(1)] == [b"asked"]


async def test_mqtt5_3_1_2_8_will_delay_interval_postpones_the_will(
    gateway: Gateway, raw: RawFactory
) -> None:
    """5.0: the Will is published only once the Will Delay Interval has elapsed."""
    watch = await watcher(raw, gateway, 5, "will/delay")
    dying = await raw(gateway, 5)
    will = Will("will/delay", b"late", properties=Properties(will_delay_interval=1))
    props = Properties(session_expiry_interval=30)
    assert (
        await dying.connect("delayed", clean=False, will=will, properties=props)
    ).reason_code == 0
    dying.abort()  # type: ignore[attr-defined]
    started = time.monotonic()
    await watch.quiet(0.5)  # bounded wait inside the 1 s delay: nothing yet
    msg = (await watch.receive_acked(1, timeout=3))[0]
    assert bytes(msg.payload) == b"late"
    assert time.monotonic() - started >= 0.9


async def test_mqtt5_3_1_3_9_reconnect_within_will_delay_cancels_the_will(
    gateway: Gateway, raw: RawFactory
) -> None:
    """5.0: a new connection for the client id before the Will Delay Interval passes means the
    Will is not sent."""
    watch = await watcher(raw, gateway, 5, "will/cancel")
    dying = await raw(gateway, 5)
    will = Will("will/cancel", b"never", properties=Properties(will_delay_interval=2))
    props = Properties(session_expiry_interval=30)
    assert (
        await dying.connect("cancel", clean=False, will=will, properties=props)
    ).reason_code == 0
    dying.abort()  # type: ignore[attr-defined]
    back = await raw(gateway, 5)
    assert (await back.connect("cancel", clean=False, properties=props)).reason_code == 0
    await watch.quiet(2.5)  # bounded wait past the 2 s delay: the Will must not come


async def test_mqtt5_3_1_3_10_will_properties_are_forwarded(
    gateway: Gateway, raw: RawFactory
) -> None:
    """5.0: the Will's properties (content type, response topic, correlation data, payload
    format, user properties in order) reach the subscribers unaltered."""
    watch = await watcher(raw, gateway, 5, "will/props")
    dying = await raw(gateway, 5)
    props = Properties(
        content_type="text/plain",
        response_topic="will/reply",
        correlation_data=b"\x00\x01corr",
        payload_format_indicator=1,
        user_properties=[("b", "2"), ("a", "1"), ("b", "3")],
    )
    will = Will("will/props", b"props", qos=1, properties=props)
    assert (await dying.connect("propsy", will=will)).reason_code == 0
    dying.abort()  # type: ignore[attr-defined]
    got = (await watch.receive_acked(1))[0].properties
    assert got.content_type == "text/plain"
    assert got.response_topic == "will/reply"
    assert got.correlation_data == b"\x00\x01corr"
    assert got.payload_format_indicator == 1
    assert list(got.user_properties) == [("b", "2"), ("a", "1"), ("b", "3")]
