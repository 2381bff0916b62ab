"""UpstreamBus against a real nats-server: both directions with plain nats-py clients,
shared reference-counted upstream subscriptions (checked on the server's /connz),
queue groups within and across gateways, headers, request/reply, reconnect
buffering and logins (user/password, token, nkey)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from gateway.auth.nkeys import KeyPair, Role, encode_seed
from gateway.bus.api import BusClosed, BusTimeout, Msg, NoResponders
from gateway.bus.nats_outbox import EARLY_WRITE
from gateway.bus.subjects import InvalidSubject
from gateway.bus.upstream import (
    InvalidHeader,
    PayloadTooLarge,
    UpstreamBus,
    UpstreamConnectError,
)
from gateway.options.model import UpstreamOptions
from tests.conftest import NATS_SERVER, NatsServer, free_port

pytestmark = pytest.mark.integration

NAME = "jetgate-test"


class MonitoredServer:
    """A plain nats-server with monitoring on its own port and optional extra arguments."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.http_port = free_port()
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not NATS_SERVER.exists():
            pytest.skip(f"nats-server not installed at {NATS_SERVER}")
        self.proc = subprocess.Popen(
            [
                str(NATS_SERVER),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-m",
                str(self.http_port),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, "nats-server exited"
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn,
            ):
                if conn.recv(4).startswith(b"INFO"):
                    return
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.02)  # polling a port: there is no event to await

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    async def upstream_subjects(self, name: str = NAME) -> list[str]:
        """The subscriptions the server holds for the connection called ``name``."""

        def fetch() -> dict[str, Any]:
            url = f"http://127.0.0.1:{self.http_port}/connz?subs=1"
            with urllib.request.urlopen(url, timeout=5) as resp:
                data: dict[str, Any] = json.load(resp)
                return data

        connz = await asyncio.to_thread(fetch)
        for conn in connz["connections"]:
            if conn.get("name") == name:
                subs: list[str] = conn.get("subscriptions_list", [])
                return sorted(subs)
        raise AssertionError(f"no connection named {name!r}")


def _server(*args: str) -> Iterator[MonitoredServer]:
    server = MonitoredServer(*args)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server() -> Iterator[MonitoredServer]:
    yield from _server()


@pytest.fixture
async def bus(server: MonitoredServer) -> AsyncIterator[UpstreamBus]:
    b = await UpstreamBus.connect(UpstreamOptions(urls=(server.url,)), name=NAME)
    yield b
    await b.close()


@pytest.fixture
async def nc(server: MonitoredServer) -> AsyncIterator[NATS]:
    client = await nats.connect(server.url)
    yield client
    await client.close()


async def synced(nc: NATS) -> None:
    """Return once the server has processed everything ``nc`` sent so far.

    nats-py's ``flush()`` writes its PING straight to the socket, possibly ahead
    of SUB/PUB commands still in its pending buffer; by the time that PONG is
    back its flusher has written them, so a second PING comes after them.
    """
    await nc.flush()
    await nc.flush()


class Collector:
    """A synchronous callback that records messages and wakes a waiter at a count."""

    def __init__(self) -> None:
        self.msgs: list[Msg] = []
        self._want = 0
        self._event = asyncio.Event()

    def __call__(self, msg: Msg) -> None:
        self.msgs.append(msg)
        if len(self.msgs) >= self._want:
            self._event.set()

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[Msg]:
        self._want = n
        if len(self.msgs) < n:
            self._event.clear()
            await asyncio.wait_for(self._event.wait(), timeout)
        return self.msgs


# -- both directions ------------------------------------------------------------------


async def test_bus_publishes_reach_a_plain_nats_subscriber_in_order(
    bus: UpstreamBus, nc: NATS
) -> None:
    sub = await nc.subscribe("out.>")
    await synced(nc)
    for i in range(500):
        bus.publish("out.x", b"%d" % i, reply="r.1" if i == 0 else "")
    bus.publish("out.h", b"h", headers={"K": "v", "Other-Key": "two words"})
    await bus.flush()
    got = [await sub.next_msg(timeout=5) for _ in range(501)]
    assert [m.data for m in got[:500]] == [b"%d" % i for i in range(500)]
    assert got[0].reply == "r.1" and got[1].reply == ""
    assert got[500].subject == "out.h" and got[500].headers == {"K": "v", "Other-Key": "two words"}


async def test_a_burst_larger_than_the_early_write_stays_in_order_with_nats_py_commands(
    bus: UpstreamBus, nc: NATS
) -> None:
    """Past ``EARLY_WRITE`` bytes the outbox writes at once (the server starts on a long
    burst before the loop turn ends); what nats-py itself queues keeps its place."""
    sub = await nc.subscribe("burst.>")
    await synced(nc)
    payload = b"p" * 100
    for i in range(1000):
        bus.publish("burst.a", b"%d:" % i + payload)
    await bus._nc.publish("burst.mid", b"through nats-py")  # its own buffer and flusher
    for i in range(1000):
        bus.publish("burst.b", b"%d:" % i + payload)
    # Written during the burst, not left for the flusher: less than one threshold waits.
    assert bus._nc._pending_data_size < EARLY_WRITE
    await bus.flush()
    got = [await sub.next_msg(timeout=5) for _ in range(2001)]
    assert [m.subject for m in got] == ["burst.a"] * 1000 + ["burst.mid"] + ["burst.b"] * 1000
    numbers = [m.data.split(b":")[0] for m in got if m.subject != "burst.mid"]
    assert numbers == [b"%d" % (i % 1000) for i in range(2000)]


async def test_plain_nats_publishes_reach_bus_subscribers(bus: UpstreamBus, nc: NATS) -> None:
    cb = Collector()
    await bus.subscribe("in.*", cb)
    queued = await bus.subscribe("in.>")
    exact = await bus.subscribe("in.b.c")
    await nc.publish("in.a", b"1", reply="back")
    await nc.publish("in.b.c", b"2", headers={"H": "x"})
    await synced(nc)
    (m,) = await cb.wait_for(1)
    assert (m.subject, m.payload, m.reply, m.headers, m.origin) == (
        "in.a",
        b"1",
        "back",
        None,
        None,
    )
    first, second = await queued.next_msg(5), await queued.next_msg(5)
    assert [first.payload, second.payload] == [b"1", b"2"] and second.headers == {"H": "x"}
    assert (await exact.next_msg(5)).payload == b"2"
    assert len(cb.msgs) == 1 and exact.pending == 0


async def test_status_headers_round_trip_as_nats_py_reads_them(bus: UpstreamBus, nc: NATS) -> None:
    sub = await bus.subscribe("st.>")
    plain = await nc.subscribe("st.>")
    await synced(nc)
    cases = [
        {"Status": "503"},
        {"Status": "408", "Description": "Request Timeout", "X-A": "1"},
        {"Status": "404", "K": "v"},
        {"Status": "not-a-code", "K": "v"},
    ]
    for headers in cases:
        bus.publish("st.x", b"", headers=headers)
    await bus.flush()
    assert [(await sub.next_msg(5)).headers for _ in cases] == cases
    seen = [(await plain.next_msg(5)).headers for _ in cases]
    assert seen[0] == {"Status": "503"}
    assert seen[1] == {"Status": "408", "Description": "Request Timeout", "X-A": "1"}


async def test_bad_headers_subjects_and_payloads_are_refused_before_sending(
    bus: UpstreamBus,
) -> None:
    with pytest.raises(InvalidHeader):
        bus.publish("x", headers={"Bad Name": "v"})
    with pytest.raises(InvalidHeader):
        bus.publish("x", headers={"K": "v\r\nPUB evil 0"})
    with pytest.raises(InvalidSubject):
        bus.publish("x.*")
    with pytest.raises(InvalidSubject):
        bus.publish("x", reply="has space")
    with pytest.raises(PayloadTooLarge):
        bus.publish("x", b"\0" * (bus.nc.max_payload + 1))
    with pytest.raises(InvalidSubject):
        await bus.subscribe("a.>.b")
    await bus.flush()  # the connection survived: nothing bad reached the server
    assert bus.connected


# -- shared subscriptions ---------------------------------------------------------------


async def test_a_thousand_local_subscriptions_make_one_upstream_subscription(
    server: MonitoredServer, bus: UpstreamBus, nc: NATS
) -> None:
    counts = [0] * 1000

    def counter(i: int) -> Any:
        def cb(msg: Msg) -> None:
            counts[i] += 1

        return cb

    half = await asyncio.gather(*(bus.subscribe("sensors.>", counter(i)) for i in range(500)))
    rest = [await bus.subscribe("sensors.>", counter(i)) for i in range(500, 1000)]
    subs = [*half, *rest]
    assert await server.upstream_subjects() == ["sensors.>"]
    assert bus.upstream_subscriptions == 1
    await nc.publish("sensors.kitchen.temp", b"21")
    await synced(nc)
    await bus.flush()
    assert counts == [1] * 1000
    for sub in subs[:-1]:
        await sub.unsubscribe()
    await bus.flush()
    assert await server.upstream_subjects() == ["sensors.>"]
    await subs[-1].unsubscribe()
    await bus.flush()
    assert await server.upstream_subjects() == []
    assert bus.upstream_subscriptions == 0
    # A new subscriber makes a new upstream subscription.
    again = await bus.subscribe("sensors.>")
    await nc.publish("sensors.hall", b"x")
    assert (await again.next_msg(5)).subject == "sensors.hall"


async def test_distinct_subjects_and_queue_groups_are_distinct_upstream_subscriptions(
    server: MonitoredServer, bus: UpstreamBus
) -> None:
    await bus.subscribe("a")
    await bus.subscribe("a")
    await bus.subscribe("a", queue="g")
    await bus.subscribe("a", queue="g")
    await bus.subscribe("a", queue="h")
    await bus.subscribe("b.*")
    # Queue subscriptions live on the gateway's second connection (echo on).
    assert await server.upstream_subjects() == ["a", "b.*"]
    assert await server.upstream_subjects(f"{NAME}-queues") == ["a", "a"]
    assert bus.upstream_subscriptions == 4


async def test_max_msgs_ends_only_the_local_subscription(
    server: MonitoredServer, bus: UpstreamBus
) -> None:
    one = await bus.subscribe("m", max_msgs=1)
    forever = await bus.subscribe("m")
    for i in range(3):
        bus.publish("m", b"%d" % i)
    await bus.flush()
    assert one.closed and one.delivered == 1 and forever.delivered == 3
    assert await server.upstream_subjects() == ["m"]
    forever.auto_unsubscribe(3)
    assert forever.closed
    await bus.flush()
    assert await server.upstream_subjects() == []


async def test_queue_group_within_one_gateway_balances_between_members(
    bus: UpstreamBus, nc: NATS
) -> None:
    members = [Collector() for _ in range(4)]
    for cb in members:
        await bus.subscribe("work", cb, queue="workers")
    plain = Collector()
    await bus.subscribe("work", plain)
    for i in range(100):
        await nc.publish("work", b"%d" % i)
    await synced(nc)
    await plain.wait_for(100)
    await bus.flush()
    assert [len(cb.msgs) for cb in members] == [25, 25, 25, 25]
    payloads = sorted(int(m.payload) for cb in members for m in cb.msgs)
    assert payloads == list(range(100))


async def test_queue_group_across_two_gateways_delivers_each_message_once(
    server: MonitoredServer, nc: NATS
) -> None:
    opts = UpstreamOptions(urls=(server.url,))
    a = await UpstreamBus.connect(opts, name="gw-a")
    b = await UpstreamBus.connect(opts, name="gw-b")
    try:
        got_a, got_b = Collector(), Collector()
        for _ in range(3):
            await a.subscribe("jobs", got_a, queue="q")
            await b.subscribe("jobs", got_b, queue="q")
        # Queue subscriptions live on each gateway's second connection (echo on).
        assert await server.upstream_subjects("gw-a-queues") == ["jobs"]
        assert await server.upstream_subjects("gw-b-queues") == ["jobs"]
        for i in range(200):
            await nc.publish("jobs", b"%d" % i)
        await synced(nc)
        await a.flush()
        await b.flush()
        all_payloads = sorted(int(m.payload) for m in got_a.msgs + got_b.msgs)
        assert all_payloads == list(range(200))
        assert got_a.msgs and got_b.msgs  # NATS balanced between the gateways
    finally:
        await a.close()
        await b.close()


# -- delivery modes --------------------------------------------------------------------------


async def test_callback_less_subscription_drops_and_counts_when_full(bus: UpstreamBus) -> None:
    sub = await bus.subscribe("q", pending_limit=5)
    for i in range(20):
        bus.publish("q", b"%d" % i)
    await bus.flush()
    assert (sub.pending, sub.dropped, sub.delivered) == (5, 15, 20)
    assert [(await sub.next_msg(1)).payload for _ in range(5)] == [b"0", b"1", b"2", b"3", b"4"]
    with pytest.raises(BusTimeout):
        await sub.next_msg(0.01)


async def test_failing_callback_does_not_stop_delivery(bus: UpstreamBus) -> None:
    def boom(msg: Msg) -> None:
        raise RuntimeError("subscriber bug")

    await bus.subscribe("f", boom)
    ok = Collector()
    await bus.subscribe("f", ok)
    bus.publish("f", b"1")
    bus.publish("f", b"2")
    await bus.flush()
    assert [m.payload for m in ok.msgs] == [b"1", b"2"] and bus.connected


# -- request / reply ------------------------------------------------------------------------


async def test_request_reply_both_ways_and_no_responders(bus: UpstreamBus, nc: NATS) -> None:
    await bus.subscribe("svc.echo", lambda m: bus.publish(m.reply, b"echo:" + m.payload))
    reply = await nc.request("svc.echo", b"hi", timeout=5)
    assert reply.data == b"echo:hi"

    async def responder(msg: Any) -> None:
        await msg.respond(b"nc:" + msg.data)

    await nc.subscribe("svc.nc", cb=responder)
    await synced(nc)
    answer = await bus.request("svc.nc", b"q", timeout=5, headers={"K": "v"})
    assert answer.payload == b"nc:q"
    with pytest.raises(NoResponders):
        await bus.request("svc.nobody", b"", timeout=5)
    await bus.subscribe("svc.silent", lambda m: None)
    with pytest.raises(BusTimeout):
        await bus.request("svc.silent", b"", timeout=0.2)


# -- reconnect ---------------------------------------------------------------------------------


async def test_publishes_during_an_outage_are_delivered_after_reconnect(
    nats_server: NatsServer,
) -> None:
    down, up = asyncio.Event(), asyncio.Event()

    async def on_down() -> None:
        down.set()

    async def on_up() -> None:
        up.set()

    bus = await UpstreamBus.connect(
        UpstreamOptions(urls=(nats_server.url,)),
        reconnect_wait=0.05,
        disconnected_cb=on_down,
        reconnected_cb=on_up,
    )
    try:
        sub = await bus.subscribe("r.>")
        bus.publish("r.before", b"b")
        await bus.flush()
        assert (await sub.next_msg(5)).payload == b"b"
        nats_server.stop()
        await asyncio.wait_for(down.wait(), 10)
        assert not bus.connected
        for i in range(100):
            bus.publish("r.during", b"%d" % i)
        nats_server.start()
        await bus.flush(10)  # waits for the reconnect, then PING/PONG
        assert up.is_set() and bus.connected
        got = [(await sub.next_msg(5)).payload for _ in range(100)]
        assert got == [b"%d" % i for i in range(100)]
        assert bus.dropped_publishes == 0
        # Subscriptions were re-established: a new client's publish arrives.
        other = await nats.connect(nats_server.url)
        await other.publish("r.after", b"a")
        await other.close()
        assert (await sub.next_msg(5)).payload == b"a"
    finally:
        await bus.close()


async def test_the_outage_buffer_is_bounded_and_overflow_is_counted(
    server: MonitoredServer,
) -> None:
    down = asyncio.Event()

    async def on_down() -> None:
        down.set()

    bus = await UpstreamBus.connect(
        UpstreamOptions(urls=(server.url,)),
        pending_size=2000,
        reconnect_wait=0.05,
        disconnected_cb=on_down,
    )
    try:
        server.stop()
        await asyncio.wait_for(down.wait(), 10)
        for _ in range(100):
            bus.publish("x", b"\0" * 100)
        assert 70 < bus.dropped_publishes < 100
        with pytest.raises(BusTimeout):
            await bus.flush(0.05)
    finally:
        await bus.close()
    assert bus.nc.is_closed


# -- logins -------------------------------------------------------------------------------------


@pytest.fixture
def user_server() -> Iterator[MonitoredServer]:
    yield from _server("--user", "gw", "--pass", "s3cret")


@pytest.fixture
def token_server() -> Iterator[MonitoredServer]:
    yield from _server("--auth", "t0ken")


async def _round_trip(bus: UpstreamBus) -> bytes:
    sub = await bus.subscribe("login.check")
    bus.publish("login.check", b"ok")
    return (await sub.next_msg(5)).payload


async def test_user_and_password_login(user_server: MonitoredServer) -> None:
    url = user_server.url
    bus = await UpstreamBus.connect(UpstreamOptions(urls=(url,), user="gw", password="s3cret"))
    try:
        assert await _round_trip(bus) == b"ok"
    finally:
        await bus.close()
    with pytest.raises(UpstreamConnectError) as err:
        await UpstreamBus.connect(
            UpstreamOptions(urls=(url,), user="gw", password="wrong"),
            connect_attempts=1,
            reconnect_wait=0.01,
        )
    assert "wrong" not in str(err.value)


async def test_token_login(token_server: MonitoredServer) -> None:
    bus = await UpstreamBus.connect(UpstreamOptions(urls=(token_server.url,), token="t0ken"))
    try:
        assert await _round_trip(bus) == b"ok"
    finally:
        await bus.close()
    with pytest.raises(UpstreamConnectError):
        await UpstreamBus.connect(
            UpstreamOptions(urls=(token_server.url,), token="nope"),
            connect_attempts=1,
            reconnect_wait=0.01,
        )


async def test_nkey_seed_file_login(tmp_path: Path) -> None:
    pytest.importorskip("nkeys", reason="nats-py signs nonces with the nkeys package")
    seed = encode_seed(bytes(range(32)), Role.USER)
    seed_file = tmp_path / "user.nk"
    seed_file.write_text(seed + "\n")
    config = tmp_path / "server.conf"
    config.write_text(f"authorization {{ users: [ {{ nkey: {KeyPair(seed).public_key} }} ] }}\n")
    for server in _server("-c", str(config)):
        opts = UpstreamOptions(urls=(server.url,), nkey=str(seed_file))
        bus = await UpstreamBus.connect(opts)
        try:
            assert await _round_trip(bus) == b"ok"
        finally:
            await bus.close()


async def test_unreachable_upstream_is_a_typed_error() -> None:
    url = f"nats://u:pw@127.0.0.1:{free_port()}"
    with pytest.raises(UpstreamConnectError) as err:
        await UpstreamBus.connect(
            UpstreamOptions(urls=(url,)), connect_attempts=1, reconnect_wait=0.01, connect_timeout=1
        )
    assert "pw" not in str(err.value)


# -- lifecycle ----------------------------------------------------------------------------------


async def test_wrapping_an_existing_connection_leaves_it_open(
    server: MonitoredServer, nc: NATS
) -> None:
    bus = UpstreamBus(nc)
    sub = await bus.subscribe("w")
    await bus.close()
    await bus.close()  # idempotent
    assert sub.closed and nc.is_connected
    with pytest.raises(BusClosed):
        bus.publish("w")
    with pytest.raises(BusClosed):
        await bus.subscribe("w")
    with pytest.raises(BusClosed):
        await sub.next_msg()
    await synced(nc)
    conns = await asyncio.to_thread(
        lambda: json.load(
            urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/connz?subs=1", timeout=5)
        )
    )
    assert all(not c.get("subscriptions_list") for c in conns["connections"])


# -- local delivery (leaf-node style, no_echo) -------------------------------------------------


async def test_own_publications_are_delivered_locally_once_with_their_origin(
    bus: UpstreamBus, nc: NATS
) -> None:
    local = Collector()
    await bus.subscribe("loc.>", local)
    remote: list[bytes] = []
    all_remote = asyncio.Event()

    async def on_remote(msg: Any) -> None:
        remote.append(msg.data)
        if len(remote) == 4:
            all_remote.set()

    await nc.subscribe("loc.>", cb=on_remote)
    await synced(nc)
    publisher = object()
    bus.publish("loc.a", b"1", origin=publisher)
    bus.publish_many("loc.b", [b"2", b"3"], origin=publisher)
    await nc.publish("loc.c", b"from-nats")
    await synced(nc)
    await bus.flush()
    msgs = await local.wait_for(4)
    await bus.flush()
    assert sorted(m.payload for m in msgs) == [b"1", b"2", b"3", b"from-nats"]  # once each
    assert [m.origin is publisher for m in msgs if m.payload != b"from-nats"] == [True] * 3
    assert [m.origin for m in msgs if m.payload == b"from-nats"] == [None]
    await asyncio.wait_for(all_remote.wait(), 5)
    assert sorted(remote) == [b"1", b"2", b"3", b"from-nats"]


class Member:
    """A queue-group member's callback: keeps its own messages, counts into a shared Collector."""

    def __init__(self, total: Collector) -> None:
        self.msgs: list[Msg] = []
        self._total = total

    def __call__(self, msg: Msg) -> None:
        self.msgs.append(msg)
        self._total(msg)


async def test_a_slow_local_responder_is_not_preempted_by_no_responders(bus: UpstreamBus) -> None:
    async def answer_later(msg: Msg) -> None:
        await asyncio.sleep(0.2)  # longer than the server takes to report no responders
        bus.publish(msg.reply, b"late:" + msg.payload)

    await bus.subscribe("svc.slow", lambda m: asyncio.ensure_future(answer_later(m)))
    reply = await bus.request("svc.slow", b"q", timeout=5)
    assert reply.payload == b"late:q"
    # The same for a NATS-client-style request: a reply subscription and a publish.
    inbox = Collector()
    await bus.subscribe("_INBOX.local-req", inbox)
    bus.publish("svc.slow", b"r", reply="_INBOX.local-req")
    (answer,) = await inbox.wait_for(1)
    assert answer.payload == b"late:r" and answer.headers is None
    with pytest.raises(NoResponders):
        await bus.request("svc.nobody.here", b"", timeout=5)


async def test_own_publications_reach_a_local_queue_group_once_each(bus: UpstreamBus) -> None:
    total = Collector()
    members = [Member(total), Member(total)]
    for member in members:
        await bus.subscribe("work", member, queue="q")
    for i in range(100):
        bus.publish("work", b"%d" % i)
    await bus.flush()
    await total.wait_for(100)
    await bus.flush()
    payloads = sorted(int(msg.payload) for m in members for msg in m.msgs)
    assert payloads == list(range(100))


async def test_own_publications_reach_a_queue_group_across_gateways_once_each(
    server: MonitoredServer,
) -> None:
    """Queue groups go through the server (second connection, echo on), so a gateway's own
    publication goes to exactly one member among every gateway's, its own included."""
    opts = UpstreamOptions(urls=(server.url,))
    a = await UpstreamBus.connect(opts, name="qa")
    b = await UpstreamBus.connect(opts, name="qb")
    try:
        total = Collector()
        on_a, on_b = Member(total), Member(total)
        await a.subscribe("jobs.local", on_a, queue="w")
        await b.subscribe("jobs.local", on_b, queue="w")
        for i in range(200):
            a.publish("jobs.local", b"%d" % i)
        await a.flush()
        await total.wait_for(200)
        await a.flush()
        await b.flush()
        payloads = sorted(int(m.payload) for m in on_a.msgs + on_b.msgs)
        assert payloads == list(range(200))  # once each, none lost, none twice
        assert on_a.msgs and on_b.msgs  # the server balanced between the gateways
    finally:
        await a.close()
        await b.close()
