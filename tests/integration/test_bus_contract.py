"""The Bus contract, held by LocalBus and UpstreamBus (on a real nats-server) alike.

Each test takes ``bus`` and so runs once per implementation. ``await
bus.flush()`` is the synchronisation point: for LocalBus everything is
delivered; for UpstreamBus the server has answered a PING sent after the
publishes, and it delivers a connection's own messages back before that PONG.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.bus.api import Bus, BusClosed, BusTimeout, Msg, NoResponders
from gateway.bus.local import LocalBus
from gateway.bus.subjects import InvalidSubject
from gateway.bus.upstream import UpstreamBus
from gateway.options.model import UpstreamOptions
from tests.conftest import NatsServer

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "upstream"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    b: Bus
    if request.param == "local":
        b = LocalBus()
    else:
        server: NatsServer = request.getfixturevalue("nats_server")
        b = await UpstreamBus.connect(UpstreamOptions(urls=(server.url,)))
    yield b
    await b.close()


async def test_publish_reaches_matching_subscribers_only(bus: Bus) -> None:
    exact = await bus.subscribe("a.b")
    star = await bus.subscribe("a.*")
    full = await bus.subscribe("a.>")
    other = await bus.subscribe("x")
    bus.publish("a.b", b"1", headers={"H": "v"})
    bus.publish("a.b.c", b"2")
    await bus.flush()
    assert [(await exact.next_msg(1)).payload] == [b"1"]
    m = await star.next_msg(1)
    assert (m.subject, m.payload, m.headers) == ("a.b", b"1", {"H": "v"})
    assert [(await full.next_msg(1)).payload, (await full.next_msg(1)).payload] == [b"1", b"2"]
    assert other.pending == 0 and star.pending == 0 and exact.pending == 0


async def test_delivery_is_asynchronous_and_in_order(bus: Bus) -> None:
    got: list[bytes] = []
    await bus.subscribe("s", lambda m: got.append(m.payload))
    for i in range(1000):
        bus.publish("s", b"%d" % i)
    assert got == []  # never inside the publisher's stack
    await bus.flush()
    assert got == [b"%d" % i for i in range(1000)]


async def test_queue_group_delivers_each_message_to_one_member(bus: Bus) -> None:
    a: list[Msg] = []
    b: list[Msg] = []
    every: list[Msg] = []
    await bus.subscribe("q", a.append, queue="g")
    await bus.subscribe("q", b.append, queue="g")
    await bus.subscribe("q", every.append)
    for i in range(100):
        bus.publish("q", b"%d" % i)
    await bus.flush()
    assert len(every) == 100
    assert len(a) + len(b) == 100 and a and b
    assert sorted(int(m.payload) for m in a + b) == list(range(100))


async def test_max_msgs_auto_unsubscribe_and_unsubscribe(bus: Bus) -> None:
    two = await bus.subscribe("m", max_msgs=2)
    later = await bus.subscribe("m")
    for i in range(4):
        bus.publish("m", b"%d" % i)
    await bus.flush()
    assert two.closed and two.delivered == 2 and two.pending == 2
    assert [(await two.next_msg(1)).payload for _ in range(2)] == [b"0", b"1"]
    with pytest.raises(BusClosed):
        await two.next_msg(1)
    later.auto_unsubscribe(4)
    assert later.closed
    again = await bus.subscribe("m")
    await again.unsubscribe()
    await again.unsubscribe()  # idempotent
    bus.publish("m", b"x")
    await bus.flush()
    assert again.delivered == 0 and again.closed


async def test_request_reply_no_responders_and_timeout(bus: Bus) -> None:
    await bus.subscribe("svc", lambda m: bus.publish(m.reply, m.payload.upper()))
    reply = await bus.request("svc", b"hi", timeout=5)
    assert reply.payload == b"HI"
    with pytest.raises(NoResponders):
        await bus.request("nobody.home", b"", timeout=5)
    await bus.subscribe("silent", lambda m: None)
    with pytest.raises(BusTimeout):
        await bus.request("silent", b"", timeout=0.1)


async def test_bounded_queue_drops_and_counts(bus: Bus) -> None:
    sub = await bus.subscribe("b", pending_limit=3)
    for i in range(10):
        bus.publish("b", b"%d" % i)
    await bus.flush()
    assert (sub.pending, sub.dropped, sub.delivered) == (3, 7, 10)
    assert [(await sub.next_msg(1)).payload for _ in range(3)] == [b"0", b"1", b"2"]
    with pytest.raises(BusTimeout):
        await sub.next_msg(0.01)


async def test_async_iteration_ends_when_unsubscribed(bus: Bus) -> None:
    sub = await bus.subscribe("it")
    for i in range(3):
        bus.publish("it", b"%d" % i)
    await bus.flush()
    await sub.unsubscribe()
    assert [m.payload async for m in sub] == [b"0", b"1", b"2"]


async def test_invalid_subjects_are_refused(bus: Bus) -> None:
    for bad in ("", "a..b", "a b", "a.>.b"):
        with pytest.raises(InvalidSubject):
            await bus.subscribe(bad)
    for bad in ("a.*", "a.>", "", "a..b"):
        with pytest.raises(InvalidSubject):
            bus.publish(bad)
    with pytest.raises(InvalidSubject):
        await bus.subscribe("ok", queue="bad queue")


async def test_failing_callback_does_not_stop_delivery(bus: Bus) -> None:
    got: list[bytes] = []

    def flaky(msg: Msg) -> None:
        if msg.payload == b"1":
            raise RuntimeError("subscriber bug")
        got.append(msg.payload)

    await bus.subscribe("f", flaky)
    for p in (b"0", b"1", b"2"):
        bus.publish("f", p)
    await bus.flush()
    assert got == [b"0", b"2"]


async def test_close_ends_subscriptions_and_refuses_use(bus: Bus) -> None:
    sub = await bus.subscribe("c")
    bus.publish("c", b"last")
    await bus.close()
    await bus.close()  # idempotent
    assert sub.closed
    assert (await sub.next_msg(1)).payload == b"last"  # flushed before the end
    with pytest.raises(BusClosed):
        await sub.next_msg(1)
    with pytest.raises(BusClosed):
        bus.publish("c")
    with pytest.raises(BusClosed):
        await bus.subscribe("c")
