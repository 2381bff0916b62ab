"""The JetStream backend against a real ``nats-server -js``: what only it has.

The shared behaviour is in tests/contract (run on both backends); this file
checks the JetStream-specific parts: the objects are real JetStream objects
seen by another client, API error codes map onto the interface's errors,
pipelined acks come back in order, direct get and its fallback, JetStream
domains, and surviving a server restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from gateway.bus.api import Msg
from streams.errors import (
    BadRequest,
    ConsumerNameInUse,
    ConsumerNotFound,
    KeyExists,
    KeyNotFound,
    LogClosed,
    LogError,
    LogTimeout,
    MessageNotFound,
    MessageTooLarge,
    NoStreamForSubject,
    StreamLimitReached,
    StreamNameInUse,
    StreamNotFound,
    WrongLastMsgId,
    WrongLastSequence,
    WrongStream,
)
from streams.jetstream import JetStreamAPIError, JetStreamLog
from streams.types import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    PubAck,
    StorageType,
    StreamConfig,
    parse_ack,
)
from tests.conftest import NATS_SERVER, NatsServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


@pytest.fixture
async def log(nats_server: NatsServer) -> AsyncIterator[JetStreamLog]:
    jlog = await JetStreamLog.connect(nats_server.url)
    try:
        yield jlog
    finally:
        await jlog.close()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    """A second, independent client: sees what the backend made on the server."""
    client = await nats.connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


async def _stream(log: JetStreamLog, name: str = "S", **kw: object) -> None:
    await log.add_stream(StreamConfig(name=name, subjects=(f"{name.lower()}.>",), **kw))  # type: ignore[arg-type]


# -- real JetStream objects --------------------------------------------------------


async def test_streams_and_consumers_are_real_jetstream_objects(
    log: JetStreamLog, nc: NATS
) -> None:
    await _stream(log, storage=StorageType.MEMORY, max_msgs_per_subject=3)
    await log.add_consumer("S", ConsumerConfig(durable_name="d", deliver_subject="dlv.d"))
    js = nc.jetstream()
    info = await js.stream_info("S")
    assert info.config.subjects == ["s.>"]
    assert info.config.max_msgs_per_subject == 3
    assert str(getattr(info.config.storage, "value", info.config.storage)) == "memory"
    assert [c.name for c in await js.consumers_info("S")] == ["d"]
    ack = await js.publish("s.x", b"from another client")
    assert (await log.get_msg("S", ack.seq)).data == b"from another client"


async def test_add_stream_is_idempotent_for_an_equal_config(log: JetStreamLog) -> None:
    cfg = StreamConfig(name="S", subjects=("s.>",), max_age=60.0, duplicate_window=30.0)
    first = await log.add_stream(cfg)
    second = await log.add_stream(cfg)
    assert first.config == second.config == cfg
    with pytest.raises(StreamNameInUse):
        await log.add_stream(StreamConfig(name="S", subjects=("s.>",), max_msgs=5))
    updated = await log.update_stream(StreamConfig(name="S", subjects=("s.>",), max_msgs=5))
    assert updated.config.max_msgs == 5
    assert await log.stream_names() == ["S"]


# -- API errors mapped to the interface's errors -------------------------------------


async def test_api_error_codes_map_to_typed_errors(log: JetStreamLog) -> None:
    with pytest.raises(StreamNotFound) as exc:
        await log.stream_info("NOPE")
    assert exc.value.err_code == 10059
    with pytest.raises(StreamNotFound):
        await log.delete_stream("NOPE")
    with pytest.raises(StreamNotFound):
        await log.update_stream(StreamConfig(name="NOPE", subjects=("nope",)))
    await _stream(log)
    with pytest.raises(ConsumerNotFound):
        await log.consumer_info("S", "nope")
    with pytest.raises(ConsumerNotFound):
        await log.delete_consumer("S", "nope")
    with pytest.raises(MessageNotFound):
        await log.get_msg("S", 42)
    with pytest.raises(MessageNotFound):
        await log.get_last_msg("S", "s.none")
    with pytest.raises(MessageNotFound):
        await log.delete_msg("S", 42)
    with pytest.raises(BadRequest):
        await log.stream_info("bad.name")


async def test_conditional_publish_errors(log: JetStreamLog) -> None:
    await _stream(log)
    await log.publish("s.a", b"1")
    with pytest.raises(WrongLastSequence):
        await log.publish("s.a", b"2", {"Nats-Expected-Last-Sequence": "7"})
    with pytest.raises(WrongLastSequence):
        await log.publish("s.a", b"2", {"Nats-Expected-Last-Subject-Sequence": "0"})
    with pytest.raises(WrongStream):
        await log.publish("s.a", b"2", {"Nats-Expected-Stream": "OTHER"})
    await log.publish("s.a", b"3", msg_id="m1")
    with pytest.raises(WrongLastMsgId):
        await log.publish("s.a", b"4", {"Nats-Expected-Last-Msg-Id": "other"})
    with pytest.raises(NoStreamForSubject):
        await log.publish("unknown.subject", b"x")


async def test_limit_errors(log: JetStreamLog) -> None:
    await _stream(log, max_msg_size=16, max_msgs=1, discard=DiscardPolicy.NEW)
    with pytest.raises(MessageTooLarge):
        await log.publish("s.a", b"x" * 17)
    await log.publish("s.a", b"ok")
    with pytest.raises(StreamLimitReached):
        await log.publish("s.b", b"full")


async def test_consumer_with_a_different_config_is_refused(log: JetStreamLog) -> None:
    await _stream(log)
    cfg = ConsumerConfig(durable_name="d", deliver_subject="dlv.d", ack_wait=5.0)
    first = await log.add_consumer("S", cfg)
    again = await log.add_consumer("S", cfg)
    assert first.name == again.name == "d"
    with pytest.raises(ConsumerNameInUse):
        await log.add_consumer("S", ConsumerConfig(durable_name="d", deliver_subject="dlv.d"))


# -- publishing -------------------------------------------------------------------


async def test_pipelined_acks_resolve_in_publish_order(log: JetStreamLog) -> None:
    await _stream(log, "A")
    await _stream(log, "B")
    order: list[int] = []

    def recorder(i: int) -> Callable[[asyncio.Future[PubAck]], None]:
        return lambda _fut: order.append(i)

    futs = []
    for i in range(2000):
        fut = log.publish_async(f"{'ab'[i % 2]}.{i}", b"x" * 128)
        fut.add_done_callback(recorder(i))
        futs.append(fut)
    acks = await asyncio.gather(*futs)
    assert order == list(range(2000))
    assert [a.seq for a in acks if a.stream == "A"] == list(range(1, 1001))
    assert [a.seq for a in acks if a.stream == "B"] == list(range(1, 1001))


async def test_msg_id_deduplication(log: JetStreamLog) -> None:
    await _stream(log)
    first = await log.publish("s.a", b"1", msg_id="same")
    second = await log.publish("s.a", b"2", msg_id="same")
    assert (first.seq, first.duplicate) == (1, False)
    assert (second.seq, second.duplicate) == (1, True)
    assert (await log.stream_info("S")).state.messages == 1


async def test_errors_in_a_pipeline_fail_only_their_own_future(log: JetStreamLog) -> None:
    await _stream(log)
    futs = [
        log.publish_async("s.a", b"1"),
        log.publish_async("nobody.listens", b"2"),
        log.publish_async("s.a", b"3", {"Nats-Expected-Last-Sequence": "99"}),
        log.publish_async("s.a", b"4"),
    ]
    results = await asyncio.gather(*futs, return_exceptions=True)
    assert results[0].seq == 1  # type: ignore[union-attr]
    assert isinstance(results[1], NoStreamForSubject)
    assert isinstance(results[2], WrongLastSequence)
    assert results[3].seq == 2  # type: ignore[union-attr]


async def test_close_waits_for_callback_publishes_in_flight(nats_server: NatsServer) -> None:
    jlog = await JetStreamLog.connect(nats_server.url)
    await _stream(jlog)
    outcomes: list[PubAck | LogError] = []
    for i in range(300):
        jlog.publish_then(f"s.{i}", b"x", None, outcomes.append)
    await jlog.close()
    assert [o.seq for o in outcomes if isinstance(o, PubAck)] == list(range(1, 301))
    after: list[PubAck | LogError] = []
    jlog.publish_then("s.late", b"x", None, after.append)
    assert len(after) == 1 and isinstance(after[0], LogClosed)


async def test_publish_after_close_fails(nats_server: NatsServer) -> None:
    jlog = await JetStreamLog.connect(nats_server.url)
    await jlog.close()
    await jlog.close()  # idempotent
    with pytest.raises(LogClosed):
        await jlog.publish("s.a", b"x")
    with pytest.raises(LogClosed):
        await jlog.stream_names()


# -- direct get, delete, purge --------------------------------------------------------


@pytest.mark.parametrize("allow_direct", [True, False])
async def test_get_by_sequence_and_last_by_subject(log: JetStreamLog, allow_direct: bool) -> None:
    await _stream(log, allow_direct=allow_direct)
    await log.publish("s.a", b"a1", {"Foo": "bar"})
    await log.publish("s.b", b"b1")
    await log.publish("s.a", b"a2")
    one = await log.get_msg("S", 1)
    assert (one.subject, one.seq, one.data) == ("s.a", 1, b"a1")
    assert one.headers == {"Foo": "bar"}
    assert one.time > 1_600_000_000 * 10**9
    assert (await log.get_msg("S", 2)).headers is None
    last = await log.get_last_msg("S", "s.a")
    assert (last.seq, last.data) == (3, b"a2")
    assert (await log.get_last_msg("S", "s.*")).seq == 3
    await log.delete_msg("S", 3)
    with pytest.raises(MessageNotFound):  # inside the stream's range: another server error
        await log.delete_msg("S", 3)
    assert (await log.get_last_msg("S", "s.a")).seq == 1
    assert await log.purge_stream("S", "s.b") == 1
    assert await log.purge_stream("S") == 1
    assert (await log.stream_info("S")).state.messages == 0


# -- push consumers ---------------------------------------------------------------------


async def test_push_delivery_acks_and_counts(log: JetStreamLog) -> None:
    await _stream(log)
    sub = await log.bus.subscribe("dlv.c")
    await log.add_consumer(
        "S", ConsumerConfig(durable_name="c", deliver_subject="dlv.c", ack_wait=10.0)
    )
    for i in range(3):
        await log.publish(f"s.{i}", b"m%d" % i, {"K": str(i)})
    msgs = [await sub.next_msg(5) for _ in range(3)]
    assert [m.subject for m in msgs] == ["s.0", "s.1", "s.2"]
    assert msgs[1].headers == {"K": "1"}
    meta = parse_ack(msgs[2].reply)
    assert (meta.stream, meta.consumer, meta.stream_seq, meta.num_delivered) == ("S", "c", 3, 1)
    await log.ack(msgs[0].reply)
    await log.nak(msgs[1].reply)
    again = await sub.next_msg(5)
    assert parse_ack(again.reply).num_delivered == 2
    assert again.subject == "s.1"
    await log.term(msgs[2].reply)
    info = await log.consumer_info("S", "c")
    assert info.num_ack_pending == 1
    assert info.num_redelivered == 1
    assert info.num_pending == 0
    await log.ack(again.reply)
    info = await log.consumer_info("S", "c")
    assert info.num_ack_pending == 0
    assert info.ack_floor.stream_seq == 3
    await sub.unsubscribe()


async def test_ack_wait_redelivery_and_max_ack_pending(log: JetStreamLog) -> None:
    await _stream(log)
    got: list[Msg] = []
    arrived = asyncio.Event()

    def on_msg(msg: Msg) -> None:
        got.append(msg)
        arrived.set()

    await log.bus.subscribe("dlv.w", callback=on_msg)
    await log.add_consumer(
        "S",
        ConsumerConfig(durable_name="w", deliver_subject="dlv.w", ack_wait=0.5, max_ack_pending=2),
    )
    for i in range(4):
        await log.publish(f"s.{i}", b"x")
    while len(got) < 4:  # two first deliveries, then their redeliveries after ack_wait
        arrived.clear()
        await asyncio.wait_for(arrived.wait(), 5)
    metas = [parse_ack(m.reply) for m in got[:4]]
    assert [(m.stream_seq, m.num_delivered) for m in metas] == [(1, 1), (2, 1), (1, 2), (2, 2)]
    info = await log.consumer_info("S", "w")
    assert info.num_ack_pending == 2
    assert info.num_pending == 2


async def test_in_progress_restarts_ack_wait(log: JetStreamLog) -> None:
    await _stream(log)
    sub = await log.bus.subscribe("dlv.p")
    await log.add_consumer(
        "S", ConsumerConfig(durable_name="p", deliver_subject="dlv.p", ack_wait=0.6)
    )
    await log.publish("s.a", b"x")
    first = await sub.next_msg(5)
    start = time.monotonic()
    await asyncio.sleep(0.4)  # the thing under test is a clock: let part of ack_wait pass
    await log.in_progress(first.reply)
    second = await sub.next_msg(5)
    assert parse_ack(second.reply).num_delivered == 2
    assert time.monotonic() - start >= 0.9


async def test_nak_with_delay(log: JetStreamLog) -> None:
    await _stream(log)
    sub = await log.bus.subscribe("dlv.n")
    await log.add_consumer("S", ConsumerConfig(durable_name="n", deliver_subject="dlv.n"))
    await log.publish("s.a", b"x")
    first = await sub.next_msg(5)
    start = time.monotonic()
    await log.nak(first.reply, delay=0.5)
    second = await sub.next_msg(5)
    assert time.monotonic() - start >= 0.45
    assert parse_ack(second.reply).num_delivered == 2


async def test_ack_of_a_non_ack_subject_is_refused(log: JetStreamLog) -> None:
    with pytest.raises(BadRequest):
        await log.ack("some.subject")


# -- key-value -------------------------------------------------------------------------


async def test_key_value_is_compatible_with_nats_py_kv(log: JetStreamLog, nc: NATS) -> None:
    kv = await log.create_key_value(KeyValueConfig(bucket="sessions", history=2))
    rev = await kv.put("client.a", b"one")
    assert (await kv.get("client.a")).value == b"one"
    with pytest.raises(KeyExists):
        await kv.create("client.a", b"two")
    rev2 = await kv.update("client.a", b"two", rev)
    with pytest.raises(WrongLastSequence):
        await kv.update("client.a", b"three", rev)
    other = await nc.jetstream().key_value("sessions")
    entry = await other.get("client.a")
    assert (entry.value, entry.revision) == (b"two", rev2)
    await other.put("client.b", b"from nats-py")
    assert (await kv.get("client.b")).value == b"from nats-py"
    assert await kv.keys() == ["client.a", "client.b"]
    await kv.delete("client.a")
    with pytest.raises(KeyNotFound):
        await kv.get("client.a")
    watcher = await kv.watch()
    first = await watcher.updates(timeout=5)
    assert first is not None and first.key in ("client.a", "client.b")
    await watcher.stop()


# -- domains --------------------------------------------------------------------------


@pytest.fixture
def domain_server(tmp_path: Path) -> Iterator[str]:
    """A nats-server whose JetStream runs in domain ``hub``."""
    if not NATS_SERVER.exists():
        pytest.skip("nats-server not installed")
    port = free_port()
    conf = tmp_path / "hub.conf"
    conf.write_text(
        f'listen: "127.0.0.1:{port}"\n'
        f'jetstream {{ domain: hub, store_dir: "{tmp_path / "store"}" }}\n'
    )
    proc = subprocess.Popen(
        [str(NATS_SERVER), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, "nats-server exited"
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=0.5) as s,
            ):
                if s.recv(4).startswith(b"INFO"):
                    break
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.02)  # polling a port: there is no event to await
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_domain_uses_the_domain_api_prefix(domain_server: str) -> None:
    jlog = await JetStreamLog.connect(domain_server, domain="hub")
    try:
        assert jlog.api_prefix == "$JS.hub.API"
        await _stream(jlog)
        ack = await jlog.publish("s.a", b"x")
        assert (ack.stream, ack.seq, ack.domain) == ("S", 1, "hub")
        assert (await jlog.get_msg("S", 1)).data == b"x"
        sub = await jlog.bus.subscribe("dlv.h")
        await jlog.add_consumer("S", ConsumerConfig(durable_name="h", deliver_subject="dlv.h"))
        msg = await sub.next_msg(5)
        meta = parse_ack(msg.reply)
        assert (meta.stream, meta.stream_seq) == ("S", 1)
        await jlog.ack(msg.reply)
        assert (await jlog.consumer_info("S", "h")).num_ack_pending == 0
    finally:
        await jlog.close()
    wrong = await JetStreamLog.connect(domain_server, domain="elsewhere", timeout=1.0)
    try:
        with pytest.raises(JetStreamAPIError) as exc:
            await wrong.stream_names()
        assert exc.value.code == 503
    finally:
        await wrong.close()


# -- reconnect -------------------------------------------------------------------------


async def test_survives_a_server_restart(nats_server: NatsServer) -> None:
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    jlog = await JetStreamLog.connect(
        nats_server.url,
        nats_options={
            "reconnect_time_wait": 0.05,
            "max_reconnect_attempts": -1,
            "reconnected_cb": on_reconnect,
        },
    )
    try:
        await _stream(jlog)
        sub = await jlog.bus.subscribe("dlv.r")
        await jlog.add_consumer("S", ConsumerConfig(durable_name="r", deliver_subject="dlv.r"))
        await jlog.publish("s.a", b"before")
        assert (await sub.next_msg(5)).payload == b"before"
        nats_server.stop()
        nats_server.start()
        await asyncio.wait_for(reconnected.wait(), 10)
        ack = await jlog.publish("s.a", b"after", timeout=5)
        assert ack.seq == 2
        msg = await sub.next_msg(5)
        assert msg.payload == b"after"
        assert parse_ack(msg.reply).consumer == "r"
    finally:
        await jlog.close()


async def test_deliver_policies(log: JetStreamLog) -> None:
    await _stream(log)
    for subject in ("s.a", "s.b", "s.a", "s.b"):
        await log.publish(subject, b"x")
    expected = {
        DeliverPolicy.ALL: [1, 2, 3, 4],
        DeliverPolicy.LAST: [4],
        DeliverPolicy.LAST_PER_SUBJECT: [3, 4],
        DeliverPolicy.BY_START_SEQUENCE: [2, 3, 4],
    }
    for policy, seqs in expected.items():
        inbox = f"dlv.{policy.value}"
        sub = await log.bus.subscribe(inbox)
        await log.add_consumer(
            "S",
            ConsumerConfig(
                deliver_subject=inbox,
                filter_subject="s.>",  # JetStream requires one for last_per_subject
                deliver_policy=policy,
                opt_start_seq=2 if policy is DeliverPolicy.BY_START_SEQUENCE else None,
                ack_policy=AckPolicy.NONE,
            ),
        )
        got = [parse_ack((await sub.next_msg(5)).reply).stream_seq for _ in seqs]
        assert got == seqs, policy
        await sub.unsubscribe()


async def test_deliveries_are_plain_nats_messages(log: JetStreamLog, nc: NATS) -> None:
    await _stream(log)
    sub = await nc.subscribe("dlv.other")
    await nc.flush()
    await log.add_consumer("S", ConsumerConfig(durable_name="o", deliver_subject="dlv.other"))
    await log.publish("s.a", b"seen by any NATS client")
    msg = await sub.next_msg(5)
    assert (msg.subject, msg.data) == ("s.a", b"seen by any NATS client")
    await log.ack(msg.reply)  # an ack from our Log for a delivery another client received
    assert (await log.consumer_info("S", "o")).num_ack_pending == 0


async def test_a_publish_nobody_answers_times_out_in_order(
    nats_server: NatsServer, nc: NATS
) -> None:
    silent = await nc.subscribe("silent.x")  # a responder that never replies: no 503
    await nc.flush()
    jlog = await JetStreamLog.connect(nats_server.url, timeout=0.3)
    try:
        await _stream(jlog)
        done: list[str] = []
        lost = jlog.publish_async("silent.x", b"1")
        stored = jlog.publish_async("s.a", b"2")
        lost.add_done_callback(lambda _f: done.append("lost"))
        stored.add_done_callback(lambda _f: done.append("stored"))
        results = await asyncio.gather(lost, stored, return_exceptions=True)
        assert isinstance(results[0], LogTimeout)
        assert isinstance(results[1], PubAck) and results[1].seq == 1
        assert done == ["lost", "stored"]  # the answered one waited for the earlier one
        assert silent.pending_msgs == 1
    finally:
        await jlog.close()
