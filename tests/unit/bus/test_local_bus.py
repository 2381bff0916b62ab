"""LocalBus: routing, wildcards, queue groups, request/reply, limits, ordering."""

from __future__ import annotations

import pytest

from gateway.bus.api import BusClosed, BusTimeout, Msg, MsgBatch, NoResponders
from gateway.bus.local import LocalBus
from gateway.bus.subjects import InvalidSubject


async def test_publish_reaches_matching_subscribers_only() -> None:
    bus = LocalBus()
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
    assert other.pending == 0 and star.pending == 0


async def test_delivery_is_asynchronous_and_in_order() -> None:
    bus = LocalBus()
    got: list[bytes] = []
    await bus.subscribe("s", lambda m: got.append(m.payload))
    for i in range(100):
        bus.publish("s", b"%d" % i)
    assert got == []  # never inside the publisher's stack
    await bus.flush()
    assert got == [b"%d" % i for i in range(100)]


async def test_queue_group_delivers_each_message_to_one_member() -> None:
    bus = LocalBus()
    a: list[Msg] = []
    b: list[Msg] = []
    plain: list[Msg] = []
    await bus.subscribe("q", a.append, queue="g")
    await bus.subscribe("q", b.append, queue="g")
    await bus.subscribe("q", plain.append)
    for _ in range(200):
        bus.publish("q", b"x")
    await bus.flush()
    assert len(a) + len(b) == 200
    assert a and b  # both members are used
    assert len(plain) == 200


async def test_max_msgs_and_unsubscribe() -> None:
    bus = LocalBus()
    got: list[Msg] = []
    sub = await bus.subscribe("m", got.append, max_msgs=2)
    for _ in range(5):
        bus.publish("m")
    await bus.flush()
    assert len(got) == 2 and sub.closed
    sub2 = await bus.subscribe("m")
    await sub2.unsubscribe()
    bus.publish("m")
    await bus.flush()
    with pytest.raises(BusClosed):
        await sub2.next_msg(0.1)
    assert bus.subscription_count == 0


async def test_request_reply_and_no_responders() -> None:
    bus = LocalBus()

    def echo(msg: Msg) -> None:
        bus.publish(msg.reply, msg.payload.upper())

    await bus.subscribe("svc", echo)
    reply = await bus.request("svc", b"hi", timeout=1)
    assert reply.payload == b"HI"
    with pytest.raises(NoResponders):
        await bus.request("nobody", b"x", timeout=1)
    await bus.subscribe("silent", lambda m: None)
    with pytest.raises(BusTimeout):
        await bus.request("silent", b"x", timeout=0.05)


async def test_bounded_queue_drops_and_counts() -> None:
    bus = LocalBus()
    sub = await bus.subscribe("d", pending_limit=3)
    for _ in range(5):
        bus.publish("d")
    await bus.flush()
    assert (sub.pending, sub.dropped, sub.delivered) == (3, 2, 5)


async def test_invalid_subjects_are_refused() -> None:
    bus = LocalBus()
    with pytest.raises(InvalidSubject):
        bus.publish("a.*")
    with pytest.raises(InvalidSubject):
        await bus.subscribe("a..b")


async def test_failing_callback_does_not_stop_delivery() -> None:
    bus = LocalBus()
    got: list[Msg] = []

    def bad(msg: Msg) -> None:
        raise RuntimeError("boom")

    await bus.subscribe("e", bad)
    await bus.subscribe("e", got.append)
    bus.publish("e")
    bus.publish("e")
    await bus.flush()
    assert len(got) == 2


async def test_close_ends_subscriptions_and_refuses_publish() -> None:
    bus = LocalBus()
    sub = await bus.subscribe("c")
    bus.publish("c", b"last")
    await bus.close()
    assert (await sub.next_msg(1)).payload == b"last"  # drained before close
    with pytest.raises(BusClosed):
        await sub.next_msg(0.1)
    with pytest.raises(BusClosed):
        bus.publish("c")
    async for _ in sub:
        raise AssertionError("closed subscription yields nothing")


async def test_publish_many_reaches_a_batch_handler_as_one_batch() -> None:
    bus = LocalBus()
    batches: list[MsgBatch] = []
    singles: list[Msg] = []
    sub = await bus.subscribe("a.b", singles.append)
    sub.set_batch_handler(batches.append)
    bus.publish_many("a.b", [b"1", b"2", b"3"])
    await bus.flush()
    assert singles == []
    assert [(b.subject, b.payloads) for b in batches] == [("a.b", [b"1", b"2", b"3"])]
    assert sub.delivered == 3


async def test_publish_many_is_publish_for_each_without_a_batch_handler() -> None:
    bus = LocalBus()
    plain = await bus.subscribe("a.*")
    got: list[bytes] = []
    await bus.subscribe("a.>", lambda m: got.append(m.payload))
    bus.publish("a.b", b"0")
    bus.publish_many("a.b", [b"1", b"2"])
    bus.publish("a.b", b"3")
    await bus.flush()
    assert got == [b"0", b"1", b"2", b"3"]  # publish order kept around the batch
    msgs = [await plain.next_msg(1) for _ in range(4)]
    assert [(m.subject, m.payload, m.reply, m.headers) for m in msgs] == [
        ("a.b", b"%d" % i, "", None) for i in range(4)
    ]


async def test_publish_many_spreads_a_batch_over_a_queue_group_per_message() -> None:
    bus = LocalBus()
    counts = [0, 0]
    for i in range(2):
        sub = await bus.subscribe("q", lambda m, i=i: counts.__setitem__(i, counts[i] + 1), "g")
        sub.set_batch_handler(lambda b: pytest.fail("a queue member got a whole batch"))
    bus.publish_many("q", [b"x"] * 400)
    await bus.flush()
    assert sum(counts) == 400 and min(counts) > 100


async def test_publish_many_respects_max_msgs() -> None:
    bus = LocalBus()
    batches: list[MsgBatch] = []
    got: list[bytes] = []
    sub = await bus.subscribe("s", lambda m: got.append(m.payload), max_msgs=2)
    sub.set_batch_handler(batches.append)
    bus.publish_many("s", [b"1", b"2", b"3"])
    await bus.flush()
    assert got == [b"1", b"2"] and batches == [] and sub.closed


async def test_run_pending_delivers_in_the_callers_turn_and_after_delivery_callbacks_follow() -> (
    None
):
    bus = LocalBus()
    order: list[str] = []
    await bus.subscribe(
        "s",
        lambda m: (
            order.append(f"msg {m.payload.decode()}"),
            bus.call_after_deliveries(lambda: order.append("after")),
        ),
    )
    assert not bus.call_after_deliveries(lambda: order.append("never"))  # nothing under way
    bus.publish("s", b"1")
    bus.publish("s", b"2")
    assert order == []  # queued, never inside publish
    bus.run_pending()
    assert order == ["msg 1", "msg 2", "after", "after"]
    await bus.flush()
    assert order == ["msg 1", "msg 2", "after", "after"]  # the scheduled drain had nothing left
