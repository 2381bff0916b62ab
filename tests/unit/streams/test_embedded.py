"""Embedded backend internals: segments, sync policies, memory storage, persisted state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.bus.local import LocalBus
from streams.embedded import EmbeddedLog
from streams.errors import BadRequest, LogClosed
from streams.types import (
    ConsumerConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)


def _segs(store: Path, stream: str) -> list[Path]:
    return sorted((store / "streams" / stream / "msgs").glob("*.seg"))


async def test_segments_roll_and_are_removed_as_limits_allow(tmp_path: Path) -> None:
    log = await EmbeddedLog.open(tmp_path, LocalBus(), segment_bytes=2048)
    await log.add_stream(StreamConfig(name="S", subjects=["s"], max_msgs=10))
    for i in range(300):
        await log.publish("s", b"%04d" % i + b"x" * 100)
    segs = _segs(tmp_path, "S")
    # 10 messages of ~140 bytes fit in one or two 2 KiB segments, plus the active one.
    assert 1 <= len(segs) <= 3
    await log.close()
    log = await EmbeddedLog.open(tmp_path, LocalBus(), segment_bytes=2048)
    state = (await log.stream_info("S")).state
    assert (state.messages, state.first_seq, state.last_seq) == (10, 291, 300)
    assert (await log.get_msg("S", 300)).data.startswith(b"0299")
    await log.close()


async def test_acked_messages_of_an_interest_stream_stay_gone_after_reopen(tmp_path: Path) -> None:
    bus = LocalBus()
    log = await EmbeddedLog.open(tmp_path, bus)
    await log.add_stream(StreamConfig(name="I", subjects=["i"], retention=RetentionPolicy.INTEREST))
    sub = await bus.subscribe("d")
    await log.add_consumer("I", ConsumerConfig(durable_name="C", deliver_subject="d"))
    for i in range(5):
        await log.publish("i", b"%d" % i)
    msgs = [await sub.next_msg(2) for _ in range(5)]
    for m in msgs[:3]:
        await log.ack(m.reply)
    assert (await log.stream_info("I")).state.messages == 2
    await log.close()
    log = await EmbeddedLog.open(tmp_path, LocalBus())
    state = (await log.stream_info("I")).state
    assert (state.messages, state.first_seq) == (2, 4)
    await log.close()


async def test_memory_stream_keeps_config_but_not_messages_across_reopen(tmp_path: Path) -> None:
    log = await EmbeddedLog.open(tmp_path, LocalBus())
    await log.add_stream(StreamConfig(name="M", subjects=["m"], storage=StorageType.MEMORY))
    await log.publish("m", b"volatile")
    assert _segs(tmp_path, "M") == []
    await log.close()
    log = await EmbeddedLog.open(tmp_path, LocalBus())
    info = await log.stream_info("M")
    assert info.config.storage is StorageType.MEMORY
    assert info.state.messages == 0
    await log.close()


async def test_periodic_sync_acks_before_any_fsync(tmp_path: Path) -> None:
    log = await EmbeddedLog.open(tmp_path, LocalBus(), sync=3600)
    await log.add_stream(StreamConfig(name="P", subjects=["p"]))
    ack = await log.publish("p", b"x")
    assert ack.seq == 1
    # Written to the segment file (page cache) even though not yet synced.
    assert b"x" in _segs(tmp_path, "P")[-1].read_bytes()
    await log.close()


async def test_consumer_state_file_is_written_on_close(tmp_path: Path) -> None:
    bus = LocalBus()
    log = await EmbeddedLog.open(tmp_path, bus)
    await log.add_stream(StreamConfig(name="S", subjects=["s"]))
    sub = await bus.subscribe("d")
    await log.add_consumer("S", ConsumerConfig(durable_name="C", deliver_subject="d"))
    await log.publish("s", b"1")
    await log.publish("s", b"2")
    first = await sub.next_msg(2)
    await sub.next_msg(2)
    await log.ack(first.reply)
    await log.close()
    state = json.loads((tmp_path / "streams/S/consumers/C.json").read_text())["state"]
    assert state["sseq"] == 2
    assert [p[0] for p in state["pending"]] == [2]


async def test_bad_sync_policy_and_use_after_close(tmp_path: Path) -> None:
    with pytest.raises(BadRequest):
        await EmbeddedLog.open(tmp_path, LocalBus(), sync="sometimes")
    log = await EmbeddedLog.open(tmp_path, LocalBus())
    await log.close()
    await log.close()  # idempotent
    with pytest.raises(LogClosed):
        await log.stream_names()
    with pytest.raises(LogClosed):
        await log.publish("x", b"")


async def test_invalid_names_are_refused(tmp_path: Path) -> None:
    log = await EmbeddedLog.open(tmp_path, LocalBus())
    try:
        for bad in ["a.b", "a b", "a/b", "*", ""]:
            with pytest.raises(BadRequest):
                await log.add_stream(StreamConfig(name=bad, subjects=["x"]))
    finally:
        await log.close()


async def test_acked_deliveries_leave_no_ack_timers_behind(tmp_path: Path) -> None:
    """Deadlines of acknowledged deliveries are dropped with the ack, not kept for ack_wait."""
    bus = LocalBus()
    log = await EmbeddedLog.open(tmp_path, bus)
    await log.add_stream(StreamConfig(name="T", subjects=["t"]))
    sub = await bus.subscribe("dt")
    await log.add_consumer("T", ConsumerConfig(durable_name="C", deliver_subject="dt"))
    for i in range(500):
        await log.publish("t", b"%d" % i)
    msgs = [await sub.next_msg(2) for _ in range(500)]
    consumer = log._streams["T"].consumers["C"]
    assert len(consumer._timers) == 500
    for m in msgs:
        log.ack_nowait(m.reply)
    assert len(consumer._timers) == 0
    assert (await log.consumer_info("T", "C")).num_ack_pending == 0
    await log.close()
