"""``resolver: URL(...)``: account JWTs fetched from a real HTTP server on 127.0.0.1.

The account server is ``http.server`` in a thread (``AccountServer``): it
answers ``GET /jwt/v1/accounts/<key>`` from a dict, ``404`` for the rest, and
can hold its answers (``hold``) to play a slow server. Clients are nats-py
with creds files and MQTT clients (paho and raw 3.1.1) with bearer JWTs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.auth.operator import UrlResolver
from gateway.server import Gateway
from tests.integration.auth.helpers import (
    CONNACK_311_NOT_AUTHORIZED,
    NOT_AUTHORIZED,
    SUCCESS,
    connack_311_bytes,
    nats_accepted,
    nats_connect,
    nats_refusal,
    paho_connack,
)
from tests.integration.operator.conftest import Identities, StartGateway

pytestmark = pytest.mark.integration

PREFIX = "/jwt/v1/accounts/"
VIOLATION = "Authorization Violation"


class AccountServer:
    """An account JWT server: ``jwts`` by account key, ``paths`` requested, ``hold`` answers."""

    def __init__(self, port: int = 0) -> None:
        self.jwts: dict[str, str] = {}
        self.paths: list[str] = []
        self.hold = threading.Event()
        self.hold.set()  # set: answer at once
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                outer.arrived.set()
                outer.hold.wait(10)
                token = outer.jwts.get(self.path.removeprefix(PREFIX))
                if not self.path.startswith(PREFIX) or token is None:
                    self.send_error(404)
                    return
                body = token.encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/jwt")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the gateway gave up waiting (the slow-server test)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def serve(self, ids: Identities, *names: str, **overrides: object) -> None:
        """Serve the JWTs of accounts ``names`` (issued with ``overrides``)."""
        for name in names:
            self.jwts[ids.key(name)] = ids.account_jwt(name, **overrides)

    def requests_for(self, ids: Identities, name: str) -> int:
        return self.paths.count(PREFIX + ids.key(name))

    def stop(self) -> None:
        """Stop answering and close the port. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@pytest.fixture
async def account_server() -> AsyncIterator[Callable[..., AccountServer]]:
    """``account_server(port=0)``: start an account server; all are stopped at teardown."""
    servers: list[AccountServer] = []

    def start(port: int = 0) -> AccountServer:
        server = AccountServer(port)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)


def resolver_of(gateway: Gateway) -> UrlResolver:
    operator = gateway.users.operator
    assert operator is not None and isinstance(operator.resolver, UrlResolver)
    return operator.resolver


async def test_accounts_are_fetched_once_and_cached(
    start: StartGateway, ids: Identities, account_server: Callable[..., AccountServer]
) -> None:
    server = account_server()
    server.serve(ids, "A")
    gateway = await start(url=server.url)
    assert server.paths == []  # nothing is fetched before a client needs it
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))
    assert await paho_connack(gateway, 5, "u", ids.bearer("A")) == SUCCESS
    assert await paho_connack(gateway, 4, "u", ids.bearer("A")) == SUCCESS
    assert server.paths == [PREFIX + ids.key("A")]
    # Clients of one account meet; the JWT came over HTTP only once.
    nc = await nats_connect(gateway, user_credentials=ids.creds("A"))
    try:
        sub = await nc.subscribe("greet")
        await nc.publish("greet", b"hi")
        assert (await sub.next_msg(timeout=5)).data == b"hi"
    finally:
        await nc.close()


async def test_unknown_account_404_is_refused_with_a_log_line(
    start: StartGateway,
    ids: Identities,
    account_server: Callable[..., AccountServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = account_server()
    server.serve(ids, "A")
    gateway = await start(url=server.url)
    caplog.set_level(logging.DEBUG, logger="jetgate")
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds("B"))
    assert await paho_connack(gateway, 5, "u", ids.bearer("B")) == NOT_AUTHORIZED
    assert await connack_311_bytes(gateway, "u", ids.bearer("B")) == CONNACK_311_NOT_AUTHORIZED
    expected = f'could not fetch <"{server.url}{ids.key("B")}">: 404'
    assert any(expected in r.getMessage() for r in caplog.records), caplog.text
    assert any(
        "Account JWT lookup error" in r.getMessage() and r.levelno == logging.WARNING
        for r in caplog.records
    )
    # A failed fetch is not remembered: every client of B asked again.
    assert server.requests_for(ids, "B") == 3
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))  # still serving


async def test_unreachable_server_is_refused_then_recovered(
    start: StartGateway,
    ids: Identities,
    account_server: Callable[..., AccountServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = account_server()
    server.serve(ids, "A")
    gateway = await start(url=server.url)
    port = server.port
    await asyncio.to_thread(server.stop)
    caplog.set_level(logging.WARNING, logger="jetgate")
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds("A"))
    assert await paho_connack(gateway, 5, "u", ids.bearer("A")) == NOT_AUTHORIZED
    assert any("could not fetch" in r.getMessage() for r in caplog.records), caplog.text
    # The account server comes back on the same port: the next client gets in.
    again = account_server(port)
    again.serve(ids, "A")
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))
    assert await paho_connack(gateway, 5, "u", ids.bearer("A")) == SUCCESS
    assert again.requests_for(ids, "A") == 1


async def test_bad_jwt_is_refused_and_fetched_again(
    start: StartGateway,
    ids: Identities,
    account_server: Callable[..., AccountServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = account_server()
    server.jwts[ids.key("A")] = "this is not a JWT"
    server.jwts[ids.key("B")] = ids.account_jwt("A")  # A's JWT under B's key
    gateway = await start(url=server.url)
    caplog.set_level(logging.WARNING, logger="jetgate")
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds("A"))
    assert await paho_connack(gateway, 5, "u", ids.bearer("A")) == NOT_AUTHORIZED
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds("B"))
    assert any("Account JWT lookup error" in r.getMessage() for r in caplog.records)
    server.serve(ids, "A", "B")
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))
    assert await nats_accepted(gateway, user_credentials=ids.creds("B"))
    assert server.requests_for(ids, "A") == 3
    assert server.requests_for(ids, "B") == 2


async def test_untrusted_account_from_the_server_is_refused(
    start: StartGateway, ids: Identities, account_server: Callable[..., AccountServer]
) -> None:
    server = account_server()
    server.serve(ids, "A", signer=ids.accounts["A"].key)  # self-signed
    gateway = await start(url=server.url)
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds("A"))
    assert await paho_connack(gateway, 5, "u", ids.bearer("A")) == NOT_AUTHORIZED


async def test_slow_server_times_out_without_stalling_other_clients(
    start: StartGateway,
    ids: Identities,
    account_server: Callable[..., AccountServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = account_server()
    server.serve(ids, "A", "B")
    # A longer CONNECT deadline than the fetch's 2 s, so that the fetch gives up first.
    gateway = await start(url=server.url, extra="authorization { timeout: 5 }\n")
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))  # A is cached
    server.hold.clear()
    server.arrived.clear()
    caplog.set_level(logging.WARNING, logger="jetgate")
    refused = asyncio.create_task(nats_refusal(gateway, user_credentials=ids.creds("B")))
    assert await asyncio.to_thread(server.arrived.wait, 5)  # B's fetch hangs in the server
    # Meanwhile the event loop serves account A: connect, subscribe, publish, receive.
    nc = await nats_connect(gateway, user_credentials=ids.creds("A"))
    try:
        sub = await nc.subscribe("during")
        await nc.publish("during", b"ok")
        assert (await sub.next_msg(timeout=5)).data == b"ok"
        assert not refused.done()
    finally:
        await nc.close()
    assert VIOLATION in await asyncio.wait_for(refused, 10)  # after the 2 s timeout
    assert any("timed out" in r.getMessage() for r in caplog.records), caplog.text
    server.hold.set()


async def test_concurrent_fetches_of_one_account_share_one_request(
    ids: Identities, account_server: Callable[..., AccountServer]
) -> None:
    server = account_server()
    server.serve(ids, "A")
    resolver = UrlResolver(server.url.rstrip("/"))  # the missing "/" is added
    await asyncio.gather(*(resolver.load(ids.key("A")) for _ in range(5)))
    assert server.requests_for(ids, "A") == 1 and resolver.requests == 1
    assert resolver.fetch(ids.key("A")) == server.jwts[ids.key("A")]
    await resolver.load("not-an-account-key")
    assert resolver.error("not-an-account-key") == "will only fetch valid account keys"
    assert resolver.requests == 1


async def test_expired_account_is_fetched_again(
    start: StartGateway, ids: Identities, account_server: Callable[..., AccountServer]
) -> None:
    server = account_server()
    server.serve(ids, "A", expires_in=-10)
    gateway = await start(url=server.url)
    resolver_of(gateway).min_refresh = 0.0  # the NATS server waits 1 s between refreshes
    assert VIOLATION in await nats_refusal(gateway, user_credentials=ids.creds("A"))
    server.serve(ids, "A")
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))
    assert server.requests_for(ids, "A") == 2
    assert await nats_accepted(gateway, user_credentials=ids.creds("A"))
    assert server.requests_for(ids, "A") == 2
