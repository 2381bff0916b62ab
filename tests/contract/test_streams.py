"""Contract: stream lifecycle, limits, direct get, purge, delete."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from streams.api import Log
from streams.errors import (
    LogError,
    MessageNotFound,
    StreamNameInUse,
    StreamNotFound,
    SubjectsOverlap,
)
from streams.types import StorageType, StreamConfig

from .helpers import eventually


async def test_add_stream_is_idempotent_for_an_equal_config(log: Log) -> None:
    cfg = StreamConfig(name="S", subjects=["s.>"])
    info = await log.add_stream(cfg)
    assert info.config.name == "S"
    assert tuple(info.config.subjects) == ("s.>",)
    assert info.state.messages == 0
    again = await log.add_stream(StreamConfig(name="S", subjects=("s.>",)))
    assert again.config.name == "S"
    with pytest.raises(StreamNameInUse):
        await log.add_stream(StreamConfig(name="S", subjects=["s.>"], max_msgs=5))


async def test_stream_names_info_and_delete(log: Log) -> None:
    await log.add_stream(StreamConfig(name="A", subjects=["a.>"]))
    await log.add_stream(StreamConfig(name="B", subjects=["b.>"], storage=StorageType.MEMORY))
    assert await log.stream_names() == ["A", "B"]
    await log.delete_stream("A")
    assert await log.stream_names() == ["B"]
    with pytest.raises(StreamNotFound):
        await log.stream_info("A")
    with pytest.raises(StreamNotFound):
        await log.delete_stream("A")


async def test_overlapping_subjects_are_refused(log: Log) -> None:
    await log.add_stream(StreamConfig(name="A", subjects=["x.*"]))
    with pytest.raises(SubjectsOverlap):
        await log.add_stream(StreamConfig(name="B", subjects=["x.>"]))


@pytest.mark.parametrize("storage", [StorageType.FILE, StorageType.MEMORY])
async def test_publish_then_get_by_sequence_and_last_for_subject(
    log: Log, storage: StorageType
) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["s.>"], storage=storage))
    a1 = await log.publish("s.a", b"one", {"X-Key": "v"})
    b1 = await log.publish("s.b", b"two")
    a2 = await log.publish("s.a", b"three")
    assert (a1.stream, a1.seq, a1.duplicate) == ("S", 1, False)
    assert (b1.seq, a2.seq) == (2, 3)
    got = await log.get_msg("S", 1)
    assert (got.subject, got.data, got.seq) == ("s.a", b"one", 1)
    assert got.headers is not None and got.headers["X-Key"] == "v"
    last = await log.get_last_msg("S", "s.a")
    assert (last.seq, last.data) == (3, b"three")
    assert (await log.get_last_msg("S", "s.*")).seq == 3
    with pytest.raises(MessageNotFound):
        await log.get_msg("S", 99)
    with pytest.raises(MessageNotFound):
        await log.get_last_msg("S", "s.none")
    info = await log.stream_info("S")
    assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (3, 1, 3)
    assert info.state.num_subjects == 2


async def test_delete_one_message(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["s"]))
    for i in range(3):
        await log.publish("s", b"%d" % i)
    await log.delete_msg("S", 2)
    with pytest.raises(MessageNotFound):
        await log.get_msg("S", 2)
    with pytest.raises(MessageNotFound):
        await log.delete_msg("S", 2)
    info = await log.stream_info("S")
    assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (2, 1, 3)


async def test_purge_all_and_one_subject(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["s.*"]))
    for subject in ["s.a", "s.b", "s.a", "s.c"]:
        await log.publish(subject, b"x")
    assert await log.purge_stream("S", "s.a") == 2
    info = await log.stream_info("S")
    assert info.state.messages == 2
    assert await log.purge_stream("S") == 2
    info = await log.stream_info("S")
    assert (info.state.messages, info.state.last_seq) == (0, 4)
    ack = await log.publish("s.a", b"after")
    assert ack.seq == 5


async def test_max_msgs_discard_old_keeps_the_newest(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["s"], max_msgs=3))
    for i in range(5):
        await log.publish("s", b"%d" % i)
    info = await log.stream_info("S")
    assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (3, 3, 5)


async def test_max_msgs_per_subject_keeps_last_per_subject(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["r.>"], max_msgs_per_subject=1))
    await log.publish("r.a", b"1")
    await log.publish("r.b", b"2")
    await log.publish("r.a", b"3")
    info = await log.stream_info("S")
    assert info.state.messages == 2
    assert (await log.get_last_msg("S", "r.a")).data == b"3"
    with pytest.raises(MessageNotFound):
        await log.get_msg("S", 1)


async def test_update_stream_applies_new_limits(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["s"]))
    for i in range(10):
        await log.publish("s", b"%d" % i)
    info = await log.update_stream(StreamConfig(name="S", subjects=["s"], max_msgs=4))
    assert info.config.max_msgs == 4
    info = await log.stream_info("S")
    assert (info.state.messages, info.state.first_seq) == (4, 7)
    with pytest.raises(StreamNotFound):
        await log.update_stream(StreamConfig(name="nope", subjects=["n"]))


async def test_max_age_expires_messages(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["s"], max_age=0.3))
    await log.publish("s", b"old")

    async def gone() -> bool:
        return (await log.stream_info("S")).state.messages == 0

    await eventually(gone, timeout=5)
    assert (await log.publish("s", b"new")).seq == 2
    assert (await log.stream_info("S")).state.messages == 1


async def test_messages_and_sequence_survive_reopen(backend) -> None:  # type: ignore[no-untyped-def]
    log = backend.log
    await log.add_stream(StreamConfig(name="S", subjects=["s.>"], max_msgs_per_subject=1))
    await log.publish("s.a", b"1")
    await log.publish("s.b", b"2")
    await log.publish("s.a", b"3")
    log = await backend.reopen()
    info = await log.stream_info("S")
    assert (info.state.messages, info.state.last_seq) == (2, 3)
    assert (await log.get_last_msg("S", "s.a")).data == b"3"
    assert (await log.publish("s.c", b"4")).seq == 4


async def test_stream_info_counts_the_subjects_a_filter_matches(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["s.>"]))
    for subject in ["s.a.1", "s.a.2", "s.a.1", "s.b.1", "s.c"]:
        await log.publish(subject, b"x")
    await log.delete_msg("S", 2)  # s.a.2 has no message left
    info = await log.stream_info("S", subjects_filter="s.*.1")
    assert info.state.subjects == {"s.a.1": 2, "s.b.1": 1}
    assert info.state.messages == 4
    assert (await log.stream_info("S", subjects_filter="s.none.>")).state.subjects == {}
    assert (await log.stream_info("S")).state.subjects is None


async def test_delete_msg_then_reports_deleted_and_missing(log: Log) -> None:
    await log.add_stream(StreamConfig(name="S", subjects=["s"]))
    for i in range(2):
        await log.publish("s", b"%d" % i)
    outcomes: dict[int, LogError | None] = {}
    done = asyncio.Event()

    def answer(seq: int) -> Callable[[LogError | None], None]:
        def then(error: LogError | None) -> None:
            outcomes[seq] = error
            if len(outcomes) == 2:
                done.set()

        return then

    log.delete_msg_then("S", 1, answer(1))
    log.delete_msg_then("S", 9, answer(9))
    await asyncio.wait_for(done.wait(), 5)
    assert outcomes[1] is None
    assert isinstance(outcomes[9], MessageNotFound)
    with pytest.raises(MessageNotFound):
        await log.get_msg("S", 1)
    assert (await log.get_msg("S", 2)).data == b"1"
