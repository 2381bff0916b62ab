"""Publish and subscribe permissions for NATS clients, over TCP and WebSocket.

Every kind of rule: a string, a list, an ``allow`` map, a ``deny`` map, both,
queue-group entries (``"subject queue"``) and ``allow_responses``. A denied
operation gets ``-ERR 'Permissions Violation for Publish to "x"'`` (or
``Subscription to``), which nats-py hands to ``error_cb``; the connection stays
open and nothing is delivered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeout
from websockets.asyncio.client import connect as ws_connect

from gateway.server import Gateway
from tests.integration.auth.conftest import StartGateway
from tests.integration.auth.helpers import QUIET, NatsErrors, nats_connect

USERS = """
authorization {
  users = [
    {user: admin, password: p}
    {user: pub_string, password: p, permissions: {publish: "ok.one"}}
    {user: pub_list, password: p, permissions: {publish: ["ok.one", "ok.two"]}}
    {user: pub_allow, password: p, permissions: {publish: {allow: ["ok.>"]}}}
    {user: pub_deny, password: p, permissions: {publish: {deny: ["secret.>"]}}}
    {user: pub_both, password: p, permissions: {publish: {allow: ["ok.>"], deny: ["ok.secret"]}}}
    {user: sub_string, password: p, permissions: {subscribe: "ok.one"}}
    {user: sub_list, password: p, permissions: {subscribe: ["ok.one", "ok.two"]}}
    {user: sub_allow, password: p, permissions: {subscribe: {allow: ["ok.*"]}}}
    {user: sub_deny, password: p, permissions: {subscribe: {deny: ["secret.>"]}}}
    {user: sub_both, password: p, permissions: {subscribe: {allow: ["ok.>"], deny: ["ok.secret"]}}}
    {user: queue, password: p, permissions: {subscribe: {allow: ["jobs.* workers", "free.>"], deny: ["free.* banned"]}}}
    {user: service, password: p, permissions: {subscribe: ["svc.>"], allow_responses: true}}
    {user: service2, password: p, permissions: {
        publish: {deny: [">"]}, subscribe: ["svc.>"], allow_responses: {max: 2, expires: "1m"}}}
  ]
}
"""


class Clients:
    """An unrestricted admin connection and restricted users' connections on one gateway."""

    def __init__(self, gateway: Gateway, ws: bool) -> None:
        self.gateway = gateway
        self.ws = ws
        self.opened: list[Client] = []

    async def user(self, name: str, errors: NatsErrors | None = None) -> Client:
        nc = await nats_connect(self.gateway, self.ws, errors, user=name, password="p")
        self.opened.append(nc)
        return nc

    async def close(self) -> None:
        for nc in self.opened:
            await nc.close()


@pytest.fixture(params=[False, True], ids=["tcp", "websocket"])
async def clients(
    request: pytest.FixtureRequest, start_gateway: StartGateway
) -> AsyncIterator[Clients]:
    gateway = await start_gateway(USERS)
    pool = Clients(gateway, request.param)
    yield pool
    await pool.close()


def literal(subject: str) -> str:
    """A literal subject that the (possibly wildcard) ``subject`` matches."""
    return subject.replace(">", "x.y").replace("*", "w")


async def receives(sub: Subscription, payload: bytes) -> None:
    """Wait until ``sub`` receives ``payload`` (other messages before it are skipped)."""
    while (await sub.next_msg(timeout=5)).data != payload:
        pass


async def no_message(sub: Subscription, wait: float = QUIET) -> None:
    """Assert nothing arrives on ``sub`` within ``wait`` seconds (a bounded negative check)."""
    try:
        msg = await sub.next_msg(timeout=wait)
    except NatsTimeout:
        return
    raise AssertionError(f"unexpected message on {msg.subject}: {msg.data!r}")


@pytest.mark.parametrize(
    ("user", "allowed", "denied"),
    [
        ("pub_string", ["ok.one"], ["ok.two"]),
        ("pub_list", ["ok.one", "ok.two"], ["ok.three"]),
        ("pub_allow", ["ok.x", "ok.x.y"], ["other", "ok"]),
        ("pub_deny", ["anything", "secretive"], ["secret.x", "secret.x.y"]),
        ("pub_both", ["ok.public"], ["ok.secret", "other"]),
    ],
)
async def test_publish_rules(
    clients: Clients, user: str, allowed: list[str], denied: list[str]
) -> None:
    admin = await clients.user("admin")
    watch = await admin.subscribe(">")
    await admin.flush()
    errors = NatsErrors()
    nc = await clients.user(user, errors)
    for subject in denied:
        await nc.publish(subject, b"denied")
        await errors.violation("Publish", subject)
    for subject in allowed:
        await nc.publish(subject, b"allowed")
    # Messages from one publisher arrive in order: had a denied one gone through,
    # it would arrive before the allowed ones.
    got = [await watch.next_msg(timeout=5) for _ in allowed]
    assert [(m.subject, m.data) for m in got] == [(s, b"allowed") for s in allowed]
    await errors.none(nc)
    assert nc.is_connected


@pytest.mark.parametrize(
    ("user", "allowed", "denied"),
    [
        ("sub_string", ["ok.one"], ["ok.two", "ok.*"]),
        ("sub_list", ["ok.one", "ok.two"], ["ok.three", "ok.>"]),
        ("sub_allow", ["ok.x", "ok.*"], ["ok.>", "ok.x.y", "other"]),
        ("sub_deny", ["ok.x", "secret"], ["secret.x", "secret.*", "secret.>"]),
        ("sub_both", ["ok.public", "ok.a.b"], ["ok.secret", "other"]),
    ],
)
async def test_subscribe_rules(
    clients: Clients, user: str, allowed: list[str], denied: list[str]
) -> None:
    admin = await clients.user("admin")
    errors = NatsErrors()
    nc = await clients.user(user, errors)
    denied_subs = []
    for subject in denied:
        denied_subs.append(await nc.subscribe(subject))
        await errors.violation("Subscription", subject)
    allowed_subs = [await nc.subscribe(subject) for subject in allowed]
    await errors.none(nc)
    for subject in [*denied, *allowed]:
        await admin.publish(literal(subject), subject.encode())
    await admin.flush()
    for subject, sub in zip(allowed, allowed_subs, strict=True):
        await receives(sub, subject.encode())
    # Deliveries to one connection are in publish order, and the last message has
    # arrived: anything for the denied subscriptions would be queued by now.
    assert [sub.pending_msgs for sub in denied_subs] == [0] * len(denied)


async def test_wildcard_subscription_skips_denied_subjects(clients: Clients) -> None:
    admin = await clients.user("admin")
    nc = await clients.user("sub_deny")
    everything = await nc.subscribe(">")
    await nc.flush()
    await admin.publish("secret.x", b"hidden")
    await admin.publish("open.x", b"shown")
    await admin.flush()
    first = await everything.next_msg(timeout=5)
    # The denied one was published first: it would have come first.
    assert (first.subject, first.data) == ("open.x", b"shown")


async def test_queue_group_entries(clients: Clients) -> None:
    admin = await clients.user("admin")
    errors = NatsErrors()
    nc = await clients.user("queue", errors)
    # "jobs.* workers": only in the queue group "workers".
    allowed = await nc.subscribe("jobs.a", queue="workers")
    await nc.subscribe("jobs.a")
    await errors.violation("Subscription", "jobs.a")
    await nc.subscribe("jobs.a", queue="others")
    error = await errors.next()
    assert error.lower() == (
        'nats: permissions violation for subscription to "jobs.a" using queue "others"'
    )
    # "free.>" allows any queue but "banned" (deny "free.* banned").
    free = await nc.subscribe("free.a", queue="anyq")
    await nc.subscribe("free.a", queue="banned")
    error = await errors.next()
    assert error.lower() == (
        'nats: permissions violation for subscription to "free.a" using queue "banned"'
    )
    await nc.flush()
    await admin.publish("jobs.a", b"job")
    await admin.publish("free.a", b"free")
    await admin.flush()
    assert (await allowed.next_msg(timeout=5)).data == b"job"
    assert (await free.next_msg(timeout=5)).data == b"free"
    await errors.none(nc)


async def test_allow_responses_permits_one_reply_per_request(clients: Clients) -> None:
    requester = await clients.user("admin")
    errors = NatsErrors()
    service = await clients.user("service", errors)
    requests = await service.subscribe("svc.echo")
    await service.flush()
    pending = asyncio.ensure_future(requester.request("svc.echo", b"ping", timeout=5))
    request = await requests.next_msg(timeout=5)
    assert request.reply
    await service.publish(request.reply, b"pong:" + request.data)
    assert (await pending).data == b"pong:ping"
    # The permit is used up: a second reply to the same inbox is refused.
    await service.publish(request.reply, b"again")
    await errors.violation("Publish", request.reply)


async def test_allow_responses_without_publish_rules_denies_other_publishes(
    clients: Clients,
) -> None:
    # The NATS server: allow_responses forces a publish allow list to exist (empty =
    # nothing but replies).
    errors = NatsErrors()
    service = await clients.user("service", errors)
    await service.publish("svc.other", b"not a reply")
    await errors.violation("Publish", "svc.other")


async def test_allow_responses_max_and_deny_all(clients: Clients) -> None:
    requester = await clients.user("admin")
    errors = NatsErrors()
    service = await clients.user("service2", errors)
    requests = await service.subscribe("svc.>")
    await service.flush()
    inbox = requester.new_inbox()
    replies = await requester.subscribe(inbox)
    await requester.publish("svc.multi", b"go", reply=inbox)
    request = await requests.next_msg(timeout=5)
    assert request.reply == inbox
    for i in range(3):
        await service.publish(inbox, str(i).encode())
    await errors.violation("Publish", inbox)  # the third reply: max is 2
    assert [(await replies.next_msg(timeout=5)).data for _ in range(2)] == [b"0", b"1"]
    await no_message(replies)
    # A reply subject it was never asked on is not a response.
    await service.publish("_INBOX.unasked", b"x")
    await errors.violation("Publish", "_INBOX.unasked")


async def test_violation_text_is_exactly_the_servers(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(USERS)
    assert gateway.websocket is not None
    async with ws_connect(f"ws://127.0.0.1:{gateway.websocket.port}/") as ws:
        info = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(info, bytes) and info.startswith(b"INFO ")
        assert json.loads(info[5:])["auth_required"] is True
        await ws.send(
            b'CONNECT {"user":"pub_allow","pass":"p","verbose":false}\r\n'
            b"PUB nope 1\r\nx\r\nPING\r\n"
        )
        received = b""
        while b"PONG\r\n" not in received:
            frame = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(frame, bytes)
            received += frame
    assert received == b"-ERR 'Permissions Violation for Publish to \"nope\"'\r\nPONG\r\n"
