"""Contract: publish acknowledgements, de-duplication, conditions and limits."""

from __future__ import annotations

import asyncio

import pytest

from streams.api import (
    HDR_EXPECTED_LAST_SEQ,
    HDR_EXPECTED_LAST_SUBJECT_SEQ,
    Log,
)
from streams.errors import (
    LogError,
    MessageTooLarge,
    NoStreamForSubject,
    StreamLimitReached,
    WrongLastSequence,
)
from streams.types import DiscardPolicy, PubAck, StreamConfig


async def test_publish_without_a_stream_fails(log: Log) -> None:
    with pytest.raises(NoStreamForSubject):
        await log.publish("nowhere", b"x", timeout=5)


async def test_pipelined_publishes_ack_in_order(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["p.>"]))
    futs = [log.publish_async(f"p.{i % 7}", b"x" * 128) for i in range(2000)]
    acks = await asyncio.gather(*futs)
    assert [a.seq for a in acks] == list(range(1, 2001))
    assert (await log.stream_info("S")).state.messages == 2000


async def test_msg_id_deduplicates_within_window(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["d"], duplicate_window=60))
    first = await log.publish("d", b"a", msg_id="id-1")
    again = await log.publish("d", b"b", msg_id="id-1")
    other = await log.publish("d", b"c", msg_id="id-2")
    assert (first.seq, first.duplicate) == (1, False)
    assert (again.seq, again.duplicate) == (1, True)
    assert other.seq == 2
    assert (await log.stream_info("S")).state.messages == 2


async def test_expected_last_subject_sequence(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["k.>"]))
    first = await log.publish("k.a", b"1", {HDR_EXPECTED_LAST_SUBJECT_SEQ: "0"})
    await log.publish("k.b", b"x")
    second = await log.publish("k.a", b"2", {HDR_EXPECTED_LAST_SUBJECT_SEQ: str(first.seq)})
    assert second.seq == 3
    with pytest.raises(WrongLastSequence):
        await log.publish("k.a", b"3", {HDR_EXPECTED_LAST_SUBJECT_SEQ: str(first.seq)})
    with pytest.raises(WrongLastSequence):
        await log.publish("k.c", b"3", {HDR_EXPECTED_LAST_SUBJECT_SEQ: "2"})


async def test_expected_last_sequence(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["e"]))
    await log.publish("e", b"1", {HDR_EXPECTED_LAST_SEQ: "0"})
    with pytest.raises(WrongLastSequence):
        await log.publish("e", b"2", {HDR_EXPECTED_LAST_SEQ: "0"})
    assert (await log.publish("e", b"2", {HDR_EXPECTED_LAST_SEQ: "1"})).seq == 2


async def test_max_msg_size(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["m"], max_msg_size=16))
    await log.publish("m", b"x" * 16)
    with pytest.raises(MessageTooLarge):
        await log.publish("m", b"x" * 17)


async def test_discard_new_refuses_past_max_msgs(log: Log) -> None:
    await log.add_stream(
        StreamConfig(name="S", subjects=["n"], max_msgs=2, discard=DiscardPolicy.NEW)
    )
    await log.publish("n", b"1")
    await log.publish("n", b"2")
    with pytest.raises(StreamLimitReached):
        await log.publish("n", b"3")
    assert (await log.stream_info("S")).state.last_seq == 2


async def test_discard_new_per_subject(log: Log) -> None:
    await log.add_stream(
        StreamConfig(
            name="Q",
            subjects=["q.>"],
            max_msgs_per_subject=1,
            discard=DiscardPolicy.NEW,
            discard_new_per_subject=True,
        )
    )
    await log.publish("q.1", b"first")
    with pytest.raises(StreamLimitReached):
        await log.publish("q.1", b"second")
    await log.publish("q.2", b"other")
    assert (await log.get_last_msg("Q", "q.1")).data == b"first"


async def test_failed_publish_does_not_break_the_pipeline(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["f"], max_msg_size=4))
    futs = [
        log.publish_async("f", b"ok"),
        log.publish_async("f", b"too big"),
        log.publish_async("f", b"ok2"),
    ]
    results = await asyncio.gather(*futs, return_exceptions=True)
    assert results[0].seq == 1  # type: ignore[union-attr]
    assert isinstance(results[1], MessageTooLarge)
    assert results[2].seq == 2  # type: ignore[union-attr]


async def test_publish_then_calls_back_in_publish_order(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["t.>"], max_msg_size=8))
    outcomes: list[PubAck | LogError] = []
    all_in = asyncio.get_running_loop().create_future()

    def then(outcome: PubAck | LogError) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 502 and not all_in.done():
            all_in.set_result(None)

    for i in range(500):
        log.publish_then(f"t.{i % 5}", b"x", None, then)
    log.publish_then("t.big", b"x" * 9, None, then)
    log.publish_then("nowhere", b"x", None, then)
    await asyncio.wait_for(all_in, 10)
    assert [o.seq for o in outcomes[:500] if isinstance(o, PubAck)] == list(range(1, 501))
    assert isinstance(outcomes[500], MessageTooLarge)
    assert isinstance(outcomes[501], NoStreamForSubject)


async def test_publish_then_refuses_an_invalid_subject_through_the_callback(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["v.>"]))
    outcomes: list[PubAck | LogError] = []
    done = asyncio.get_running_loop().create_future()

    def then(outcome: PubAck | LogError) -> None:
        outcomes.append(outcome)
        if not done.done():
            done.set_result(None)

    log.publish_then("v..bad", b"x", None, then)
    await asyncio.wait_for(done, 10)
    assert len(outcomes) == 1 and isinstance(outcomes[0], LogError)
