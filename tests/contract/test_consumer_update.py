"""Contract: ``Log.update_consumer`` changes a durable consumer's filter subjects in place."""

from __future__ import annotations

import dataclasses

import pytest

from streams.api import Log
from streams.errors import BadRequest, ConsumerNotFound
from streams.types import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StreamConfig,
)

from .conftest import Backend
from .helpers import Inbox


def _config(subject: str, *filters: str) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name="C",
        deliver_subject=subject,
        filter_subjects=filters,
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
    )


async def _stream(log: Log) -> None:
    await log.add_stream(
        StreamConfig(name="S", subjects=["s.>"], retention=RetentionPolicy.INTEREST)
    )


async def test_several_filter_subjects_deliver_each_matching_message(log: Log) -> None:
    await _stream(log)
    inbox = await Inbox.create(log)
    info = await log.add_consumer("S", _config(inbox.subject, "s.a", "s.b.>"))
    assert set(info.config.filters) == {"s.a", "s.b.>"}
    for subject in ("s.a", "s.c", "s.b.x", "s.b"):
        await log.publish(subject, subject.encode())
    got = await inbox.take(2)
    assert [m.subject for m, _ in got] == ["s.a", "s.b.x"]
    assert await inbox.nothing_within(0.2)


async def test_added_filter_delivers_new_messages_and_keeps_the_position(log: Log) -> None:
    await _stream(log)
    inbox = await Inbox.create(log)
    config = _config(inbox.subject, "s.a", "s.x")
    await log.add_consumer("S", config)
    await log.publish("s.a", b"1")
    first, meta = await inbox.next()
    assert first.payload == b"1"
    info = await log.update_consumer(
        "S", dataclasses.replace(config, filter_subjects=("s.a", "s.b"))
    )
    assert set(info.config.filters) == {"s.a", "s.b"}
    assert info.num_ack_pending == 1  # the unacknowledged delivery stays pending
    await log.publish("s.b", b"2")
    await log.publish("s.a", b"3")
    got = await inbox.take(2)
    assert [m.payload for m, _ in got] == [b"2", b"3"]
    assert got[0][1].consumer_seq == meta.consumer_seq + 1
    await log.ack(first.reply)
    for m, _ in got:
        await log.ack(m.reply)
    assert set((await log.consumer_info("S", "C")).config.filters) == {"s.a", "s.b"}


async def test_removed_filter_stops_delivering(log: Log) -> None:
    await _stream(log)
    inbox = await Inbox.create(log)
    config = _config(inbox.subject, "s.a", "s.b")
    await log.add_consumer("S", config)
    await log.update_consumer("S", dataclasses.replace(config, filter_subjects=("s.a",)))
    await log.publish("s.b", b"gone")
    await log.publish("s.a", b"kept")
    msg, _ = await inbox.next()
    assert msg.payload == b"kept"
    assert await inbox.nothing_within(0.2)


async def test_update_survives_a_restart(backend: Backend) -> None:
    log = backend.log
    await _stream(log)
    config = _config("deliver.c", "s.a")
    await log.add_consumer("S", config)
    await log.update_consumer("S", dataclasses.replace(config, filter_subjects=("s.a", "s.b")))
    log = await backend.reopen()
    info = await log.consumer_info("S", "C")
    assert set(info.config.filters) == {"s.a", "s.b"}


async def test_update_of_a_missing_consumer_is_not_found(log: Log) -> None:
    await _stream(log)
    with pytest.raises(ConsumerNotFound):
        await log.update_consumer("S", _config("deliver.c", "s.a"))


async def test_embedded_update_may_change_only_the_filters(backend: Backend) -> None:
    if backend.name != "embedded":
        pytest.skip("JetStream also updates what it allows, e.g. the deliver subject")
    log = backend.log
    await _stream(log)
    config = _config("deliver.c", "s.a")
    await log.add_consumer("S", config)
    with pytest.raises(BadRequest):
        await log.update_consumer("S", dataclasses.replace(config, deliver_subject="deliver.d"))


@pytest.mark.parametrize("filters", [("s.a", "s.*"), ("s.>", "s.b.c"), ("s.a", "s.a")])
async def test_overlapping_filter_subjects_are_refused(log: Log, filters: tuple[str, ...]) -> None:
    """JetStream refuses a consumer whose filter subjects overlap (both when made and
    when updated); the embedded log does the same."""
    await _stream(log)
    with pytest.raises(BadRequest):
        await log.add_consumer("S", _config("d.overlap", *filters))
    await log.add_consumer("S", _config("d.overlap", "s.a", "s.b"))
    with pytest.raises(BadRequest):
        await log.update_consumer("S", _config("d.overlap", *filters))
